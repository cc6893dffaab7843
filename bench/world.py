"""The benchmark's world: its own PostgreSQL (or SQLite) database, a directory of hotlines and shelters, clients.

Everything here is set up the way an operator would (the exchange itself creates the directory and registers the
clients, as `exchange orgs add` and `exchange clients add` do), before any timing starts. The referral Bundles
are the published example (`conformance/examples/Bundle-example-referral-shelter.json`) with its directory entries
replaced by references to the organisations and services registered here.
"""
from __future__ import annotations

import copy
import uuid
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "conformance" / "examples" / "Bundle-example-referral-shelter.json"
SCOPES = {"partner": "system/*.cruds", "auditor": "system/AuditEvent.rs"}


@dataclass
class Party:
    """One organisation in the benchmark with the registered client its systems use."""
    organization_id: str
    client_id: str
    key: object  # a joserfc private key
    service_id: str | None = None  # its HealthcareService (receivers)


@dataclass
class World:
    hotlines: list[Party] = field(default_factory=list)
    shelters: list[Party] = field(default_factory=list)
    auditor: Party | None = None


def sibling_database(url: str, suffix: str) -> str:
    """`url` with `suffix` added to its database's name (its query, such as a Unix socket's `host=`, kept)."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}{suffix}").render_as_string(hide_password=False)


async def recreate_database(url: str) -> None:
    """Drop and create the database `url` names (PostgreSQL), or remove the SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    await admin.dispose()


async def drop_database(url: str) -> None:
    """Drop the PostgreSQL database `url` names, if it exists."""
    parsed = make_url(url)
    admin = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    await admin.dispose()


def _organisation(name: str, kind: str, key: str) -> dict:
    return {"resourceType": "Organization", "active": True, "name": name,
            "identifier": [{"system": "https://gbv-exchange.org/fhir/sid/organization", "value": key}],
            "type": [{"coding": [{"system": "https://gbv-exchange.org/fhir/CodeSystem/organization-kind",
                                  "code": kind}]}]}


def _shelter_service(example: dict, org_id: str, key: str) -> dict:
    """The example's shelter HealthcareService, provided by `org_id`, without its coverage area."""
    service = next(e["resource"] for e in example["entry"] if e["resource"]["resourceType"] == "HealthcareService")
    body = copy.deepcopy(service)
    body["identifier"] = [{"system": "https://gbv-exchange.org/fhir/sid/service", "value": key}]
    body["providedBy"] = {"reference": f"Organization/{org_id}"}
    body.pop("coverageArea", None)
    return body


async def _client(exchange, org_id: str, role: str) -> tuple[str, object]:  # noqa: ANN001
    from joserfc.jwk import ECKey

    from exchange.auth.service import auth_service

    key = ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex}, private=True)
    record = await auth_service(exchange).registry.add(org_id, role, SCOPES[role],
                                                       jwks={"keys": [key.as_dict(private=False)]})
    return record.client_id, key


async def build_world(settings, hotlines: int, shelters: int, concurrency: int = 1) -> World:  # noqa: ANN001
    """Migrate the schema, create the directory and register one client per organisation and an auditor
    (`concurrency` organisations at a time: the scale generator's directory has hundreds)."""
    import asyncio

    from exchange.context import system_context
    from exchange.fhir.interactions import create
    from exchange.store.migrate import upgrade

    try:
        from exchange.main import build
    except ImportError:  # (an older checkout's code, bench/load.py --server-root)
        from exchange.wiring import build

    exchange = build(settings)
    example = orjson.loads(EXAMPLE.read_bytes())
    world = World()
    gate = asyncio.Semaphore(concurrency)
    system = system_context()

    async def hotline(i: int) -> Party:
        async with gate:
            org = await create.create(exchange, system, "Organization",
                                      _organisation(f"Bench hotline {i}", "hotline", f"bench-hotline-{i}"))
            return Party(org.stored.id, *await _client(exchange, org.stored.id, "partner"))

    async def shelter(i: int) -> Party:
        async with gate:
            org = await create.create(exchange, system, "Organization",
                                      _organisation(f"Bench shelter {i}", "shelter", f"bench-shelter-{i}"))
            svc = await create.create(exchange, system, "HealthcareService",
                                      _shelter_service(example, org.stored.id, f"bench-svc-shelter-{i}"))
            return Party(org.stored.id, *await _client(exchange, org.stored.id, "partner"), service_id=svc.stored.id)

    try:
        await upgrade(exchange.db)
        world.hotlines = list(await asyncio.gather(*(hotline(i) for i in range(hotlines))))
        world.shelters = list(await asyncio.gather(*(shelter(i) for i in range(shelters))))
        coordinator = await create.create(exchange, system, "Organization",
                                          _organisation("Bench coordinating body", "other", "bench-coordinator"))
        world.auditor = Party(coordinator.stored.id, *await _client(exchange, coordinator.stored.id, "auditor"))
    finally:
        await exchange.db.dispose()
    return world


