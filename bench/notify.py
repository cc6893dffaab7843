"""Notification throughput: how fast `exchange worker` processes drain a backlog of events to a real receiver.

Creates S subscriptions (rest-hook to a local receiver) and T referral Tasks that every subscription matches
(S x T events) with no dispatcher running, then starts W `exchange worker` processes and measures how long they
take to deliver everything. Prints the write rate of changes with S subscriptions (outbox rows in the same
transaction) and the delivery rate.

    .venv/bin/python bench/notify.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench_notify --workers 2
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default listen backlog (5) refuses connections under a burst
    daemon_threads = True

EXT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-task"


class Counter(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    events = 0

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with Counter.lock:
            Counter.events += body.count(b'"event-number"')
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args) -> None:
        return None


async def prepare(database_url: str, endpoint: str, subscriptions: int, tasks: int, max_count: int) -> float:
    from exchange.context import system_context
    from exchange.fhir.interactions.create import create
    from exchange.settings import Settings
    from exchange.store.migrate import upgrade
    from exchange.main import build

    settings = Settings(database_url=database_url, notify_dispatch_in_server=False, notify_allow_loopback=True)
    exchange = build(settings)
    await upgrade(exchange.db)
    await exchange.keys.current()
    ctx = system_context()
    org = (await create(exchange, ctx, "Organization", {"resourceType": "Organization", "name": "Bench"})).stored.id
    for _ in range(subscriptions):
        await create(exchange, ctx, "Subscription", {
            "resourceType": "Subscription", "status": "requested", "reason": "bench", "criteria": TOPIC,
            "_criteria": {"extension": [{"url": f"{EXT}/backport-filter-criteria",
                                         "valueString": f"Task?owner=Organization/{org}"}]},
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                        "extension": [{"url": f"{EXT}/backport-max-count", "valuePositiveInt": max_count}]}})
    started = time.perf_counter()
    for _ in range(tasks):
        await create(exchange, ctx, "Task", {
            "resourceType": "Task", "status": "requested", "intent": "order",
            "owner": {"reference": f"Organization/{org}"}, "requester": {"reference": f"Organization/{org}"}})
    elapsed = time.perf_counter() - started
    await exchange.db.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-count", type=int, default=1, help="backport-max-count (events per notification)")
    args = parser.parse_args()
    server = Server(("127.0.0.1", 0), Counter)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}/hook"
    write_time = asyncio.run(prepare(args.database_url, endpoint, args.subscriptions, args.tasks, args.max_count))
    total = args.subscriptions * args.tasks
    print(f"{args.tasks} Task creates with {args.subscriptions} matching subscriptions: {write_time:.2f}s "
          f"({args.tasks / write_time:.0f} creates/s, {total / write_time:.0f} outbox events/s)")
    state = tempfile.mkdtemp()
    env = dict(os.environ, EXCHANGE_DATABASE_URL=args.database_url, EXCHANGE_NOTIFY_ALLOW_LOOPBACK="true",
               EXCHANGE_NOTIFY_POLL_INTERVAL="0.05", EXCHANGE_STATE_DIR=state)
    started = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-m", "exchange.main", "worker", "--id", f"bench-{n}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(f"{state}/worker-{n}.log", "w"))
               for n in range(args.workers)]
    try:
        while Counter.events < total and time.perf_counter() - started < 300:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
        reports = [open(f"{state}/worker-{n}.log").read().strip().splitlines()[-1:] for n in range(args.workers)]
    print(f"{Counter.events}/{total} events delivered by {args.workers} workers in {elapsed:.2f}s "
          f"(incl. start-up and {args.subscriptions} handshakes): {Counter.events / elapsed:.0f} events/s")
    for report in reports:
        print("  ", *report)
    server.shutdown()


if __name__ == "__main__":
    main()
