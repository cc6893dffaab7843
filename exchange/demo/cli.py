"""`exchange demo ...`: the demo directory, and the quickstart's round trip played by the demo clients over HTTP
(and `exchange clients demo`, which the root command mounts under `clients`).

`referral` prints (or, with --post, posts as the hotline) a referral Bundle that fits the demo directory: the
conformance example with its directory entries replaced by the demo's stable ids. `inbox`, `accept` and `log` are
what a shelter's and an auditor's systems do, each printed as the FHIR request it made, so the README's quickstart
teaches the API while it runs. They talk to the server `make run` started (EXCHANGE_PORT / EXCHANGE_PUBLIC_BASE_URL)
with the demo clients' keys under EXCHANGE_STATE_DIR/demo-clients/.
"""
from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from pathlib import Path
from typing import Optional

import httpx
import orjson
import typer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from exchange.cli_support import DatabaseOption, run_with_exchange, settings_with
from exchange.console import JsonOption, fail, print_json, print_table

demo_app = typer.Typer(help="The demo directory of `make run`, and the quickstart's round trip.",
                       invoke_without_command=True)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXAMPLE = "Bundle-example-referral-shelter.json"
# the conformance example's directory entries -> the demo's stable ids
DEMO_IDS = {"urn:uuid:example-hotline": "Organization/hotline-1", "urn:uuid:example-shelter": "Organization/shelter-1",
            "urn:uuid:example-svc-shelter": "HealthcareService/shelter-1"}


@demo_app.callback()
def demo(ctx: typer.Context, database_url: Optional[str] = DatabaseOption, as_json: bool = JsonOption) -> None:
    """Load the demo organisations and their services (idempotent) and list them; sub-commands play the demo."""
    if ctx.invoked_subcommand is not None:
        return
    from exchange.demo.directory import DEMO_ORGS, load_demo

    loaded = asyncio.run(run_with_exchange(settings_with(database_url), load_demo))
    if as_json:
        print_json(loaded)
        return
    names = {key: (kind, name) for kind, key, name, _ in DEMO_ORGS}
    print_table([{"key": k, "id": f"Organization/{v}", "kind": names[k][0], "name": names[k][1]}
                 for k, v in loaded.items()], [("id", "Organization"), ("kind", "Kind"), ("name", "Name")])


def clients_demo(database_url: Optional[str] = DatabaseOption) -> None:
    """Load the demo directory and register its demo clients (keys under state_dir/demo-clients/)."""
    from exchange.auth.cli import run_command
    from exchange.demo.clients import instructions, register_demo_clients

    async def work(exchange):  # noqa: ANN001, ANN202
        return instructions(exchange, await register_demo_clients(exchange))

    typer.echo(run_command(database_url, work))


def demo_referral_bundle() -> dict:
    """The conformance example referral to the shelter, pointed at the demo directory (hotline-1 -> shelter-1)."""
    from exchange.referral.codes import conformance_dir

    example = orjson.loads((conformance_dir() / "examples" / EXAMPLE).read_bytes())
    entries = [e for e in example["entry"] if e["fullUrl"] not in DEMO_IDS and not
               e["resource"]["resourceType"] in ("Organization", "HealthcareService", "Location")]
    text = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).decode()
    for urn, reference in DEMO_IDS.items():
        text = text.replace(f'"{urn}"', f'"{reference}"')
    return orjson.loads(text)


