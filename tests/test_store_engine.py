"""The exchange's PostgreSQL sessions: JIT compilation off (short statements that a large store's estimates would
otherwise have compiled on every request)."""
from __future__ import annotations

import pytest
from sqlalchemy import text


async def test_postgresql_sessions_compile_nothing_just_in_time(exchange):
    if exchange.db.is_sqlite:
        pytest.skip("a PostgreSQL setting")
    async with exchange.db.engine.connect() as conn:
        assert (await conn.execute(text("SHOW jit"))).scalar() == "off"
