"""The element table: which changes of a referral resource record new parties, and what a request points at."""
from __future__ import annotations

from exchange.need_to_know.parties import parties_changed, pointed_at

TASK = {"resourceType": "Task", "requester": {"reference": "Organization/a"}, "owner": {"reference": "Organization/c"},
        "focus": {"reference": "ServiceRequest/1"}, "for": {"reference": "Patient/1"}, "status": "requested"}


def test_a_new_owner_or_a_new_focus_changes_the_parties():
    assert parties_changed("Task", TASK, dict(TASK, owner={"reference": "Organization/d"}))
    assert parties_changed("Task", TASK, dict(TASK, focus={"reference": "ServiceRequest/2"}))


def test_a_status_change_records_no_parties():
    assert not parties_changed("Task", TASK, dict(TASK, status="accepted"))


def test_a_type_without_party_elements_never_changes_parties():
    assert not parties_changed("Patient", {"gender": "female"}, {"gender": "unknown"})


def test_pointed_at_names_only_the_type_asked_for():
    request = {"supportingInfo": [{"reference": "Consent/c1"}, {"reference": "DocumentReference/d1"},
                                  {"reference": "Consent/c2"}]}
    assert pointed_at(request, "Consent") == ["c1", "c2"]
    assert pointed_at(request, "DocumentReference") == ["d1"]
    assert pointed_at({}, "Consent") == []
