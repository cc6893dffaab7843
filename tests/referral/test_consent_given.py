"""Consent as it is really given (issue 14, item 6): a caregiver's consent and the assent of a child, how consent was
obtained and by whom, the governed emergency exception, and the safety assessment before family mediation."""
from __future__ import annotations

import uuid

from exchange.referral import codes, consent_rules
from exchange.referral.consent_rules import CONSENT_CODES, EXT_CONSENT_GIVEN, EXT_EMERGENCY, INCIDENT_CODES

from . import world
from .conftest import rule_of

STAFF = {"type": "Practitioner", "identifier": {"system": "https://amal-hotline.example/staff", "value": "W-17"}}
CHILD_BIRTH = "2015"  # 11 when she consented (Consent.dateTime 2026-11-20)
GIVEN_AT = f"extension('{EXT_CONSENT_GIVEN}')"


def given(method: str = "verbal-phone", attested: bool = True, capacity: str | None = None,
          assent: str | None = None, worker: dict | None = None) -> dict:
    parts = [{"url": "method", "valueCodeableConcept": world.coding(CONSENT_CODES, method)},
             {"url": "obtained-by", "valueReference": worker or STAFF}]
    if attested:
        parts.append({"url": "attested", "valueDateTime": "2026-11-20T10:00:00Z"})
    if capacity:
        parts.append({"url": "capacity", "valueCodeableConcept": world.coding(CONSENT_CODES, capacity)})
    if assent:
        parts.append({"url": "assent", "valueCodeableConcept": world.coding(CONSENT_CODES, assent)})
    return {"url": EXT_CONSENT_GIVEN, "extension": parts}


def caregiver(relationship: str = "MTH", **extra) -> dict:
    return {"resourceType": "RelatedPerson", "id": "caregiver", "patient": {"reference": "Patient/placeholder"},
            "relationship": [world.coding(consent_rules.ROLE_CODE_SYSTEM, relationship)], **extra}


def bundle(ids: dict, birth: str | None = None, extension: dict | None = None, performer: dict | None = None,
           to: str = "shelter", **kwargs) -> dict:
    """A referral Bundle whose Consent carries `extension` and (a contained caregiver) `performer`."""
    body = world.referral_bundle(ids, [f"Organization/{ids[to]}"], patient_extra={"birthDate": birth} if birth
                                 else None, **kwargs)
    consent = body["entry"][1]["resource"]
    if extension:
        consent["extension"] = [extension]
    if performer:
        performer = dict(performer, patient={"reference": consent["patient"]["reference"]})
        consent["contained"] = [performer]
        consent["performer"] = [{"reference": f"#{performer['id']}"}]
    return body


async def post(http, as_, ids, body: dict, expect: int):  # noqa: ANN001, ANN201
    r = await http.post("", json=body, headers=as_(ids["hotline"]))
    assert r.status_code == expect, r.text
    return r


def where(r) -> str:  # noqa: ANN001
    return r.json()["issue"][0]["expression"][0]


# --- a child ---------------------------------------------------------------------------------------------------------

async def test_a_child_needs_a_caregivers_consent_or_a_best_interest_determination(http, as_, ids):
    r = await post(http, as_, ids, bundle(ids, CHILD_BIRTH), 422)
    assert rule_of(r) == "consent-child"
    assert where(r) == f"Bundle.entry[1].resource.{GIVEN_AT}.extension('capacity')"
    r = await post(http, as_, ids, bundle(ids, CHILD_BIRTH, given(capacity="self")), 422)
    assert rule_of(r) == "consent-child"
    for rtype in ("Patient", "Consent", "ServiceRequest", "Task"):
        assert (await http.get(f"/{rtype}")).json()["total"] == 0, rtype


