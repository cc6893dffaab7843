"""Two `exchange worker` processes against PostgreSQL deliver a burst of 1,000 events: none lost, none twice."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.notify.referrals import create_referral, create_task, subscription
from tests.notify.test_reliability import _until

SUBSCRIPTIONS = 10
TASKS = 100  # every Task matches every subscription: 10 x 100 = 1,000 events


def _worker(database_url: str, name: str, tmp_path) -> subprocess.Popen:
    env = dict(os.environ, EXCHANGE_DATABASE_URL=database_url, EXCHANGE_NOTIFY_ALLOW_LOOPBACK="true",
               EXCHANGE_NOTIFY_POLL_INTERVAL="0.05", EXCHANGE_NOTIFY_CONCURRENCY="5",
               EXCHANGE_STATE_DIR=str(tmp_path / name))
    return subprocess.Popen([sys.executable, "-m", "exchange.cli", "worker", "--id", name], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def test_two_worker_processes_deliver_a_burst_exactly_once(system, orgs, exchange, receiver, database_url,
                                                                 tmp_path):
    if database_url.startswith("sqlite"):
        pytest.skip("several workers are a PostgreSQL deployment (SQLite: one dispatcher)")
    await exchange.keys.current()  # the signing key exists before two processes look for it
    for i in range(SUBSCRIPTIONS):
        r = await system.post("/Subscription", json=subscription(
            receiver.url(f"s{i}"), [f"Task?requester=Organization/{orgs['hotline']}"]))
        assert r.status_code == 201, r.text
    workers = [_worker(database_url, f"worker-{n}", tmp_path) for n in (1, 2)]
    try:
        referral = await create_referral(system, orgs["hotline"], orgs["shelter"])
        started = time.perf_counter()
        for _ in range(TASKS - 1):
            await create_task(system, orgs["hotline"], orgs["shelter"], referral["request"]["id"],
                              referral["patient"]["id"])
        created = time.perf_counter()
        await _until(lambda: receiver.event_count() >= SUBSCRIPTIONS * TASKS, "1,000 deliveries", 50)
        finished = time.perf_counter()
        await asyncio.sleep(0.3)  # anything delivered twice would arrive now
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        reports = [w.communicate(timeout=30)[1] for w in workers]
    events = receiver.events()
    assert events == {f"/s{i}": list(range(1, TASKS + 1)) for i in range(SUBSCRIPTIONS)}, reports
    assert all(w.returncode == 0 for w in workers), reports
    senders = {headers.get("X-Exchange-Signature", "")[:10] for _, _, headers in receiver.received}
    assert "" not in senders
    print(f"\n1,000 events: created in {created - started:.1f}s, delivered {finished - started:.1f}s after the "
          f"first change ({SUBSCRIPTIONS * TASKS / (finished - started):.0f} events/s); "
          + "; ".join(r.strip().splitlines()[-1] for r in reports if r.strip()))
