"""Combined index key owner+status of Tasks (issue 12): the rows the write path now keeps, for the Tasks stored before.

An inbox search (`Task?owner=...&status=requested`) finds its Tasks by this one key instead of probing every Task
the organisation ever received (`exchange.fhir.indexing.COMBINED_KEYS`).

Revision ID: 0800_owner_status
Revises: 0600_recorder
"""
from alembic import op

revision = "0800_owner_status"
down_revision = "0600_recorder"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO search_index (resource_type, resource_id, param, system, value) "
        "SELECT DISTINCT o.resource_type, o.resource_id, 'owner+status', o.system, o.value || '|' || s.value "
        "FROM search_index o JOIN search_index s ON s.resource_type = o.resource_type "
        "AND s.resource_id = o.resource_id AND s.param = 'status' "
        "WHERE o.resource_type = 'Task' AND o.param = 'owner' AND o.value IS NOT NULL AND s.value IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM search_index c WHERE c.resource_type = 'Task' "
        "AND c.resource_id = o.resource_id AND c.param = 'owner+status')")


def downgrade() -> None:
    op.execute("DELETE FROM search_index WHERE resource_type = 'Task' AND param = 'owner+status'")
