"""Re-routing an escalated referral: the coordinator proposes, the requester agrees (the Task goes to the new
provider, if her Consent permits it) or declines (nothing moves)."""
from __future__ import annotations

from datetime import timedelta

from exchange.referral import codes, deadlines
from exchange.store.clock import fhir_instant
from tests.audit.conftest import audit_rows
from tests.referral import world
from tests.referral.conftest import rule_of

from .test_escalation import LIST, _alerts, _escalate, _updates_of


async def _second_shelter(http, as_, ids) -> str:  # noqa: ANN001
    ids["shelter2"] = (await http.post("/Organization", json={"resourceType": "Organization",
                                                               "name": "Second shelter"})).json()["id"]
    r = await http.post("/HealthcareService", json=world.service(ids["shelter2"], ["safety-shelter"]))
    assert r.status_code == 201, r.text
    await as_.add(ids["shelter2"])
    return f"HealthcareService/{r.json()['id']}"


async def _escalated(http, as_, ids, make_referral, exchange, clock, consent_to_second: bool = True) -> dict:  # noqa: ANN001
    service = await _second_shelter(http, as_, ids)
    recipients = [f"Organization/{ids['shelter']}"] + ([f"Organization/{ids['shelter2']}"] if consent_to_second
                                                       else [])
    ref = await make_referral(recipients=recipients)
    await _escalate(http, exchange, clock, ref["Task"])
    return dict(ref, service=service)


async def test_the_requester_agrees_and_the_referral_goes_to_the_new_provider(http, as_, ids, make_referral, exchange,
                                                                              coordinator, clock):
    ref = await _escalated(http, as_, ids, make_referral, exchange, clock)
    task_id, hotline = ref["Task"], as_(ids["hotline"])
    r = await coordinator.post(f"{LIST}/{task_id}/reroute", json={"owner": ref["service"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"task": f"Task/{task_id}", "proposedOwner": ref["service"], "waitingFor": "requester"}
    # proposed, not moved: the old owner still has it, the requester is told and sees the proposal
    task = (await http.get(f"/Task/{task_id}", headers=as_(ids["shelter"]))).json()
    assert task["owner"] == {"reference": f"Organization/{ids['shelter']}"}
    assert (await _alerts(exchange))[-1] == (ids["hotline"], "reroute")
    [seen] = (await coordinator.get(LIST)).json()["referrals"]
    assert seen["reroute"]["proposedOwner"]["service"] == ref["service"] and seen["reroute"]["waitingFor"] == \
        "requester"
    assert (await http.get(f"/Task/{task_id}", headers=as_(ids["shelter2"]))).status_code == 404

    r = await http.post(f"{LIST}/{task_id}/reroute/agree", headers=as_(ids["shelter"]))  # the owner may not agree
    assert r.status_code == 403 and rule_of(r) == "reroute-requester"
    r = await http.post(f"{LIST}/{task_id}/reroute/agree", headers=as_(ids["legal"]))  # a stranger learns nothing
    assert r.status_code == 404

    clock.set(clock.now + timedelta(hours=1))
    r = await http.post(f"{LIST}/{task_id}/reroute/agree", headers=hotline)
    assert r.status_code == 200, r.text
    assert r.json() == {"task": f"Task/{task_id}", "rerouted": True, "owner": ref["service"]}
    moved = (await http.get(f"/Task/{task_id}", headers=as_(ids["shelter2"]))).json()
    assert moved["owner"] == {"reference": ref["service"]} and moved["status"] == "requested"
    assert codes.OVERDUE not in codes.codes_in(moved.get("businessStatus"), codes.REFERRAL_CODES)
    sent_again = clock.now.replace(microsecond=0)
    assert deadlines.stored_of(moved) == (fhir_instant(sent_again + timedelta(hours=24)),
                                          fhir_instant(sent_again + timedelta(hours=72)))
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=as_(ids["shelter2"]))).json()
    assert request["performer"] == [{"reference": ref["service"]}]
    assert (await http.get(f"/Patient/{ref['Patient']}", headers=as_(ids["shelter2"]))).status_code == 200
    for path in (f"/Task/{task_id}", f"/ServiceRequest/{ref['ServiceRequest']}"):  # the old owner's access ends
        assert (await http.get(path, headers=as_(ids["shelter"]))).status_code == 404
    assert (await _alerts(exchange))[-1] == (ids["shelter2"], "new")
    [seen] = (await coordinator.get(LIST)).json()["referrals"]
    assert [s["step"] for s in seen["steps"]][-1] == "rerouted" and seen["reroute"] is None
    assert seen["owner"]["service"] == ref["service"]
    updates = _updates_of(await audit_rows(exchange), task_id)  # overdue, escalated, proposed, rerouted
    assert len(updates) == 4 and all(u["agent"][0]["who"]["identifier"]["value"] == "exchange" for u in updates)
    r = await http.post(f"{LIST}/{task_id}/reroute/agree", headers=hotline)  # nothing waits any more
    assert r.status_code == 409 and rule_of(r) == "reroute-none"


