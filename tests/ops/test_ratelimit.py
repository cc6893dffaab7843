"""Rate limits (exchange.ops.ratelimit): 429 with Retry-After and an OperationOutcome, per client and per address
on the token endpoint, per client on FHIR routes, shared by the processes of a deployment; and a bounded flood
that leaves the exchange up, other clients served and nothing accepted lost."""
from __future__ import annotations

import asyncio
import socket
import uuid

import httpx
import pytest
from joserfc.jwk import ECKey

from exchange.main import create_app
from exchange.auth.service import auth_service
from exchange.main import build
from tests.conftest import BASE, make_assertion
from tests.ops.test_metrics import scrape, value

ROOT = "http://127.0.0.1:8080"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPES = "system/*.cruds"


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.2).close()
        return True
    except OSError:
        return False


class Partner:
    """A registered client with its key: asks for tokens from the address it is given."""

    def __init__(self, app, exchange, organization_id: str):  # noqa: ANN001
        self.app, self.exchange, self.organization_id = app, exchange, organization_id
        self.key = ECKey.generate_key("P-384", parameters={"kid": uuid.uuid4().hex}, private=True)
        self.client_id = ""

    async def register(self) -> "Partner":
        record = await auth_service(self.exchange).registry.add(self.organization_id, "partner", SCOPES,
                                                                jwks={"keys": [self.key.as_dict(private=False)]})
        self.client_id = record.client_id
        return self

    async def ask_token(self, address: str = "127.0.0.1") -> httpx.Response:
        assertion = make_assertion(self.client_id, self.key, auth_service(self.exchange).urls.token)
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=ROOT) as http:
            return await http.post("/auth/token", data={
                "grant_type": "client_credentials", "scope": SCOPES, "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion})

    async def fhir(self, address: str = "127.0.0.1", app=None) -> httpx.AsyncClient:  # noqa: ANN001
        r = await self.ask_token(address)
        assert r.status_code == 200, r.text
        transport = httpx.ASGITransport(app=app or self.app, client=(address, 40001))
        return httpx.AsyncClient(transport=transport, base_url=BASE, headers={
            "Content-Type": "application/fhir+json", "Authorization": f"Bearer {r.json()['access_token']}"})


def assert_throttled(r: httpx.Response, window: int = 100000) -> None:
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= window
    body = r.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "throttled"


@pytest.fixture
async def partners(app, exchange, make_org):
    async def make(count: int) -> list[Partner]:
        return [await Partner(app, exchange, await make_org(f"Partner {i}")).register() for i in range(count)]

    return make


class TestTokenEndpoint:
    @pytest.fixture
    def settings(self, settings):  # noqa: ANN001, ANN201
        return settings.model_copy(update={"rate_limit_token_per_address": "3/100000",
                                           "rate_limit_token_per_client": "2/100000"})

    async def test_an_address_over_its_limit_gets_429_and_other_addresses_are_served(self, app, partners):
        [a, b] = await partners(2)
        answers = [await a.ask_token("127.0.0.2") for _ in range(2)] + [await b.ask_token("127.0.0.2")]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert_throttled(await b.ask_token("127.0.0.2"))
        assert (await b.ask_token("127.0.0.3")).status_code == 200
        assert value((await scrape(app)).text, "exchange_rate_limited_total", limit="token-address") >= 1

    async def test_a_client_over_its_limit_gets_429_from_any_address_and_others_are_served(self, partners):
        [a, b] = await partners(2)
        assert [(await a.ask_token(f"127.0.1.{i}")).status_code for i in range(2)] == [200, 200]
        assert_throttled(await a.ask_token("127.0.1.9"))
        assert (await b.ask_token("127.0.1.9")).status_code == 200

    async def test_naming_another_client_does_not_use_up_its_allowance(self, partners):
        [victim] = await partners(1)
        forger = ECKey.generate_key("P-384", parameters={"kid": victim.key.kid}, private=True)
        impostor = Partner(victim.app, victim.exchange, victim.organization_id)
        impostor.client_id, impostor.key = victim.client_id, forger
        for i in range(3):  # refused: the assertion is not signed with the victim's key
            assert (await impostor.ask_token(f"127.0.2.{i}")).status_code == 401
        assert [(await victim.ask_token(f"127.0.3.{i}")).status_code for i in range(2)] == [200, 200]


class TestFhirRoutes:
    @pytest.fixture
    def settings(self, settings):  # noqa: ANN001, ANN201
        return settings.model_copy(update={"rate_limit_fhir_per_client": "5/100000"})

    async def test_a_client_over_its_limit_gets_429_and_another_client_is_served(self, app, partners):
        [a, b] = await partners(2)
        async with await a.fhir() as http_a, await b.fhir() as http_b:
            assert [(await http_a.get("/Organization")).status_code for _ in range(5)] == [200] * 5
            assert_throttled(await http_a.get("/Organization"))
            assert_throttled(await http_a.post("/Organization", json={"resourceType": "Organization"}))
            assert (await http_b.get("/Organization")).status_code == 200
        assert value((await scrape(app)).text, "exchange_rate_limited_total", limit="fhir-client") >= 2


@pytest.mark.parametrize("store", ["database", "redis"])
async def test_the_limit_is_shared_by_the_processes_of_a_deployment(store, database_url, settings, make_org,
                                                                     exchange, app):
    if store == "database" and database_url.startswith("sqlite"):
        pytest.skip("SQLite deployments run one process: their counts stay in memory")
    if store == "redis" and not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    shared = settings.model_copy(update={"rate_limit_fhir_per_client": "4/100000",
                                         "rate_limit_redis_url": "redis://127.0.0.1:6379/0" if store == "redis"
                                         else None})
    apps = []
    for _ in range(2):  # two server processes of one deployment: two exchanges on one database
        other = build(shared)
        application = create_app(shared, other)
        apps.append((application, other))
    async with apps[0][0].router.lifespan_context(apps[0][0]), apps[1][0].router.lifespan_context(apps[1][0]):
        partner = await Partner(apps[0][0], apps[0][1], await make_org()).register()
        async with await partner.fhir(app=apps[0][0]) as one, await partner.fhir(app=apps[1][0]) as two:
            answers = [await c.get("/Organization") for c in (one, two, one, two)]
            assert [r.status_code for r in answers] == [200] * 4
            assert_throttled(await one.get("/Organization"))
            assert_throttled(await two.get("/Organization"))
    if store == "redis":
        import redis.asyncio as redis

        connection = redis.from_url("redis://127.0.0.1:6379/0")
        keys = [k async for k in connection.scan_iter(f"exchange:rl:*:{partner.client_id}:*")]
        assert keys and await connection.delete(*keys) == len(keys)
        await connection.aclose()


def patient(case_code: str) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:case", "value": case_code}], "gender": "female"}


class TestFlood:
    """A bounded flood on loopback: one partner hammers the token endpoint and one search; the others go on."""

    FLOOD = 60

    @pytest.fixture
    def settings(self, settings):  # noqa: ANN001, ANN201
        return settings.model_copy(update={"rate_limit_token_per_address": "10/100000",
                                           "rate_limit_fhir_per_client": "30/100000"})

    async def test_a_flood_is_refused_while_others_are_served_and_nothing_accepted_is_lost(self, app, partners,
                                                                                           client):
        flooder, *others = await partners(3)
        flood_client = await flooder.fhir("127.0.0.66")

        async def flood_tokens() -> list[int]:
            return [(await flooder.ask_token("127.0.0.66")).status_code for _ in range(self.FLOOD)]

        async def flood_search() -> list[tuple[int, str | None]]:
            out = []
            for i in range(self.FLOOD):
                if i % 3 == 0:
                    r = await flood_client.post("/Patient", json=patient(f"FLOOD-{i}"))
                else:
                    r = await flood_client.get("/Organization", params={"name": "Partner"})
                out.append((r.status_code, r.json().get("id") if r.status_code == 201 else None))
            return out

        async def others_work(partner: Partner, address: str) -> list[tuple[int, str | None]]:
            out = []
            async with await partner.fhir(address) as http:
                for i in range(5):
                    r = await http.post("/Patient", json=patient(f"OTHER-{address}-{i}"))
                    out.append((r.status_code, r.json().get("id")))
                    out.append(((await http.get("/Patient", params={"identifier": f"urn:case|OTHER-{address}-{i}"}))
                                .status_code, None))
            return out

        tokens, searches, *served = await asyncio.gather(
            flood_tokens(), flood_search(), *(others_work(p, f"127.0.0.{70 + i}") for i, p in enumerate(others)))
        await flood_client.aclose()
        assert tokens.count(200) == 9 and tokens.count(429) == self.FLOOD - 9  # one token was taken before
        assert {s for s, _ in searches} == {200, 201, 429} and sum(s != 429 for s, _ in searches) == 30
        for answers in served:
            assert [s for s, _ in answers] == [201, 200] * 5
        async with await others[0].fhir("127.0.0.80") as reader:
            assert (await reader.get("/metadata")).status_code == 200
        accepted = [i for s, i in searches if s == 201] + [i for answers in served for s, i in answers if s == 201]
        assert len(accepted) == len(set(accepted)) == sum(s == 201 for s, _ in searches) + 10
        for resource_id in accepted:  # everything answered 201 is there (read as the exchange itself)
            assert (await client.get(f"/Patient/{resource_id}")).status_code == 200
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=ROOT) as http:
            assert (await http.get("/readyz")).status_code == 200


class TestAllowanceUnderLoad:
    """A claim of allowance (PostgreSQL: an UPSERT on a connection of its own) while as many of the client's
    requests are in flight as the pool has connections: none of them holds a connection while it waits for the
    claim, so the claim gets one and every request is answered (before, they held every connection while the one
    claiming waited for the pool: all waited for the pool's timeout, 30 s)."""

    @pytest.fixture
    def settings(self, settings):  # noqa: ANN001, ANN201
        return settings.model_copy(update={"database_pool_size": 4})  # (4 connections at most)

    async def test_a_burst_larger_than_the_pool_is_answered_while_the_allowance_is_claimed(self, partners,
                                                                                           exchange):
        [partner] = await partners(1)
        async with await partner.fhir() as http:
            answers = await asyncio.wait_for(asyncio.gather(*(http.get("/Organization") for _ in range(24))), 20)
        assert [r.status_code for r in answers] == [200] * 24
