"""The exchange's Prometheus instruments (prometheus-client), in a leaf module any package may import.

Labels take only values from small fixed sets (route templates, status codes, OAuth error codes, delivery
outcomes): never an id, an organisation, a client or a query value. With several processes, set
`EXCHANGE_METRICS_MULTIPROCESS_DIR` (see exchange.ops.metrics) and these are summed across them.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Request latency buckets (seconds): from a cached read to a large transaction.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

requests = Histogram("exchange_http_request_duration_seconds", "HTTP requests by route template, method and status",
                     ["method", "route", "status"], buckets=BUCKETS)
oauth = Counter("exchange_oauth_requests_total",
                "Token, introspection and revocation requests by outcome (issued, or the OAuth error code)",
                ["endpoint", "outcome"])
deliveries = Counter("exchange_notification_delivery_attempts_total",
                     "Notification POSTs to subscribers by kind and outcome", ["kind", "outcome"])
rate_limited = Counter("exchange_rate_limited_total", "Requests refused with 429, by limit", ["limit"])
sweep_last_run = Gauge("exchange_sweep_last_run_timestamp_seconds", "When a background sweep last finished (Unix time)",
                       ["sweep"], multiprocess_mode="max")

OAUTH_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                          "unsupported_grant_type", "invalid_scope", "unsupported_token_type", "server_error",
                          "temporarily_unavailable", "access_denied"})
ENDPOINTS = frozenset({"token", "introspect", "revoke"})
KINDS = frozenset({"handshake", "heartbeat", "event-notification"})


def count_oauth(endpoint: str, error: object) -> None:
    outcome = "ok" if error is None else (error if error in OAUTH_ERRORS else "other")
    oauth.labels(endpoint if endpoint in ENDPOINTS else "other", outcome).inc()


def delivery_outcome(ok: bool, status: int | None, error: str | None) -> str:
    """A delivery's outcome as a label: delivered, http-4xx, http-5xx, time-out, connection-failed, refused."""
    if ok:
        return "delivered"
    if status is not None:
        return f"http-{status // 100}xx"
    if error == "time-out":
        return "time-out"
    if error and error.startswith("connection failed"):
        return "connection-failed"
    return "refused"  # the endpoint failed the address rule at send time


def count_delivery(kind: str, ok: bool, status: int | None, error: str | None) -> None:
    deliveries.labels(kind if kind in KINDS else "other", delivery_outcome(ok, status, error)).inc()


def sweep_finished(sweep: str, at: float) -> None:
    sweep_last_run.labels(sweep).set(at)


METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


_REQUEST_SERIES: dict[tuple, object] = {}  # (method, route, status) -> its histogram: labels() once per series


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """`route` is the matched template (`/fhir/{type}/{id}`) or `(unmatched)`, never the path itself. The series
    are few (methods, templates, statuses), so each one's child is kept here: `labels()` takes a lock and builds
    its key on every call, some 15 Python calls a request."""
    key = (method, route, status)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        series = requests.labels(method if method in METHODS else "other", route, str(status))
        if len(_REQUEST_SERIES) < 4096:  # (the label values are bounded already: this only bounds the dict)
            _REQUEST_SERIES[key] = series
    series.observe(seconds)
