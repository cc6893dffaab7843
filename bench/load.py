"""Load generator: creates/s and reads/s over real HTTP with N concurrent clients, on SQLite or PostgreSQL.

Starts `exchange serve` on a free port against the given database, registers a partner client when the server
requires OAuth (SMART Backend Services: `exchange clients add` + a signed assertion), then runs a create phase
(POST Patient) and a read phase (GET Patient/{id}) for a fixed time each and prints the rates and latencies.

    .venv/bin/python bench/load.py --database-url sqlite+aiosqlite:///bench.db
    .venv/bin/python bench/load.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench_db
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, database_url: str, cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "exchange.cli", *args, "--database-url", database_url], cwd=cwd,
                         check=True, capture_output=True, text=True)
    return out.stdout


def provision_token(base: str, database_url: str, cwd: Path) -> str | None:
    """A partner token, or None when the server does not require OAuth."""
    discovery = httpx.get(f"{base}/.well-known/smart-configuration", timeout=5)
    if discovery.status_code != 200:
        return None
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    org_id = cli("orgs", "add", "--name", f"Bench {uuid.uuid4().hex[:6]}", "--type", "hotline",
                 database_url=database_url, cwd=cwd).strip()
    key = RSAKey.generate_key(2048, parameters={"kid": "bench"}, private=True)
    jwks_file = cwd / "bench-jwks.json"
    jwks_file.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    client = json.loads(cli("clients", "add", "--organization", org_id, "--role", "partner", "--jwks",
                            str(jwks_file), "--scope", "system/Patient.cruds", database_url=database_url, cwd=cwd))
    token_url = discovery.json()["token_endpoint"]
    now = int(time.time())
    assertion = jwt.encode({"alg": "RS384", "kid": "bench", "typ": "JWT"},
                           {"iss": client["client_id"], "sub": client["client_id"], "aud": token_url,
                            "exp": now + 240, "iat": now, "jti": uuid.uuid4().hex}, key, algorithms=["RS384"])
    r = httpx.post(token_url, data={
        "grant_type": "client_credentials", "scope": "system/Patient.cruds",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


async def phase(name: str, base: str, headers: dict, clients: int, seconds: float, work) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await work(http)
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    print(f"{name:7s} {len(latencies) / elapsed:8.1f}/s  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
          f"({len(latencies)} requests, {clients} clients, {elapsed:.1f} s)")
    return latencies


async def run(base: str, token: str | None, clients: int, seconds: float) -> None:
    headers = {"Content-Type": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    created: list[str] = []

    async def create(http: httpx.AsyncClient) -> None:
        body = {"resourceType": "Patient", "gender": "female",
                "identifier": [{"system": "https://bench.example.org/case", "value": uuid.uuid4().hex}]}
        r = await http.post("/Patient", json=body)
        assert r.status_code == 201, r.text
        created.append(r.json()["id"])

    async def read(http: httpx.AsyncClient) -> None:
        r = await http.get(f"/Patient/{random.choice(created)}")
        assert r.status_code == 200, r.text

    await phase("create", base, headers, clients, seconds, create)
    await phase("read", base, headers, clients, seconds, read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file in a temporary folder")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="exchange-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    cli("db", "upgrade", database_url=database_url, cwd=workdir)
    server = subprocess.Popen([sys.executable, "-m", "exchange.cli", "serve", "--port", str(port), "--database-url",
                               database_url], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/metadata", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        token = provision_token(base, database_url, workdir)
        print(f"database: {database_url.split('://')[0]}  auth: {'bearer token' if token else 'none'}")
        asyncio.run(run(base, token, args.clients, args.seconds))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
