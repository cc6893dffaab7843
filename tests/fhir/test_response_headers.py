"""What every response carries, whoever asks: `Cache-Control: no-store` (survivor data must not sit in a proxy's or
browser's cache), and links built from the configured base URL, never from the request's Host header."""
from __future__ import annotations

from tests.fhir_checks import patient, task

EVIL = "evil.example.org"


async def test_every_response_says_no_store(client):
    pid = (await client.post("/Patient", json=patient())).json()["id"]
    created = await client.post("/Task", json=task())
    assert created.headers["cache-control"] == "no-store"
    for method, path in [
        ("GET", "/Patient/{pid}"), ("GET", "/Patient/{pid}/_history/1"), ("GET", "/Patient/{pid}/_history"),
        ("GET", "/Patient?identifier=HL-2026-0001"), ("GET", "/Patient/unknown"), ("GET", "/Patient/a%00"),
        ("GET", "/Nothing"), ("GET", "/metadata"), ("GET", "/AuditEvent"), ("GET", "/AuditEvent/$export"),
        ("GET", "/Subscription/$status"), ("GET", "/StructureDefinition"), ("DELETE", "/Task/{tid}"),
    ]:
        r = await client.request(method, path.format(pid=pid, tid=created.json()["id"]))
        assert r.headers["cache-control"] == "no-store", (path, r.status_code, r.headers)


async def test_bundle_and_token_errors_say_no_store(client):
    r = await client.post("", json={"resourceType": "Bundle", "type": "batch",
                                    "entry": [{"request": {"method": "GET", "url": "Patient"}}]})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    r = await client.post("http://127.0.0.1:8080/auth/token", data={"grant_type": "client_credentials"},
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code in range(400, 500) and r.headers["cache-control"] == "no-store"


async def test_links_and_full_urls_ignore_the_host_header(client, settings):
    base = settings.fhir_base_url
    headers = {"Host": EVIL, "X-Forwarded-Host": EVIL, "Forwarded": f"host={EVIL}"}
    created = await client.post("/Patient", json=patient(), headers=headers)
    assert created.headers["location"].startswith(f"{base}/Patient/")
    pid = created.json()["id"]
    await client.post("/Task", json=task(**{"for": {"reference": f"Patient/{pid}"}}))
    responses = [
        await client.get("/Task", params={"_include": "Task:patient", "_count": 1}, headers=headers),
        await client.get(f"/Patient/{pid}/_history", headers=headers),
        await client.get("/StructureDefinition", headers=headers),
        await client.get("/metadata", headers=headers),
        await client.post("", headers=headers, json={"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:3c1e5e4a-0c2b-4f8e-9a43-4e1c1a2f6b70", "resource": patient("HL-9"),
             "request": {"method": "POST", "url": "Patient"}}]}),
    ]
    for r in responses:
        assert r.status_code == 200, r.text
        assert EVIL not in r.text
    bundle = responses[0].json()
    assert all(link["url"].startswith(base) for link in bundle["link"])
    assert all(entry["fullUrl"].startswith(base) for entry in bundle["entry"])
    assert responses[4].json()["entry"][0]["fullUrl"].startswith(base)