class DemoClient:
    """A demo client of `make run` talking to the running exchange, as any SMART Backend Services client does."""

    def __init__(self, key: str):
        settings = settings_with()
        self.base = settings.base_url
        self.client_id = f"demo-{key}"
        self.key_file = Path(settings.state_dir) / "demo-clients" / f"{self.client_id}.jwk.json"
        self._token: str | None = None

    def _fail_unreachable(self) -> typer.Exit:
        return fail(f"no exchange answers at {self.base}: start it with `make run` in this folder (or set "
                    "EXCHANGE_PORT to the port it listens on)")

    def token(self) -> str:
        if self._token:
            return self._token
        if not self.key_file.is_file():
            raise fail(f"no key for {self.client_id} at {self.key_file}: run `make run` from this folder first (it "
                       "writes the demo clients' keys), or set EXCHANGE_STATE_DIR to where it wrote them")
        token_url = f"{self.base}/auth/token"
        now = int(time.time())
        try:
            key = ECKey.import_key(json.loads(self.key_file.read_text()))
            assertion = jwt.encode({"alg": "ES384", "kid": key.kid, "typ": "JWT"},
                                   {"iss": self.client_id, "sub": self.client_id, "aud": token_url, "iat": now,
                                    "exp": now + 240, "jti": uuid.uuid4().hex}, key, algorithms=["ES384"])
        except (ValueError, TypeError, JoseError):
            raise fail(f"{self.key_file} does not hold {self.client_id}'s private key: delete it and restart "
                       "`make run`, which writes a new one") from None
        try:
            r = httpx.post(token_url, data={"grant_type": "client_credentials", "scope": "system/*.cruds",
                                            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
                           timeout=10)
        except httpx.TransportError:
            raise self._fail_unreachable() from None
        if r.status_code != 200:
            raise fail(f"the exchange refused a token for {self.client_id} ({r.status_code}: "
                       f"{r.json().get('error_description', r.text) if r.content else ''}); restart `make run` so it "
                       "registers the demo clients' keys again")
        self._token = r.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None,
                params: dict | None = None) -> httpx.Response:
        url = f"{self.base}/fhir/{path}" if path else f"{self.base}/fhir"
        try:
            r = httpx.request(method, url, params=params, content=orjson.dumps(body) if body is not None else None,
                              headers={"Authorization": f"Bearer {self.token()}", "Accept": "application/fhir+json",
                                       "Content-Type": "application/fhir+json", **(headers or {})}, timeout=30)
        except httpx.TransportError:
            raise self._fail_unreachable() from None
        shown = r.request.url.raw_path.decode()
        typer.echo(f"{method} {shown}  as {self.client_id}  -> {r.status_code}")
        if r.status_code >= 400:
            issues = r.json().get("issue", []) if "json" in r.headers.get("content-type", "") else []
            raise fail("; ".join(i.get("diagnostics", i.get("code", "")) for i in issues) or r.text[:200])
        return r


def _key(value: str) -> str:
    return value.removeprefix("Organization/").removeprefix("demo-")


@demo_app.command("referral")
def referral(post: bool = typer.Option(False, "--post", help="Post it as the demo hotline (else print it)")) -> None:
    """A referral Bundle from the demo hotline to the demo shelter: print it, or post it with --post."""
    bundle = demo_referral_bundle()
    if not post:
        print_json(bundle)
        return
    response = DemoClient("hotline-1").request("POST", "", bundle).json()
    created = [e["response"]["location"].split("/_history")[0] for e in response["entry"]]
    task = next(c for c in created if c.startswith("Task/"))
    typer.echo(f"the hotline referred a survivor to the shelter: {task} (requested), owner "
               f"{DEMO_IDS['urn:uuid:example-svc-shelter']}")
    typer.echo(f"created {', '.join(created)}")


def _inbox(client: DemoClient, organization: str) -> list[dict]:
    """The Tasks owned by the organisation or any of its services (`owner-organization`), still requested."""
    params = {"owner-organization": f"Organization/{organization}", "status": "requested", "_sort": "_lastUpdated"}
    found = client.request("GET", "Task", params=params).json()
    return [e["resource"] for e in found.get("entry", []) if e.get("search", {}).get("mode") != "include"]


@demo_app.command("inbox")
def inbox(organization: str = typer.Argument("shelter-1", help="The demo organisation (shelter-1, clinic-1, ...)"),
          as_json: bool = JsonOption) -> None:
    """The referrals waiting for a demo organisation (Tasks it may act on, still `requested`)."""
    tasks = _inbox(DemoClient(_key(organization)), _key(organization))
    if as_json:
        print_json(tasks)
        return
    print_table([{"task": f"Task/{t['id']}", "status": t["status"], "priority": t.get("priority"),
                  "from": t.get("requester", {}).get("reference"), "owner": t.get("owner", {}).get("reference"),
                  "authored": t.get("authoredOn")} for t in tasks],
                [("task", "Task"), ("status", "Status"), ("priority", "Priority"), ("from", "From"),
                 ("owner", "Owner"), ("authored", "Authored")], empty="the inbox is empty")


