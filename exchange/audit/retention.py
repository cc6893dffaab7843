"""Retention: after a configurable period, the survivor data of closed referrals is purged; the log stays.

A referral is closed when its Task is in a final state (`exchange.referral.task_states.FINAL_STATES`); its period
runs from the Task's last change. Purging a closed referral replaces every stored
version of its Task, ServiceRequest, Patient and every other referral resource they point at (Consents and
documents in `supportingInfo`, the Procedures and documents of `Task.output`), and of the Consents, documents and
Procedures about the purged Patient, with a stub (type, id, version, a `purged` tag), marks them deleted (reads
answer 410) and drops their search-index rows, through the store (`Repository.every` pages through the referrals,
`Repository.purge` purges one resource). Anything an open referral still points at is kept. The audit log holds only
references and hashes, so its chain still verifies, and the purge itself is recorded in it.

Memory and transactions stay bounded however large the store: the Tasks and ServiceRequests are read `PAGE` at a
time, keeping only their references, and the purge commits `BATCH` resources a transaction (each with its own
AuditEvents), so a purge stopped half way has purged whole resources and the next run goes on where it stopped.
Before each batch, what a referral made since the scan points at is looked up again and kept.
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping

from exchange.need_to_know.kinds import REFERRAL_TYPES
from exchange.context import system_context
from exchange.fhir.references import all_references
from exchange.referral.task_states import FINAL_STATES
from exchange.store.clock import fhir_instant, from_db, utcnow
from exchange.kernel.unit import Event, open_unit
from exchange.store.repository import Repository

PURGED_TAG = {"system": "https://gbv-exchange.org/fhir/CodeSystem/retention", "code": "purged"}
_PURGEABLE = REFERRAL_TYPES  # every resource a referral holds of hers (a Procedure in Task.output too)
PAGE = 1000  # resources read at a time
BATCH = 200  # resources purged a transaction


@dataclass
class PurgeReport:
    cutoff: datetime | None
    dry_run: bool
    referrals: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    kept_shared: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"cutoff": fhir_instant(self.cutoff) if self.cutoff else None, "dry_run": self.dry_run,
                "closed_referrals": self.referrals, "purged": self.purged, "kept_for_open_referrals":
                self.kept_shared}


def _targets(body: dict) -> set[str]:
    """The referral resources `body` points at, from any element (Task.output's Procedure, reasonReference ...)."""
    return {r for r in all_references(body) if r.count("/") == 1 and r.split("/")[0] in _PURGEABLE}


def _is_purged(body: dict) -> bool:
    return PURGED_TAG in ((body.get("meta") or {}).get("tag") or [])


@dataclass
class _Scan:
    """What a purge needs of the store's Tasks and ServiceRequests: references only, never their bodies."""
    closed: set[str] = field(default_factory=set)  # Tasks in a final state since before the cutoff
    closed_targets: set[str] = field(default_factory=set)  # what those Tasks point at
    open_roots: set[str] = field(default_factory=set)  # every other Task, and what it points at
    request_targets: dict[str, set[str]] = field(default_factory=dict)  # ServiceRequest -> what it points at
    live_requests: set[str] = field(default_factory=set)  # ServiceRequests neither deleted nor purged


async def _pages(exchange, resource_type: str):  # noqa: ANN001, ANN202
    """Every stored resource of the type, in pages, each page one statement of its own (no long transaction)."""
    after = ""
    while True:
        async with exchange.db.read() as conn:
            page = await Repository(conn).every(resource_type, after=after, limit=PAGE)
        if not page:
            return
        yield page
        after = page[-1].id


async def _scan(exchange, cutoff: datetime) -> _Scan:  # noqa: ANN001
    scan = _Scan()
    async for page in _pages(exchange, "Task"):
        for task in page:
            body = task.resource
            if task.deleted or _is_purged(body):
                continue
            if body.get("status") in FINAL_STATES and task.last_updated < from_db(cutoff):
                scan.closed.add(task.reference)
                scan.closed_targets |= _targets(body)
            else:
                scan.open_roots |= {task.reference} | _targets(body)
    async for page in _pages(exchange, "ServiceRequest"):
        for request in page:
            if _is_purged(request.resource):
                continue
            targets = _targets(request.resource)
            if targets:
                scan.request_targets[request.reference] = targets
            if not request.deleted:
                scan.live_requests.add(request.reference)
    return scan


def _closure(start: set[str], request_targets: Mapping[str, set[str]]) -> set[str]:
    """The referral resources reachable from `start` (Task -> ServiceRequest, Patient -> Consent, documents)."""
    out, todo = set(), list(start)
    while todo:
        reference = todo.pop()
        if reference in out:
            continue
        out.add(reference)
        todo.extend(request_targets.get(reference, ()))
    return out


_ABOUT_PATIENT = (("Consent", "patient"), ("DocumentReference", "patient"), ("Procedure", "patient"))


async def _about_patients(repo, patients: list[str]) -> set[str]:  # noqa: ANN001
    """Consents and documents about survivors whose data goes: they go with it (unless an open referral uses them)."""
    targets = [tuple(p.split("/")) for p in patients]
    found: set[str] = set()
    for start in range(0, len(targets), PAGE):  # (one statement's parameters are bounded)
        for resource_type, param in _ABOUT_PATIENT:
            found |= {f"{resource_type}/{i}"
                      for i in await repo.referring_ids(resource_type, param, targets[start:start + PAGE])}
    return found


async def purge_closed(exchange, days: int | None = None, dry_run: bool = False,  # noqa: ANN001
                       now: datetime | None = None, progress=None) -> PurgeReport:  # noqa: ANN001
    """`progress(n, total=...)` hears of each resource purged (the CLI's progress bar)."""
    days = exchange.settings.retention_days if days is None else days
    if days is None:
        return PurgeReport(None, dry_run)
    cutoff = (now or utcnow()) - timedelta(days=days)
    report = PurgeReport(cutoff, dry_run)
    began = utcnow()
    scan = await _scan(exchange, cutoff)
    open_roots = scan.open_roots | (scan.live_requests - scan.closed_targets)
    wanted = _closure(scan.closed | scan.closed_targets, scan.request_targets)
    protected = _closure(open_roots, scan.request_targets)
    async with exchange.db.read() as conn:
        wanted |= await _about_patients(Repository(conn), [r for r in wanted - protected if r.startswith("Patient/")])
    report.referrals = sorted(scan.closed)
    report.kept_shared = sorted(wanted & protected)
    report.purged = sorted(wanted - protected)
    if dry_run:
        return report
    if progress is not None:
        progress(0, total=len(report.purged) or None)
    purged: list[str] = []
    for start in range(0, len(report.purged), BATCH):
        async with open_unit(exchange, system_context(), "purge") as unit:
            batch = report.purged[start:start + BATCH]
            kept = await _made_since(unit.repo, began, cutoff, scan.request_targets)
            for reference in batch:
                if reference in kept:
                    continue
                await _purge_one(unit, *reference.split("/"))
                purged.append(reference)
                if progress is not None:
                    progress(1)
    report.kept_shared = sorted(set(report.kept_shared) | (set(report.purged) - set(purged)))
    report.purged = purged
    return report


async def _made_since(repo, since: datetime, cutoff: datetime, request_targets: dict[str, set[str]]) -> set[str]:  # noqa: ANN001
    """What the Tasks and requests written since the scan began point at (a new referral for her, a referral
    reopened): kept, though the scan chose it."""
    roots: set[str] = set()
    fresh: dict[str, set[str]] = {}
    for found in await repo.changed_since("ServiceRequest", since):
        fresh[found.reference] = _targets(found.resource)
        roots |= {found.reference} | fresh[found.reference]
    for found in await repo.changed_since("Task", since):
        if not (found.resource.get("status") in FINAL_STATES and found.last_updated < from_db(cutoff)):
            roots |= {found.reference} | _targets(found.resource)
    return _closure(roots, ChainMap(fresh, request_targets))


async def _purge_one(unit, resource_type: str, resource_id: str) -> None:  # noqa: ANN001
    version_id = await unit.repo.purge(resource_type, resource_id, PURGED_TAG)
    if version_id is not None:
        unit.record(Event("purge", "D", resource_type, resource_id, version_id))
