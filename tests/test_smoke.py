async def test_metadata(client):
    r = await client.get("/metadata")
    assert r.status_code == 200
    assert r.json()["fhirVersion"] == "4.0.1"


async def test_create_read(client):
    r = await client.post("/Organization", json={"resourceType": "Organization", "name": "Shelter"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["etag"] == 'W/"1"'
    r2 = await client.get(f"/Organization/{body['id']}")
    assert r2.status_code == 200
    assert r2.json()["name"] == "Shelter"
