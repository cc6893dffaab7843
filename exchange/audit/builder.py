"""Builds BALP-shaped AuditEvents from what a unit of work recorded (`Event`s) or from a refusal (`Failure`).

Built only from ids, codes and the request context: never from resource content, error diagnostics or query
values that could identify a survivor. The result is canonical JSON plus the search keys the tables index.
"""
from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable
from urllib.parse import urlencode

from exchange.audit.chain import canonical
from exchange.audit.redact import safe_query
from exchange.context import RequestContext
from exchange.store.clock import fhir_instant, utcnow
from exchange.kernel.unit import Event, Failure

EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
EXCHANGE_EVENTS = "https://gbv-exchange.org/fhir/CodeSystem/exchange-event"
EXCHANGE_ROLES = "https://gbv-exchange.org/fhir/CodeSystem/exchange-role"
CLIENT_SYSTEM = "https://gbv-exchange.org/fhir/sid/client-id"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

RESTFUL_INTERACTIONS = frozenset({"read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                                  "history-system", "create", "search-type", "search-system", "capabilities",
                                  "transaction", "batch", "operation"})
AUTHENTICATION = {"token": {"system": DICOM, "code": "110122", "display": "Login"},
                  "revoke": {"system": DICOM, "code": "110123", "display": "Logout"},
                  "introspect": {"system": EXCHANGE_EVENTS, "code": "introspect"},
                  "login": {"system": DICOM, "code": "110122", "display": "Login"},
                  "logout": {"system": DICOM, "code": "110123", "display": "Logout"}}
ACTION_OF = {"create": "C", "read": "R", "vread": "R", "update": "U", "delete": "D", "search-type": "E",
             "history-instance": "R", "transaction": "E", "batch": "E", "token": "E", "revoke": "E",
             "introspect": "E", "purge": "D", "login": "E", "logout": "E"}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
OUTCOME_TEXT = {"0": "Success", "4": "Minor failure", "8": "Serious failure", "12": "Major failure"}


@dataclass
class AuditRecord:
    """One AuditEvent ready to be chained: its canonical content and the keys the tables index."""
    id: str
    recorded: datetime
    subtype: str
    action: str
    outcome: str
    client_id: str | None
    organization_id: str | None
    content: bytes
    entities: list[tuple[str, str]] = field(default_factory=list)


def _coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


# The parts of an AuditEvent that never vary, built once: every request writes at least one AuditEvent, and these
# were a dozen dicts built afresh for each. A body only ever goes to `canonical` (serialised, never changed), so
# its bodies may share them; `build` copies nothing a caller could change afterwards.
_REST_TYPE = _coding(EVENT_TYPE, "rest", "Restful Operation")
_AUTHENTICATION_TYPE = _coding(DICOM, "110114", "User Authentication")
_RECIPIENT_TYPE = {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]}
_AGENT_TYPE = {"coding": [_coding(ROLE_CLASS, "AGNT", "agent")]}
_SOURCE_TYPE = {"coding": [_coding(DICOM, "110153", "Source Role ID")]}
_DESTINATION_TYPE = {"coding": [_coding(DICOM, "110152", "Destination Role ID")]}
_UNAUTHENTICATED = {"display": "unauthenticated"}
_PERSON = (_coding(ENTITY_TYPE, "1", "Person"), _coding(OBJECT_ROLE, "1", "Patient"))
_SYSTEM_OBJECT = (_coding(ENTITY_TYPE, "2", "System Object"), _coding(OBJECT_ROLE, "4", "Domain Resource"))
_SUBTYPES: dict[tuple[str, str], list[dict]] = {}  # (interaction, unit interaction) -> subtype codings
_ROLES: dict[str, list[dict]] = {}  # a client's role -> AuditEvent.agent.role
_SERVERS: dict[str, dict] = {}  # base URL -> the destination agent


