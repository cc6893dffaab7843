"""`make bench`: referral lifecycles over real HTTP with real tokens, against the floor the database itself sets.

Creates a database of its own (PostgreSQL by default: `<url>` and `<url>_floor`, both dropped and created anew),
builds a directory of hotlines and shelters with one registered client each plus an auditor, starts
`exchange serve`, and with `--clients` concurrent clients plays a fixed number of lifecycles (bench/lifecycle.py:
transaction Bundle -> inbox search -> accept -> complete with If-Match -> the auditor's log search), then reads by
id and creates. Then the floor (bench/floor.py): the same rows by the same transactions with asyncpg alone.
Prints a table and writes JSON: requests/s, lifecycles/s, p50/p95/p99 per step and over all, errors, the peak
memory of each server process, the floor and the ratio; then checks the audit chain (`exchange audit verify`).

    .venv/bin/python bench/load.py                                   # PostgreSQL on 127.0.0.1:5432
    .venv/bin/python bench/load.py --lifecycles 500 --workers 2 --json bench/results/latest.json
    .venv/bin/python bench/load.py --profile profile.txt             # py-spy samples of the lifecycle phase
    .venv/bin/python bench/load.py --profile read.txt --profile-phase read   # ... or of the reads by id
    .venv/bin/python bench/load.py --database-url sqlite+aiosqlite:////tmp/bench.db
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import uvloop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floor import Floor  # noqa: E402
from lifecycle import STEPS, Load, Samples  # noqa: E402
from world import ROOT, build_world, recreate_database, sibling_database, world_from_json  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/exchange_bench"
console = Console()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))] * 1000


def summary(samples: Samples, units: str | None = None) -> dict:
    """Rates and latency percentiles (ms) per step and over all requests of a phase."""
    every = [v for values in samples.latencies.values() for v in values]
    out = {"elapsed_s": round(samples.elapsed, 2), "requests": len(every),
           "requests_per_s": round(len(every) / samples.elapsed, 1) if samples.elapsed else 0,
           "errors": sum(samples.errors.values()), "error_examples": samples.error_examples, "steps": {}}
    if units:
        out[f"{units}_per_s"] = round(samples.completed / samples.elapsed, 1) if samples.elapsed else 0
        out[units] = samples.completed
    for step, values in [*samples.latencies.items(), ("all", every)]:
        out["steps"][step] = {"count": len(values), "errors": samples.errors.get(step, 0),
                              "per_s": round(len(values) / samples.elapsed, 1) if samples.elapsed else 0,
                              **{f"p{int(q * 100)}_ms": round(percentile(values, q), 1) for q in (0.5, 0.95, 0.99)}}
    return out


class MemoryWatch:
    """Samples the resident memory of the server and its children; keeps each process's peak."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peaks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def pids(self) -> list[int]:
        try:
            return [self.root.pid, *(c.pid for c in self.root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def _loop(self) -> None:
        """A sample every 0.25 s; the server's processes looked up every 2 s (finding children reads every
        process's /proc entry: at each sample it cost the generator about 2 % of a core, on the cores it measures)."""
        processes: list[psutil.Process] = []
        found_at = float("-inf")
        while not self._stop.is_set():
            if time.monotonic() - found_at >= 2.0:
                processes, found_at = [psutil.Process(pid) for pid in self.pids()], time.monotonic()
            for process in processes:
                try:
                    rss = process.memory_info().rss
                    self.peaks[process.pid] = max(self.peaks.get(process.pid, 0), rss)
                    self.names.setdefault(process.pid, "main" if process.pid == self.root.pid else "worker")
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(0.25)

    def start(self) -> None:
        self._thread.start()

    def cpu_by_process(self) -> dict[int, float]:
        """User + system CPU of each server process so far (dead children are not counted)."""
        out = {}
        for pid in self.pids():
            try:
                times = psutil.Process(pid).cpu_times()
                out[pid] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return out

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_process().values())

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {f"{self.names[p]} {p}": round(v / 2**20, 1) for p, v in sorted(self.peaks.items())}


def _under(root: Path, code: str) -> list[str]:
    """python running `code` with the exchange package of `root` first on the path (this venv's packages)."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    return [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(root)!r}, {site!r}]; {code}"]


def exchange_command(root: Path | None = None) -> list[str]:
    """The `exchange` command of this checkout, or of the checkout at `root`."""
    if root is None:
        return [sys.executable, "-m", "exchange.main"]
    entry = "from exchange.main import cli as app" if (root / "exchange" / "main.py").exists() else \
        "from exchange.cli import app"  # (before the composition root moved)
    return _under(root, f"sys.argv[0] = 'exchange'; {entry}; app()")


def build_world_under(root: Path, settings, hotlines: int, shelters: int, workdir: Path):  # noqa: ANN001, ANN201
    """The database and the world made by the code of `root` (its migrations: its server refuses a schema at a
    revision it does not know), with this checkout's bench/world.py."""
    out = workdir / "world.json"
    world_py = Path(__file__).resolve().parent / "world.py"
    subprocess.run(_under(root, f"import runpy; sys.argv = ['world.py', *sys.argv[1:]]; "
                                f"runpy.run_path({str(world_py)!r}, run_name='__main__')")
                   + [settings.database_url, str(settings.state_dir), str(settings.port), str(hotlines),
                      str(shelters), str(out)], check=True, cwd=workdir)
    return world_from_json(json.loads(out.read_bytes()))


def listening(pid: int, port: int) -> list[int]:
    """The processes of the server `pid` that listen on `port`: with --workers, each worker once it has started
    (the clients' connections are spread over those listening when they connect)."""
    out = []
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in process.net_connections("tcp")):
                out.append(process.pid)
        except psutil.Error:
            pass
    return out


