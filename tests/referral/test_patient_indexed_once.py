"""Migration 1300: a reference FHIR searches as both `patient` and `subject` (Task.for, ServiceRequest.subject,
DocumentReference.subject, Procedure.subject) has one index row, `patient`; `subject=` searches read it and answer as
before, and the CapabilityStatement still states both parameters."""
from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from exchange.fhir.definitions import SEARCH_PARAMS, index_name

from .conftest import attach_document

once = importlib.import_module("exchange.store.migrations.versions.1300_search_index_patient_once")


async def _rows(exchange, param: str) -> dict[str, int]:  # noqa: ANN001
    """Index rows of `param` by resource type."""
    async with exchange.db.engine.connect() as conn:
        found = (await conn.execute(sa.text("SELECT resource_type, count(*) FROM search_index WHERE param = :p "
                                            "GROUP BY resource_type"), {"p": param})).all()
    return {t: n for t, n in found}


async def _found(http, headers: dict, resource_type: str, **params) -> list[str]:  # noqa: ANN001
    r = await http.get(f"/{resource_type}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return sorted(e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match")


async def _both_names_answer(http, headers: dict, ref: dict[str, str]) -> None:  # noqa: ANN001
    patient = f"Patient/{ref['Patient']}"
    for resource_type in ("Task", "ServiceRequest", "DocumentReference"):
        for name in ("patient", "subject"):
            assert await _found(http, headers, resource_type, **{name: patient}) == [ref[resource_type]], name
            assert await _found(http, headers, resource_type, **{name: "Patient/nobody"}) == [], name
            assert await _found(http, headers, resource_type, **{name: ref["Patient"]}) == [ref[resource_type]]
            assert await _found(http, headers, resource_type, **{f"{name}:missing": "false"}) == \
                [ref[resource_type]], name
            assert await _found(http, headers, resource_type, **{f"{name}:missing": "true"}) == [], name
    # the first page read off the reference's index rows in time order (`search_sql.plan_search`)
    assert await _found(http, headers, "Task", subject=patient, _sort="-_lastUpdated") == [ref["Task"]]
    assert await _found(http, headers, "Task", subject=patient, status="requested") == [ref["Task"]]
    r = await http.get("/Task", params={"subject": patient, "_include": "Task:patient"}, headers=headers)
    assert r.status_code == 200, r.text
    assert {(e["resource"]["resourceType"], e["search"]["mode"]) for e in r.json()["entry"]} == {
        ("Task", "match"), ("Patient", "include")}


async def test_a_patient_reference_is_indexed_once_and_found_by_both_names(http, as_, ids, make_referral, exchange):
    ref = await make_referral(categories=("referral", "incident"))
    hotline = as_(ids["hotline"])
    await attach_document(http, hotline, ref, ids["hotline"])
    assert await _rows(exchange, "subject") == {}
    patients = await _rows(exchange, "patient")
    assert patients["Task"] == 1 and patients["ServiceRequest"] == 1 and patients["DocumentReference"] == 1
    await _both_names_answer(http, hotline, ref)


async def test_migration_1300_removes_the_subject_rows_and_the_searches_answer_alike(http, as_, ids, make_referral,
                                                                                    exchange):
    ref = await make_referral(categories=("referral", "incident"))
    hotline = as_(ids["hotline"])
    await attach_document(http, hotline, ref, ids["hotline"])

    def run(step):  # noqa: ANN001, ANN202
        def go(sync_conn) -> None:  # noqa: ANN001
            with Operations.context(MigrationContext.configure(sync_conn)):
                step()
        return go

    async with exchange.db.engine.begin() as conn:
        await conn.run_sync(run(once.downgrade))  # (the rows as revision 1200 stored them)
    shared = {t: n for t, n in (await _rows(exchange, "patient")).items() if t != "Consent"}  # (Consent: no subject)
    assert await _rows(exchange, "subject") == shared and shared["Task"] == 1
    async with exchange.db.engine.begin() as conn:
        await conn.run_sync(run(once.upgrade))
    assert await _rows(exchange, "subject") == {}
    await _both_names_answer(http, hotline, ref)


async def test_the_capability_statement_states_patient_and_subject(http):
    r = await http.get("/metadata")
    assert r.status_code == 200, r.text
    stated = {res["type"]: {p["name"] for p in res.get("searchParam", [])} for res in r.json()["rest"][0]["resource"]}
    for resource_type in ("Task", "ServiceRequest", "DocumentReference", "Procedure"):
        assert {"patient", "subject"} <= stated[resource_type], resource_type


def test_a_parameter_shares_only_the_rows_of_one_indexing_the_same_element():
    for resource_type, params in SEARCH_PARAMS.items():
        for name, param in params.items():
            other = index_name(resource_type, name)
            if other != name:
                theirs = params[other]
                assert (param.type, param.paths, param.targets, param.extension_url) == \
                    (theirs.type, theirs.paths, theirs.targets, theirs.extension_url), (resource_type, name)
                assert index_name(resource_type, other) == other
