"""Paging links of searches on identifying parameters carry an opaque, expiring token, never the searched value."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from tests.fhir_checks import assert_outcome, patient, task

CASE = "HL-SECRET-77"
SYSTEM = "https://hotline.example.org/case"


def _links(bundle: dict) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path.removeprefix("/fhir") + "?" + parts.query


async def _three(client) -> list[str]:
    return [(await client.post("/Patient", json=patient(CASE))).json()["id"] for _ in range(3)]


async def test_paging_links_of_an_identifier_search_carry_no_searched_value(client):
    ids = await _three(client)
    first = (await client.get("/Patient", params={"identifier": f"{SYSTEM}|{CASE}", "_count": 1})).json()
    links = _links(first)
    assert set(links) >= {"self", "first", "next"}
    for url in links.values():
        assert CASE not in url and "identifier" not in url
        assert set(dict(parse_qsl(urlsplit(url).query))) <= {"_page_token", "_count", "_offset"}
    seen = [first["entry"][0]["resource"]["id"]]
    page = first
    while "next" in _links(page):
        page = (await client.get(_path(_links(page)["next"]))).json()
        assert page["total"] == 3
        seen.append(page["entry"][0]["resource"]["id"])
    assert sorted(seen) == sorted(ids)
    again = (await client.get(_path(links["self"]))).json()
    assert again["entry"][0]["resource"]["id"] == seen[0]


async def test_a_page_token_is_good_only_for_the_client_that_searched(client, make_client, make_org):
    await _three(client)
    first = (await client.get("/Patient", params={"identifier": CASE, "_count": 1})).json()
    other = await make_client(await make_org("Other"), scopes="system/Patient.rs")
    r = await other.get(_path(_links(first)["next"]))
    assert_outcome(r, 400, expression="_page_token")


async def test_an_expired_or_altered_page_token_is_400(client, exchange):
    await _three(client)
    first = (await client.get("/Patient", params={"identifier": CASE, "_count": 1})).json()
    token = dict(parse_qsl(urlsplit(_links(first)["next"]).query))["_page_token"]
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert_outcome(await client.get("/Patient", params={"_page_token": altered}), 400, expression="_page_token")
    assert_outcome(await client.get("/Task", params={"_page_token": token}), 400, expression="_page_token")
    r = await client.get("/Patient", params={"_page_token": token, "identifier": "HL-OTHER"})
    assert_outcome(r, 400, expression="_page_token")
    exchange.settings.search_page_token_seconds = -1
    expired = (await client.get("/Patient", params={"identifier": CASE, "_count": 1})).json()
    assert_outcome(await client.get(_path(_links(expired)["next"])), 400, expression="_page_token")


async def test_name_searches_get_tokens_and_other_searches_keep_readable_links(client):
    await client.post("/Organization", json={"resourceType": "Organization", "name": "Safe House"})
    named = (await client.get("/Organization", params={"name": "safe"})).json()
    assert all("safe" not in link["url"].lower().replace("/fhir", "") for link in named["link"])
    await client.post("/Task", json=task())
    plain = (await client.get("/Task", params={"status": "requested"})).json()
    assert "status=requested" in _links(plain)["self"]
