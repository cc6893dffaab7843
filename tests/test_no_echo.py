"""Refusals name the element and the rule, never the value sent: a marker put in each place a partner can put a
value is found neither in the response (body, headers, links) nor in any log line."""
from __future__ import annotations

import logging

from tests.fhir_checks import patient, task

M = "Zaynab Qx7"  # a name, as a careless partner might put it anywhere
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _sub(**changes) -> dict:
    from tests.notify.referrals import subscription

    return subscription("https://shelter.example.org/hook", ["Task?status=requested"]) | changes


CASES = {
    "code in a bound element": (400, "POST", "/Task", {"json": task(status=M)}),
    "code in a data type binding": (400, "POST", "/Patient", {"json": patient(gender="female", name=[{"use": M}])}),
    "unknown element name": (400, "POST", "/Patient", {"json": {**patient(), M: "x"}}),
    "unknown nested element name": (400, "POST", "/Patient", {"json": patient(name=[{"text": "A", M: "x"}])}),
    "resourceType": (400, "POST", "/Patient", {"json": {"resourceType": M}}),
    "wrong primitive": (400, "POST", "/Patient", {"json": patient(birthDate=M)}),
    "wrong instant": (400, "POST", "/Task", {"json": task(authoredOn=M)}),
    "reference": (400, "POST", "/Task", {"json": task(owner={"reference": f"Organization/{M}"})}),
    "id in the body": (400, "POST", "/Patient", {"json": patient(id=M)}),
    "If-Match": (400, "PUT", "/Patient/p1", {"json": patient(id="p1"), "headers": {"If-Match": M}}),
    "If-None-Exist": (400, "POST", "/Patient", {"json": patient(), "headers": {"If-None-Exist": f"{M}?identifier=x"}}),
    "If-None-Exist parameter": (400, "POST", "/Patient", {"json": patient(), "headers": {"If-None-Exist": f"{M}=1"}}),
    "_include": (400, "GET", f"/Task?_include={M}", {}),
    "_revinclude": (400, "GET", f"/Patient?_revinclude=Task:patient:{M}", {}),
    "_format": (406, "GET", f"/Patient?_format={M}", {}),
    "Accept": (406, "GET", "/Patient", {"headers": {"Accept": M}}),
    "Content-Type": (415, "POST", "/Patient", {"content": b"{}", "headers": {"Content-Type": M}}),
    "_count": (400, "GET", f"/Patient?_count={M}", {}),
    "_offset": (400, "GET", f"/Patient?_offset={M}", {}),
    "_sort": (400, "GET", f"/Patient?_sort={M}", {}),
    "_summary": (400, "GET", f"/Patient?_summary={M}", {}),
    "_total": (400, "GET", f"/Patient?_total={M}", {}),
    "unknown search parameter (strict)": (400, "GET", f"/Patient?{M}=1", {"headers": {"Prefer": "handling=strict"}}),
    "modifier": (400, "GET", f"/Task?status:{M}=x", {}),
    "date search value": (400, "GET", f"/Task?authored-on={M}", {}),
    "reference search value": (400, "GET", f"/Task?owner=Organization/{M}", {}),
    "_id search value": (400, "GET", f"/Patient?_id={M}", {}),
    "missing modifier value": (400, "GET", f"/Task?owner:missing={M}", {}),
    "POST _search parameter": (400, "POST", "/Patient/_search", {"content": f"{M}=1&_count={M}".encode(),
                                                           "headers": FORM}),
    "resource type in the URL": (404, "GET", f"/{M}", {}),
    "id in the URL": (400, "GET", f"/Patient/{M}", {}),
    "version in the URL": (404, "GET", f"/Patient/p1/_history/{M}", {}),
    "history _count": (400, "GET", f"/Patient/p1/_history?_count={M}", {}),
    "Bundle.type": (400, "POST", "", {"json": {"resourceType": "Bundle", "type": M}}),
    "Bundle entry method": (200, "POST", "", {"json": {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": M, "url": "Patient"}}]}}),
    "Bundle entry url": (200, "POST", "", {"json": {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{M}"}}, {"request": {"method": "GET", "url": M}}]}}),
    "Bundle entry search": (200, "POST", "", {"json": {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient?_count={M}&_include={M}"}}]}}),
    "Bundle entry ifMatch": (400, "POST", "", {"json": {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": "Patient/p1", "ifMatch": M}, "resource": patient(id="p1")}]}}),
    "malformed JSON": (400, "POST", "/Patient", {"content": f'{{"resourceType": "Patient", "x": {M}}}'.encode()}),
    "Subscription criteria": (422, "POST", "/Subscription", {"json": _sub(criteria=M)}),
    "Subscription channel type": (400, "POST", "/Subscription", {"json": _sub(channel={"type": M})}),
    "Subscription status": (400, "POST", "/Subscription", {"json": _sub(status=M)}),
    "Subscription end": (400, "POST", "/Subscription", {"json": _sub(end=M)}),
    "$status parameter": (400, "GET", f"/Subscription/$status?{M}=1", {}),
    "$events parameter": (400, "GET", f"/Subscription/s1/$events?eventsSinceNumber={M}", {}),
    "AuditEvent parameter": (400, "GET", f"/AuditEvent?{M}=1", {}),
    "AuditEvent entity": (400, "GET", f"/AuditEvent?entity={M}", {}),
    "AuditEvent _sort": (400, "GET", f"/AuditEvent?_sort={M}", {}),
    "$export _since": (400, "GET", f"/AuditEvent/$export?_since={M}", {}),
    "$export parameter": (400, "GET", f"/AuditEvent/$export?{M}=1", {}),
    "checkpoint tree_size": (400, "GET", f"http://127.0.0.1:8080/.well-known/audit-checkpoint?tree_size={M}", {}),
    "X-Request-ID": (404, "GET", "/Patient/unknown", {"headers": {"X-Request-ID": M}}),
    "conformance search parameter": (400, "GET", f"/StructureDefinition?{M}=1",  # lenient: ignored (issue 13)
                                     {"headers": {"Prefer": "handling=strict"}}),
    "token grant_type": (400, "POST", "http://127.0.0.1:8080/auth/token",
                         {"content": f"grant_type={M}&scope={M}".encode(), "headers": FORM}),
    "token assertion": (400, "POST", "http://127.0.0.1:8080/auth/token", {"content": (
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3A"
        f"jwt-bearer&client_assertion={M}&scope={M}").encode(), "headers": FORM}),
}


async def test_a_refused_value_appears_in_no_response_and_no_log_line(client, caplog):
    """One exchange for every place (cheaper than one per place); the failure lists every place that echoed."""
    echoed, wrong_status = [], []
    for place, (status, method, path, kwargs) in CASES.items():
        caplog.clear()
        with caplog.at_level(logging.INFO):
            r = await client.request(method, path, **kwargs)
        if r.status_code != status or (status == 200 and not all(
                e["response"]["status"][0] == "4" for e in r.json()["entry"])):
            wrong_status.append((place, r.status_code))
        shown = r.text + " ".join(f"{k}: {v}" for k, v in r.headers.items())
        if any(form in shown or form in caplog.text for form in (M, M.replace(" ", "+"), M.replace(" ", "%20"))):
            echoed.append(place)
    assert echoed == [] and wrong_status == []
