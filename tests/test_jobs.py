"""Background jobs run once per deployment: of several server processes over one PostgreSQL database exactly one
holds the jobs lease (dispatcher, overdue sweep, the linker's periodic pass, checkpoints), and another takes the
jobs over when it stops; SQLite is served by one process only."""
from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from exchange.main import create_app
from exchange.main import cli as cli_app
from exchange.main import build


def _dispatchers() -> int:
    return len([t for t in asyncio.all_tasks() if t.get_name().startswith("notify-dispatcher")])


async def test_one_of_two_processes_runs_the_jobs_and_the_other_takes_over(settings):
    if settings.is_sqlite:
        pytest.skip("SQLite is served by one process: there is no second one to take over")
    fast = settings.model_copy(update={"jobs_lease_retry_seconds": 0.05})
    first, second = build(fast), build(fast)
    one = create_app(fast, first).router.lifespan_context
    two = create_app(fast, second).router.lifespan_context
    running_one, running_two = one(None), two(None)
    await running_one.__aenter__()
    await running_two.__aenter__()
    try:
        assert first.extensions["jobs"].holding and not second.extensions["jobs"].holding
        assert _dispatchers() == 1
        await running_one.__aexit__(None, None, None)  # the process running the jobs stops
        for _ in range(200):  # bounded wait for the other's next try; no assertion on how long it took
            if second.extensions["jobs"].holding:
                break
            await asyncio.sleep(0.05)
        assert second.extensions["jobs"].holding and _dispatchers() == 1
    finally:
        await running_two.__aexit__(None, None, None)
    assert _dispatchers() == 0


def test_several_workers_need_postgresql(tmp_path):
    result = CliRunner().invoke(cli_app, ["serve", "--workers", "2", "--database-url",
                                          f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2 and "use PostgreSQL for --workers" in result.output