def start_server(database_url: str, port: int, workers: int, workdir: Path, root: Path | None = None,
                 state_dir: Path | None = None, timeout: float = 30.0) -> subprocess.Popen:
    """`exchange serve`; with `root`, the exchange of another checkout (to compare two versions on one machine);
    `state_dir`: the exchange's state directory (default `<workdir>/var`)."""
    with socket.socket() as probe:  # another server on the port would answer the readiness check in its place
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"port {port} is in use (another bench run?): pass --port") from None
    command = exchange_command(root) + ["serve", "--port", str(port), "--database-url", database_url]
    if workers > 1:
        command += ["--workers", str(workers)]
    env = dict(os.environ, EXCHANGE_STATE_DIR=str(state_dir or workdir / "var"), EXCHANGE_MIGRATE_ON_START="false")
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
    for _ in range(int(timeout / 0.2)):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200 \
                    and len(listening(server.pid, port)) >= workers:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"the server did not start; see {workdir / 'server.log'}")


def start_profile(pids: list[int], output: Path) -> list[subprocess.Popen]:
    """py-spy, one recorder per server process, writing collapsed stacks (`<output>.<pid>`)."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return [subprocess.Popen([py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking",
                              "--output", f"{output}.{pid}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in pids]


def stop_profile(recorders: list[subprocess.Popen]) -> None:
    for recorder in recorders:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its samples when interrupted
    for recorder in recorders:
        recorder.wait(timeout=30)


def top_of_profile(output: Path, pids: list[int], limit: int = 25) -> dict:
    """Own and inclusive samples per function over every recorded process (the note's profile table)."""
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for pid in pids:
        path = Path(f"{output}.{pid}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 2)[-1] + ")"
                      if " (" in f else f for f in stack.split(";")]
            total += n
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    return {"samples": total,
            "own": [(f, round(100 * n / total, 1)) for f, n in own.most_common(limit)] if total else [],
            "inclusive": [(f, round(100 * n / total, 1)) for f, n in inclusive.most_common(limit * 2)] if total else []}


