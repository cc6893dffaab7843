"""Servers the tests start for real: a free port, and waiting for an `exchange serve` subprocess to answer."""
from __future__ import annotations

import socket
import subprocess
import time
from typing import Callable

import httpx

# How long a server may take to answer its first request: imports, migrations and demo seeding on a 2-core machine
# that other test runs load (a bound for a hung start, not a measure of speed).
STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(url: str, proc: subprocess.Popen, output: Callable[[], str]) -> httpx.Response:
    """The first answer of the server `proc` at `url`; fails with the server's `output()` if it exits first."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            assert proc.poll() is None, output()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
