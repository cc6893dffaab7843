"""Who refers to a resource (`Repository.referring_ids`): for a resource the unit created under an id it drew
itself, the unit's own index rows are the answer (no row stored before could name it), through every later write
of the unit; for any other resource, the database's."""
from __future__ import annotations

from sqlalchemy import event

from exchange.context import system_context
from exchange.fhir.definitions import index_name
from exchange.fhir.indexing import index_rows
from exchange.kernel.unit import open_unit

SUBJECT = index_name("ServiceRequest", "subject")  # (the rows of ServiceRequest.subject: `patient`, migration 1300)


def _request(patient_id: str) -> dict:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": f"Patient/{patient_id}"}}


async def _create(repo, resource_type: str, body: dict) -> str:  # noqa: ANN001
    resource_id = repo.new_id(resource_type)
    await repo.create(resource_type, resource_id, body, index_rows(resource_type, body))
    return resource_id


async def test_a_new_resource_is_referred_to_by_what_the_unit_wrote_without_asking_the_database(exchange):
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # noqa: ANN001, ANN002
        statements.append(statement)

    async with open_unit(exchange, system_context(), "test") as unit:
        repo = unit.repo
        patient = await _create(repo, "Patient", {"resourceType": "Patient", "active": True})
        other = await _create(repo, "Patient", {"resourceType": "Patient", "active": True})
        first = await _create(repo, "ServiceRequest", _request(patient))
        event.listen(exchange.db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            assert await repo.referring_ids("ServiceRequest", SUBJECT, [("Patient", patient)]) == [first]
            assert await repo.referring_ids("ServiceRequest", SUBJECT, [("Patient", other)]) == []
            assert statements == []  # (nothing flushed, nothing asked)
        finally:
            event.remove(exchange.db.engine.sync_engine, "before_cursor_execute", seen)
        await unit.flush()  # written: the unit still knows its rows
        second = await _create(repo, "ServiceRequest", _request(patient))
        assert await repo.referring_ids("ServiceRequest", SUBJECT, [("Patient", patient)]) == sorted([first, second])
        moved = await repo.update(await repo.read("ServiceRequest", first), _request(other),
                                  index_rows("ServiceRequest", _request(other)))
        assert moved is not None
        assert await repo.referring_ids("ServiceRequest", SUBJECT, [("Patient", patient)]) == [second]
        assert await repo.referring_ids("ServiceRequest", SUBJECT, [("Patient", other)]) == [first]
        assert await repo.delete(await repo.read("ServiceRequest", second)) is not None
        assert await repo.referring_ids("ServiceRequest", SUBJECT, [("Patient", patient)]) == []

    async with open_unit(exchange, system_context(), "test") as unit:  # another unit: the database answers
        assert await unit.repo.referring_ids("ServiceRequest", SUBJECT, [("Patient", other)]) == [first]
        assert await unit.repo.referring_ids("ServiceRequest", SUBJECT, [("Patient", patient)]) == []
