"""Search parameters -> a search plan (what to match, page, include), and the plan's paging links.

Knows FHIR search syntax, not HTTP and not SQL: `exchange.fhir.search_sql` turns a plan into a query.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence
from urllib.parse import urlencode

from exchange.errors import BadRequest
from exchange.fhir.dates import parse_fhir_date
from exchange.fhir.definitions import (IDENTIFYING_SEARCH_PARAMS, INCLUDES, RESOURCE_TYPES, REVINCLUDES,
                                       SearchParam, search_param)
from exchange.fhir.references import reference_path
from exchange.fhir.validate import ID_PATTERN
from exchange.settings import SearchLimits, Settings

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = ("_count", "_offset", "_sort", "_include", "_revinclude", "_total", "_summary")
IGNORED_PARAMS = ("_format", "_pretty")
SUMMARY_NOT_SUPPORTED = ("true", "text", "data", "false")  # served whole under lenient handling
MODIFIERS = {
    "token": ("missing", "not"),
    "reference": ("missing",),  # plus a type modifier, e.g. owner:Organization
    "string": ("missing", "exact", "contains"),
    "date": ("missing",),
    "uri": ("missing",),
}
SORTABLE = {"_lastUpdated": "last_updated", "_id": "id"}


@dataclass(frozen=True)
class DateValue:
    prefix: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Criterion:
    """One search parameter occurrence: its values are OR'd; several criteria are AND'd."""
    name: str
    type: str  # token | reference | string | date | id | lastUpdated | chain
    modifier: str | None
    values: tuple
    param: SearchParam | None = None
    # type chain: the reference parameter `name` points at a resource of one of these types that matches the inner
    # criterion (`owner:HealthcareService.organization=Organization/1`); `values` then holds references matched
    # directly as well (the organisation itself, for `owner-organization`)
    chain: tuple[tuple[str, "Criterion"], ...] = ()

    def chained_types(self) -> set[str]:
        """The resource types this criterion searches besides its own (the caller must be allowed to search them)."""
        return {t for t, _ in self.chain}


@dataclass(frozen=True)
class Include:
    source_type: str
    param: str
    target_type: str | None = None

    def __str__(self) -> str:
        return f"{self.source_type}:{self.param}" + (f":{self.target_type}" if self.target_type else "")


@dataclass
class SearchPlan:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    total: bool = True
    summary_count: bool = False
    echo: list[tuple[str, str]] = field(default_factory=list)  # the parameters actually used, for links
    ignored: list[str] = field(default_factory=list)


def split_values(raw: str) -> list[str]:
    """Split on commas not escaped with a backslash (FHIR search escaping)."""
    out, cur, i = [], "", 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in ",$|\\":
            cur += raw[i + 1]
            i += 2
            continue
        if raw[i] == ",":
            out.append(cur)
            cur = ""
        else:
            cur += raw[i]
        i += 1
    out.append(cur)
    return out


def date_value(name: str, raw: str) -> DateValue:
    prefix = raw[:2] if raw[:2] in PREFIXES else "eq"
    text = raw[2:] if raw[:2] in PREFIXES else raw
    try:
        start, end = parse_fhir_date(text)
    except ValueError:
        raise BadRequest(f"Search parameter '{name}' needs a FHIR date such as ge2026-11-25 (the value is not repeated "
                         "here: search values may identify a person)", expression=name) from None
    return DateValue(prefix, start, end)


MAX_INT = 2 ** 63 - 1  # the largest integer either database stores or compares


def int_param(name: str, raw: str, minimum: int, maximum: int = MAX_INT) -> int:
    """A whole number in [minimum, maximum]; the message names the rule, never the value sent."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > maximum or int(raw) < minimum:
        raise BadRequest(f"{name} must be a whole number from {minimum} to {maximum}", expression=name)
    return int(raw)


