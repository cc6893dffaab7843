"""`python -m conformance` (also `exchange conformance`): run every check against a deployment and report."""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import httpx
from rich.console import Console

# the order of these imports is the order of the checks: discovery and tokens first, notifications last
from conformance import checks_smart  # noqa: F401, I001
from conformance import checks_http  # noqa: F401
from conformance import checks_referral  # noqa: F401
from conformance import checks_audit  # noqa: F401
from conformance import checks_subscription  # noqa: F401
from conformance.receiver import Receiver
from conformance.report import as_json, as_junit, summary, table
from conformance.runner import CHECKS, Kit, run
from conformance.session import Party, load_key


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m conformance", description=(
        "The checks a partner system must pass before going live on a GBV referral exchange."))
    p.add_argument("--base-url", required=True, help="The deployment, e.g. https://sandbox.example.org (no /fhir)")
    p.add_argument("--client-id", required=True, help="Your registered client id")
    p.add_argument("--key", required=True, help="Your private JWK (EC P-384 or RSA), a JSON file")
    p.add_argument("--peer-client-id", help="A second organisation's client id (the receiving side)")
    p.add_argument("--peer-key", help="The second client's private JWK")
    p.add_argument("--listen-port", type=int, help="Run a notification receiver on this port (127.0.0.1)")
    p.add_argument("--listen-host", default="127.0.0.1", help="Interface of the receiver (default 127.0.0.1)")
    p.add_argument("--notify-endpoint", help="The URL the exchange posts to (default http://HOST:PORT/notify)")
    p.add_argument("--only", action="append", default=[], help="Run only checks whose id starts with this")
    p.add_argument("--json", type=Path, help="Write the JSON report here")
    p.add_argument("--junit", type=Path, help="Write a JUnit XML report here")
    return p


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    args = parser().parse_args(argv)
    console = console or Console()
    base = args.base_url.rstrip("/").removesuffix("/fhir")
    try:
        discovery = httpx.get(f"{base}/fhir/.well-known/smart-configuration", timeout=20)
    except httpx.HTTPError as exc:
        console.print(f"[bold red]cannot reach {base}: {type(exc).__name__}: {exc}[/]")
        return 2
    if discovery.status_code != 200:
        console.print(f"[bold red]no SMART discovery at {base}/fhir/.well-known/smart-configuration "
                      f"({discovery.status_code})[/]")
        return 2
    doc = discovery.json()
    me = Party("you", args.client_id, *load_key(args.key))
    peer = Party("peer", args.peer_client_id, *load_key(args.peer_key)) if args.peer_client_id and args.peer_key \
        else None
    for party in filter(None, (me, peer)):
        r = party.connect(base, doc["token_endpoint"])
        if r.status_code != 200:
            console.print(f"[bold red]{party.client_id} got no token ({r.status_code}): {r.text[:200]}[/]")
            return 2
    kit = Kit(base, me, peer, doc["token_endpoint"], doc)
    selected = [c for c in CHECKS if not args.only or any(c.id.startswith(o) for o in args.only)]
    with contextlib.ExitStack() as stack:
        if args.listen_port:
            kit.receiver = stack.enter_context(Receiver(args.listen_host, args.listen_port))
            kit.notify_endpoint = args.notify_endpoint or f"http://{args.listen_host}:{args.listen_port}/notify"
        results = run(kit, selected)
    table(results, console)
    if args.json:
        args.json.write_text(as_json(results, base))
    if args.junit:
        args.junit.write_text(as_junit(results))
    counts = summary(results)
    return 1 if counts["fail"] or counts["error"] else 0
