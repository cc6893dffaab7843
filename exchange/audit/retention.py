"""Retention: after a configurable period, the survivor data of closed referrals is purged; the log stays.

A referral is closed when its Task is in a final state (`exchange.referral.task_states.FINAL_STATES`); its period
runs from the Task's last change. Purging a closed referral replaces every stored
version of its Task, ServiceRequest, Patient and every other referral resource they point at (Consents and
documents in `supportingInfo`, the Procedures and documents of `Task.output`), and of the Consents, documents and
Procedures about the purged Patient, with a stub (type, id, version, a `purged` tag), marks them deleted (reads
answer 410) and drops their search-index rows, through the store (`Repository.every` finds the referrals,
`Repository.purge` purges one resource). Anything an open referral still points at is kept. The audit log holds only references and hashes, so its chain still verifies, and the
purge itself is recorded in it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from exchange.need_to_know.kinds import REFERRAL_TYPES
from exchange.context import system_context
from exchange.fhir.references import all_references
from exchange.referral.task_states import FINAL_STATES
from exchange.store.clock import fhir_instant, from_db, utcnow
from exchange.kernel.unit import Event, open_unit

PURGED_TAG = {"system": "https://gbv-exchange.org/fhir/CodeSystem/retention", "code": "purged"}
_PURGEABLE = REFERRAL_TYPES  # every resource a referral holds of hers (a Procedure in Task.output too)


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


async def _bodies(unit, resource_type: str) -> dict[str, tuple[dict, datetime, bool]]:  # noqa: ANN001
    return {s.reference: (s.resource, s.last_updated, s.deleted) for s in await unit.repo.every(resource_type)}


def _closure(start: set[str], requests: dict) -> set[str]:
    """The referral resources reachable from `start` (Task -> ServiceRequest, Patient -> Consent, documents)."""
    out, todo = set(), list(start)
    while todo:
        reference = todo.pop()
        if reference in out:
            continue
        out.add(reference)
        if reference.startswith("ServiceRequest/") and reference in requests:
            todo.extend(_targets(requests[reference][0]))
    return out


_ABOUT_PATIENT = (("Consent", "patient"), ("DocumentReference", "subject"), ("Procedure", "subject"))


async def _about_patients(unit, patients: list[str]) -> set[str]:  # noqa: ANN001
    """Consents and documents about survivors whose data goes: they go with it (unless an open referral uses them)."""
    targets = [tuple(p.split("/")) for p in patients]
    found: set[str] = set()
    for resource_type, param in _ABOUT_PATIENT:
        found |= {f"{resource_type}/{i}" for i in await unit.repo.referring_ids(resource_type, param, targets)}
    return found


async def purge_closed(exchange, days: int | None = None, dry_run: bool = False,  # noqa: ANN001
                       now: datetime | None = None, progress=None) -> PurgeReport:  # noqa: ANN001
    """`progress(n, total=...)` hears of each resource purged (the CLI's progress bar)."""
    days = exchange.settings.retention_days if days is None else days
    if days is None:
        return PurgeReport(None, dry_run)
    cutoff = (now or utcnow()) - timedelta(days=days)
    report = PurgeReport(cutoff, dry_run)
    async with open_unit(exchange, system_context(), "purge") as unit:
        tasks = await _bodies(unit, "Task")
        requests = await _bodies(unit, "ServiceRequest")
        closed, open_roots = set(), set()
        for reference, (body, last_updated, deleted) in tasks.items():
            if _is_purged(body):
                continue
            if not deleted and body.get("status") in FINAL_STATES and last_updated < from_db(cutoff):
                closed.add(reference)
            elif not deleted:
                open_roots |= {reference} | _targets(body)
        focused = {t for ref in closed for t in _targets(tasks[ref][0])}
        open_roots |= {r for r, (body, _, deleted) in requests.items()
                       if r not in focused and not deleted and not _is_purged(body)}
        wanted = _closure(closed | {t for ref in closed for t in _targets(tasks[ref][0])},
                          requests)
        protected = _closure(open_roots, requests)
        wanted |= await _about_patients(unit, [r for r in wanted - protected if r.startswith("Patient/")])
        report.referrals = sorted(closed)
        report.kept_shared = sorted(wanted & protected)
        report.purged = sorted(wanted - protected)
        if dry_run:
            return report
        if progress is not None:
            progress(0, total=len(report.purged) or None)
        for reference in report.purged:
            await _purge_one(unit, *reference.split("/"))
            if progress is not None:
                progress(1)
    return report


async def _purge_one(unit, resource_type: str, resource_id: str) -> None:  # noqa: ANN001
    version_id = await unit.repo.purge(resource_type, resource_id, PURGED_TAG)
    if version_id is not None:
        unit.record(Event("purge", "D", resource_type, resource_id, version_id))
