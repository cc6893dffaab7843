"""FHIR R4 RESTful rules (http.html, search.html) on resources the partner creates itself."""
from __future__ import annotations

import httpx

from conformance.runner import Kit, check, expect, expect_status

HTTP = "FHIR R4 http.html"
SEARCH = "FHIR R4 search.html"
CASE = "https://conformance-kit.example.org/case"


def _patient(code: str, kit: Kit) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": CASE, "value": code}], "gender": "female",
            "managingOrganization": {"reference": f"Organization/{kit.me.organization_id}"}}


def own_patient(kit: Kit) -> dict:
    """A Patient the partner created for these checks (created once)."""
    if "patient" not in kit.state:
        r = expect_status(kit.me.http.post("/Patient", json=_patient(f"KIT-{id(kit)}", kit)), 201)
        kit.state["patient"] = r.json()
    return kit.state["patient"]


def outcome(r: httpx.Response) -> dict:
    expect(r.headers.get("content-type", "").startswith("application/fhir+json"),
           f"error {r.status_code} is not application/fhir+json")
    body = r.json()
    expect(body.get("resourceType") == "OperationOutcome", f"error {r.status_code} is not an OperationOutcome")
    expect(bool(body.get("issue")), "OperationOutcome without issue")
    return body


@check("http-metadata", "http", "GET /metadata is a CapabilityStatement for FHIR 4.0.1 in application/fhir+json",
       f"{HTTP} §capabilities")
def metadata(kit: Kit) -> None:
    r = expect_status(httpx.get(f"{kit.base_url}/fhir/metadata", timeout=20), 200)
    expect(r.headers["content-type"].startswith("application/fhir+json"), "not application/fhir+json")
    body = r.json()
    expect(body.get("resourceType") == "CapabilityStatement" and body.get("fhirVersion") == "4.0.1",
           "not an R4 4.0.1 CapabilityStatement")
    kit.state["capability"] = body


@check("http-create", "http", "create answers 201 with Location [base]/[type]/[id]/_history/[vid], ETag W/\"1\", "
       "Last-Modified, and ignores the client's id", f"{HTTP} §create")
def create(kit: Kit) -> None:
    body = {**_patient(f"KIT-C-{id(kit)}", kit), "id": "client-chosen"}
    r = expect_status(kit.me.http.post("/Patient", json=body), 201)
    made = r.json()
    expect(made["id"] != "client-chosen", "the client's id was kept")
    expect(r.headers.get("etag") == 'W/"1"', f"ETag {r.headers.get('etag')!r}")
    expect(r.headers.get("location", "").endswith(f"/Patient/{made['id']}/_history/1"), "Location is wrong")
    expect("last-modified" in r.headers, "Last-Modified missing")


@check("http-read-etag", "http", "read answers the resource with its ETag; vread answers the version",
       f"{HTTP} §read, §vread")
def read(kit: Kit) -> None:
    patient = own_patient(kit)
    r = expect_status(kit.me.http.get(f"/Patient/{patient['id']}"), 200)
    expect(r.headers.get("etag") == f'W/"{patient["meta"]["versionId"]}"', "ETag differs from meta.versionId")
    expect_status(kit.me.http.get(f"/Patient/{patient['id']}/_history/1"), 200)
    expect_status(kit.me.http.head(f"/Patient/{patient['id']}"), 200)


@check("http-if-match", "http", "update with a stale If-Match answers 412 and changes nothing",
       f"{HTTP} §update (managing resource contention)")
def if_match(kit: Kit) -> None:
    patient = own_patient(kit)
    current = expect_status(kit.me.http.get(f"/Patient/{patient['id']}"), 200).json()
    version = int(current["meta"]["versionId"])
    r = kit.me.http.put(f"/Patient/{patient['id']}", json=current, headers={"If-Match": f'W/"{version + 5}"'})
    expect_status(r, 412)
    outcome(r)
    r = expect_status(kit.me.http.put(f"/Patient/{patient['id']}", json=current,
                                      headers={"If-Match": f'W/"{version}"'}), 200)
    expect(r.headers.get("etag") == f'W/"{version + 1}"', "the update did not make a new version")
    kit.state["patient"] = r.json()


