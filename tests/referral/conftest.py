"""Partner identities for referral tests: every organisation of the test directory gets a real client with a real
access token (`make_client`, OAuth client credentials); `as_(org_id)` gives the headers of its requests. Requests
without them are made by the exchange itself (the system-context `client`)."""
from __future__ import annotations

import pytest

from exchange.fhir.dates import parse_fhir_date

from tests.conftest import SYSTEM_HEADER

from . import world


@pytest.fixture
async def http(client):
    return client


class As:
    """`as_(org_id)` -> the headers of a request by that organisation (its bearer token)."""

    def __init__(self, make_client) -> None:  # noqa: ANN001
        self.make_client = make_client
        self.tokens: dict[str, str] = {}

    async def add(self, org_id: str) -> None:
        self.tokens[org_id] = (await self.make_client(org_id)).access_token

    def __call__(self, org_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[org_id]}", SYSTEM_HEADER: "0"}


@pytest.fixture
async def as_(make_client) -> As:
    return As(make_client)


@pytest.fixture
async def ids(http, as_) -> dict[str, str]:
    found = await world.directory(http)
    for key in world.ORG_KINDS:
        await as_.add(found[key])
    return found


@pytest.fixture
def make_referral(http, as_, ids):
    """Post a referral transaction as the hotline to the given organisations; return {type: id}."""
    async def make(to_keys=("shelter",), expect: int = 200, **kwargs):  # noqa: ANN001, ANN202
        to = [k if "/" in k else f"Organization/{ids[k]}" for k in to_keys]
        r = await http.post("", json=world.referral_bundle(ids, to, **kwargs), headers=as_(ids["hotline"]))
        assert r.status_code == expect, r.text
        return world.created_ids(r.json()) if expect == 200 else r
    return make


async def attach_document(http, headers: dict, ref: dict[str, str], author: str) -> dict[str, str]:  # noqa: ANN001
    """Post a DocumentReference about the referral's Patient (by `author`, with the caller's `headers`) and add it to
    the ServiceRequest's supportingInfo; `ref` (from make_referral) gains its id."""
    r = await http.post("/DocumentReference", json=world.document(ref["Patient"], author), headers=headers)
    assert r.status_code == 201, r.text
    ref["DocumentReference"] = r.json()["id"]
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=headers)).json()
    request["supportingInfo"].append({"reference": f"DocumentReference/{ref['DocumentReference']}"})
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json=request, headers=headers)
    assert r.status_code == 200, r.text
    return ref


async def change_task(http, headers: dict, task_id: str, if_match: bool = False, **changes):  # noqa: ANN001
    """Read the Task as the caller, apply `changes` (None removes an element), PUT it back."""
    current = (await http.get(f"/Task/{task_id}", headers=headers)).json()
    body = {k: v for k, v in {**current, **changes}.items() if v is not None}
    extra = {"If-Match": f'W/"{current["meta"]["versionId"]}"'} if if_match else {}
    return await http.put(f"/Task/{task_id}", json=body, headers={**headers, **extra})


async def deadlines_of(http, task_id: str):  # noqa: ANN001
    """(acknowledgement deadline, action deadline) of the Task as stored by the exchange (aware datetimes)."""
    from exchange.referral import deadlines

    task = (await http.get(f"/Task/{task_id}")).json()
    acknowledge, action = deadlines.stored_of(task)
    assert acknowledge and action, task.get("status")
    return (parse_fhir_date(acknowledge)[0], parse_fhir_date(action)[1])


def rule_of(response) -> str:  # noqa: ANN001
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    diagnostics = body["issue"][0]["diagnostics"]
    if diagnostics.startswith("Bundle.entry["):  # a transaction names the entry first
        diagnostics = diagnostics.split(": ", 1)[1]
    return diagnostics.split(":")[0]