async def test_a_mothers_consent_with_the_childs_assent_refers_her(http, as_, ids):
    r = await post(http, as_, ids, bundle(ids, CHILD_BIRTH, given(capacity="parent", assent="assent-given"),
                                          caregiver("MTH")), 200)
    ref = world.created_ids(r.json())
    shelter = as_(ids["shelter"])
    consent = (await http.get(f"/Consent/{ref['Consent']}", headers=shelter)).json()
    assert consent["performer"] == [{"reference": "#caregiver"}]
    assert consent["contained"][0]["relationship"][0]["coding"][0]["code"] == "MTH"
    assert consent["contained"][0]["patient"] == {"reference": f"Patient/{ref['Patient']}"}
    assert (await http.get(f"/Task/{ref['Task']}", headers=shelter)).json()["status"] == "requested"


async def test_a_childs_consent_names_the_caregiver_and_records_her_assent(http, as_, ids):
    cases = [  # (consent-given, performer) -> the element the refusal names
        (given(capacity="legal-guardian", assent="assent-given"), None, "Bundle.entry[1].resource.performer"),
        (given(capacity="parent"), caregiver(), f"Bundle.entry[1].resource.{GIVEN_AT}.extension('assent')"),
        (given(capacity="parent", assent="assent-declined"), caregiver(),
         f"Bundle.entry[1].resource.{GIVEN_AT}.extension('assent')"),
    ]
    for extension, performer, element in cases:
        r = await post(http, as_, ids, bundle(ids, CHILD_BIRTH, extension, performer), 422)
        assert (rule_of(r), where(r)) == ("consent-child", element)
    # against her stated wish only the best-interest procedure may refer her
    await post(http, as_, ids, bundle(ids, CHILD_BIRTH, given(capacity="best-interest-determination",
                                                             assent="assent-declined")), 200)


async def test_a_caregiver_is_recorded_by_her_relationship_only(http, as_, ids):
    named = caregiver(name=[{"text": "Her mother's name"}])
    r = await post(http, as_, ids, bundle(ids, CHILD_BIRTH, given(capacity="parent", assent="assent-given"), named),
                   422)
    assert (rule_of(r), where(r)) == ("minimum-necessary", "Bundle.entry[1].resource.contained[0].name")
    assert "Her mother's name" not in r.text
    uncoded = caregiver()
    uncoded["relationship"] = [{"text": "mother"}]
    r = await post(http, as_, ids, bundle(ids, CHILD_BIRTH, given(capacity="parent", assent="assent-given"),
                                          uncoded), 422)
    assert (rule_of(r), where(r)) == ("consent-child", "Bundle.entry[1].resource.contained[0].relationship")


async def test_the_age_of_consent_is_the_deployments(http, as_, ids, exchange):
    sixteen = "2010-06-01"  # a full birth date: identity, which her Consent must cover
    r = await post(http, as_, ids, bundle(ids, sixteen, categories=("referral", "identity")), 422)
    assert rule_of(r) == "consent-child"
    exchange.settings.referral_age_of_consent = 16
    await post(http, as_, ids, bundle(ids, sixteen, categories=("referral", "identity")), 200)


async def test_a_later_birth_date_that_makes_her_a_child_is_refused(http, as_, ids):
    ref = world.created_ids((await post(http, as_, ids, bundle(ids), 200)).json())
    hotline = as_(ids["hotline"])
    patient = (await http.get(f"/Patient/{ref['Patient']}", headers=hotline)).json()
    r = await http.put(f"/Patient/{ref['Patient']}", json={**patient, "birthDate": CHILD_BIRTH}, headers=hotline)
    assert r.status_code == 422 and rule_of(r) == "consent-child"
    assert where(r) == "Patient"
    assert (await http.get(f"/Patient/{ref['Patient']}", headers=hotline)).json()["birthDate"] == "1994"


def test_age_from_a_year_or_month_presumes_minority():
    from datetime import datetime, timezone

    at = datetime(2026, 11, 20, tzinfo=timezone.utc)
    assert consent_rules.age_range("2008", at) == (17, 18)
    assert consent_rules.is_child({"birthDate": "2008"}, at, 18)  # she may still be 17
    assert consent_rules.is_child({"birthDate": "2008-11"}, at, 18)  # born after the 20th: 17
    assert not consent_rules.is_child({"birthDate": "2008-10"}, at, 18)
    assert not consent_rules.is_child({"birthDate": "2008-11-20"}, at, 18)  # her 18th birthday
    assert not consent_rules.is_child({}, at, 18)  # no age given: the rule cannot apply