def _type_and_subtypes(interaction: str, unit_interaction: str) -> tuple[dict, list[dict]]:
    if interaction in AUTHENTICATION:  # token issue/refusal, revocation: DICOM User Authentication
        return _AUTHENTICATION_TYPE, [AUTHENTICATION[interaction]]
    subtypes = _SUBTYPES.get((interaction, unit_interaction))
    if subtypes is None:
        system = RESTFUL if interaction in RESTFUL_INTERACTIONS else EXCHANGE_EVENTS
        subtypes = [_coding(system, interaction)]
        if unit_interaction in ("transaction", "batch") and unit_interaction != interaction:
            subtypes.append(_coding(RESTFUL, unit_interaction))
        if len(_SUBTYPES) < 1024:  # (interactions are the exchange's own names: a few dozen)
            _SUBTYPES[(interaction, unit_interaction)] = subtypes
    return _REST_TYPE, subtypes


def _agents(ctx: RequestContext, action: str, base_url: str) -> list[dict]:
    client = {"identifier": {"system": CLIENT_SYSTEM, "value": ctx.client_id}} if ctx.client_id else \
        _UNAUTHENTICATED
    role = _ROLES.get(ctx.role)
    if role is None:
        role = [{"coding": [_coding(EXCHANGE_ROLES, ctx.role)]}]
        if len(_ROLES) < 64:  # (exchange.auth.roles: a handful)
            _ROLES[ctx.role] = role
    user: dict = {"type": _RECIPIENT_TYPE if action in ("R", "E") else _AGENT_TYPE, "role": role,
                  "who": {"reference": ctx.organization_reference} if ctx.organization_id else client,
                  "requestor": True}
    if ctx.token_id:
        user["policy"] = [f"urn:gbv-exchange:token:{ctx.token_id}"]
    if ctx.user_id:  # a person signed in to the web inbox, for their organisation (an id, never a name)
        user["altId"] = ctx.user_id
    source: dict = {"type": _SOURCE_TYPE, "who": client, "requestor": False}
    if ctx.remote_addr:
        source["network"] = {"address": ctx.remote_addr, "type": "2"}
    server = _SERVERS.get(base_url)
    if server is None:
        server = {"type": _DESTINATION_TYPE, "who": {"display": base_url}, "requestor": False}
        if len(_SERVERS) < 16:  # (one base URL a deployment; tests make a few)
            _SERVERS[base_url] = server
    return [user, source, server]


def _resource_entity(resource_type: str, resource_id: str, version_id: int | None) -> dict:
    reference = f"{resource_type}/{resource_id}/_history/{version_id}" if version_id else \
        f"{resource_type}/{resource_id}"
    kind, role = _PERSON if resource_type == "Patient" else _SYSTEM_OBJECT
    return {"what": {"reference": reference}, "type": kind, "role": role}


def query_entity(resource_type: str | None, pairs: list[tuple[str, str]] | None) -> dict:
    text = f"{resource_type or ''}?{urlencode(safe_query(resource_type or '', pairs))}"
    return {"type": _coding(ENTITY_TYPE, "2", "System Object"), "role": _coding(OBJECT_ROLE, "24", "Query"),
            "query": base64.b64encode(text.encode()).decode()}


_REQUEST_ID_TYPE = _coding(BALP_ENTITY, "XrequestId", "X-Request-Id")
_SOURCES: dict[str, dict] = {}  # base URL -> AuditEvent.source


def _request_entity(request_id: str) -> dict:
    """The request id, to correlate with the partner's and the server's logs. A client may send any text as
    X-Request-ID, so only a UUID is kept as is; anything else is kept as its SHA-256 (the partner can still match it
    by hashing its own id), never as free text."""
    if not _UUID.match(request_id):
        request_id = "sha256:" + hashlib.sha256(request_id.encode()).hexdigest()
    return {"what": {"identifier": {"value": request_id}}, "type": _REQUEST_ID_TYPE}


def _source(base_url: str) -> dict:
    source = _SOURCES.get(base_url)
    if source is None:
        source = {"site": base_url, "observer": {"display": "GBV referral exchange"},
                  "type": [_coding(SOURCE_TYPE, "4", "Application Server")]}
        if len(_SOURCES) < 16:
            _SOURCES[base_url] = source
    return source


