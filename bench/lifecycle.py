"""The load itself: referral lifecycles over real HTTP with real tokens, then reads by id and creates.

A lifecycle is what a hotline, a shelter and the coordinating body's auditor do with one referral:
transaction (the hotline posts Patient, Consent, ServiceRequest and Task in one Bundle) -> inbox (the shelter
searches its open Tasks) -> accept (PUT with If-Match) -> complete (PUT with If-Match and an output) -> audit (the
auditor searches the log for the Task). Each request's latency is kept per step; an unexpected status is an error
and ends that lifecycle.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Mapping

import aiohttp
import orjson

from world import SCOPES, Party, Referrals, World  # noqa: I001  (bench/ is the script's folder)

FHIR_JSON = "application/fhir+json"
STEPS = ("transaction", "inbox", "accept", "complete", "audit")
# the accept step's milestone (gbv-referral-milestone): a businessStatus carries a code, words optional
BED_RESERVED = {"coding": [{"system": "https://gbv-exchange.org/fhir/CodeSystem/gbv-referral-outcome",
                            "code": "appointment-set"}], "text": "Bed reserved"}
OUTPUT = [{"type": {"coding": [{"system": "https://gbv-exchange.org/fhir/CodeSystem/gbv-referral-codes",
                                "code": "resulting-activity"}]},
           "valueString": "Admitted; safety plan made with her"}]


@dataclass
class Samples:
    """Latencies (seconds) per step, errors per step, and the wall time of the phase."""
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, str] = field(default_factory=dict)
    completed: int = 0
    elapsed: float = 0.0

    def add(self, step: str, seconds: float) -> None:
        self.latencies.setdefault(step, []).append(seconds)

    def fail(self, step: str, detail: str) -> None:
        self.errors[step] = self.errors.get(step, 0) + 1
        self.error_examples.setdefault(step, detail[:300])


class Refused(Exception):
    pass


def assertion(client_id: str, key, token_url: str) -> str:  # noqa: ANN001
    from joserfc import jwt

    now = int(time.time())
    return jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "JWT"},
                      {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "iat": now,
                       "jti": uuid.uuid4().hex}, key, algorithms=["ES256"])


async def token(http: Connection, party: Party, token_url: str, scope: str) -> str:
    r = await http.post(token_url, data={
        "grant_type": "client_credentials", "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(party.client_id, party.key, token_url)})
    r.raise_for_status()
    return r.json()["access_token"]


class Response:
    """What the lifecycle reads of an answer: status, headers (any case), body. bench/calls.py's in-process client
    returns the same."""

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self):  # noqa: ANN201
        return orjson.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"{self.status_code} {self.text}")


class Connection:
    """One partner system's HTTP client: one keep-alive connection, as a partner's integration engine holds.

    aiohttp, not httpx: on this machine httpx costs about 800 us of CPU a request against a local server and aiohttp
    about 130 (32 clients, 4,000 GETs of a 1 KB body), and the generator shares the two cores with the server it
    measures: with httpx it was the ceiling of the read and create phases. A connection per client, not one pool
    shared by 32 (a pool scanned on every request cost httpx's generator 19 of its 48 s of CPU per 500 lifecycles).
    Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close them under a request (that race
    showed as one error between phases: the generator's, not the exchange's). No cookies are kept.
    """

    def __init__(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=2.0), timeout=aiohttp.ClientTimeout(total=60),
            cookie_jar=aiohttp.DummyCookieJar())

    async def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                      content: bytes | None = None, data: Mapping[str, str] | None = None) -> Response:
        async with self._session.request(method, url, headers=headers, data=content if data is None else data) as r:
            return Response(r.status, r.headers, await r.read())

    async def get(self, url: str, **kwargs) -> Response:  # noqa: ANN003
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs) -> Response:  # noqa: ANN003
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc) -> None:  # noqa: ANN002
        await self.aclose()


class Load:
    """Holds the HTTP client and one bearer token per organisation."""

    def __init__(self, base: str, world: World, clients: int, progress, http=None) -> None:  # noqa: ANN001
        self.base = base.rstrip("/")
        self.world = world
        self.clients = clients
        self.progress = progress
        self.headers: dict[str, dict] = {}
        self.referrals = Referrals()
        self.tasks: list[tuple[Party, str]] = []  # (shelter, task id): read phase targets
        self.http = http  # discovery and tokens (a Connection unless given); each worker of a phase has its own

    async def authorise(self) -> None:
        """Fresh tokens for every organisation (a phase starts with 240 s of token life at least)."""
        if self.http is None:
            self.http = Connection()
        discovery = (await self.http.get(f"{self.base}/fhir/.well-known/smart-configuration")).json()
        token_url = discovery["token_endpoint"]

        for party in [*self.world.hotlines, *self.world.shelters]:
            bearer = await token(self.http, party, token_url, SCOPES["partner"])
            self.headers[party.client_id] = {"Authorization": f"Bearer {bearer}", "Content-Type": FHIR_JSON,
                                             "Accept": FHIR_JSON}
        auditor = self.world.auditor
        self.headers[auditor.client_id] = {
            "Authorization": f"Bearer {await token(self.http, auditor, token_url, SCOPES['auditor'])}",
            "Accept": FHIR_JSON}

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def _call(self, http: Connection, samples: Samples, step: str, party: Party, method: str, path: str,
                    expect: int, body: dict | None = None, headers: dict | None = None) -> Response:
        sent = dict(self.headers[party.client_id], **(headers or {}))
        started = time.perf_counter()
        try:
            r = await http.request(method, f"{self.base}/fhir{path}", headers=sent,
                                        content=orjson.dumps(body) if body is not None else None)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            samples.fail(step, f"{type(exc).__name__}")
            raise Refused from None
        samples.add(step, time.perf_counter() - started)
        if r.status_code != expect:
            samples.fail(step, f"{r.status_code} {r.text}")
            raise Refused
        return r

    async def lifecycle(self, http: Connection, samples: Samples, number: int) -> None:
        world = self.world
        hotline = world.hotlines[number % len(world.hotlines)]
        shelter = world.shelters[number % len(world.shelters)]
        r = await self._call(http, samples, "transaction", hotline, "POST", "", 200,
                             self.referrals.bundle(hotline, shelter, number))
        task_id = next(e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                       if e["response"]["location"].startswith("Task/"))
        r = await self._call(http, samples, "inbox", shelter, "GET",
                             f"/Task?owner=HealthcareService/{shelter.service_id}&status=requested"
                             f"&_sort=-_lastUpdated&_count=50", 200)
        task = next((e["resource"] for e in r.json().get("entry", []) if e["resource"].get("id") == task_id), None)
        if task is None:  # more open referrals than one page: read it by id
            task = (await self._call(http, samples, "inbox", shelter, "GET", f"/Task/{task_id}", 200)).json()
        accepted = dict(task, status="accepted", businessStatus=BED_RESERVED)
        r = await self._call(http, samples, "accept", shelter, "PUT", f"/Task/{task_id}", 200, accepted,
                             {"If-Match": 'W/"1"'})
        completed = dict(r.json(), status="completed", output=OUTPUT)
        await self._call(http, samples, "complete", shelter, "PUT", f"/Task/{task_id}", 200, completed,
                         {"If-Match": r.headers["ETag"]})
        await self._call(http, samples, "audit", world.auditor, "GET", f"/AuditEvent?entity=Task/{task_id}&_count=20",
                         200)
        self.tasks.append((shelter, task_id))

    async def run(self, name: str, count: int, work) -> Samples:  # noqa: ANN001
        """`count` units of `work(http, samples, n)` by `self.clients` concurrent workers, each on its own connection,
        with a progress bar."""
        samples = Samples()
        numbers = iter(range(count))
        bar = self.progress.add_task(name, total=count)

        async def worker(http: Connection) -> None:
            async with http:
                for number in numbers:
                    try:
                        await work(http, samples, number)
                        samples.completed += 1
                    except Refused:
                        pass
                    self.progress.advance(bar)

        async def refresh() -> None:  # tokens live 300 s: a long phase gets new ones in time
            while True:
                await asyncio.sleep(180)
                await self.authorise()

        connections = [Connection() for _ in range(self.clients)]  # (made before the clock starts)
        refresher = asyncio.create_task(refresh())
        started = time.perf_counter()
        try:
            await asyncio.gather(*(worker(http) for http in connections))
        finally:
            refresher.cancel()
        samples.elapsed = time.perf_counter() - started
        return samples

    async def read(self, http: Connection, samples: Samples, number: int) -> None:
        shelter, task_id = self.tasks[number % len(self.tasks)]
        await self._call(http, samples, "read", shelter, "GET", f"/Task/{task_id}", 200)

    async def create(self, http: Connection, samples: Samples, number: int) -> None:
        hotline = self.world.hotlines[number % len(self.world.hotlines)]
        patient = dict(self.referrals.entries[0]["resource"])
        patient["identifier"] = [{"system": "https://amal-hotline.example.org/case",
                                  "value": f"HTL-C{number:07d}-{uuid.uuid4().hex[:6]}"}]
        await self._call(http, samples, "create", hotline, "POST", "/Patient", 201, patient)
