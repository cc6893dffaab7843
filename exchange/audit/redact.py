"""Which search values may go into the audit log: an allow-list, so a new parameter is redacted by default.

Parameter names are always kept (an auditor sees *how* someone searched); values are kept only when they cannot
identify a survivor: logical ids and references (opaque ids), status-like codes, and dates other than birth dates.
Identifiers (case codes), names, addresses, phone numbers, birth dates and free text are dropped.
"""
from __future__ import annotations

from exchange.fhir.definitions import search_param

_SAFE_ANY_TYPE = frozenset({"_id", "_lastUpdated", "_count", "_offset", "_sort", "_total", "_summary",
                            "_include", "_revinclude", "status", "intent", "code", "category", "priority",
                            "business-status", "type", "active"})
_SAFE_AUDIT = frozenset({"date", "agent", "entity", "action", "outcome", "subtype", "_since", "_until"})
# statistics (exchange.stats): a breakdown code and a period, checked before they are recorded
_SAFE_STATS = frozenset({"by", "start", "end"})
_UNSAFE_DATES = frozenset({"birthdate", "death-date"})


def _value_is_safe(resource_type: str, key: str) -> bool:
    name, _, modifier = key.partition(":")
    if "." in key or modifier in ("identifier", "text", "contains", "exact", "below", "above"):
        return False  # chained searches and text matches can carry anything
    if name in _SAFE_ANY_TYPE or (resource_type == "AuditEvent" and name in _SAFE_AUDIT) or \
            (resource_type == "MeasureReport" and name in _SAFE_STATS):
        return True
    param = search_param(resource_type, name)
    if param is None:
        return False
    if param.type == "reference":
        return True
    return param.type == "date" and name not in _UNSAFE_DATES


def safe_query(resource_type: str, pairs: list[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The (parameter, value) pairs with every value that might identify a survivor replaced by ''."""
    return [(key, value if _value_is_safe(resource_type, key) else "") for key, value in pairs or ()]