def build(ctx: RequestContext, interaction: str, unit_interaction: str, action: str, outcome: str,
          outcome_desc: str | None, resources: Iterable[tuple[str, str, int | None]], query: dict | None,
          base_url: str, recorded: datetime, purpose: tuple[dict, ...] = ()) -> AuditRecord:
    """One AuditEvent. `resources`: (type, id, version) it is about; `query`: the search entity, if any; `purpose`:
    codings of AuditEvent.purposeOfEvent (one CodeableConcept each)."""
    event_id = str(uuid.uuid4())
    type_, subtypes = _type_and_subtypes(interaction, unit_interaction)
    entities, keys, seen = [], [], set()
    for resource_type, resource_id, version_id in resources:
        if (resource_type, resource_id, version_id) in seen:
            continue
        seen.add((resource_type, resource_id, version_id))
        entities.append(_resource_entity(resource_type, resource_id, version_id))
        if (resource_type, resource_id) not in keys:
            keys.append((resource_type, resource_id))
    if query is not None:
        entities.append(query)
    if ctx.request_id:
        entities.append(_request_entity(ctx.request_id))
    body: dict = {"resourceType": "AuditEvent", "id": event_id, "type": type_, "subtype": subtypes,
                  "action": action, "recorded": fhir_instant(recorded), "outcome": outcome,
                  "agent": _agents(ctx, action, base_url),
                  "source": _source(base_url)}
    if outcome_desc:
        body["outcomeDesc"] = outcome_desc
    if purpose:
        body["purposeOfEvent"] = [{"coding": [dict(coding)]} for coding in purpose]
    if entities:
        body["entity"] = entities
    return AuditRecord(event_id, recorded, subtypes[0]["code"], action, outcome, ctx.client_id,
                       ctx.organization_id, canonical(body), keys)


def records_for_events(ctx: RequestContext, unit_interaction: str, events: list[Event], base_url: str
                       ) -> list[AuditRecord]:
    """One AuditEvent per recorded event, except that a search (its 'E' event and the 'R' events of what it
    returned) becomes one AuditEvent with the returned resources as entities."""
    recorded = utcnow()
    records: list[AuditRecord] = []
    search: tuple[Event, list] | None = None

    def flush() -> None:
        nonlocal search
        if search is not None:
            head, returned = search
            records.append(build(ctx, head.interaction, unit_interaction, "E", "0", None, returned,
                                 query_entity(head.resource_type, head.query), base_url, recorded))
            search = None

    for event in events:
        if event.interaction == "search-type" and event.action == "E":
            flush()
            search = (event, [])
            continue
        if search is not None and event.interaction == "search-type":
            if event.resource_type and event.resource_id:
                search[1].append((event.resource_type, event.resource_id, event.version_id))
            continue
        flush()
        resources = [(event.resource_type, event.resource_id, event.version_id)] \
            if event.resource_type and event.resource_id else []
        query = query_entity(event.resource_type, event.query) if event.query is not None else None
        records.append(build(event.actor or ctx, event.interaction, unit_interaction, event.action, "0", None,
                             resources, query, base_url, recorded, event.purpose))
    flush()
    return records


def outcome_of_status(status: int) -> str:
    return "4" if status < 500 else "8"


def record_for_failure(failure: Failure, base_url: str) -> AuditRecord:
    """A refused interaction: its class and status (never its diagnostics text, which may quote input)."""
    error = failure.error
    resources = [(failure.resource_type, failure.resource_id, None)] \
        if failure.resource_type and failure.resource_id else []
    action = ACTION_OF.get(failure.interaction, "E")
    query = None
    if failure.interaction == "search-type" and failure.resource_type:
        query = query_entity(failure.resource_type, [])
    return build(failure.ctx, failure.interaction, failure.interaction, action, outcome_of_status(error.status),
                 f"{error.status} {error.outcome_class}", resources, query, base_url, utcnow())
