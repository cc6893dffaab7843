"""One POST of a notification to a rest-hook endpoint. Reports what happened; never raises for the receiver's
failures (a refused connection, a time-out and a 500 are all just unsuccessful attempts)."""
from __future__ import annotations

from dataclasses import dataclass

import httpx

from exchange.notify.endpoints import endpoint_problem
from exchange.notify.signing import SIGNATURE_HEADER
from exchange.notify.spec import SubscriptionSpec
from exchange.settings import Settings


@dataclass
class Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None  # short, fixed text: no response bodies (they are the receiver's, not ours)


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(follow_redirects=False, trust_env=False,
                             limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))


async def post(client: httpx.AsyncClient, spec: SubscriptionSpec, body: bytes, signature: str,
               settings: Settings) -> Outcome:
    problem = endpoint_problem(spec.endpoint, settings)
    if problem:
        return Outcome(False, error=f"endpoint {problem}")
    headers = {name: value for name, value in spec.headers}
    headers["Content-Type"] = f"{spec.content_type}; charset=utf-8"
    headers[SIGNATURE_HEADER] = signature
    try:
        response = await client.post(spec.endpoint, content=body, headers=headers, timeout=spec.timeout)
    except httpx.TimeoutException:
        return Outcome(False, error="time-out")
    except httpx.HTTPError as exc:
        return Outcome(False, error=f"connection failed ({type(exc).__name__})")
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    return Outcome(False, response.status_code, f"HTTP {response.status_code}")
