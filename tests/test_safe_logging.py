"""No request or resource value reaches any log line: not on a database error, not in the access log.

The exchange runs under a real uvicorn server configured as `exchange serve` configures it, and every record of
every logger (the app's, its access log, uvicorn's, SQLAlchemy's) is captured and searched for the case code.
"""
from __future__ import annotations

import asyncio
import logging

import httpx
import uvicorn
from sqlalchemy import text

from exchange.edge import uvicorn_config
from tests.conftest import SYSTEM_HEADER
from tests.fhir_checks import patient

CASE_CODE = "HL-SECRET-4242"


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(name)s %(levelname)s %(message)s").format(record))


async def _serve(app, settings):  # noqa: ANN001, ANN202
    config = uvicorn_config(app, settings, port=0)
    config.lifespan = "off"  # the app fixture already started the exchange
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, server.servers[0].sockets[0].getsockname()[1]


async def _rename(exchange, old: str, new: str) -> None:  # noqa: ANN001
    async with exchange.db.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_a_database_error_leaves_no_case_code_in_any_log_line(app, client, exchange, settings):
    handler = _Everything()
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "uvicorn.access")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)  # the level `exchange serve` logs at
    server, task, port = await _serve(app, settings)
    try:
        await _rename(exchange, "search_index", "search_index_away")  # every write and search now fails in SQL
        # (a generous timeout: on a loaded machine the failing write's rollback and refusal record can pass 5 s,
        # httpx's default; the test is about what the logs say, not how fast)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/fhir", timeout=60.0,
                                     headers={SYSTEM_HEADER: "1", "Content-Type": "application/fhir+json"}) as http:
            created = await http.post("/Patient", json=patient(CASE_CODE))
            searched = await http.get("/Patient", params={"identifier": f"https://hotline.example.org/case|{CASE_CODE}"})
            refused = await http.get("/Patient", params={"identifier": CASE_CODE, "_count": CASE_CODE})
        await _rename(exchange, "search_index_away", "search_index")
    finally:
        server.should_exit = True
        await task
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
    assert (created.status_code, searched.status_code, refused.status_code) == (500, 500, 400)
    for response in (created, searched, refused):
        assert CASE_CODE not in response.text
        assert response.headers["content-type"].startswith("application/fhir+json")
    log = "\n".join(handler.lines)
    assert CASE_CODE not in log
    assert "exchange.access INFO POST /fhir/{resource_type} 500" in log
    assert "exchange.access INFO GET /fhir/{resource_type} 400" in log
    assert "internal error" in log and "ProgrammingError" in log or "OperationalError" in log
