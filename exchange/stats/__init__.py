"""Statistics for coordinators and auditors, with disclosure control (issue 14, item 7).

Modules: `tables` (one row of facts per referral, and the log position), `facts` (a Task's history -> its facts),
`integrate` (reads the exchange log into the facts), `aggregate` (the SQL), `suppression` (primary and
complementary suppression, a plain function), `report` (the tables of one period, suppressed together), `params`
(the request's parameters), `access` (who may ask), `service` (one request, audited), `routes` (HTTP),
`measure` (the same as a FHIR MeasureReport), `cli` (`exchange stats`).
"""
from __future__ import annotations

from exchange.kernel.exchange import Exchange


def install(exchange: Exchange) -> None:
    from exchange.jobs import every
    from exchange.stats.integrate import integrate
    from exchange.stats.routes import router

    exchange.routers.append(router)
    exchange.capability.append(contribute_capability)  # after the referral package added Measure
    exchange.jobs.append(every("stats-integrate", lambda ex: ex.settings.stats_integrate_seconds, integrate,
                               at_start=True))


def contribute_capability(statement: dict, _exchange: Exchange) -> None:
    """Measure (served from conformance/) gets the $evaluate-measure operation in the CapabilityStatement."""
    for rest in statement.get("rest", []):
        for entry in rest.get("resource", []):
            if entry.get("type") == "Measure":
                entry["operation"] = [{
                    "name": "evaluate-measure",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
                    "documentation": "GET [base]/Measure/referral-outcomes/$evaluate-measure?periodStart=&periodEnd= "
                                     "(reportType population only): auditor and coordinator clients with a "
                                     "MeasureReport read scope; small counts masked"}]
