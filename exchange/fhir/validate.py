"""Validation of incoming resources: fhir.resources (R4B models, R4 on the wire) plus what it does not check.

Every element must exist in R4 itself (`exchange.fhir.r4`): the R4B models accept R4B-only elements and types.

fhir.resources checks structure and primitive types. It does not enforce required code bindings, FHIRPath
invariants, id syntax or length, empty strings, or `Extension.url`; those are checked here. The caller keeps the
client's own JSON (not a re-dump of the model) so what is stored is what was sent.
"""
from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from exchange.errors import BadRequest, Issue, NotFound
from exchange.fhir import r4
from exchange.fhir.definitions import RESOURCE_TYPES
from exchange.fhir.references import ID_PATTERN, split_reference

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_REQUEST_PRIORITY = frozenset({"routine", "urgent", "asap", "stat"})

# Required bindings, by element path without indices (contained resources are checked under their own type).
REQUIRED_BINDINGS: dict[str, frozenset[str]] = {
    "Task.status": frozenset({"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
                              "in-progress", "on-hold", "failed", "completed", "entered-in-error"}),
    "Task.intent": frozenset({"unknown", "proposal", "plan", "order", "original-order", "reflex-order",
                              "filler-order", "instance-order", "option"}),
    "Task.priority": _REQUEST_PRIORITY,
    "ServiceRequest.status": frozenset({"draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
                                        "unknown"}),
    "ServiceRequest.intent": frozenset({"proposal", "plan", "directive", "order", "original-order", "reflex-order",
                                        "filler-order", "instance-order", "option"}),
    "ServiceRequest.priority": _REQUEST_PRIORITY,
    "Patient.gender": frozenset({"male", "female", "other", "unknown"}),
    "Patient.link.type": frozenset({"replaced-by", "replaces", "refer", "seealso"}),
    "Consent.status": frozenset({"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}),
    "Consent.provision.type": frozenset({"deny", "permit"}),
    "Consent.provision.provision.type": frozenset({"deny", "permit"}),
    "Consent.provision.data.meaning": frozenset({"instance", "related", "dependents", "authoredby"}),
    "Consent.provision.provision.data.meaning": frozenset({"instance", "related", "dependents", "authoredby"}),
    "DocumentReference.status": frozenset({"current", "superseded", "entered-in-error"}),
    "DocumentReference.docStatus": frozenset({"preliminary", "final", "amended", "entered-in-error"}),
    "Procedure.status": frozenset({"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
                                   "entered-in-error", "unknown"}),
    "Location.status": frozenset({"active", "suspended", "inactive"}),
    "Location.mode": frozenset({"instance", "kind"}),
    "HealthcareService.availableTime.daysOfWeek": frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"}),
    "PractitionerRole.availableTime.daysOfWeek": frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"}),
    "Practitioner.gender": frozenset({"male", "female", "other", "unknown"}),
    "Subscription.status": frozenset({"requested", "active", "error", "off"}),
    "Subscription.channel.type": frozenset({"rest-hook", "websocket", "email", "sms", "message"}),
}

# Required bindings of data types, by the last two path segments (wherever the data type occurs).
DATATYPE_BINDINGS: dict[str, frozenset[str]] = {
    "identifier.use": frozenset({"usual", "official", "temp", "secondary", "old"}),
    "telecom.system": frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"}),
    "telecom.use": frozenset({"home", "work", "temp", "old", "mobile"}),
    "name.use": frozenset({"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}),
    "address.use": frozenset({"home", "work", "temp", "old", "billing"}),
    "address.type": frozenset({"postal", "physical", "both"}),
    "text.status": frozenset({"generated", "extensions", "additional", "empty"}),
}


_TABLES = r4.element_tables()
_PRIMITIVES = r4.primitive_types()
_TARGETS = r4.reference_targets()
_PATH_RULES: dict[str, tuple[bool, frozenset[str] | None, bool]] = {}  # path -> what its strings must meet


def _path_rules(path: str) -> tuple[bool, frozenset[str] | None, bool]:
    """For an element path (without indices): whether it is a reference, its required codes, whether it is an id
    whose syntax is checked. Kept per path (bounded: a hostile body's made-up paths are not kept)."""
    rules = _PATH_RULES.get(path)
    if rules is None:
        allowed = REQUIRED_BINDINGS.get(path)
        if allowed is None:
            allowed = DATATYPE_BINDINGS.get(".".join(path.split(".")[-2:]))
        rules = (path.endswith(".reference"), allowed,
                 path.endswith(".id") and path.count(".") == 1 or path.endswith(".contained.id")
                 and path.count(".") == 2)
        if len(_PATH_RULES) < 10_000:
            _PATH_RULES[path] = rules
    return rules


def _string_issues(path: str, value: str, out: list[Issue], parent: str, key: str | int) -> None:
    """The rules of the string `value` at `path` (without indices); it is named `parent` + `key` (an element's name
    or an array's index), spelt out only when it breaks one."""
    if not value or value.isspace():  # (what strip() would leave empty, without making the stripped copy)
        expr = _child(parent, key)
        out.append(Issue("error", "value", f"{expr} must not be empty or blank", [expr]))
        return
    if not value.isprintable() and _CONTROL.search(value):  # (a printable string has no control character)
        expr = _child(parent, key)
        out.append(Issue("error", "value", f"{expr}: FHIR strings must not contain control characters "
                                           "(other than tab, CR and LF)", [expr]))
        return
    is_reference, allowed, is_id = _path_rules(path)
    if is_reference and "/" in value and not value.startswith(("#", "urn:")) and split_reference(value) is None:
        expr = _child(parent, key)
        out.append(Issue("error", "value", f"{expr} must be a reference such as Type/id (an id is at most "
                                           "64 of A-Z a-z 0-9 - .)", [expr]))
    if allowed is not None and value not in allowed:
        expr = _child(parent, key)
        out.append(Issue("error", "code-invalid",
                         f"{expr} must be one of the required value set ({', '.join(sorted(allowed))})", [expr]))
    if is_id and not ID_PATTERN.match(value):
        expr = _child(parent, key)
        out.append(Issue("error", "value", f"{expr}: id must match [A-Za-z0-9-.]{{1,64}}", [expr]))


def _child(expr: str, key: str | int) -> str:
    return f"{expr}[{key}]" if isinstance(key, int) else f"{expr}.{key}"


def _walk_dict(node: dict, type_: str | None, path: str, expr: str, structure: list[Issue], strings: list[Issue],
               containers: list[Issue], references: list[tuple[dict, str]] | None, element: str | None = None
               ) -> None:
    """The one walk of a body: at every node, both R4's element rules (`exchange.fhir.r4`, while `type_` names the
    node's R4 type: its unknown elements and reference targets into `structure`) and this module's: the rules of
    every string (by its path without indices, in document order) into `strings`, empty objects and arrays and
    extensions without url (FHIR forbids them) into `containers`; and, with `references`, every reference string
    with the object that holds it (a transaction's `urn:uuid:` references are rewritten there). `type_` "Resource":
    a resource (the body, a contained one), typed by its resourceType."""
    table = None
    is_resource = type_ == "Resource"
    if is_resource:
        type_ = r4.resource_type_of(node, expr, structure)
    elif element is not None:
        r4.check_target(node, element, expr, structure)
    if type_ is not None:
        table = _TABLES.get(type_)
    if not node:
        containers.append(Issue("error", "invalid", "Empty objects are not allowed in FHIR JSON", [expr]))
    for key, value in node.items():
        child_type = child_element = None
        if table is not None and not (is_resource and key == "resourceType"):
            child = table.get(key)
            if child is None:
                structure.append(r4.unknown_element(type_, expr, key))
            elif child not in _PRIMITIVES and isinstance(value, (dict, list)):
                child_type = child  # (a primitive's value, or a scalar where an object belongs: the models say)
                if child == "Reference" and f"{type_}.{key}" in _TARGETS:
                    child_element = f"{type_}.{key}"
        if key in ("extension", "modifierExtension") and isinstance(value, list):
            for i, ext in enumerate(value):
                if isinstance(ext, dict) and not ext.get("url"):
                    containers.append(Issue("error", "required", "Extension.url is required",
                                            [f"{expr}.{key}[{i}].url"]))
        if isinstance(value, dict):
            _walk_dict(value, child_type, f"{path}.{key}", f"{expr}.{key}", structure, strings, containers,
                       references, child_element)
        elif isinstance(value, list):
            _walk_list(value, child_type, f"{path}.{key}", f"{expr}.{key}", structure, strings, containers,
                       references, child_element)
        elif isinstance(value, str):
            if key == "reference" and references is not None:
                references.append((node, value))
            _string_issues(f"{path}.{key}", value, strings, expr, key)


def _walk_list(node: list, type_: str | None, path: str, expr: str, structure: list[Issue], strings: list[Issue],
               containers: list[Issue], references: list[tuple[dict, str]] | None, element: str | None) -> None:
    if not node:
        containers.append(Issue("error", "invalid", "Empty arrays are not allowed in FHIR JSON", [expr]))
    for i, item in enumerate(node):
        if isinstance(item, dict):
            _walk_dict(item, type_, path, f"{expr}[{i}]", structure, strings, containers, references, element)
        elif isinstance(item, list):
            _walk_list(item, type_, path, f"{expr}[{i}]", structure, strings, containers, references, element)
        elif isinstance(item, str):
            _string_issues(path, item, strings, expr, i)


def _pydantic_issues(resource_type: str, error: ValidationError) -> list[Issue]:
    issues = []
    for err in error.errors():
        parts = [p for p in err.get("loc", ()) if isinstance(p, (str, int)) and not str(p).startswith("function")]
        if err.get("type") == "extra_forbidden" and parts and not r4.nameable(str(parts[-1])):
            parts = parts[:-1]  # an unknown key that is not element-like is the sender's text: name its parent
        expr = resource_type
        for part in parts:
            expr += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = err.get("msg", "invalid value")
        issues.append(Issue("error", "structure" if err.get("type") == "extra_forbidden" else "value",
                            f"{expr}: {msg}", [expr]))
    return issues or [Issue("error", "invalid", f"{resource_type} is not valid", [resource_type])]


def _issues(resource_type: str, body: dict, references: list[tuple[dict, str]] | None) -> list[Issue]:
    """What R4's element rules and this module's find in `body`, in one walk (`_walk_dict`): the R4 issues, then
    the strings', the containers', then each contained resource's and the invariants' (`_resource_issues`)."""
    structure: list[Issue] = []
    strings: list[Issue] = []
    containers: list[Issue] = []
    _walk_dict(body, "Resource", resource_type, resource_type, structure, strings, containers, references)
    return structure + strings + containers + _resource_issues(resource_type, body)


def _rule_issues(resource_type: str, body: dict) -> list[Issue]:
    """This module's rules alone, of a contained resource under its own type (R4's were checked in the walk of the
    resource that contains it)."""
    strings: list[Issue] = []
    containers: list[Issue] = []
    _walk_dict(body, None, resource_type, resource_type, [], strings, containers, None)
    return strings + containers + _resource_issues(resource_type, body)


def _resource_issues(resource_type: str, body: dict) -> list[Issue]:
    """The rules of a resource as a whole: its contained resources' (each under its own type, named where it is
    contained) and the invariants checked here."""
    issues: list[Issue] = []
    contained_list = body.get("contained")
    for i, contained in enumerate(contained_list if isinstance(contained_list, list) else ()):
        if isinstance(contained, dict) and isinstance(contained.get("resourceType"), str) \
                and contained["resourceType"]:  # (anything else is refused by the R4 element check)
            ctype = contained["resourceType"]
            for issue in _rule_issues(ctype, contained):
                issue.expression = [e.replace(ctype, f"{resource_type}.contained[{i}]", 1) for e in issue.expression]
                issues.append(issue)
    if resource_type == "Task":
        issues.extend(_task_inv_1(body))
    if resource_type == "Consent" and not body.get("policy") and not body.get("policyRule"):
        issues.append(Issue("error", "invariant", "Consent ppc-1: Either a Policy or PolicyRule is required",
                            ["Consent.policyRule"]))
    return issues


def _task_inv_1(body: dict) -> list[Issue]:
    """Task inv-1: lastModified >= authoredOn (compared as instants when both are full date-times)."""
    authored, modified = body.get("authoredOn"), body.get("lastModified")
    if isinstance(authored, str) and isinstance(modified, str):
        from exchange.fhir.dates import parse_fhir_date

        try:
            a_start, _ = parse_fhir_date(authored)
            m_start, _ = parse_fhir_date(modified)
        except ValueError:
            return []
        if m_start < a_start:
            return [Issue("error", "invariant", "Task inv-1: Last modified date must be greater than or equal to "
                                                "authored-on date", ["Task.lastModified"])]
    return []


def check_resource_type(resource_type: str, resource_id: str | None = None) -> None:
    """A type this server has (404) and, when given, an id that could exist (400): checked before the database."""
    if resource_type not in RESOURCE_TYPES:
        raise NotFound("This resource type is not supported by this server (the CapabilityStatement lists them)",
                       code="not-supported")
    if resource_id is not None and not ID_PATTERN.match(resource_id):
        raise BadRequest(f"{resource_type}.id must match [A-Za-z0-9-.]{{1,64}}", expression=f"{resource_type}.id")


def validate_resource(body: Any, expected_type: str | None = None,
                      references: list[tuple[dict, str]] | None = None) -> dict:
    """Return `body` if it is a valid resource of `expected_type`; raise BadRequest naming every problem.

    The body is walked once for R4's element rules and this module's (`_issues`), and fhir.resources' model
    validates it once. With `references`, the walk adds every reference string of the body, contained resources
    included, with the object that holds it (in document order): a transaction rewrites and orders its entries by
    them without walking the body again."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object holding a FHIR resource")
    resource_type = body.get("resourceType")
    if not isinstance(resource_type, str):
        raise BadRequest("resourceType is missing", expression="resourceType", code="required")
    if expected_type is not None and resource_type != expected_type:
        raise BadRequest(f"resourceType must be {expected_type}, the endpoint's type",
                         expression="resourceType")
    check_resource_type(resource_type)
    issues = _issues(resource_type, body, references)
    try:
        get_fhir_model_class(resource_type).model_validate(body)
    except ValidationError as exc:
        issues = _pydantic_issues(resource_type, exc) + issues
    except (TypeError, KeyError):  # (fhir.resources on a contained resource whose resourceType is not a string, or
        # is one that names no type: r4 names it)
        issues = issues or [Issue("error", "invalid", f"{resource_type} is not valid", [resource_type])]
    if issues:
        raise BadRequest(issues[0].diagnostics, issues=issues)
    return body
