"""SMART v2 scopes (system/Type.cruds): parsing, what a token is granted, and the check each interaction makes.

v1 scopes (`.read`, `.write`, `.*`) are accepted and mapped to v2 letters. Granted scopes are the intersection of
what the client asks for and what it is registered for, letter by letter (`system/Task.cruds` asked by a client
registered for `system/*.rs` is granted as `system/Task.rs`).
"""
from __future__ import annotations

import re
from functools import lru_cache

from exchange.context import RequestContext
from exchange.errors import Forbidden

_SCOPE = re.compile(r"^system/(\*|[A-Za-z]+)\.(read|write|\*|[cruds]+)(\?.*)?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
ORDER = "cruds"


def permissions(scope: str) -> tuple[str, str] | None:
    """('Task', 'rs') for 'system/Task.rs'; v1 '.read'/'.write'/'.*' mapped to v2 letters. None if not a scope."""
    m = _SCOPE.match(scope)
    if not m or m.group(3):
        return None  # no fine-grained (?param=) scopes
    resource_type, perms = m.group(1), m.group(2)
    perms = _V1.get(perms, perms)
    if "".join(sorted(set(perms), key=ORDER.index)) != perms:
        return None  # v2 requires the letters in c, r, u, d, s order, each once
    return resource_type, perms


def _letters(perms: set[str]) -> str:
    return "".join(sorted(perms, key=ORDER.index))


def grant(requested: str, registered: tuple[str, ...] | list[str]) -> list[str]:
    """The scopes to grant: each requested scope narrowed to what the registration allows (v2 form)."""
    allowed = [p for p in (permissions(s) for s in registered) if p]
    granted: dict[str, set[str]] = {}
    for scope in requested.split():
        asked = permissions(scope)
        if asked is None:
            continue
        rtype, perms = asked
        for reg_type, reg_perms in allowed:
            if rtype == "*":
                target = reg_type  # ask for everything: get what each registration covers
            elif reg_type in ("*", rtype):
                target = rtype
            else:
                continue
            common = set(perms) & set(reg_perms)
            if common:
                granted.setdefault(target, set()).update(common)
    if "*" in granted:  # a wildcard grant covers the same letters on named types
        for rtype in [t for t in granted if t != "*"]:
            granted[rtype] -= granted["*"]
            if not granted[rtype]:
                del granted[rtype]
    return [f"system/{rtype}.{_letters(perms)}" for rtype, perms in granted.items()]


@lru_cache(maxsize=4096)
def effective(token_scope: str, registered: tuple[str, ...]) -> frozenset[str]:
    """What a live token may do now: its scopes narrowed to the client's current registration, so narrowing a
    client's scopes takes effect at once (as disabling it does); a token is never widened past its own scopes."""
    return frozenset(grant(token_scope, registered))


def allows(scopes: frozenset[str], resource_type: str, operation: str) -> bool:
    if isinstance(scopes, frozenset):  # (every request asks: its token's scopes are a frozenset, so remembered)
        return _allows(scopes, resource_type, operation)
    return _allows.__wrapped__(scopes, resource_type, operation)


@lru_cache(maxsize=4096)
def _allows(scopes: frozenset[str], resource_type: str, operation: str) -> bool:
    for scope in scopes:
        parsed = permissions(scope)
        if parsed and parsed[0] in ("*", resource_type) and operation in parsed[1]:
            return True
    return False


def require_scope(ctx: RequestContext, resource_type: str, operation: str) -> None:
    if not allows(ctx.scopes, resource_type, operation):
        needed = f"system/{resource_type}.{operation}"
        raise Forbidden(f"The access token has no scope that permits '{operation}' on {resource_type} "
                        f"(needs e.g. {needed})", code="forbidden",
                        headers={"WWW-Authenticate": f'Bearer realm="exchange", error="insufficient_scope", '
                                                     f'scope="{needed}"'})  # RFC 6750 §3.1
