"""What a caller may see: the exchange everything, an organisation the directory and the rows naming it, and a
filter that cannot say its SQL is never applied as if it could."""
from __future__ import annotations

import pytest

from exchange.context import RequestContext, system_context
from exchange.need_to_know.visibility import PartyFilter, access_filter
from exchange.store.visibility import UNRESTRICTED, AccessFilter


def _partner(organization_id: str | None) -> RequestContext:
    return RequestContext(client_id="c", organization_id=organization_id, role="partner")


def test_the_exchange_itself_sees_every_row():
    assert access_filter(system_context()) is UNRESTRICTED


def test_a_partner_sees_the_directory_whole_and_referral_rows_by_party():
    view = access_filter(_partner("org-a"))
    assert isinstance(view, PartyFilter) and view.organization_id == "org-a"
    assert not view.applies_to("HealthcareService")
    assert view.applies_to("Task") and view.applies_to("Patient")


def test_a_client_without_an_organisation_is_filtered_as_nobody():
    view = access_filter(_partner(None))
    assert view.organization_id == "" and view.applies_to("ServiceRequest")


def test_the_store_never_guesses_the_sql_of_a_filtered_view():
    with pytest.raises(NotImplementedError):
        AccessFilter(organization_id="org-a").condition("Task", None)
