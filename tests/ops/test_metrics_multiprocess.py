"""Several server processes on one host share their counters (prometheus-client multiprocess mode): a scrape of
any process counts the requests of all. The other process runs in a subprocess, since the mode is chosen when
prometheus-client is imported."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.ops.test_metrics import scrape, value

OTHER_PROCESS = """
from exchange.ops import counters
for _ in range(3):
    counters.observe_request("GET", "/fhir/{resource_type}", 200, 0.02)
counters.count_oauth("token", None)
"""


@pytest.fixture
def shared(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    return directory


@pytest.fixture
def settings(settings, shared):  # noqa: ANN001, ANN201
    return settings.model_copy(update={"metrics_multiprocess_dir": shared})


async def test_a_scrape_counts_the_requests_of_every_process(app, shared):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(shared))
    done = subprocess.run([sys.executable, "-c", OTHER_PROCESS], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    text = (await scrape(app)).text
    assert value(text, "exchange_http_request_duration_seconds_count", method="GET", route="/fhir/{resource_type}",
                 status="200") == 3
    assert value(text, "exchange_oauth_requests_total", endpoint="token", outcome="ok") == 1
    assert value(text, "exchange_ready", check="database") == 1  # the database gauges are there too
