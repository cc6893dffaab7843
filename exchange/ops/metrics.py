"""`GET /metrics`: Prometheus text. Request, token and delivery counts come from the instruments in
`exchange.ops.counters`; backlog, readiness and audit figures are read from the database at scrape time, so any
process answers for the whole deployment.

Off with `EXCHANGE_METRICS_ENABLED=false`; answered only to `EXCHANGE_METRICS_ALLOWED_NETWORKS` (loopback by
default; others get 403). Several server processes on one host share `EXCHANGE_METRICS_MULTIPROCESS_DIR`
(prometheus-client's multiprocess mode: `prepare_multiprocess` before the workers start).
"""
from __future__ import annotations

import ipaddress
import os
import shutil
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from exchange.errors import Forbidden
from exchange.ops import gauges
from exchange.ops.health import readiness
from exchange.kernel.exchange import Exchange
from exchange.settings import Settings

router = APIRouter(tags=["operations"])
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client itself when it is imported


def prepare_multiprocess(settings: Settings) -> None:
    """Before starting several worker processes: an empty shared directory, named where the workers (which import
    prometheus-client afresh) find it. The parent's own instruments are not used."""
    directory = settings.metrics_multiprocess_dir
    if directory is None:
        return
    shutil.rmtree(directory, ignore_errors=True)
    Path(directory).mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    os.environ["EXCHANGE_METRICS_MULTIPROCESS_DIR"] = str(directory)


class _Snapshot:
    """Gauges measured just before rendering (a collector must be synchronous; the queries are not)."""

    def __init__(self, families: list[GaugeMetricFamily]):
        self.families = families

    def collect(self):  # noqa: ANN201
        return iter(self.families)


async def _database_gauges(exchange: Exchange) -> list[GaugeMetricFamily]:
    ready = await readiness(exchange)
    checks = GaugeMetricFamily("exchange_ready", "Readiness checks (1 passes, 0 fails), as /readyz sees them",
                               labels=["check"])
    for name, ok in ready.items():
        checks.add_metric([name], 1.0 if ok else 0.0)
    families = [checks]
    if ready["database"]:
        async with exchange.db.engine.connect() as conn:
            backlog = await gauges.read(exchange, gauges.NOTIFICATION_BACKLOG, conn)
            families.extend(await _audit_gauges(exchange, conn))
        families += [
            GaugeMetricFamily("exchange_notification_backlog",
                              "Undelivered events of subscriptions being delivered", value=backlog.pending),
            GaugeMetricFamily("exchange_notification_held",
                              "Undelivered events kept for subscriptions in error or off", value=backlog.held),
            GaugeMetricFamily("exchange_notification_oldest_pending_age_seconds",
                              "Age of the oldest undelivered event of a subscription being delivered",
                              value=backlog.oldest_age_seconds)]
    return families


async def _audit_gauges(exchange: Exchange, conn) -> list[GaugeMetricFamily]:  # noqa: ANN001
    waiting = await gauges.read(exchange, gauges.AUDIT_UNLINKED, conn)
    if waiting is None:
        return []
    return [GaugeMetricFamily("exchange_audit_unlinked_records", "Audit records waiting to be linked into the chain",
                              value=waiting)]


def _allowed(settings: Settings, address: str | None) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.metrics_allowed_networks)


@router.get("/metrics", summary="Prometheus metrics (allowed networks only)", include_in_schema=False)
async def metrics(request: Request) -> Response:
    exchange: Exchange = request.app.state.exchange
    settings = exchange.settings
    if not _allowed(settings, request.client.host if request.client else None):
        raise Forbidden("Metrics are served only to the networks in EXCHANGE_METRICS_ALLOWED_NETWORKS")
    if settings.metrics_multiprocess_dir is not None:
        base = CollectorRegistry()
        MultiProcessCollector(base, path=str(settings.metrics_multiprocess_dir))
    else:
        base = REGISTRY
    measured = CollectorRegistry()
    measured.register(_Snapshot(await _database_gauges(exchange)))
    return Response(generate_latest(base) + generate_latest(measured), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