def _parse_include(resource_type: str, raw: str, allowed: dict[str, tuple[str, ...]], rev: bool) -> Include:
    parts = raw.split(":")
    name = "_revinclude" if rev else "_include"
    if len(parts) not in (2, 3) or f"{parts[0]}:{parts[1]}" not in allowed.get(resource_type, ()) or \
            (len(parts) == 3 and parts[2] not in RESOURCE_TYPES):
        supported = ", ".join(allowed.get(resource_type, ())) or "none"
        raise BadRequest(f"{name} supports, for {resource_type}: {supported} (optionally :TargetType)",
                         expression=name, code="not-supported")
    return Include(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


_CONTROL = re.compile("[\x00-\x1f]")  # (any character below 32)


def _check_text(name: str, raw: str, limits: SearchLimits) -> None:
    if len(raw) > limits.value_length * max(1, limits.or_values):
        raise BadRequest(f"Search parameter '{name}' is longer than this server accepts", expression=name,
                         code="too-costly")
    if _CONTROL.search(raw):
        raise BadRequest(f"Search parameter '{name}' must not contain control characters", expression=name)


def checked_values(name: str, raw: str, limits: SearchLimits) -> list[str]:
    """The comma-separated values of one parameter, within the limits and free of control characters."""
    _check_text(name, raw, limits)
    values = split_values(raw)
    if len(values) > limits.or_values:
        raise BadRequest(f"Search parameter '{name}' may have at most {limits.or_values} values", expression=name,
                         code="too-costly")
    if any(len(v) > limits.value_length for v in values):
        raise BadRequest(f"Search parameter '{name}' values may be at most {limits.value_length} characters",
                         expression=name, code="too-costly")
    return values


def parse_search(resource_type: str, params: Sequence[tuple[str, str]], *, strict: bool, default_count: int,
                 max_count: int, limits: SearchLimits | None = None) -> SearchPlan:
    """Build the plan. Unknown parameters: 400 when `strict` (Prefer: handling=strict), else ignored.

    Refusals name the parameter and the rule, never the value; an unknown parameter is named by its position
    only (its name is the caller's text, and may be anything).
    """
    limits = limits or Settings.model_construct().search_limits
    plan = SearchPlan(resource_type, count=default_count)
    if len(params) > limits.parameters:
        raise BadRequest(f"A search may have at most {limits.parameters} parameters", code="too-costly")
    for position, (key, raw) in enumerate(params, start=1):
        name, _, modifier = key.partition(":")
        modifier = modifier or None
        if "." in key and name not in RESULT_PARAMS:
            criterion = chained_criterion(resource_type, key, raw, limits)
            if criterion is None:
                if strict:
                    raise BadRequest(f"Search parameter {position} is not a chain this server supports on "
                                     f"{resource_type} (the CapabilityStatement lists the reference parameters)",
                                     code="not-supported")
                plan.ignored.append(key)
                continue
            plan.criteria.append(criterion)
            plan.echo.append((key, raw))
            continue
        if name in IGNORED_PARAMS:
            continue
        if name == "_summary" and raw in SUMMARY_NOT_SUPPORTED:
            if raw == "false" or not strict:  # false: whole resources, what is served anyway
                plan.ignored.append(key)
                continue
            raise BadRequest(f"_summary={raw} is not supported (only count)", expression="_summary",
                             code="not-supported")
        if name in RESULT_PARAMS:
            _check_text(name, raw, limits)
            _apply_result_param(plan, name, modifier, raw, max_count, limits)
            continue
        criterion = _criterion(resource_type, name, modifier, raw, limits)
        if criterion is None:
            if strict:
                raise BadRequest(f"Search parameter {position} is not a search parameter of {resource_type} "
                                 "(the CapabilityStatement lists them)", code="not-supported")
            plan.ignored.append(key)
            continue
        plan.criteria.append(criterion)
        plan.echo.append((key, raw))
    return plan


def total_param(plan: SearchPlan, raw: str) -> None:
    """`_total`: none spares the count where the page cannot tell it (estimate and accurate count)."""
    if raw not in ("none", "estimate", "accurate"):
        raise BadRequest("_total must be none, estimate or accurate", expression="_total")
    plan.total = raw != "none"
    plan.echo.append(("_total", raw))


def _apply_result_param(plan: SearchPlan, name: str, modifier: str | None, raw: str, max_count: int,
                        limits: SearchLimits) -> None:
    if name == "_count":
        plan.count = min(int_param("_count", raw, 0), max_count)
        if plan.count == 0:
            plan.summary_count = True
    elif name == "_offset":
        plan.offset = int_param("_offset", raw, 0, limits.offset)
    elif name == "_summary":
        if raw != "count":
            raise BadRequest("Only _summary=count is supported", expression="_summary", code="not-supported")
        plan.summary_count = True
        plan.echo.append((name, raw))
    elif name == "_total":
        total_param(plan, raw)
    elif name == "_sort":
        for item in raw.split(","):
            desc = item.startswith("-")
            column = SORTABLE.get(item.lstrip("-"))
            if column is None:
                raise BadRequest("_sort supports _lastUpdated and _id (either with a leading - for descending)",
                                 expression="_sort", code="not-supported")
            plan.sort.append((column, desc))
        plan.echo.append((name, raw))
    elif name == "_include":
        if modifier == "iterate":
            raise BadRequest("_include:iterate is not supported", expression="_include", code="not-supported")
        plan.includes.append(_parse_include(plan.resource_type, raw, INCLUDES, rev=False))
        plan.echo.append((name, raw))
    elif name == "_revinclude":
        if modifier == "iterate":
            raise BadRequest("_revinclude:iterate is not supported", expression="_revinclude", code="not-supported")
        include = _parse_include(plan.resource_type, raw, REVINCLUDES, rev=True)
        plan.revincludes.append(include)
        plan.echo.append((name, raw))


def _criterion(resource_type: str, name: str, modifier: str | None, raw: str, limits: SearchLimits
               ) -> Criterion | None:
    if name not in ("_id", "_lastUpdated") and search_param(resource_type, name) is None:
        return None
    values = checked_values(name, raw, limits)
    if name == "_id":
        if modifier:
            raise BadRequest("_id takes no modifier", expression=name)
        if not all(ID_PATTERN.match(v) for v in values):
            raise BadRequest("_id values must be ids ([A-Za-z0-9-.]{1,64})", expression=name)
        return Criterion(name, "id", None, tuple(values))
    if name == "_lastUpdated":
        if modifier:
            raise BadRequest("_lastUpdated takes no modifier", expression=name)
        return Criterion(name, "lastUpdated", None, tuple(date_value(name, v) for v in values))
    param = search_param(resource_type, name)
    if param is None:
        return None
    if param.via:
        return _via_criterion(name, modifier, values, param)
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise BadRequest(f"{name}:missing must be true or false", expression=f"{name}:missing")
        return Criterion(name, param.type, "missing", (raw == "true",), param)
    if modifier and modifier not in MODIFIERS[param.type]:
        if not (param.type == "reference" and modifier in param.targets):
            supported = ", ".join(MODIFIERS[param.type] + (param.targets if param.type == "reference" else ()))
            raise BadRequest(f"Search parameter '{name}' supports the modifiers {supported}", expression=name,
                             code="not-supported")
    if any(v == "" for v in values):
        raise BadRequest(f"Search parameter '{name}' has an empty value", expression=name)
    if param.type == "date":
        return Criterion(name, "date", modifier, tuple(date_value(name, v) for v in values), param)
    if param.type == "reference":
        references = tuple(_reference_value(v, modifier) for v in values)
        if not all(ID_PATTERN.match(target_id) for _, target_id in references):
            raise BadRequest(f"Search parameter '{name}' takes references such as Type/id", expression=name)
        return Criterion(name, "reference", modifier, references, param)
    if param.type == "token":
        return Criterion(name, "token", modifier, tuple(_token_value(v) for v in values), param)
    return Criterion(name, param.type, modifier, tuple(values), param)


def _typed_param(resource_type: str, name: str) -> bool:
    return name in ("_id", "_lastUpdated") or search_param(resource_type, name) is not None


def chained_criterion(resource_type: str, key: str, raw: str, limits: SearchLimits) -> Criterion | None:
    """`ref:Type.param[:modifier]=value` or `ref.param=value` (every target type of `ref` that has `param`): one
    level of chaining on a reference parameter, over the types the exchange stores. None when `ref` is not a
    reference parameter of `resource_type` or no target type has `param` (an unknown parameter: ignored, or 400
    under strict handling). The inner criterion is parsed with the target type's own rules."""
    head, _, tail = key.partition(".")
    name, _, target = head.partition(":")
    param = search_param(resource_type, name)
    if param is None or param.type != "reference" or param.via:
        return None
    inner_name, _, inner_modifier = tail.partition(":")
    if "." in inner_name:
        raise BadRequest(f"Search parameter '{name}': chains of more than one level are not supported",
                         expression=name, code="not-supported")
    if target and target not in param.targets:
        raise BadRequest(f"Search parameter '{name}' chains only through {', '.join(param.targets)}",
                         expression=name, code="not-supported")
    candidates = [target] if target else [t for t in param.targets if _typed_param(t, inner_name)]
    candidates = [t for t in candidates if t in RESOURCE_TYPES and _typed_param(t, inner_name)]
    if not candidates:
        return None
    chain = []
    for target_type in candidates:
        inner = _criterion(target_type, inner_name, inner_modifier or None, raw, limits)
        if inner is None or inner.type == "chain":
            return None
        chain.append((target_type, inner))
    return Criterion(name, "chain", None, (), param, tuple(chain))


def _via_criterion(name: str, modifier: str | None, values: list[str], param: SearchParam) -> Criterion:
    """A parameter defined as a reference or a one-level chain (`owner-organization`: the owner is the
    Organization itself, or a HealthcareService or PractitionerRole of it)."""
    if modifier:
        raise BadRequest(f"Search parameter '{name}' takes no modifier", expression=name, code="not-supported")
    references = []
    for value in values:
        target_type, target_id = _reference_value(value, None) if value else (None, "")
        if target_type not in (None, *param.targets) or not ID_PATTERN.match(target_id):
            raise BadRequest(f"Search parameter '{name}' takes references such as {param.targets[0]}/id",
                             expression=name)
        references.append((param.targets[0], target_id))
    chain = []
    for target_type, inner_name in param.via:
        inner_param = search_param(target_type, inner_name)
        chain.append((target_type, Criterion(inner_name, "reference", None, tuple(references), inner_param)))
    return Criterion(param.via_param, "chain", None, tuple(references), param, tuple(chain))


def _token_value(raw: str) -> tuple[str | None, str | None, bool]:
    """(system, code, system_given): 'code', 'system|code', '|code' (no system), 'system|' (any code)."""
    if "|" not in raw:
        return None, raw, False
    system, _, code = raw.partition("|")
    return (system or None), (code or None), True


def _reference_value(raw: str, type_modifier: str | None) -> tuple[str | None, str]:
    parts = reference_path(raw.rstrip("/"))
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return type_modifier if type_modifier and type_modifier != "missing" else None, parts[-1]


def searched_name(key: str) -> str:
    """The parameter whose value a search key compares: the last link of a chain (`patient.identifier` ->
    `identifier`), else the key without its modifier."""
    return key.rpartition(".")[2].partition(":")[0]


def identifying(plan: SearchPlan) -> bool:
    """Whether the plan searches on a value that identifies a person (its links must not carry it)."""
    return any(searched_name(key) in IDENTIFYING_SEARCH_PARAMS for key, _ in plan.echo)


def page_links(base: str, plan: SearchPlan, total: int | None, returned: int, token: str | None = None
               ) -> list[dict]:
    """self/first/next/prev links echoing only the parameters the server used, or, given a page token
    (`exchange.fhir.page_tokens`), that token in their place."""
    def link(relation: str, offset: int) -> dict:
        query = ([("_page_token", token)] if token else list(plan.echo)) + [("_count", str(plan.count))]
        if offset:
            query.append(("_offset", str(offset)))
        return {"relation": relation, "url": f"{base}/{plan.resource_type}?{urlencode(query)}"}

    links = [link("self", plan.offset)]
    if plan.summary_count:
        return links
    links.append(link("first", 0))
    has_next = (plan.offset + plan.count < total) if total is not None else returned >= plan.count
    if has_next:
        links.append(link("next", plan.offset + plan.count))
    if plan.offset > 0:
        previous = max(plan.offset - plan.count, 0)
        links.append(link("previous", previous))  # R4 Bundle.link relation
        links.append(link("prev", previous))  # the same page under the short name many clients look for
    return links