async def test_without_the_requesters_agreement_nothing_moves(http, as_, ids, make_referral, exchange, coordinator,
                                                             clock):
    ref = await _escalated(http, as_, ids, make_referral, exchange, clock)
    task_id = ref["Task"]
    assert (await coordinator.post(f"{LIST}/{task_id}/reroute", json={"owner": ref["service"]})).status_code == 200
    r = await http.post(f"{LIST}/{task_id}/reroute/decline", headers=as_(ids["hotline"]))
    assert r.status_code == 200 and r.json() == {"task": f"Task/{task_id}", "rerouted": False}
    task = (await http.get(f"/Task/{task_id}", headers=as_(ids["shelter"]))).json()
    assert task["owner"] == {"reference": f"Organization/{ids['shelter']}"} and task["status"] == "requested"
    [seen] = (await coordinator.get(LIST)).json()["referrals"]
    assert seen["reroute"] is None
    assert (await http.get(f"/Task/{task_id}", headers=as_(ids["shelter2"]))).status_code == 404
    r = await http.post(f"{LIST}/{task_id}/reroute/agree", headers=as_(ids["hotline"]))
    assert r.status_code == 409 and rule_of(r) == "reroute-none"


async def test_a_reroute_her_consent_does_not_cover_is_refused(http, as_, ids, make_referral, exchange, coordinator,
                                                               clock):
    ref = await _escalated(http, as_, ids, make_referral, exchange, clock, consent_to_second=False)
    task_id = ref["Task"]
    assert (await coordinator.post(f"{LIST}/{task_id}/reroute", json={"owner": ref["service"]})).status_code == 200
    before = (await http.get(f"/Task/{task_id}")).json()
    r = await http.post(f"{LIST}/{task_id}/reroute/agree", headers=as_(ids["hotline"]))
    assert r.status_code == 409 and rule_of(r) == "reroute-consent", r.text
    assert (await http.get(f"/Task/{task_id}")).json()["meta"]["versionId"] == before["meta"]["versionId"]
    assert (await http.get(f"/Task/{task_id}", headers=as_(ids["shelter2"]))).status_code == 404


async def test_the_coordinator_reroutes_only_escalated_open_referrals_to_directory_entries(
        http, as_, ids, make_referral, exchange, coordinator, clock):
    ref = await _escalated(http, as_, ids, make_referral, exchange, clock)
    plain = await make_referral()  # not escalated: the coordinator does not learn of it
    r = await coordinator.post(f"{LIST}/{plain['Task']}/reroute", json={"owner": ref["service"]})
    assert r.status_code == 404
    for owner, status in (("Patient/x", 400), (None, 400), ("HealthcareService/nowhere", 422),
                          (f"HealthcareService/{ids['svc-full']}", 422),  # closed
                          (f"Organization/{ids['shelter']}", 422)):  # already there
        r = await coordinator.post(f"{LIST}/{ref['Task']}/reroute", json={"owner": owner})
        assert r.status_code == status, (owner, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
    r = await coordinator.post(f"{LIST}/{ref['Task']}/reroute", content=b"[1, 2")
    assert r.status_code == 400
    shelter = as_(ids["shelter"])
    for status in ("accepted", "in-progress"):  # once the service started, it is no longer moved
        current = (await http.get(f"/Task/{ref['Task']}", headers=shelter)).json()
        assert (await http.put(f"/Task/{ref['Task']}", json=dict(current, status=status),
                               headers=shelter)).status_code == 200
    r = await coordinator.post(f"{LIST}/{ref['Task']}/reroute", json={"owner": ref["service"]})
    assert r.status_code == 409 and rule_of(r) == "reroute-closed"
