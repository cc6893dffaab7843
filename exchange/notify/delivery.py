"""One POST of a notification to a rest-hook endpoint. Reports what happened; never raises for the receiver's
failures (a refused connection, a time-out and a 500 are all just unsuccessful attempts).

The client comes from the egress policy (exchange.egress): every POST resolves and checks the endpoint again and
connects only to the address it checked; no redirects; the receiver's answer is read up to
`RESPONSE_MAX_BYTES` and dropped (only its status counts)."""
from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import httpx

from exchange.egress import EgressRefused, egress, read_capped
from exchange.notify.signing import SIGNATURE_HEADER
from exchange.notify.spec import SubscriptionSpec

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange

RESPONSE_MAX_BYTES = 64 * 1024


@dataclass
class Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None  # short, fixed text: no response bodies (they are the receiver's, not ours)


def new_client(exchange: "Exchange") -> httpx.AsyncClient:
    return egress(exchange).notify.client(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))


async def post(client: httpx.AsyncClient, spec: SubscriptionSpec, body: bytes, signature: str) -> Outcome:
    headers = {name: value for name, value in spec.headers}
    headers["Content-Type"] = f"{spec.content_type}; charset=utf-8"
    headers[SIGNATURE_HEADER] = signature
    try:
        async with client.stream("POST", spec.endpoint, content=body, headers=headers,
                                 timeout=spec.timeout) as response:
            status = response.status_code
            try:
                await read_capped(response, RESPONSE_MAX_BYTES)
            except EgressRefused:
                pass  # an oversized answer is not read further; its status still counts
    except EgressRefused as exc:
        return Outcome(False, error=f"endpoint {exc}")
    except httpx.TimeoutException:
        return Outcome(False, error="time-out")
    except httpx.HTTPError as exc:
        return Outcome(False, error=f"connection failed ({type(exc).__name__})")
    if 200 <= status < 300:
        return Outcome(True, status)
    return Outcome(False, status, f"HTTP {status}")
