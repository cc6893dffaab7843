"""Who is calling: the request context that flows from the HTTP layer down to the store.

The permission check (`exchange.auth.access`) and need to know (`exchange.need_to_know.visibility`: the filter of
what it may see) read it; the audit log records it as the agent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


class ReadAlong:
    """Values the request's first statement read along with the bearer check (`Exchange.read_along`: e.g. the
    subscriptions' generation), for the request's first unit of work only (`take`): a later unit of the same
    request, such as a batch's next entry, may follow a change an earlier one committed, so it asks the database."""
    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = values

    def take(self) -> Mapping[str, object]:
        values, self._values = self._values, {}
        return values


@dataclass(frozen=True)
class RequestContext:
    client_id: str | None
    organization_id: str | None
    role: str  # exchange.auth.roles.ROLES, or system (anonymous: a refused token request, before authentication)
    scopes: frozenset[str] = field(default_factory=frozenset)
    remote_addr: str | None = None
    request_id: str | None = None
    token_id: str | None = None
    user_id: str | None = None  # a person signed in to the web inbox (exchange.web): the log names them
    # the request's transaction, begun by the bearer check (PostgreSQL); the first unit of work continues it
    begun: object | None = field(default=None, compare=False, repr=False)
    read_along: ReadAlong | None = field(default=None, compare=False, repr=False)

    @property
    def organization_reference(self) -> str | None:
        return f"Organization/{self.organization_id}" if self.organization_id else None

    @property
    def is_system(self) -> bool:
        return self.role == "system"


def system_context(remote_addr: str | None = None, request_id: str | None = None) -> RequestContext:
    """The exchange itself (CLI, demo loader, dispatcher): unrestricted, still audited."""
    return RequestContext(client_id="exchange", organization_id=None, role="system",
                          scopes=frozenset({"system/*.cruds"}), remote_addr=remote_addr, request_id=request_id)
