"""The uses of the emergency exception in the exchange log, for auditors (`exchange audit emergencies`).

`exchange.referral.emergency` records each use as an AuditEvent with subtype exchange-event|emergency-exception and
the coded reason in purposeOfEvent; this lists them from the log itself (ids and codes only).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.tables import audit_event, rare_kind_literal
from exchange.store.clock import from_db, to_db

SUBTYPE = "emergency-exception"
REASON_SYSTEM = "https://gbv-exchange.org/fhir/CodeSystem/gbv-consent"


@dataclass(frozen=True)
class Use:
    """One use of the exception, as the log records it."""
    recorded: datetime
    event_id: str
    organization: str | None
    referral: str | None
    reason: str | None

    def as_json(self) -> dict:
        return {"recorded": self.recorded.isoformat(), "auditEvent": f"AuditEvent/{self.event_id}",
                "organization": self.organization, "referral": self.referral, "reason": self.reason}


def _use(row) -> Use:  # noqa: ANN001
    content = orjson.loads(row.content)
    reason = next((c.get("code") for p in content.get("purposeOfEvent") or [] for c in p.get("coding") or []
                   if c.get("system") == REASON_SYSTEM), None)
    return Use(from_db(row.recorded), row.id, f"Organization/{row.organization_id}" if row.organization_id else None,
               f"{row.entity_type}/{row.entity_id}" if row.entity_type else None, reason)


async def uses(conn: AsyncConnection, since: datetime | None = None, until: datetime | None = None) -> list[Use]:
    """Every use of the emergency exception in the log, oldest first (`since` inclusive, `until` exclusive): read
    off their own index (`exchange.audit.tables.RARE_KINDS`), however long the log."""
    query = select(audit_event).where(audit_event.c.subtype == rare_kind_literal("subtype", SUBTYPE))
    if since is not None:
        query = query.where(audit_event.c.recorded >= to_db(since))
    if until is not None:
        query = query.where(audit_event.c.recorded < to_db(until))
    query = query.order_by(audit_event.c.recorded, audit_event.c.entry)
    return [_use(row) for row in (await conn.execute(query)).all()]
