"""A reference that FHIR R4 searches as both `patient` and `subject` is indexed once, as `patient` (issue 12).

Task (both on `for`), ServiceRequest, DocumentReference and Procedure (both on `subject`) define the two search
parameters over the same element, so every write stored each such reference twice: one in seven of a Task's or
ServiceRequest's index rows, each costing PostgreSQL an entry in every index of search_index. The `subject` rows go;
a `subject=` search reads the `patient` rows (`exchange.fhir.definitions.index_name`), and answers as before.

Revision ID: 1300_search_index_patient_once
Revises: 1200_audit_chain_rows
"""
from alembic import op

revision = "1300_search_index_patient_once"
down_revision = "1200_audit_chain_rows"
branch_labels = None
depends_on = None

# (the types as this revision knows them: `SearchParam.indexed_as` in exchange.fhir.definitions)
TYPES = "('Task', 'ServiceRequest', 'DocumentReference', 'Procedure')"
COLUMNS = "system, value, text, date_start, date_end, last_updated"


def upgrade() -> None:
    op.execute(f"DELETE FROM search_index WHERE resource_type IN {TYPES} AND param = 'subject'")


def downgrade() -> None:
    op.execute(f"INSERT INTO search_index (resource_type, resource_id, param, {COLUMNS}) "
               f"SELECT resource_type, resource_id, 'subject', {COLUMNS} FROM search_index "
               f"WHERE resource_type IN {TYPES} AND param = 'patient'")
