"""Apply the Alembic migrations (all heads) on the exchange's own engine."""
from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from exchange.store.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


log = logging.getLogger("exchange.store")


async def upgrade(db: Database) -> list[str]:
    """Bring the schema to the newest revision of every branch (packages add their own branches). Returns the
    revisions applied, none when the schema was up to date; only then is anything logged."""
    cfg = alembic_config()
    applied: list[str] = []
    cfg.attributes["on_version_apply"] = [lambda step, **_: applied.append(step.up_revision_id)]
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-run "Context impl" lines say nothing

    def _run(sync_conn) -> None:  # noqa: ANN001
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "heads")

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)
    if applied:
        log.info("database migrated: %s", ", ".join(applied))
    return applied
