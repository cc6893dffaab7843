"""FHIR R4 (4.0.1) element names: refuse what R4 does not define, though the R4B models accept it.

Validation parses with fhir.resources' R4B models, which also accept R4B-only content (`Extension.valueCodeable
Reference`, `valueRatioRange`, resource types such as SubscriptionStatus); strict R4 clients cannot parse a page
that holds it. `r4_elements.json` lists every element R4 defines (made by scripts/r4_elements.py from R4's own
definitions); every key of an incoming resource, at any depth, contained resources included, must be one of them,
and a literal reference (`Type/id`) must point at a type R4 allows there (rule `r4-reference`: no HealthcareService
in `Consent.provision.actor.reference`).

Validation checks these in its one walk of a body (`exchange.fhir.validate`), with the rules of its own, through
the tables and issues here (`element_tables`, `unknown_element`, `check_target` ...); `issues` walks a body for
these alone (the tests check what the server returns with it).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import re

import orjson

from exchange.errors import Issue
from exchange.fhir.references import reference_path

RULE = "r4-element"
REFERENCE_RULE = "r4-reference"
_ELEMENT_LIKE = re.compile(r"_?[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+")  # camelCase, as FHIR names its elements


def nameable(key: str) -> bool:
    """Whether an unknown key may be repeated in an error: only what reads as a FHIR element name (an R4 name, or
    camelCase such as an R4B-only `valueCodeableReference`). Anything else is the sender's text, and may be hers."""
    return len(key) <= 64 and (key.lstrip("_") in _names() or _ELEMENT_LIKE.fullmatch(key) is not None)


@lru_cache(maxsize=1)
def _names() -> frozenset[str]:
    return frozenset(name for table in definitions()["types"].values() for name in table)


@lru_cache(maxsize=1)
def definitions() -> dict:
    return orjson.loads((Path(__file__).with_name("r4_elements.json")).read_bytes())


def is_resource_type(name: str) -> bool:
    return name in _resource_types()


@lru_cache(maxsize=1)
def _resource_types() -> frozenset[str]:
    return frozenset(definitions()["resources"])


@lru_cache(maxsize=1)
def _primitives() -> frozenset[str]:
    return frozenset(definitions()["primitives"])


def issues(body: dict, resource_type: str) -> list[Issue]:
    """Every element of `body` (a resource of `resource_type`) that FHIR R4 does not define."""
    out: list[Issue] = []
    _resource(body, resource_type, out)
    return out


def _resource(node: dict, expr: str, out: list[Issue]) -> None:
    resource_type = resource_type_of(node, expr, out)
    if resource_type is not None:
        _object(node, resource_type, expr, out, is_resource=True)


def resource_type_of(node: dict, expr: str, out: list[Issue]) -> str | None:
    """The R4 resource type of a resource at `expr` (a contained one), or None with the issue that it has none."""
    resource_type = node.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in _resource_types():
        out.append(Issue("error", "structure", f"{RULE}: {expr}.resourceType is not a FHIR R4 (4.0.1) resource "
                                               "type", [f"{expr}.resourceType"]))
        return None
    return resource_type


def unknown_element(type_: str, expr: str, key: str) -> Issue:
    """`key` at `expr` is not an element of `type_` (named when it reads as an element name: `nameable`)."""
    if nameable(key):
        return Issue("error", "structure", f"{RULE}: {expr}.{key} is not an element of {type_} in FHIR R4 (4.0.1)",
                     [f"{expr}.{key}"])
    return Issue("error", "structure", f"{RULE}: {expr} holds an element {type_} does not have in FHIR R4 "
                                       "(4.0.1); its name is not repeated", [expr])


def _object(node: dict, type_: str, expr: str, out: list[Issue], is_resource: bool = False) -> None:
    table = _types().get(type_)
    if table is None:
        return
    targets, primitives = _targets(), _primitives()
    for key, value in node.items():
        if is_resource and key == "resourceType":
            continue
        child = table.get(key)
        if child is None:
            out.append(unknown_element(type_, expr, key))
            continue
        if child in primitives or not isinstance(value, (dict, list)):
            continue  # (a primitive's value, or a scalar where an object belongs: the models say what is wrong)
        element = f"{type_}.{key}" if child == "Reference" and f"{type_}.{key}" in targets else None
        _value(value, child, f"{expr}.{key}", out, element)


def _value(value: Any, type_: str, expr: str, out: list[Issue], element: str | None = None) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _value(item, type_, f"{expr}[{i}]", out, element)
    elif isinstance(value, dict):
        if type_ == "Resource":
            _resource(value, expr, out)
            return
        if element is not None:
            check_target(value, element, expr, out)
        _object(value, type_, expr, out)


@lru_cache(maxsize=1)
def _types() -> dict:
    return definitions()["types"]


@lru_cache(maxsize=1)
def _targets() -> dict:
    return definitions()["targets"]


def element_tables() -> dict[str, dict[str, str]]:
    """Each R4 type's elements: {type: {element name: its type}} ("Resource" for a contained resource)."""
    return _types()


def primitive_types() -> frozenset[str]:
    return _primitives()


def reference_targets() -> dict[str, list[str]]:
    """The Reference elements whose targets R4 names ("Type.element"), with the types they may point at."""
    return _targets()


def check_target(reference: dict, element: str, expr: str, out: list[Issue]) -> None:
    """A relative or absolute literal reference names its type: it must be one R4 allows for `element`."""
    ref = reference.get("reference")
    if not isinstance(ref, str) or ref.startswith(("#", "urn:")):
        return
    parts = reference_path(ref.split("?")[0])
    if len(parts) < 2 or parts[-2] not in _resource_types():
        return  # not a Type/id reference: the referral rules check the references they need
    allowed = _targets()[element]
    if parts[-2] not in allowed:
        out.append(Issue("error", "structure", f"{REFERENCE_RULE}: {expr}.reference must point at one of "
                                               f"{', '.join(allowed)} (FHIR R4 {element})", [f"{expr}.reference"]))
