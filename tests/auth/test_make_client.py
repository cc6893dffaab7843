"""The make_client fixture end to end: a real token from the token endpoint opens the FHIR API; no token, no access."""


async def test_partner_with_token_reads_directory(app, make_org, make_client):
    org = await make_org("Safe Haven", kind="shelter")
    partner = await make_client(org, scopes="system/*.rs")
    r = await partner.get(f"/Organization/{org}")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Safe Haven"


async def test_request_without_token_is_401_with_challenge(app, make_org):
    import httpx

    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080/fhir") as http:
        r = await http.get("/Organization")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["resourceType"] == "OperationOutcome"
        assert (await http.get("/metadata")).status_code == 200
        assert (await http.get("/.well-known/smart-configuration")).status_code == 200
