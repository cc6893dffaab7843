"""The running exchange: settings, database, and the hooks and rules that interactions call.

Built once by the app factory (or the CLI) and passed down explicitly; there are no module-level singletons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from exchange.settings import Settings
from exchange.store.engine import Database
from exchange.store.repository import StoredResource
from exchange.unit import Unit, UnitHook


class WriteRule(Protocol):
    """Business rules around a write (the referral workflow, consent). Raise an exchange error to refuse."""

    async def before_write(self, unit: Unit, resource_type: str, body: dict, current: StoredResource | None,
                           method: str) -> None: ...

    async def after_write(self, unit: Unit, stored: StoredResource, previous: StoredResource | None) -> None: ...


@dataclass
class Exchange:
    settings: Settings
    db: Database
    hooks: list[UnitHook] = field(default_factory=list)
    rules: list[WriteRule] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Exchange":
        return cls(settings=settings, db=Database(settings.database_url, settings.database_pool_size))