async def audit_samples(database_url: str) -> dict[str, str]:
    """One stored AuditEvent per subtype from the exchange's log: the floor writes records of the same size."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT subtype, max(content) FROM audit_event GROUP BY subtype"))).all()
    await engine.dispose()
    return {r[0]: r[1] for r in rows}


def database_cpu(database: str) -> dict[int, float]:
    """User + system CPU so far of the PostgreSQL processes that work for `database`: its backends and autovacuum
    workers (their titles name it) and the server's own (WAL writer, checkpointer, background writer), not other
    databases' backends, so another session's tests or benchmark on the same server do not count. Empty when no
    PostgreSQL process can be seen (another machine's)."""
    out = {}
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        info = process.info
        if info["name"] != "postgres" or info["cpu_times"] is None:
            continue
        title = " ".join(info["cmdline"] or ()).strip()
        if database in title.split() or title.endswith(SERVER_PROCESSES):
            out[process.pid] = info["cpu_times"].user + info["cpu_times"].system
        elif " -D " in f" {title} ":  # the postmaster: its ended backends' CPU, counted where it reaps them
            out[-process.pid] = info["cpu_times"].children_user + info["cpu_times"].children_system
    return out


# The titles' ends of the server's own processes, which write and flush every database's WAL and pages.
SERVER_PROCESSES = ("checkpointer", "background writer", "walwriter", "autovacuum launcher")


def database_cpu_since(database: str, before: dict[int, float]) -> float | None:
    """PostgreSQL's CPU seconds for `database` since `before` (`database_cpu(database)`), or None when no process
    could be seen: where the database runs beside the exchange, its share of the cores is part of what a lifecycle
    costs. A backend that ended meanwhile counts through the postmaster's reaped children (any database's: a
    connection another session closed meanwhile counts too). Before, those went uncounted: a process whose pool
    opened and closed connections under load (`--workers 1`, 32 clients, before 4df0853) showed 0.6 ms a
    lifecycle."""
    after = database_cpu(database)
    if not after:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


async def row_counts(database_url: str) -> dict[str, int]:
    from sqlalchemy import inspect, text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    out = {}
    async with engine.connect() as conn:
        present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        for table in ("resource_version", "search_index", "resource_party", "resource_recorder", "web_alert",
                      "audit_event", "audit_chain"):
            if table not in present:  # (a table another checkout's schema lacks: --server-root of an earlier commit)
                continue
            out[table] = int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar())
    await engine.dispose()
    return out