# --- how and by whom -------------------------------------------------------------------------------------------------

async def test_a_verbal_consent_needs_the_workers_attestation(http, as_, ids):
    r = await post(http, as_, ids, bundle(ids, extension=given("verbal-phone", attested=False)), 422)
    assert (rule_of(r), where(r)) == ("consent-obtained",
                                      "Bundle.entry[1].resource.extension[0].extension('attested')")
    no_worker = given()
    no_worker["extension"] = [p for p in no_worker["extension"] if p["url"] != "obtained-by"]
    r = await post(http, as_, ids, bundle(ids, extension=no_worker), 422)
    assert (rule_of(r), where(r)) == ("consent-obtained", "Bundle.entry[1].resource.extension[0]")
    r = await post(http, as_, ids, bundle(ids, extension=given(method="nodded")), 422)
    assert (rule_of(r), where(r)) == ("consent-obtained",
                                      "Bundle.entry[1].resource.extension[0].extension('method')")
    r = await post(http, as_, ids, bundle(ids, extension=given(worker={"reference": "Practitioner/nobody"})), 422)
    assert rule_of(r) == "consent-obtained" and "is not known" in r.text
    ref = world.created_ids((await post(http, as_, ids, bundle(ids, extension=given()), 200)).json())
    consent = (await http.get(f"/Consent/{ref['Consent']}", headers=as_(ids["shelter"]))).json()
    assert consent["extension"][0]["extension"][1]["valueReference"] == STAFF


async def test_a_practitioner_of_the_directory_may_be_the_worker(http, as_, ids):
    r = await http.post("/Practitioner", json={"resourceType": "Practitioner", "active": True})  # the directory
    assert r.status_code == 201, r.text
    await post(http, as_, ids, bundle(ids, extension=given(worker={"reference": f"Practitioner/{r.json()['id']}"})),
               200)


async def test_a_written_consent_needs_the_signed_form(http, as_, ids):
    r = await post(http, as_, ids, bundle(ids, extension=given("written", attested=False)), 422)
    assert (rule_of(r), where(r)) == ("consent-obtained", "Bundle.entry[1].resource.sourceReference")
    body = bundle(ids, extension=given("written", attested=False))
    patient_ref = body["entry"][0]["fullUrl"]
    form_ref = f"urn:uuid:{uuid.uuid4()}"
    body["entry"].insert(1, {"fullUrl": form_ref, "request": {"method": "POST", "url": "DocumentReference"},
                             "resource": {"resourceType": "DocumentReference", "status": "current",
                                          "subject": {"reference": patient_ref},
                                          "type": {"text": "Signed consent form"},
                                          "category": [world.coding(codes.DATA_CATEGORY, "identity")],
                                          "content": [{"attachment": {"contentType": "application/pdf",
                                                                      "data": "JVBERi0xLjQK"}}]}})
    body["entry"][2]["resource"]["sourceReference"] = {"reference": form_ref}
    ref = world.created_ids((await post(http, as_, ids, body, 200)).json())
    # the form stays with the organisation that holds it: it is not in the referral's supportingInfo
    assert (await http.get(f"/DocumentReference/{ref['DocumentReference']}",
                           headers=as_(ids["shelter"]))).status_code == 404


async def test_validate_reports_how_consent_was_obtained(http, as_, ids):
    consent = bundle(ids, extension=given("verbal-in-person", attested=False))["entry"][1]["resource"]
    consent["patient"] = {"reference": "Patient/any"}
    r = await http.post("/Consent/$validate", json=consent, headers=as_(ids["hotline"]))
    assert r.status_code == 200
    assert [i["diagnostics"].split(":")[0] for i in r.json()["issue"] if i["severity"] == "error"] == [
        "consent-obtained"]


