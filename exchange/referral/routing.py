"""Routing a referral through the directory: the receiving service must exist, offer the service and accept.

A HealthcareService accepts new referrals when it is active and its capacity (`exchange.referral.directory`) is
available or waitlist, not closed. A referral may name the service itself or its Organization; an Organization must list at least
one such service of the requested type.
"""
from __future__ import annotations

from exchange.fhir.references import references_in, split_reference
from exchange.referral import codes, profile
from exchange.referral.refusal import refuse
from exchange.store.repository import Repository


def offers(service: dict, requested: list[str]) -> bool:
    """The service's types include each requested code or an ancestor of it (a medical service offers CMR)."""
    types = codes.codings_in(service.get("type"), codes.SERVICE_TYPE)
    return all(any(codes.is_within(code, t) for t in types) for code in requested)


def _search_hint(requested: list[str]) -> str:
    return f"find one with HealthcareService?service-type={codes.SERVICE_TYPE}|{requested[0]}&capacity=available,waitlist"


async def check_performers(repo: Repository, request: dict) -> None:
    requested = codes.codes_in(request.get("code"), codes.SERVICE_TYPE)
    for i, ref in enumerate(references_in(request.get("performer"))):
        where = f"ServiceRequest.performer[{i}]"
        rtype, rid = split_reference(ref) or ("", "")
        if rtype == "HealthcareService":
            found = await repo.read("HealthcareService", rid)
            if found is None or found.deleted:
                refuse("referral-routing", f"HealthcareService/{rid} is not in the directory", where)
            service = found.resource
            if not offers(service, requested):
                refuse("referral-routing", f"HealthcareService/{rid} does not offer {', '.join(requested)}; "
                                           f"{_search_hint(requested)}", where)
            if not profile.accepts_referrals(service):
                refuse("referral-routing", f"HealthcareService/{rid} does not accept new referrals now (closed or "
                                           f"inactive); {_search_hint(requested)}", where)
        elif rtype == "Organization":
            ids = await repo.referring_ids("HealthcareService", "organization", [("Organization", rid)])
            services = [s.resource for s in await repo.read_many([("HealthcareService", i) for i in ids])]
            matching = [s for s in services if offers(s, requested)]
            if not matching:
                refuse("referral-routing", f"Organization/{rid} lists no HealthcareService offering "
                                           f"{', '.join(requested)}; {_search_hint(requested)}", where)
            if not any(profile.accepts_referrals(s) for s in matching):
                refuse("referral-routing", f"Organization/{rid} does not accept new referrals for "
                                           f"{', '.join(requested)} now; {_search_hint(requested)}", where)
