"""`exchange serve --workers 2` on PostgreSQL: two server processes that answer FHIR requests, and a scrape of
/metrics from either counts the requests of both (the shared directory defaults to state_dir/metrics)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.ops.test_metrics import value

REQUESTS = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(server: subprocess.Popen, base: str, log) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 120  # three interpreters importing the exchange on a busy machine
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/fhir/metadata", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("exchange serve --workers 2 did not answer: " + log.read_text()[-3000:])


def test_two_server_processes_share_their_metrics(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        pytest.skip("--workers is a PostgreSQL deployment (SQLite is served by one process)")
    port, state = _free_port(), tmp_path / "state"
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_METRICS", "PROMETHEUS"))}
    env.update(EXCHANGE_STATE_DIR=str(state), EXCHANGE_PORT=str(port))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "exchange.main", "serve", "--workers", "2",
                                   "--database-url", database_url], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(server, base, log)
        for _ in range(REQUESTS):  # a new connection each: either process may accept it
            assert httpx.get(f"{base}/fhir/metadata", timeout=30).status_code == 200
        for _ in range(4):
            text = httpx.get(f"{base}/metrics", timeout=30).text
            counted = value(text, "exchange_http_request_duration_seconds_count", method="GET",
                            route="/fhir/metadata", status="200")
            assert counted >= REQUESTS, text[:2000]  # (+ the start-up probes, which were answered too)
        assert any((state / "metrics").iterdir())
    finally:
        server.terminate()
        server.wait(timeout=60)