@demo_app.command("accept")
def accept(organization: str = typer.Argument("shelter-1", help="The demo organisation whose inbox to accept"),
           ) -> None:
    """Accept every referral waiting in a demo organisation's inbox (PUT status=accepted with If-Match)."""
    client = DemoClient(_key(organization))
    tasks = _inbox(client, _key(organization))
    if not tasks:
        typer.echo("the inbox is empty: nothing to accept")
        return
    for task in tasks:
        version = task["meta"]["versionId"]
        client.request("PUT", f"Task/{task['id']}", {**task, "status": "accepted"}, {"If-Match": f'W/"{version}"'})
        typer.echo(f"accepted Task/{task['id']}")


@demo_app.command("log")
def log(count: int = typer.Option(8, "--count", help="How many events to show"), as_json: bool = JsonOption) -> None:
    """The newest changes in the exchange log, as the demo auditor sees them (GET /fhir/AuditEvent)."""
    client = DemoClient("auditor")
    found = client.request("GET", "AuditEvent", params={"action": "C,U", "_sort": "-date", "_count": str(count)})
    events = [e["resource"] for e in found.json().get("entry", [])]
    if as_json:
        print_json(events)
        return
    print_table([_event_row(e) for e in events],
                [("recorded", "Recorded"), ("who", "Who"), ("subtype", "Interaction"), ("what", "What"),
                 ("outcome", "Outcome")], empty="no changes in the log yet")


def _event_row(event: dict) -> dict:
    who = next((a.get("who", {}).get("reference") for a in event.get("agent", []) if a.get("requestor")), None)
    subtype = next((c.get("code") for c in event.get("subtype", []) if c.get("code") not in ("transaction",
                                                                                             "batch")), None)
    what = next((e.get("what", {}).get("reference") for e in event.get("entity", [])
                 if e.get("what", {}).get("reference")), None)
    return {"recorded": event.get("recorded"), "who": who or "the exchange", "subtype": subtype,
            "what": (what or "").split("/_history")[0], "outcome": "ok" if event.get("outcome") == "0" else
            event.get("outcomeDesc", event.get("outcome"))}


BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
TASK_TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-task"


def subscription_resource(key: str, endpoint: str) -> dict:
    """A rest-hook, id-only Subscription to the Tasks a demo organisation (or its service) owns."""
    criteria = f"Task?owner=Organization/{key}"  # a HealthcareService owner stands for its organisation
    return {"resourceType": "Subscription", "status": "requested", "reason": f"Referrals addressed to {key}",
            "criteria": TASK_TOPIC,
            "_criteria": {"extension": [{"url": f"{BACKPORT}/backport-filter-criteria", "valueString": criteria}]},
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                        "_payload": {"extension": [{"url": f"{BACKPORT}/backport-payload-content",
                                                    "valueCode": "id-only"}]}}}


def _wait_for(endpoint: str, seconds: float = 15) -> None:
    """A receiver started a moment ago (`exchange dev receiver ... &`) gets time to listen before the handshake."""
    url = httpx.URL(endpoint)
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((url.host, url.port or 80), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise fail(f"nothing listens at {endpoint}: start `exchange dev receiver` first") from None
            time.sleep(0.2)


@demo_app.command("subscribe")
def subscribe(organization: str = typer.Argument("shelter-1", help="The demo organisation that subscribes"),
              endpoint: str = typer.Option(..., help="Where notifications go (e.g. `exchange dev receiver`'s URL)"),
              ) -> None:
    """Subscribe a demo organisation to the referrals addressed to it (a rest-hook, id-only Subscription)."""
    key = _key(organization)
    body = subscription_resource(key, endpoint)
    if httpx.URL(endpoint).host in ("127.0.0.1", "localhost", "::1"):
        _wait_for(endpoint)
    created = DemoClient(key).request("POST", "Subscription", body).json()
    criteria = body["_criteria"]["extension"][0]["valueString"]
    typer.echo(f"subscribed: Subscription/{created['id']} ({created['status']}) for {criteria} -> {endpoint}")
