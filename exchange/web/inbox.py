"""The caseworker's view of referrals, read through the FHIR interactions as the signed-in person.

- `inbox`: the organisation's referral Tasks (one search, with their ServiceRequests and organisations included),
  grouped: those it owns by status, open ones it may claim, those it sent; overdue and urgent first.
- `referral`: one Task with its request, the survivor's Patient and Consent, in one unit of work (one transaction,
  each disclosure an AuditEvent). What the page shows of her is cut to the categories her Consent lets this
  organisation receive; her contact choices come first. A Task the person may not see does not exist (NotFound),
  exactly like one that does not exist.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson

from exchange.need_to_know.organisations import organisations_of
from exchange.context import RequestContext
from exchange.errors import Gone, NotFound
from exchange.fhir.dates import instant_or_none
from exchange.fhir.interactions.read import read_in
from exchange.fhir.interactions.search_type import search_in
from exchange.fhir.references import references_in, split_reference
from exchange.fhir.search import parse_search
from exchange.referral import codes, profile, task_states as states
from exchange.referral.consent import permitted_categories
from exchange.referral.overdue import due_at
from exchange.kernel.exchange import Exchange
from exchange.kernel.unit import Unit, open_unit
from exchange.web import actions

FAR = datetime.max.replace(tzinfo=timezone.utc)
PRIORITY_RANK = {"stat": 0, "asap": 1, "urgent": 2, "routine": 3}
STATUS_ORDER = ("requested", "received", "accepted", "in-progress", "on-hold", "completed", "rejected", "failed",
                "cancelled", "entered-in-error")
LIMIT = 200  # referrals listed (the newest); the API pages through more


def _when(value: str | None) -> datetime | None:
    return instant_or_none(value)


def service_code(request: dict | None) -> str | None:
    found = codes.codes_in((request or {}).get("code"), codes.SERVICE_TYPE)
    return found[0] if found else None


@dataclass
class Row:
    task_id: str
    status: str
    service: str | None
    requester: str
    receiver: str
    authored: datetime | None
    due: datetime | None
    overdue: bool
    priority: str
    age: timedelta | None

    def sort_key(self) -> tuple:
        return (not self.overdue, PRIORITY_RANK.get(self.priority, 3), self.due or FAR, self.authored or FAR)


@dataclass
class Inbox:
    mine: list[tuple[str, list[Row]]]  # (status, rows) in STATUS_ORDER
    claimable: list[Row]
    sent: list[Row]

    @property
    def empty(self) -> bool:
        return not (self.mine or self.claimable or self.sent)


async def _names(unit: Unit, org_ids: set[str]) -> dict[str, str]:
    found = await unit.repo.read_many([("Organization", i) for i in org_ids], unit.access)
    return {s.id: s.resource.get("name") or s.id for s in found}


def _is_overdue(task: dict, due: datetime | None, now: datetime) -> bool:
    marked = codes.OVERDUE in codes.codes_in(task.get("businessStatus"), codes.REFERRAL_CODES)
    return marked or (task.get("status") in states.OPEN_STATES and due is not None and due <= now)


async def inbox(exchange: Exchange, ctx: RequestContext, now: datetime) -> Inbox:
    settings = exchange.settings
    plan = parse_search("Task", [("_count", str(LIMIT)), ("_sort", "-_lastUpdated"), ("_include", "Task:focus")],
                        strict=True, default_count=LIMIT, max_count=LIMIT)
    after = timedelta(hours=settings.referral_overdue_hours)
    org = ctx.organization_id
    async with open_unit(exchange, ctx, "search-type", "Task", read_only=True) as unit:
        bundle = await search_in(unit, plan)
        resources = [e["resource"] for e in orjson.loads(orjson.dumps(bundle)).get("entry", [])]  # stored JSON
        requests = {r["id"]: r for r in resources if r["resourceType"] == "ServiceRequest"}
        tasks = [r for r in resources if r["resourceType"] == "Task"]
        parties: list[tuple[dict, dict | None, set[str], set[str], set[str]]] = []
        all_orgs: set[str] = set()
        for task in tasks:
            request = next((requests.get(t[1]) for t in map(split_reference, references_in(task.get("focus")))
                            if t and t[0] == "ServiceRequest"), None)
            requesters = await organisations_of(unit.repo, references_in(task.get("requester")))
            owners = await organisations_of(unit.repo, references_in(task.get("owner")))
            performers = await organisations_of(unit.repo, references_in((request or {}).get("performer")))
            parties.append((task, request, requesters, owners, performers))
            all_orgs |= requesters | owners | performers
        names = await _names(unit, all_orgs)
    mine: dict[str, list[Row]] = {}
    claimable: list[Row] = []
    sent: list[Row] = []
    for task, request, requesters, owners, performers in parties:
        due = due_at(task, after)
        receivers = owners or performers
        row = Row(task["id"], task.get("status", ""), service_code(request),
                  ", ".join(sorted(names.get(o, o) for o in requesters)),
                  ", ".join(sorted(names.get(o, o) for o in receivers)), _when(task.get("authoredOn")), due,
                  _is_overdue(task, due, now), task.get("priority") or (request or {}).get("priority") or "routine",
                  now - authored if (authored := _when(task.get("authoredOn"))) else None)
        if org in owners:
            mine.setdefault(row.status, []).append(row)
        elif not owners and org in performers:
            claimable.append(row)
        if org in requesters:
            sent.append(row)
    for rows in (*mine.values(), claimable, sent):
        rows.sort(key=Row.sort_key)
    ordered = [(s, mine[s]) for s in STATUS_ORDER if s in mine]
    return Inbox(ordered, claimable, sent)


@dataclass
class Contact:
    prohibited: bool  # "do not contact her"
    method: str | None = None
    number: str | None = None
    times: str | None = None
    leave_message: bool | None = None
    code_word: str | None = None
    instructions: str | None = None


def contact_choices(request: dict) -> Contact:
    contact = Contact(profile.contact_prohibited(request))
    for ext in request.get("extension") or []:
        if ext.get("url") != codes.EXT_SAFE_CONTACT:
            continue
        for part in ext.get("extension") or []:
            name = part.get("url")
            if name == "method":
                contact.method = part.get("valueCode")
            elif name == "telecom":
                contact.number = (part.get("valueContactPoint") or {}).get("value")
            elif name == "times":
                contact.times = part.get("valueString")
            elif name == "leave-message":
                contact.leave_message = part.get("valueBoolean")
            elif name == "code-word":
                contact.code_word = part.get("valueString")
            elif name == "instructions":
                contact.instructions = part.get("valueString")
    return contact


@dataclass
class Survivor:
    """What the page shows of her: only the categories her Consent lets this organisation receive."""
    case_code: str | None = None
    gender: str | None = None
    birth: str | None = None  # a year (or year-month) unless identity is shared
    languages: list[str] = field(default_factory=list)
    interpreter: bool | None = None
    needs: list[str] = field(default_factory=list)
    name: str | None = None  # identity
    phone: str | None = None  # contact
    address: str | None = None  # contact


def survivor(patient: dict, allowed: set[str]) -> Survivor:
    out = Survivor(case_code=next((i.get("value") for i in patient.get("identifier") or []), None),
                   gender=patient.get("gender"))
    birth = patient.get("birthDate")
    if isinstance(birth, str):
        out.birth = birth if codes.IDENTITY in allowed else birth[:4]
    for comm in patient.get("communication") or []:
        out.languages += [c.get("code") for c in (comm.get("language") or {}).get("coding") or [] if c.get("code")]
    for ext in patient.get("extension") or []:
        if ext.get("url") == codes.EXT_INTERPRETER:
            out.interpreter = ext.get("valueBoolean")
        elif ext.get("url") == codes.EXT_SPECIFIC_NEEDS:
            concept = ext.get("valueCodeableConcept") or {}
            out.needs.append(concept.get("text") or ", ".join(c.get("code", "") for c in concept.get("coding", [])))
    if codes.IDENTITY in allowed:
        names = patient.get("name") or []
        if names:
            first = names[0]
            out.name = first.get("text") or " ".join([*(first.get("given") or []), first.get("family") or ""]).strip()
    if codes.CONTACT in allowed:
        out.phone = next((t.get("value") for t in patient.get("telecom") or [] if t.get("value")), None)
        addresses = patient.get("address") or []
        if addresses:
            first = addresses[0]
            out.address = first.get("text") or ", ".join([*(first.get("line") or []), first.get("city") or ""])
    return out


@dataclass
class Referral:
    task: dict
    version: int
    request: dict | None
    survivor: Survivor | None
    contact: Contact | None
    allowed: set[str]  # data categories shown
    roles: set[str]
    actions: list[actions.Action]
    requester: str
    receiver: str
    incident: list[str]
    due: datetime | None
    overdue: bool

    @property
    def status(self) -> str:
        return self.task.get("status", "")

    @property
    def task_id(self) -> str:
        return self.task["id"]

    @property
    def service(self) -> str | None:
        return service_code(self.request)

    @property
    def priority(self) -> str:
        return self.task.get("priority") or (self.request or {}).get("priority") or "routine"

    @property
    def reason(self) -> tuple[str | None, str | None]:
        """(the reason code of gbv-referral-outcome or gbv-referral-codes, the words beside it)."""
        given = self.task.get("statusReason") or {}
        code = next(iter(codes.codes_in(given, codes.REFERRAL_OUTCOME) or codes.codes_in(given, codes.REFERRAL_CODES)),
                    None)
        return code, given.get("text")

    @property
    def milestone(self) -> tuple[str | None, str | None]:
        """(the latest milestone code of gbv-referral-outcome, the words beside it)."""
        given = self.task.get("businessStatus") or {}
        found = codes.codes_in(given, codes.REFERRAL_OUTCOME)
        return (found[-1] if found else None), (given.get("text") if found else None)

    @property
    def outcome(self) -> list[str]:
        return [o.get("valueString") for o in self.task.get("output") or [] if o.get("valueString")]

    @property
    def notes(self) -> list[dict]:
        return list(self.task.get("note") or [])


async def _optional(unit: Unit, reference: str | None, resource_type: str) -> dict | None:
    """A resource the Task points at, if this organisation may still see it (after a withdrawal it may not)."""
    target = split_reference(reference) if reference else None
    if target is None or target[0] != resource_type:
        return None
    try:
        return (await read_in(unit, *target)).resource
    except (NotFound, Gone):
        return None


async def referral(exchange: Exchange, ctx: RequestContext, task_id: str, now: datetime) -> Referral:
    """The referral page's content; NotFound when the Task does not exist or the person may not see it."""
    org = ctx.organization_id
    async with open_unit(exchange, ctx, "read", "Task", task_id, read_only=True) as unit:
        stored = await read_in(unit, "Task", task_id)
        task = stored.resource
        request = await _optional(unit, next(references_in(task.get("focus")), None), "ServiceRequest")
        requesters = await organisations_of(unit.repo, references_in(task.get("requester")))
        owners = await organisations_of(unit.repo, references_in(task.get("owner")))
        performers = await organisations_of(unit.repo, references_in((request or {}).get("performer")))
        roles = ({states.REQUESTER} if org in requesters else set()) | ({states.OWNER} if org in owners else set())
        allowed: set[str] = set()
        patient = None
        if request is not None:
            patient = await _optional(unit, next(references_in(request.get("subject")), None), "Patient")
            if states.REQUESTER in roles:
                allowed = {codes.CORE, codes.IDENTITY, codes.CONTACT, codes.INCIDENT, codes.HEALTH}
            else:
                for reference in references_in(request.get("supportingInfo")):
                    consent = await _optional(unit, reference, "Consent")
                    if consent is not None:
                        allowed |= await permitted_categories(unit.repo, consent, org)
        names = await _names(unit, requesters | owners | performers)
    claimable = not owners and org in performers
    after = timedelta(hours=exchange.settings.referral_overdue_hours)
    due = due_at(task, after)
    shown = request if request is not None and codes.CORE in allowed else None
    incident = [c.get("text") or "" for c in (shown or {}).get("reasonCode") or []] \
        if codes.INCIDENT in allowed else []
    return Referral(
        task=task, version=stored.version_id, request=shown,
        survivor=survivor(patient, allowed) if patient is not None and codes.CORE in allowed else None,
        contact=contact_choices(shown) if shown is not None else None, allowed=allowed, roles=roles,
        actions=actions.allowed(task.get("status", ""), roles, claimable),
        requester=", ".join(sorted(names.get(o, o) for o in requesters)),
        receiver=", ".join(sorted(names.get(o, o) for o in (owners or performers))), incident=incident, due=due,
        overdue=_is_overdue(task, due, now))