# --- the emergency exception -----------------------------------------------------------------------------------------

def emergency(reason: str = "life-threatening-injury", worker: dict | None = None) -> dict:
    return {"url": EXT_EMERGENCY, "extension": [
        {"url": "reason", "valueCodeableConcept": world.coding(CONSENT_CODES, reason)},
        {"url": "decided-by", "valueReference": worker or STAFF}]}


def emergency_bundle(ids: dict, to: str = "clinic", code: str = "clinical-management-of-rape", **parts) -> dict:
    return world.referral_bundle(ids, [f"Organization/{ids[to]}"], code=code, with_consent=False,
                                 request_extra={"extension": [emergency(**parts)]})


async def test_emergency_referral_without_consent_reaches_the_clinic_and_is_flagged(http, as_, ids, make_client):
    r = await post(http, as_, ids, emergency_bundle(ids), 200)
    ref = world.created_ids(r.json())
    clinic = as_(ids["clinic"])
    for rtype in ("Patient", "ServiceRequest", "Task"):
        assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=clinic)).status_code == 200, rtype
    auditor = await make_client(ids["other"], role="auditor", scopes="system/AuditEvent.rs")
    found = (await auditor.get("/AuditEvent", params={"subtype": "emergency-exception"})).json()
    assert found["total"] == 1
    event = found["entry"][0]["resource"]
    assert event["entity"][0]["what"]["reference"] == f"ServiceRequest/{ref['ServiceRequest']}/_history/1"
    assert event["agent"][0]["who"] == {"reference": f"Organization/{ids['hotline']}"}
    assert event["purposeOfEvent"] == [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG",
                     "display": "break the glass"}]},
        {"coding": [{"system": CONSENT_CODES, "code": "life-threatening-injury"}]}]
    # an ordinary update does not flag it again; a new reason does
    hotline = as_(ids["hotline"])
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    assert (await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json={**request, "priority": "stat"},
                           headers=hotline)).status_code == 200
    assert (await auditor.get("/AuditEvent", params={"subtype": "emergency-exception"})).json()["total"] == 1
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    request["extension"] = [emergency("unable-to-consent")]
    assert (await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json=request,
                           headers=hotline)).status_code == 200
    assert (await auditor.get("/AuditEvent", params={"subtype": "emergency-exception"})).json()["total"] == 2


async def test_the_auditor_lists_the_uses_of_the_exception_on_the_command_line(http, as_, ids, exchange):
    import orjson

    from tests.audit.conftest import cli

    url = exchange.settings.database_url
    r = await cli("audit", "emergencies", "--database-url", url)
    assert r.exit_code == 0 and "no referral was made under the emergency exception" in r.output
    ref = world.created_ids((await post(http, as_, ids, emergency_bundle(ids, reason="suicide-risk"), 200)).json())
    await post(http, as_, ids, world.referral_bundle(ids, [f"Organization/{ids['shelter']}"]), 200)
    r = await cli("audit", "emergencies", "--database-url", url, "--json")
    assert r.exit_code == 0, r.output
    [use] = orjson.loads(r.output)
    assert (use["organization"], use["referral"], use["reason"]) == (
        f"Organization/{ids['hotline']}", f"ServiceRequest/{ref['ServiceRequest']}", "suicide-risk")
    r = await cli("audit", "emergencies", "--database-url", url)
    assert r.exit_code == 0 and f"ServiceRequest/{ref['ServiceRequest']}" in r.output and "suicide-risk" in r.output
    r = await cli("audit", "emergencies", "--database-url", url, "--since", "2999-01-01", "--json")
    assert orjson.loads(r.output) == []
    r = await cli("audit", "emergencies", "--database-url", url, "--since", "last tuesday")
    assert r.exit_code == 2 and "--since" in r.output


