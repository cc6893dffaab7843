"""Directory capacity replaces accepting-referrals (issue 14, item 5): a data migration.

Every current HealthcareService that carries the old yes/no `accepting-referrals` extension gets a new version with
the `capacity` extension instead (true: status available, false: closed; `updated` is when the old value was last
written, the stored version's lastUpdated), and its search-index rows follow (`capacity` in place of
`accepting-referrals`). Earlier versions stay as they were: history is never rewritten. Not reversible (the old
extension is refused now); downgrade leaves the data alone.

Revision ID: 0700_directory_capacity
Revises: 0001_core
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = "0700_directory_capacity"
down_revision = "0001_core"
branch_labels = None
depends_on = None

BASE = "https://gbv-exchange.org/fhir/StructureDefinition/"
ACCEPTING = BASE + "accepting-referrals"
CAPACITY = BASE + "capacity"

_ROW = (sa.column("resource_type", sa.String), sa.column("id", sa.String), sa.column("version_id", sa.Integer),
        sa.column("last_updated", sa.DateTime), sa.column("deleted", sa.Boolean), sa.column("content", sa.Text))
resource = sa.table("resource", *_ROW)
resource_version = sa.table("resource_version", *(sa.column(c.name, c.type) for c in _ROW),
                            sa.column("method", sa.String))
search_index = sa.table("search_index", sa.column("resource_type"), sa.column("resource_id"), sa.column("param"),
                        sa.column("system"), sa.column("value"))


def _instant(dt: datetime) -> str:
    return dt.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def migrated(body: dict, written: datetime) -> tuple[dict, str] | None:
    """The body with capacity in place of accepting-referrals, and the capacity status; None if it has none."""
    extensions = body.get("extension") or []
    old = [e for e in extensions if isinstance(e, dict) and e.get("url") == ACCEPTING]
    if not old:
        return None
    status = "available" if any(e.get("valueBoolean") is True for e in old) else "closed"
    capacity = {"url": CAPACITY, "extension": [{"url": "status", "valueCode": status},
                                               {"url": "updated", "valueDateTime": _instant(written)}]}
    kept = [e for e in extensions if not (isinstance(e, dict) and e.get("url") in (ACCEPTING, CAPACITY))]
    return {**body, "extension": [capacity, *kept]}, status


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(resource).where(resource.c.resource_type == "HealthcareService",
                                                  resource.c.deleted.is_(False),
                                                  resource.c.content.like(f"%{ACCEPTING}%"))).all()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for row in rows:
        change = migrated(json.loads(row.content), row.last_updated)
        if change is None:
            continue
        body, status = change
        version = row.version_id + 1
        written = max(now, row.last_updated + timedelta(microseconds=1))
        body["meta"] = {**(body.get("meta") or {}), "versionId": str(version), "lastUpdated": _instant(written)}
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        conn.execute(sa.update(resource).where(resource.c.resource_type == "HealthcareService",
                                               resource.c.id == row.id, resource.c.version_id == row.version_id)
                     .values(version_id=version, last_updated=written, content=content))
        conn.execute(sa.insert(resource_version).values(resource_type="HealthcareService", id=row.id,
                                                        version_id=version, last_updated=written, deleted=False,
                                                        method="PUT", content=content))
        conn.execute(sa.delete(search_index).where(search_index.c.resource_type == "HealthcareService",
                                                   search_index.c.resource_id == row.id,
                                                   search_index.c.param == "accepting-referrals"))
        conn.execute(sa.insert(search_index).values(resource_type="HealthcareService", resource_id=row.id,
                                                    param="capacity", system=None, value=status))


def downgrade() -> None:
    pass  # the old extension is refused now: the capacity versions stay
