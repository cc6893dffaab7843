"""Property: no search and no resource value makes the exchange answer 5xx (hypothesis, derandomized, bounded).

The strategies mix what partners send by mistake and what attackers try: calendar edges, prefixes, separators,
control characters, huge numbers, long and non-ASCII text, in every search parameter the exchange knows and in
the elements of the resources it stores.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.fhir.definitions import RESOURCE_TYPES, SEARCH_PARAMS
from exchange.fhir.search import RESULT_PARAMS

NASTY = ["9999-12-31", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "gt9999", "lt0001", "2026-02-30",
         str(2 ** 63), str(-2 ** 63), "-1", "0", "1e309", "\x00", "a\x00b", "\u202e\u0627\u0645\u0644", "|", "||", ",",
         "\\", "\\,", "Patient/", "/", "Organization/" + "a" * 80, "x" * 300, "%00", "*", "'", '"', ";--", "\ud7ff"]
TEXT = st.one_of(st.sampled_from(NASTY), st.builds(str.__add__, st.sampled_from(["eq", "gt", "ap", "sa"]),
                                                   st.sampled_from(NASTY)), st.text(max_size=30))
PARAMS_OF = {t: sorted(SEARCH_PARAMS.get(t, {})) + ["_id", "_lastUpdated", *RESULT_PARAMS] for t in RESOURCE_TYPES}
MODIFIER = st.sampled_from(["", ":missing", ":not", ":exact", ":contains", ":Patient", ":iterate", ":x"])


@st.composite
def searches(draw) -> tuple[str, list[tuple[str, str]]]:
    resource_type = draw(st.sampled_from(sorted(RESOURCE_TYPES)))
    names = st.one_of(st.sampled_from(PARAMS_OF[resource_type]), st.text(max_size=10))
    name = st.one_of(names, st.builds(str.__add__, names, MODIFIER))
    params = draw(st.lists(st.tuples(name, TEXT), min_size=1, max_size=4))
    return resource_type, params


ELEMENT_VALUES = st.one_of(TEXT, st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.booleans(), st.none(),
                           st.lists(TEXT, max_size=2), st.dictionaries(TEXT, TEXT, max_size=2))
TASK_ELEMENTS = ["authoredOn", "lastModified", "status", "intent", "priority", "description", "identifier",
                 "owner", "for", "restriction", "businessStatus", "note", "id", "meta", "extension", "input"]


@st.composite
def tasks(draw) -> dict:
    body = {"resourceType": "Task", "status": "requested", "intent": "order"}
    for element in draw(st.lists(st.sampled_from(TASK_ELEMENTS), max_size=3, unique=True)):
        body[element] = draw(st.one_of(ELEMENT_VALUES, st.sampled_from([
            {"period": {"end": v}} for v in NASTY[:3]] + [{"reference": v} for v in NASTY[-10:]] + [
            [{"system": v, "value": v}] for v in NASTY[:6]])))
    return body


BOUNDED = settings(max_examples=50, derandomize=True, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@BOUNDED
@given(search=searches())
async def test_no_search_answers_5xx(client, search):
    resource_type, params = search
    r = await client.get(f"/{resource_type}", params=params)
    assert r.status_code < 500, (resource_type, params, r.text)
    r = await client.post(f"/{resource_type}/_search", data=dict(params),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code < 500, (resource_type, params, r.text)


@BOUNDED
@given(body=tasks())
async def test_no_resource_value_answers_5xx(client, body):
    r = await client.post("/Task", json=body)
    assert r.status_code < 500, (body, r.text)
    if r.status_code == 201:
        assert (await client.get(f"/Task/{r.json()['id']}")).status_code == 200