async def test_the_coordinator_is_told_of_an_emergency_referral_and_of_nothing_about_her(http, as_, ids, exchange):
    from sqlalchemy import select

    from exchange.web.alerts import message
    from exchange.web.tables import web_alert

    async def alerts() -> list[tuple[str, str]]:
        async with exchange.db.engine.connect() as conn:
            return [(r.organization_id, r.kind) for r in (await conn.execute(
                select(web_alert).where(web_alert.c.kind == "emergency"))).all()]

    await post(http, as_, ids, emergency_bundle(ids), 200)
    assert await alerts() == []  # no coordinating organisation in this deployment: nobody to tell
    exchange.settings.coordinating_organization = ids["other"]
    r = await post(http, as_, ids, emergency_bundle(ids, reason="imminent-risk-to-life", to="clinic"), 200)
    assert await alerts() == [(ids["other"], "emergency")]
    await post(http, as_, ids, emergency_bundle(ids, to="shelter", code="safety-shelter"), 422)
    await post(http, as_, ids, world.referral_bundle(ids, [f"Organization/{ids['shelter']}"]), 200)
    assert await alerts() == [(ids["other"], "emergency")]  # a refused one and a consented one tell nobody
    mail = message(exchange, "emergency", "coordination@example.org").get_content()
    for secret in (world.CODE_WORD, world.SAFE_PHONE, ids["clinic"], ids["hotline"],
                   world.created_ids(r.json())["ServiceRequest"]):
        assert secret not in mail


async def test_a_non_party_learns_nothing_of_an_emergency_referral_from_the_log(http, as_, ids, make_client):
    ref = world.created_ids((await post(http, as_, ids, emergency_bundle(ids), 200)).json())
    other = await make_client(ids["other"], scopes="system/*.rs system/AuditEvent.rs")
    found = (await other.get("/AuditEvent", params={"subtype": "emergency-exception"})).json()
    assert found["total"] == 0
    assert (await other.get(f"/ServiceRequest/{ref['ServiceRequest']}")).status_code == 404
    clinic = await make_client(ids["clinic"], scopes="system/*.rs system/AuditEvent.rs")  # the receiver is a party
    assert (await clinic.get("/AuditEvent", params={"subtype": "emergency-exception"})).json()["total"] == 1


async def test_emergency_exception_only_to_the_allowed_services(http, as_, ids, exchange):
    r = await post(http, as_, ids, emergency_bundle(ids, to="shelter", code="safety-shelter"), 422)
    assert (rule_of(r), where(r)) == ("emergency-exception", "Bundle.entry[1].resource.code")
    exchange.settings.referral_emergency_service_types = []  # a deployment that allows no exception
    r = await post(http, as_, ids, emergency_bundle(ids), 422)
    assert (rule_of(r), where(r)) == ("emergency-exception", "Bundle.entry[1].resource.code")
    for rtype in ("Patient", "ServiceRequest", "Task"):
        assert (await http.get(f"/{rtype}")).json()["total"] == 0, rtype


async def test_emergency_exception_needs_a_coded_reason_and_the_worker(http, as_, ids):
    r = await post(http, as_, ids, emergency_bundle(ids, reason="she-seemed-upset"), 422)
    assert (rule_of(r), where(r)) == ("emergency-exception",
                                      "Bundle.entry[1].resource.extension[0].extension('reason')")
    r = await post(http, as_, ids, emergency_bundle(ids, worker={"display": "a worker"}), 422)
    assert (rule_of(r), where(r)) == ("emergency-exception",
                                      "Bundle.entry[1].resource.extension[0].extension('decided-by')")


async def test_emergency_exception_never_discloses_the_incident(http, as_, ids):
    body = emergency_bundle(ids)
    body["entry"][1]["resource"]["reasonCode"] = [world.coding(INCIDENT_CODES, "rape")]
    r = await post(http, as_, ids, body, 422)
    assert (rule_of(r), where(r)) == ("emergency-exception", "Bundle.entry[1].resource.supportingInfo")
    assert "incident" in r.json()["issue"][0]["diagnostics"]


