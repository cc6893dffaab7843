"""Fixtures for the web inbox over HTTP: cheap password hashing, a clock the tests move (no sleeping), recorded
sign-in delays, a small directory with staff accounts, and a browser-like httpx client (cookies, form posts)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pyotp
import pytest

from exchange.settings import Settings
from tests.referral import world

ORIGIN = "http://127.0.0.1:8080"
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def web_settings(database_url: str, tmp_path: Path, **overrides) -> Settings:
    values = dict(database_url=database_url, state_dir=tmp_path / "state", host="127.0.0.1", port=8080,
                  web_argon2_time_cost=1, web_argon2_memory_kib=8, web_failure_delay_seconds=1.0,
                  web_exit_url="https://neutral.example/", referral_sweep_seconds=0, audit_checkpoint_interval=0,
                  notify_dispatch_in_server=False)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return web_settings(database_url, tmp_path)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(exchange) -> Clock:
    found = Clock()
    exchange.extensions["web"].clock = found
    return found


@pytest.fixture
def sleeps(exchange) -> list[float]:
    """The delays the sign-in would have waited (recorded instead of slept)."""
    recorded: list[float] = []

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)

    exchange.extensions["web"].sleep = sleep
    return recorded


@dataclass
class Person:
    username: str
    organization_id: str
    role: str
    secret: str
    password: str = PASSWORD
    id: str = ""

    def code(self, at: datetime) -> str:
        return pyotp.TOTP(self.secret).at(at)


@dataclass
class World:
    ids: dict[str, str]
    people: dict[str, Person] = field(default_factory=dict)


@pytest.fixture
async def web_world(app, exchange, client, clock, sleeps) -> World:
    """The referral tests' directory (hotline, shelter, full shelter, clinic, legal aid, unrelated NGO) with a
    caseworker at the hotline, the shelter and the unrelated NGO, and an auditor."""
    from exchange.web import accounts

    ids = await world.directory(client)
    found = World(ids)
    for name, org, role in (("hotline", "hotline", "caseworker"), ("shelter", "shelter", "caseworker"),
                            ("other", "other", "caseworker"), ("auditor", "other", "auditor")):
        staff, secret = await accounts.add_staff(exchange, f"{name}.worker", ids[org], role, PASSWORD)
        found.people[name] = Person(staff.username, ids[org], role, secret, id=staff.id)
    return found


class Browser:
    """A cookie-keeping HTTP client that fills forms the way a browser does (with the page's CSRF token)."""

    def __init__(self, app, clock: Clock):  # noqa: ANN001
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001), raise_app_exceptions=False)
        self.http = httpx.AsyncClient(transport=transport, base_url=ORIGIN, follow_redirects=False)
        self.clock = clock
        self.csrf: str | None = None

    async def get(self, path: str, **kwargs) -> httpx.Response:
        response = await self.http.get(path, **kwargs)
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def post(self, path: str, data: dict | None = None, csrf: bool = True, **kwargs) -> httpx.Response:
        fields = dict(data or {})
        if csrf and self.csrf:
            fields.setdefault("csrf", self.csrf)
        response = await self.http.post(path, data=fields, **kwargs)
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def sign_in(self, person: Person, code: str | None = None, password: str | None = None
                      ) -> httpx.Response:
        await self.get("/web/login")
        self.clock.advance(30)  # a TOTP code is accepted once: each sign-in uses the next one
        response = await self.post("/web/login", {"username": person.username,
                                                  "password": password or person.password,
                                                  "code": code or person.code(self.clock.now)})
        if response.status_code == 303:
            await self.get("/web/inbox" if person.role != "auditor" else "/web/audit")
        return response


@pytest.fixture
async def browser(app, clock):
    opened: list[Browser] = []

    def _make() -> Browser:
        found = Browser(app, clock)
        opened.append(found)
        return found

    yield _make
    for found in opened:
        await found.http.aclose()


async def send_referral(partner, ids: dict[str, str], **kwargs) -> dict[str, str]:  # noqa: ANN001
    """A referral from the hotline (as a partner system over the API); returns {type: id}."""
    r = await partner.post("", json=world.referral_bundle(ids, [f"Organization/{ids['shelter']}"], **kwargs))
    assert r.status_code == 200, r.text
    return world.created_ids(r.json())


@pytest.fixture
async def send_referral_ids(web_world, make_client) -> dict[str, str]:
    """One referral from the hotline to the shelter (a partner system over the API)."""
    partner = await make_client(web_world.ids["hotline"])
    return await send_referral(partner, web_world.ids)
