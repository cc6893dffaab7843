"""What an interaction hands back to the HTTP layer."""
from __future__ import annotations

from dataclasses import dataclass

from exchange.store.values import StoredResource


@dataclass
class Result:
    status: int
    stored: StoredResource | None = None  # a single resource (create, read, update)
    body: dict | None = None  # a Bundle or an OperationOutcome
    location: bool = False  # send Location (create)
