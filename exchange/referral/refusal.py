"""How a referral rule says no: an OperationOutcome issue that names the rule and the element.

Diagnostics start with the rule's id (e.g. ``task-transition:``) so a partner can look it up in `conformance/`.
They carry ids and codes only, never survivor data (names, safe-contact details, free text).
"""
from __future__ import annotations

from exchange.errors import Conflict, Issue, Unprocessable


def issue(rule: str, message: str, expression: str) -> Issue:
    return Issue("error", "business-rule", f"{rule}: {message}", [expression])


def refuse(rule: str, message: str, expression: str, *, conflict: bool = False) -> None:
    """Raise 422 (or 409 for a state conflict) naming `rule` and `expression`."""
    if conflict:
        raise Conflict(f"{rule}: {message}", expression=expression, code="conflict")
    raise Unprocessable(f"{rule}: {message}", expression=expression)


def raise_all(issues: list[Issue]) -> None:
    """Raise one 422 carrying every issue found (nothing when the list is empty)."""
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues=issues)