@check("http-update-id", "http", "an update whose body id differs from the URL id answers 400", f"{HTTP} §update")
def update_id(kit: Kit) -> None:
    patient = own_patient(kit)
    r = kit.me.http.put(f"/Patient/{patient['id']}", json={**patient, "id": "another-id"})
    expect_status(r, 400)
    outcome(r)


@check("http-no-update-create", "http", "an update of an unknown id answers 405 (no update as create)",
       f"{HTTP} §update")
def no_update_create(kit: Kit) -> None:
    r = kit.me.http.put("/Patient/kit-unknown-id", json={**_patient("KIT-U", kit), "id": "kit-unknown-id"})
    expect_status(r, 405)
    outcome(r)


@check("http-prefer", "http", "Prefer: return=minimal answers no body; return=OperationOutcome an OperationOutcome",
       f"{HTTP} §Prefer")
def prefer(kit: Kit) -> None:
    r = expect_status(kit.me.http.post("/Patient", json=_patient(f"KIT-P-{id(kit)}", kit),
                                       headers={"Prefer": "return=minimal"}), 201)
    expect(r.content == b"", "return=minimal sent a body")
    r = expect_status(kit.me.http.post("/Patient", json=_patient(f"KIT-Q-{id(kit)}", kit),
                                       headers={"Prefer": "return=OperationOutcome"}), 201)
    expect(r.json().get("resourceType") == "OperationOutcome", "return=OperationOutcome sent no OperationOutcome")


@check("http-search-paging", "http", "search answers a searchset Bundle whose self link echoes the parameters (or, "
       "for a search on an identifying parameter, an opaque page token: no value in a URL) and whose next link pages",
       f"{SEARCH} §Paging, §Searchset; the guide: safety (no identifying value in URLs)")
def paging(kit: Kit) -> None:
    own_patient(kit)
    r = expect_status(kit.me.http.get("/Patient", params={"identifier": f"{CASE}|", "_count": "1"}), 200)
    bundle = r.json()
    expect(bundle.get("type") == "searchset", "not a searchset")
    links = {link["relation"]: link["url"] for link in bundle.get("link", [])}
    expect("self" in links and ("identifier=" in links["self"] or "_page_token=" in links["self"]),
           "the self link neither echoes the parameters nor carries a page token")
    expect(len(bundle.get("entry", [])) == 1, "_count=1 did not page")
    if bundle.get("total", 0) > 1:
        expect("next" in links, "no next link though more matches exist")
        nxt = expect_status(kit.me.http.get(links["next"]), 200).json()
        expect(nxt["entry"][0]["resource"]["id"] != bundle["entry"][0]["resource"]["id"], "next repeats page 1")
    r = expect_status(kit.me.http.post("/Patient/_search", content=f"identifier={CASE}|",
                                       headers={"Content-Type": "application/x-www-form-urlencoded"}), 200)
    expect(r.json().get("type") == "searchset", "POST _search is not a searchset")


@check("http-errors", "http", "errors are OperationOutcomes in application/fhir+json (unknown type 404, unknown id "
       "404, XML 406, bad JSON 400)", f"{HTTP} §HTTP status codes, §OperationOutcome")
def errors(kit: Kit) -> None:
    outcome(expect_status(kit.me.http.get("/NoSuchType/1"), 404))
    outcome(expect_status(kit.me.http.get("/Patient/kit-no-such-id"), 404))
    outcome(expect_status(kit.me.http.get("/Patient", headers={"Accept": "application/fhir+xml"}), 406))
    outcome(expect_status(kit.me.http.post("/Patient", content=b"{not json"), 400))


@check("http-405-allow", "http", "405 answers carry Allow", "RFC 9110 §15.5.6; FHIR R4 http.html")
def allow(kit: Kit) -> None:
    r = expect_status(kit.me.http.request("PATCH", "/Patient/kit-any", json={}), 405)
    expect(bool(r.headers.get("allow")), "405 without Allow")
