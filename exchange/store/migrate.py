"""Apply the Alembic migrations (all heads) on the exchange's own engine."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from exchange.store.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision of every branch (packages add their own branches)."""
    cfg = alembic_config()

    def _run(sync_conn) -> None:  # noqa: ANN001
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "heads")

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)