def world_to_json(world: World) -> dict:
    def party(p: Party) -> dict:
        return {"organization_id": p.organization_id, "client_id": p.client_id, "service_id": p.service_id,
                "key": p.key.as_dict(private=True)}
    return {"hotlines": [party(p) for p in world.hotlines], "shelters": [party(p) for p in world.shelters],
            "auditor": party(world.auditor)}


def world_from_json(data: dict) -> World:
    from joserfc.jwk import ECKey

    def party(d: dict) -> Party:
        return Party(d["organization_id"], d["client_id"], ECKey.import_key(d["key"]), d["service_id"])
    return World([party(d) for d in data["hotlines"]], [party(d) for d in data["shelters"]], party(data["auditor"]))


def main() -> None:
    """`world.py DATABASE_URL STATE_DIR PORT HOTLINES SHELTERS OUT.json`: build the world with whichever exchange
    package is first on the path (bench/load.py --server-root runs this under the other checkout's code, so its
    own migrations make the schema its server expects) and write it as JSON."""
    import asyncio
    import sys

    from exchange.settings import Settings

    url, state_dir, port, hotlines, shelters, out = sys.argv[1:7]
    settings = Settings(database_url=url, state_dir=Path(state_dir), port=int(port))

    async def go() -> World:
        await recreate_database(url)
        return await build_world(settings, int(hotlines), int(shelters))

    Path(out).write_bytes(orjson.dumps(world_to_json(asyncio.run(go()))))


if __name__ == "__main__":
    main()


class Referrals:
    """Referral transaction Bundles shaped as the published example, one new survivor each."""

    def __init__(self) -> None:
        example = orjson.loads(EXAMPLE.read_bytes())
        self.entries = [e for e in example["entry"]
                        if e["resource"]["resourceType"] in ("Patient", "Consent", "ServiceRequest", "Task")]

    def bundle(self, hotline: Party, shelter: Party, number: int) -> dict:
        """The example referral from `hotline` to `shelter`'s service, with a case code of its own."""
        mapping = {"urn:uuid:example-hotline": f"Organization/{hotline.organization_id}",
                   "urn:uuid:example-shelter": f"Organization/{shelter.organization_id}",
                   "urn:uuid:example-svc-shelter": f"HealthcareService/{shelter.service_id}"}
        fresh = {e["fullUrl"]: f"urn:uuid:{uuid.uuid4()}" for e in self.entries}
        mapping.update(fresh)
        entries = []
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")  # not overdue: the sweep leaves it alone
        for entry in self.entries:
            resource = _rewrite(entry["resource"], mapping)
            if "authoredOn" in resource:
                resource["authoredOn"] = now
            if resource["resourceType"] == "Patient":
                resource["identifier"][0]["value"] = f"HTL-{number:07d}-{uuid.uuid4().hex[:6]}"
            entries.append({"fullUrl": fresh[entry["fullUrl"]], "resource": resource, "request": entry["request"]})
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _rewrite(node, mapping: dict[str, str]):  # noqa: ANN001, ANN202
    if isinstance(node, dict):
        return {k: (mapping.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, mapping))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, mapping) for v in node]
    return node