async def link_window(database_url: str) -> dict | None:
    """Between a record's commit and its linking into the chain (recorded -> linked, so an upper bound), in ms."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    if not database_url.startswith("postgresql"):
        return None
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            chained = (await conn.execute(text("SELECT to_regclass('audit_chain') IS NOT NULL"))).scalar()
            windows = ("SELECT (extract(epoch FROM c.linked - e.recorded) * 1000)::float8 AS w FROM audit_chain AS c "
                       "JOIN audit_event AS e ON e.entry = c.entry") if chained else (
                "SELECT (extract(epoch FROM linked - recorded) * 1000)::float8 AS w FROM audit_event "
                "WHERE linked IS NOT NULL")  # (a schema before migration 1200: --server-root of an earlier commit)
            row = (await conn.execute(text(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY w), max(w), count(*) FROM "
                f"({windows}) x"))).first()
    except Exception:  # noqa: BLE001 - a log without the linker's table: nothing to measure
        return None
    finally:
        await engine.dispose()
    if row is None or row[2] == 0:
        return None
    p50, p95, p99 = row[0]
    return {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "p99_ms": round(p99, 1), "max_ms": round(row[1], 1),
            "records": row[2]}


def verify_chain(database_url: str, workdir: Path, root: Path | None = None) -> dict:
    started = time.perf_counter()
    out = subprocess.run(exchange_command(root) + ["audit", "verify", "--database-url", database_url],
                         cwd=workdir, capture_output=True, text=True,
                         env=dict(os.environ, EXCHANGE_STATE_DIR=str(workdir / "var")))
    return {"ok": out.returncode == 0, "output": (out.stdout or out.stderr).strip().splitlines()[-1:],
            "seconds": round(time.perf_counter() - started, 1)}


def render(report: dict) -> None:
    table = Table(title=f"exchange vs floor - {report['machine']['cpus']} cores, {report['database']}, "
                        f"{report['clients']} clients, {report['server_workers']} server process(es)")
    for column in ("phase", "step", "count", "per s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(column, justify="left" if column in ("phase", "step") else "right")
    for phase in ("lifecycle", "read", "create", "floor"):
        data = report.get(phase)
        if not data:
            continue
        for step, row in data["steps"].items():
            table.add_row(phase, step, str(row["count"]), f"{row['per_s']:.1f}", f"{row['p50_ms']:.1f}",
                          f"{row['p95_ms']:.1f}", f"{row['p99_ms']:.1f}", str(row["errors"]))
    console.print(table)
    life = report["lifecycle"]
    console.print(f"lifecycles/s {life['lifecycles_per_s']}  requests/s {life['requests_per_s']}  "
                  f"errors {life['errors']}")
    if report.get("floor"):
        console.print(f"floor lifecycles/s {report['floor']['lifecycles_per_s']}  "
                      f"ratio floor/exchange {report['floor_ratio']}  database CPU per floor lifecycle "
                      f"{report['floor'].get('database_cpu_ms_per_lifecycle')} ms")
    console.print(f"peak memory (MB): {report['server_peak_memory_mb']}")
    console.print(f"server CPU per lifecycle: {report.get('server_cpu_ms_per_lifecycle')} ms "
                  f"(load generator CPU {report.get('load_generator_cpu_s')} s; server CPU s by process "
                  f"{report.get('server_cpu_s_by_process')}); database CPU per lifecycle: "
                  f"{report.get('database_cpu_ms_per_lifecycle')} ms")
    for phase in ("read", "create"):
        if report.get(phase):
            console.print(f"server CPU per {phase}: {report[phase]['server_cpu_ms_per_request']} ms")
    console.print(f"rows per lifecycle: exchange {report['rows_per_lifecycle']}  floor "
                  f"{report.get('floor_rows_per_lifecycle')}")
    console.print(f"audit verify: {report['audit_verify']}")
    console.print(f"commit -> linked window: {report.get('audit_link_window_ms')}")
    for phase in ("lifecycle", "read", "create"):
        for step, example in (report.get(phase) or {}).get("error_examples", {}).items():
            console.print(f"[red]{phase}/{step} error example:[/red] {example}")


async def run(args: argparse.Namespace, workdir: Path) -> dict:
    from exchange.settings import Settings

    database_url = args.database_url
    is_postgres = database_url.startswith("postgresql")
    settings = Settings(database_url=database_url, state_dir=workdir / "var", port=args.port)
    if args.server_root is None:
        await recreate_database(database_url)
        world = await build_world(settings, args.hotlines, args.shelters)
    else:
        world = build_world_under(args.server_root, settings, args.hotlines, args.shelters, workdir)
    server = start_server(database_url, args.port, args.workers, workdir, args.server_root)
    memory = MemoryWatch(server.pid)
    memory.start()
    report: dict = {"database": database_url.split("://")[0], "clients": args.clients,
                    "server_workers": args.workers,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    recorders: list[subprocess.Popen] = []
    try:
        with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            load = Load(f"http://127.0.0.1:{args.port}", world, args.clients, progress)
            await load.authorise()
            if args.profile and args.profile_phase == "lifecycle":
                recorders = start_profile(memory.pids(), args.profile)
            cpu_before, by_process_before = psutil.Process().cpu_times(), memory.cpu_by_process()
            database_before = database_cpu(make_url(database_url).database)
            lifecycles = await load.run("lifecycles", args.lifecycles, load.lifecycle)
            cpu_after, by_process_after = psutil.Process().cpu_times(), memory.cpu_by_process()
            database_seconds = database_cpu_since(make_url(database_url).database, database_before)
            if database_seconds is not None:
                report["database_cpu_ms_per_lifecycle"] = round(
                    1000 * database_seconds / max(lifecycles.completed, 1), 1)
            server_before, server_after = sum(by_process_before.values()), sum(by_process_after.values())
            # how the lifecycle phase's work fell on the processes (an idle parent, workers sharing the load)
            report["server_cpu_s_by_process"] = {
                f"{memory.names.get(pid, 'worker')} {pid}": round(seconds - by_process_before.get(pid, 0.0), 1)
                for pid, seconds in by_process_after.items()}
            stop_profile(recorders)
            report["lifecycle"] = summary(lifecycles, "lifecycles")
            report["server_cpu_ms_per_lifecycle"] = round(1000 * (server_after - server_before)
                                                          / max(lifecycles.completed, 1), 1)
            report["load_generator_cpu_s"] = round((cpu_after.user + cpu_after.system)
                                                   - (cpu_before.user + cpu_before.system), 1)
            for phase, name, count, work in (("read", "reads by id", args.reads if load.tasks else 0, load.read),
                                             ("create", "creates", args.creates, load.create)):
                if not count:
                    continue
                await load.authorise()
                recorders = (start_profile(memory.pids(), args.profile)
                             if args.profile and args.profile_phase == phase else [])
                server_before = memory.cpu_seconds()
                samples = await load.run(name, count, work)
                report[phase] = summary(samples)
                # CPU of the server processes per request: less sensitive to a loaded machine than the rate
                report[phase]["server_cpu_ms_per_request"] = round(
                    1000 * (memory.cpu_seconds() - server_before) / max(report[phase]["requests"], 1), 2)
                stop_profile(recorders)
            await load.close()
        report["server_peak_memory_mb"] = memory.stop()
        if args.profile:
            report["profile"] = top_of_profile(args.profile, list(memory.peaks))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    report["audit_link_window_ms"] = await link_window(database_url)
    counts = await row_counts(database_url)
    done = max(lifecycles.completed, 1)
    report["rows_per_lifecycle"] = {t: round(n / done, 1) for t, n in counts.items()} if not (
        args.reads or args.creates) else "(read and create phases included: run with --reads 0 --creates 0)"
    if is_postgres and args.floor:
        floor_url = sibling_database(database_url, "_floor")
        await recreate_database(floor_url)
        from exchange.store.engine import Database
        from exchange.store.migrate import upgrade

        db = Database(floor_url)
        await upgrade(db)
        await db.dispose()
        with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            floor = Floor(floor_url, world, args.clients, progress, await audit_samples(database_url))
            await floor.open()
            database_before = database_cpu(make_url(floor_url).database)
            try:
                samples = await floor.run(args.lifecycles)
                database_seconds = database_cpu_since(make_url(floor_url).database, database_before)
            finally:
                await floor.close()
        report["floor"] = summary(samples, "lifecycles")
        if database_seconds is not None:
            report["floor"]["database_cpu_ms_per_lifecycle"] = round(
                1000 * database_seconds / max(samples.completed, 1), 1)
        floor_counts = await row_counts(floor_url)
        report["floor_rows_per_lifecycle"] = {t: round(n / max(samples.completed, 1), 1)
                                              for t, n in floor_counts.items()}
        exchange_rate = report["lifecycle"]["lifecycles_per_s"] or 1
        report["floor_ratio"] = round(report["floor"]["lifecycles_per_s"] / exchange_rate, 1)
    report["audit_verify"] = verify_chain(database_url, workdir, args.server_root)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help="the benchmark's own database: dropped and created anew (default %(default)s)")
    parser.add_argument("--lifecycles", type=int, default=1500)
    parser.add_argument("--reads", type=int, default=4000)
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--hotlines", type=int, default=4)
    parser.add_argument("--shelters", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="server processes (exchange serve --workers)")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--no-floor", dest="floor", action="store_false")
    parser.add_argument("--profile", type=Path, default=None, help="record one phase with py-spy")
    parser.add_argument("--profile-phase", choices=("lifecycle", "read", "create"), default="lifecycle",
                        help="the phase --profile records (default %(default)s)")
    parser.add_argument("--server-root", type=Path, default=None,
                        help="the exchange package of another checkout (compare versions): it migrates the "
                             "database, builds the world, serves and verifies the chain")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="exchange-bench-"))
    report = uvloop.run(run(args, workdir))  # (the generator shares the cores it measures: the cheaper loop)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    render(report)
    console.print(f"JSON: {args.json}   server log: {workdir / 'server.log'}")


if __name__ == "__main__":
    main()
