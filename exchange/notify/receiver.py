"""`exchange dev receiver`: a local notification endpoint that prints each delivery and checks its signature.

For trying Subscriptions on a laptop: the exchange (started with EXCHANGE_NOTIFY_ALLOW_LOOPBACK=true, since a
loopback endpoint is refused otherwise) posts its handshake, heartbeats and event notifications here; the receiver
verifies `X-Exchange-Signature` against the exchange's published JWKS (`exchange.notify.signing.verify`, the
reference implementation), prints one line per notification and answers 200 (401 to a bad signature).
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import httpx
import orjson

from exchange.notify.signing import SIGNATURE_HEADER, verify


def describe(bundle: dict) -> str:
    """One line for a notification Bundle: its type, subscription, event numbers and focus references."""
    status = bundle["entry"][0]["resource"]
    params: dict[str, list] = {}
    for p in status.get("parameter", []):
        params.setdefault(p["name"], []).append(p)
    def value(p: dict):  # noqa: ANN202
        return next((v for k, v in p.items() if k.startswith("value")), None)
    kind = value(params["type"][0]) if "type" in params else "?"
    subscription = (value(params["subscription"][0])["reference"].split("/fhir/")[-1] if "subscription" in params
                    else "?")
    numbers = [str(value(part)) for event in params.get("notification-event", []) for part in event.get("part", [])
               if part["name"] == "event-number"]
    focus = [e["fullUrl"].split("/fhir/")[-1] for e in bundle["entry"][1:] if e.get("fullUrl")]
    line = f"{kind} for {subscription}"
    if numbers:
        line += f": event {', '.join(numbers)}"
    if focus:
        line += f" ({', '.join(focus)})"
    return line


class Receiver:
    """An http.server on a thread; `on_line` gets each printed line."""

    def __init__(self, exchange_url: str, host: str, port: int, on_line: Callable[[str], None]):
        self.exchange_url = exchange_url.rstrip("/")
        self.on_line = on_line
        self.count = 0
        self.done = threading.Event()
        self._jwks: dict | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = receiver.verified(self.headers.get(SIGNATURE_HEADER) or "", body)
                try:
                    line = describe(orjson.loads(body))
                except (ValueError, KeyError, IndexError, TypeError):
                    line = "not a notification Bundle"
                receiver.on_line(f"{line}  signature {'verified' if ok else 'INVALID'}")
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.count += 1
                receiver.done.set()

            def log_message(self, *_args) -> None:
                return None

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def verified(self, signature: str, body: bytes) -> bool:
        if not signature:
            return False
        for refresh in (False, True):  # a key the cached JWKS lacks: the exchange may have rotated; fetch again
            if refresh or self._jwks is None:
                try:
                    self._jwks = httpx.get(f"{self.exchange_url}/.well-known/jwks.json", timeout=5).json()
                except (httpx.HTTPError, ValueError):
                    return False
            if verify(signature, body, self._jwks):
                return True
        return False
