"""SMART v2 scopes (system/Type.cruds) and the check each interaction makes against them."""
from __future__ import annotations

import re

from exchange.context import RequestContext
from exchange.errors import Forbidden

_SCOPE = re.compile(r"^system/(\*|[A-Za-z]+)\.(read|write|\*|[cruds]+)(\?.*)?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


def permissions(scope: str) -> tuple[str, str] | None:
    """('Task', 'rs') for 'system/Task.rs'; v1 '.read'/'.write'/'.*' mapped to v2 letters. None if not a scope."""
    m = _SCOPE.match(scope)
    if not m:
        return None
    resource_type, perms = m.group(1), m.group(2)
    perms = _V1.get(perms, perms)
    if "".join(sorted(perms, key="cruds".index)) != perms:
        return None  # v2 requires the letters in c, r, u, d, s order
    return resource_type, perms


def allows(scopes: frozenset[str], resource_type: str, operation: str) -> bool:
    for scope in scopes:
        parsed = permissions(scope)
        if parsed and parsed[0] in ("*", resource_type) and operation in parsed[1]:
            return True
    return False


def require_scope(ctx: RequestContext, resource_type: str, operation: str) -> None:
    if not allows(ctx.scopes, resource_type, operation):
        raise Forbidden(f"The access token has no scope that permits '{operation}' on {resource_type} "
                        f"(needs e.g. system/{resource_type}.{operation})", code="forbidden")
