"""Statistics for coordinators and auditors, with disclosure control (issue 14, item 7).

Modules: `tables` (one row of facts per referral, and the log position), `facts` (a Task's history -> its facts),
`integrate` (reads the exchange log into the facts), `aggregate` (the SQL), `suppression` (primary and
complementary suppression, a plain function), `report` (the tables of one period, suppressed together), `params`
(the request's parameters), `access` (who may ask), `service` (one request, audited), `routes` (HTTP),
`measure` (the same as a FHIR MeasureReport), `cli` (`exchange stats`).
"""
from __future__ import annotations

from exchange.services import Exchange


def install(exchange: Exchange) -> None:
    from exchange.jobs import every
    from exchange.stats.integrate import integrate
    from exchange.stats.routes import router

    exchange.routers.append(router)
    exchange.jobs.append(every("stats-integrate", lambda ex: ex.settings.stats_integrate_seconds, integrate,
                               at_start=True))
