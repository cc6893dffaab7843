"""A real notification receiver on loopback (http.server in a thread) that records what it is sent."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import orjson

from tests.notify.referrals import status_of



class Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default listen backlog (5) refuses connections under a burst
    daemon_threads = True

class LoopbackReceiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, dict, dict]] = []  # (path, bundle, headers)
        self.before_answer: Callable[[str, dict], None] | None = None  # may block to hold a delivery in flight
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                bundle = orjson.loads(body)
                if receiver.before_answer is not None:
                    receiver.before_answer(self.path, bundle)
                with receiver.lock:
                    receiver.received.append((self.path, bundle, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                return None

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{path}"

    def events(self) -> dict[str, list[int]]:
        """Event numbers received, per path (one path per subscription), in arrival order."""
        out: dict[str, list[int]] = {}
        with self.lock:
            items = list(self.received)
        for path, bundle, _ in items:
            status = status_of(bundle)
            if status["type"] == "event-notification":
                out.setdefault(path, []).extend(int(e["event-number"]) for e in status["events"])
        return out

    def event_count(self) -> int:
        return sum(len(v) for v in self.events().values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
