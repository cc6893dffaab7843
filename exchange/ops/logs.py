"""The server's log as JSON lines (`EXCHANGE_LOG_FORMAT=json`): one object per record, and for each request one
access record with its time, method, route template, status, duration, client id and request id.

The access record is built from the route's template (`/fhir/{resource_type}/{resource_id}`), never from the path
or the query string, and no body is ever logged: a search by name leaves no name here.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import IO

import orjson

from exchange.settings import Settings

ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "client_id", "request_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"), "level": record.levelname.lower(), "logger": record.name}
        if all(hasattr(record, f) for f in ACCESS_FIELDS):
            line.update({f: getattr(record, f) for f in ACCESS_FIELDS})
        else:
            line["message"] = record.getMessage()
            if record.exc_info:
                line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """The root handler for `exchange serve` and `exchange worker`: text (default) or JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def access_fields(method: str, route: str, status: int, seconds: float, ctx, request_id: str) -> dict:  # noqa: ANN001
    """The `extra` of an access record (read by JsonFormatter; the text format prints only its message).
    `ctx` is the bearer check's RequestContext (None before or without one)."""
    return {"method": method, "route": route, "status": status, "duration_ms": round(seconds * 1000, 1),
            "client_id": getattr(ctx, "client_id", None), "request_id": request_id}