async def test_a_referral_with_her_consent_does_not_use_the_exception(http, as_, ids):
    body = world.referral_bundle(ids, [f"Organization/{ids['clinic']}"], code="clinical-management-of-rape",
                                 request_extra={"extension": [emergency()]})
    r = await post(http, as_, ids, body, 422)
    assert (rule_of(r), where(r)) == ("emergency-exception", "Bundle.entry[2].resource.supportingInfo")


# --- family mediation after intimate-partner violence ----------------------------------------------------------------

async def _mediator(http, ids) -> str:  # noqa: ANN001
    r = await http.post("/HealthcareService", json=world.service(ids["other"], ["family-mediation"],
                                                                 name="Family mediation"))
    assert r.status_code == 201, r.text
    return f"Organization/{ids['other']}"


def assessment(patient_ref: str, date: str = "2026-11-19T15:00:00Z", status: str = "current") -> dict:
    return {"resourceType": "DocumentReference", "status": status, "date": date,
            "subject": {"reference": patient_ref},
            "type": world.coding(INCIDENT_CODES, "safety-assessment"),
            "category": [world.coding(codes.DATA_CATEGORY, "incident")],
            "content": [{"attachment": {"contentType": "text/plain", "data": "YXNzZXNzZWQ="}}]}


def mediation_bundle(ids: dict, mediator: str, document: dict | None = None) -> dict:
    body = world.referral_bundle(ids, [mediator], code="family-mediation", categories=("referral", "incident"),
                                 request_extra={"reasonCode": [world.coding(INCIDENT_CODES, "physical-assault"),
                                                               world.coding(INCIDENT_CODES, "intimate-partner-violence")]})
    if document is not None:
        doc_ref = f"urn:uuid:{uuid.uuid4()}"
        body["entry"].insert(1, {"fullUrl": doc_ref, "resource": dict(document, subject={
            "reference": body["entry"][0]["fullUrl"]}), "request": {"method": "POST", "url": "DocumentReference"}})
        body["entry"][3]["resource"]["supportingInfo"].append({"reference": doc_ref})
    return body


async def test_mediation_after_partner_violence_needs_a_safety_assessment_first(http, as_, ids):
    mediator = await _mediator(http, ids)
    r = await post(http, as_, ids, mediation_bundle(ids, mediator), 422)
    assert (rule_of(r), where(r)) == ("mediation-safety-assessment", "Bundle.entry[2].resource.supportingInfo")
    late = assessment("Patient/x", date="2026-11-21T09:00:00Z")  # after the referral was authored
    r = await post(http, as_, ids, mediation_bundle(ids, mediator, late), 422)
    assert rule_of(r) == "mediation-safety-assessment"
    r = await post(http, as_, ids, mediation_bundle(ids, mediator, assessment("Patient/x", status="superseded")),
                   422)
    assert rule_of(r) == "mediation-safety-assessment"
    ref = world.created_ids((await post(http, as_, ids, mediation_bundle(ids, mediator, assessment("Patient/x")),
                                        200)).json())
    assert (await http.get(f"/DocumentReference/{ref['DocumentReference']}",
                           headers=as_(ids["other"]))).status_code == 200  # the mediator reads the assessment


async def test_mediation_without_partner_violence_needs_no_assessment(http, as_, ids):
    mediator = await _mediator(http, ids)
    body = world.referral_bundle(ids, [mediator], code="family-mediation")
    await post(http, as_, ids, body, 200)


def test_rules_read_the_published_value_sets():
    assert consent_rules.value_set("gbv-consent-capacity") == {"self", "parent", "legal-guardian", "caregiver",
                                                                "best-interest-determination"}
    assert set(consent_rules.METHOD_NEEDS) == consent_rules.value_set("gbv-consent-method")
    assert set(consent_rules.ASSENT_ALLOWS) == consent_rules.value_set("gbv-child-assent")
    assert consent_rules.CAREGIVER_CAPACITIES | {consent_rules.BEST_INTEREST} < consent_rules.value_set(
        "gbv-consent-capacity")
