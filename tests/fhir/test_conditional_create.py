"""Conditional create (If-None-Exist): 0 -> 201, 1 -> 200, >1 -> 412, and exactly one under concurrency."""
from __future__ import annotations

import asyncio

from tests.fhir_checks import assert_outcome, patient

CONDITION = "identifier=https://hotline.example.org/case|HL-42"


async def test_no_match_creates(client):
    r = await client.post("/Patient", json=patient("HL-42"), headers={"If-None-Exist": CONDITION})
    assert r.status_code == 201


async def test_one_match_returns_it_with_200(client):
    first = (await client.post("/Patient", json=patient("HL-42"))).json()
    r = await client.post("/Patient", json=patient("HL-42"), headers={"If-None-Exist": CONDITION})
    assert r.status_code == 200
    assert r.json()["id"] == first["id"]
    assert (await client.get("/Patient?_summary=count")).json()["total"] == 1


async def test_several_matches_is_412(client):
    await client.post("/Patient", json=patient("HL-42"))
    await client.post("/Patient", json=patient("HL-42"))
    assert_outcome(await client.post("/Patient", json=patient("HL-42"), headers={"If-None-Exist": CONDITION}), 412)


async def test_condition_with_unknown_parameter_is_400(client):
    r = await client.post("/Patient", json=patient(), headers={"If-None-Exist": "favourite=1"})
    assert "favourite" not in str(assert_outcome(r, 400, text="Search parameter 1 is not a search parameter"))


async def test_twenty_concurrent_conditional_creates_leave_exactly_one(client):
    async def attempt():
        return await client.post("/Patient", json=patient("HL-42"), headers={"If-None-Exist": CONDITION})

    responses = await asyncio.gather(*(attempt() for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], statuses
    assert len({r.json()["id"] for r in responses}) == 1
    found = (await client.get(f"/Patient?{CONDITION}")).json()
    assert found["total"] == 1


async def test_concurrent_conditional_creates_spelled_differently_leave_exactly_one(client):
    spellings = [CONDITION, "identifier=HL-42", "identifier=https://hotline.example.org/case|HL-42&_count=5",
                 "Patient?identifier=HL-42"]

    async def attempt(i: int):
        return await client.post("/Patient", json=patient("HL-42"), headers={"If-None-Exist": spellings[i % 4]})

    responses = await asyncio.gather(*(attempt(i) for i in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], statuses
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await client.get(f"/Patient?{CONDITION}")).json()["total"] == 1
