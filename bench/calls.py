"""Function calls per request, in process: the lifecycle, reads by id and creates of bench/load.py under cProfile.

The exchange's app is called as an ASGI application (no sockets, no uvicorn, hardly any client code), one client at a time, after a
warm-up, so the count of Python function calls per lifecycle, read and create depends neither on the load nor on a
busy machine: compare two versions by it (`--server-root` runs another checkout's exchange package with this
checkout's bench/). The linker's passes run in the same event loop and are counted with the requests they follow.

    .venv/bin/python bench/calls.py                                      # PostgreSQL on 127.0.0.1:5432
    .venv/bin/python bench/calls.py --output /tmp/profile.txt --top 40   # ... and the top entries
    .venv/bin/python bench/calls.py --database-url sqlite+aiosqlite:////tmp/profile.db
    .venv/bin/python bench/calls.py --statements --concurrency 16      # 16 requests at a time: shared statements
                                                                         # (the audit group commit's) count once

With `--concurrency` above 1 the statements per request are still exact (a statement shared by the requests of a
batch is counted once and divided among them), the statements by step too (a batch's own are "between requests");
the CPU by step overlaps and is not.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from contextvars import ContextVar
from pathlib import Path

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/exchange_profile"
# the step of the request under way in this task (the linker's passes and the group commits, tasks of their own: None)
_STEP: ContextVar[str | None] = ContextVar("calls_step", default=None)


def _package(filename: str) -> str:
    """The package a profiled function belongs to: site-packages' top name, exchange's subpackage, or stdlib."""
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0].split(".")[0]
    if "/exchange/" in filename:
        return "exchange." + filename.split("/exchange/")[-1].split("/")[0].removesuffix(".py")
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    return "stdlib" if "/lib/python3" in filename else filename.rsplit("/", 1)[-1]


class AsgiClient:
    """The few calls bench/lifecycle.py makes of its `Connection`, straight into the ASGI app: the profile counts
    the exchange's calls, hardly any of the client's."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app
        self.cpu_by_step: collections.Counter = collections.Counter()  # seconds of CPU, by lifecycle step
        self.calls_by_step: collections.Counter = collections.Counter()

    async def request(self, method: str, url: str, headers: dict | None = None, content: bytes | None = None,
                      data: dict | None = None) -> Response:
        from urllib.parse import urlencode, urlsplit

        if data is not None:
            content = urlencode(data).encode()
            headers = {**(headers or {}), "Content-Type": "application/x-www-form-urlencoded"}
        parts = urlsplit(url)
        body = content or b""
        sent = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        sent += [(b"host", b"127.0.0.1:8080"), (b"content-length", str(len(body)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": parts.path, "raw_path": parts.path.encode(),
                 "query_string": parts.query.encode(), "root_path": "", "headers": sent,
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "state": {}}
        received = False
        status, out_headers, chunks = 0, [], []

        async def receive() -> dict:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status, out_headers
            if message["type"] == "http.response.start":
                status, out_headers = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        step = _step(method, parts.path, headers or {})
        token = _STEP.set(step)
        started = time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            _STEP.reset(token)
        self.cpu_by_step[step] += time.process_time() - started
        self.calls_by_step[step] += 1
        from lifecycle import Response  # noqa: PLC0415 (bench/ is on the path by now)
        from starlette.datastructures import Headers

        return Response(status, Headers(raw=out_headers), b"".join(chunks))

    async def get(self, url: str, **kwargs) -> Response:  # noqa: ANN003
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs) -> Response:  # noqa: ANN003
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        pass


def _step(method: str, path: str, headers: dict) -> str:
    """The lifecycle step (bench/lifecycle.py's STEPS) a request is, or the read and create phases' own name."""
    if method == "POST":
        return "transaction" if path.rstrip("/").endswith("/fhir") else "create"
    if method == "PUT":
        return "accept" if headers.get("If-Match") == 'W/"1"' else "complete"
    if path.endswith("/AuditEvent"):
        return "audit"
    return "inbox" if path.endswith("/Task") else "read"


class _Progress:
    def add_task(self, *args, **kwargs) -> int:  # noqa: ANN002, ANN003
        return 0

    def advance(self, *args) -> None:  # noqa: ANN002
        pass


async def run(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lifecycle import Load, Samples  # noqa: PLC0415
    from world import build_world, recreate_database  # noqa: PLC0415

    from sqlalchemy import event

    from exchange.main import build, create_app
    from exchange.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="exchange-profile-"))
    settings = Settings(database_url=args.database_url, state_dir=workdir / "var", port=8080)
    await recreate_database(args.database_url)
    world = await build_world(settings, 2, 2)
    exchange = build(settings)
    app = create_app(settings, exchange)
    report: dict = {"database": args.database_url.split("://")[0]}
    stats_out = io.StringIO()
    async with app.router.lifespan_context(app):
        load = Load("http://127.0.0.1:8080", world, 1, _Progress(), http=AsgiClient(app))
        await load.authorise()
        phases = (("lifecycle", args.lifecycles, load.lifecycle), ("read", args.reads, load.read),
                  ("create", args.creates, load.create))
        for name, count, work in phases:
            warm = Samples()
            for n in range(args.warmup):
                await work(load.http, warm, 10_000 + n)
            samples = Samples()
            seen: collections.Counter = collections.Counter()
            seen_by_step: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

            def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
                seen[" ".join(statement.split())[:110]] += 1
                seen_by_step[_STEP.get() or "between requests (the linker, group commits)"][" ".join(statement.split())[:110]] += 1

            if args.statements:
                event.listen(exchange.db.engine.sync_engine, "before_cursor_execute", on_execute)
            profiler = cProfile.Profile()
            tracer = None
            if os.environ.get("CALLS_REGIONS"):
                sys.path.insert(0, os.path.dirname(os.environ["CALLS_REGIONS"]))
                from regions import Tracer  # noqa: PLC0415
                tracer = Tracer()
                sys.setprofile(tracer)
            load.http.cpu_by_step.clear()
            load.http.calls_by_step.clear()
            started = time.process_time()
            if tracer is None and not args.cpu_only:
                profiler.enable()
            for first in range(0, count, args.concurrency):
                await asyncio.gather(*(work(load.http, samples, n)
                                       for n in range(first, min(count, first + args.concurrency))))
            await asyncio.sleep(0.3)  # the linker's pass for the last writes
            if tracer is not None:
                sys.setprofile(None)
                report[name + "_regions"] = {k: round(v / count) for k, v in tracer.counts.most_common()}
                report[name + "_traced_total"] = round(tracer.total / count)
                continue
            profiler.disable()
            cpu = time.process_time() - started
            if args.cpu_only:
                report[name] = {"count": count, "cpu_ms_per_request": round(1000 * cpu / count, 2),
                                "cpu_ms_per_step": {step: round(1000 * seconds / load.http.calls_by_step[step], 2)
                                                    for step, seconds in load.http.cpu_by_step.items()}}
                continue
            if args.statements:
                event.remove(exchange.db.engine.sync_engine, "before_cursor_execute", on_execute)
                report[name + "_statements_per_request"] = round(sum(seen.values()) / count, 1)
                report[name + "_statements"] = {k: round(v / count, 2) for k, v in seen.most_common()}
                if name == "lifecycle":
                    report["lifecycle_statements_by_step"] = {
                        step: {k: round(v / count, 2) for k, v in counts.most_common()}
                        for step, counts in seen_by_step.items()}
            if samples.errors or warm.errors:
                raise SystemExit(f"{name}: errors {samples.errors or warm.errors}: "
                                 f"{samples.error_examples or warm.error_examples}")
            stats = pstats.Stats(profiler)
            by_package: dict[str, int] = {}
            for (filename, _line, _fn), (_cc, nc, _tt, _ct, _callers) in stats.stats.items():
                by_package[_package(filename)] = by_package.get(_package(filename), 0) + nc
            report[name] = {"count": count, "calls_per_request": round(stats.total_calls / count),
                            "primitive_calls_per_request": round(stats.prim_calls / count),
                            "cpu_ms_per_request_profiled": round(1000 * cpu / count, 2),
                            "calls_per_request_by_package": {k: round(v / count) for k, v in sorted(
                                by_package.items(), key=lambda kv: -kv[1]) if v / count >= 20}}
            if args.dump:
                profiler.dump_stats(f"{args.dump}.{name}.prof")
            if args.output:
                stats_out.write(f"\n===== {name}: {count} requests, {report[name]} =====\n")
                stats.stream = stats_out
                stats.sort_stats("tottime").print_stats(args.top)
                stats.sort_stats("cumulative").print_stats(args.top)
        await load.http.aclose()
    await exchange.db.dispose()
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n" + stats_out.getvalue())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help="the profile's own database: dropped and created anew (default %(default)s)")
    parser.add_argument("--lifecycles", type=int, default=40)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--creates", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--output", type=Path, default=None, help="pstats top entries of each phase")
    parser.add_argument("--dump", default=None, help="write each phase's pstats to <DUMP>.<phase>.prof")
    parser.add_argument("--cpu-only", action="store_true",
                        help="no profiler: the process's CPU time per request (server and this client together)")
    parser.add_argument("--statements", action="store_true", help="count each SQL statement per request")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests (lifecycles) of a phase run this many at a time (default 1)")
    parser.add_argument("--server-root", type=Path, default=None,
                        help="count the calls of another checkout's exchange package (this checkout's bench/)")
    args = parser.parse_args()
    if args.server_root is not None:  # the same script, with the other checkout's package first on the path
        import subprocess

        site = next(p for p in sys.path if p.endswith("site-packages"))
        argv = sys.argv[1:]
        at = next(i for i, a in enumerate(argv) if a.startswith("--server-root"))
        del argv[at:at + (1 if "=" in argv[at] else 2)]
        code = (f"import sys, runpy; sys.path[:0] = [{str(args.server_root)!r}, {site!r}]; "
                f"sys.argv = [{__file__!r}, *{argv!r}]; runpy.run_path({__file__!r}, run_name='__main__')")
        raise SystemExit(subprocess.run([sys.executable, "-S", "-c", code]).returncode)
    os.environ.setdefault("EXCHANGE_LOG_LEVEL", "WARNING")
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
