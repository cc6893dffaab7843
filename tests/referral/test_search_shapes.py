"""Searches of one shape share one compiled statement (`Repository.search_shaped`): each still finds its own
matches, with its own values, under its own caller's need to know, paging and total."""
from __future__ import annotations


async def _inbox(http, headers: dict, owner: str, query: str = "") -> dict:  # noqa: ANN001
    r = await http.get(f"/Task?owner={owner}&status=requested&_sort=-_lastUpdated{query}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


async def test_searches_of_one_shape_find_each_their_own_tasks(http, as_, ids, make_referral):
    to_shelter = [(await make_referral(("shelter",)))["Task"] for _ in range(3)]
    to_clinic = (await make_referral(("clinic",), code="medical-care"))["Task"]
    shelter, clinic = as_(ids["shelter"]), as_(ids["clinic"])
    for _ in range(2):  # (the second time round, each search runs the statement the first compiled)
        assert _ids(await _inbox(http, shelter, f"Organization/{ids['shelter']}")) == to_shelter[::-1]
        assert _ids(await _inbox(http, clinic, f"Organization/{ids['clinic']}")) == [to_clinic]
    ascending = (await http.get(f"/Task?owner=Organization/{ids['shelter']}&status=requested", headers=shelter)).json()
    assert _ids(ascending) == to_shelter


async def test_a_search_of_a_known_shape_keeps_the_callers_need_to_know(http, as_, ids, make_referral):
    task_id = (await make_referral(("shelter",)))["Task"]
    owner = f"Organization/{ids['shelter']}"
    assert _ids(await _inbox(http, as_(ids["shelter"]), owner)) == [task_id]
    assert _ids(await _inbox(http, as_(ids["hotline"]), owner)) == [task_id]  # (the sender is a party)
    unrelated = await _inbox(http, as_(ids["other"]), owner)
    assert _ids(unrelated) == [] and unrelated["total"] == 0
    assert _ids(await _inbox(http, as_(ids["shelter"]), owner)) == [task_id]


async def test_a_search_of_a_known_shape_pages_and_counts(http, as_, ids, make_referral):
    tasks = [(await make_referral(("shelter",)))["Task"] for _ in range(5)]
    shelter, owner = as_(ids["shelter"]), f"Organization/{ids['shelter']}"
    newest_first = tasks[::-1]
    for query, page in [("&_count=2", newest_first[:2]), ("&_count=2&_offset=2", newest_first[2:4]),
                        ("&_count=2&_offset=4", newest_first[4:]), ("&_count=2&_offset=6", []),
                        ("&_count=5", newest_first), ("&_count=9", newest_first)]:
        bundle = await _inbox(http, shelter, owner, query)
        assert _ids(bundle) == page and bundle["total"] == 5, query
    counted = await _inbox(http, shelter, owner, "&_summary=count")
    assert counted["total"] == 5 and "entry" not in counted
    assert "total" not in await _inbox(http, shelter, owner, "&_count=2&_total=none")
    assert (await _inbox(http, as_(ids["other"]), owner, "&_summary=count"))["total"] == 0


async def test_a_deleted_task_is_neither_found_nor_counted(http, as_, ids, make_referral):
    tasks = [(await make_referral(("shelter",)))["Task"] for _ in range(4)]
    r = await http.delete(f"/Task/{tasks[1]}")  # (the exchange itself)
    assert r.status_code == 204, r.text
    shelter, owner = as_(ids["shelter"]), f"Organization/{ids['shelter']}"
    full = await _inbox(http, shelter, owner, "&_count=2")  # a full page: the total is counted
    assert _ids(full) == [tasks[3], tasks[2]] and full["total"] == 3
    assert (await _inbox(http, shelter, owner, "&_summary=count"))["total"] == 3
