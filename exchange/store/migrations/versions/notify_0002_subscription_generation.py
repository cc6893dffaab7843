"""Subscriptions' generation: a counter every change to which subscriptions are live moves, in the changing
transaction (issue 12).

Every write of a Task or ServiceRequest asked PostgreSQL for the live subscriptions of its topics: one statement of
its own on every write, though the answer changes only when a Subscription is created, updated, switched off or
errored. Now each process keeps the live subscriptions in memory with the generation they were read at, and a write
reads the generation along with its bearer check (exchange.notify.outbox says why that is exact). Triggers move it
on every insert and delete of a state row and on every update of the columns the outbox reads (status, spec,
topic, organization_id; not the event counter, the lease or the retry times, which every delivery updates), whoever
changes the row: the Subscription rule, the dispatcher, a background job, an operator's SQL (TRUNCATE too). On
PostgreSQL before the row changes: transactions that change subscriptions take the counter's row lock before a
subscription row's, so two that change several never wait on each other in opposite orders. An empty table reads as
generation 0 (the first change inserts the row).

Revision ID: notify_0002
Revises: notify_0001
"""
from alembic import op
import sqlalchemy as sa

revision = "notify_0002"
down_revision = "notify_0001"
branch_labels = None
depends_on = None

_CHANGED = ("OLD.status IS DISTINCT FROM NEW.status OR OLD.spec IS DISTINCT FROM NEW.spec "
            "OR OLD.topic IS DISTINCT FROM NEW.topic OR OLD.organization_id IS DISTINCT FROM NEW.organization_id")

POSTGRESQL = [
    """CREATE FUNCTION subscription_generation_moves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO subscription_generation (id, value) VALUES (1, 1)
    ON CONFLICT (id) DO UPDATE SET value = subscription_generation.value + 1;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$""",
    "CREATE TRIGGER subscription_state_added_or_removed BEFORE INSERT OR DELETE ON subscription_state "
    "FOR EACH ROW EXECUTE FUNCTION subscription_generation_moves()",
    "CREATE TRIGGER subscription_state_changed BEFORE UPDATE OF status, spec, topic, organization_id "
    f"ON subscription_state FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION subscription_generation_moves()",
    "CREATE TRIGGER subscription_state_emptied BEFORE TRUNCATE ON subscription_state "
    "FOR EACH STATEMENT EXECUTE FUNCTION subscription_generation_moves()",
]
_MOVE = ("INSERT OR IGNORE INTO subscription_generation (id, value) VALUES (1, 0); "
         "UPDATE subscription_generation SET value = value + 1 WHERE id = 1;")
SQLITE = [
    f"CREATE TRIGGER subscription_state_added AFTER INSERT ON subscription_state BEGIN {_MOVE} END",
    f"CREATE TRIGGER subscription_state_removed AFTER DELETE ON subscription_state BEGIN {_MOVE} END",
    "CREATE TRIGGER subscription_state_changed AFTER UPDATE OF status, spec, topic, organization_id "
    f"ON subscription_state WHEN {_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN {_MOVE} END",
]


def upgrade() -> None:
    op.create_table("subscription_generation",
                    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("value", sa.BigInteger, nullable=False))
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER subscription_state_emptied ON subscription_state")
        op.execute("DROP TRIGGER subscription_state_changed ON subscription_state")
        op.execute("DROP TRIGGER subscription_state_added_or_removed ON subscription_state")
        op.execute("DROP FUNCTION subscription_generation_moves()")
    else:
        for name in ("subscription_state_added", "subscription_state_removed", "subscription_state_changed"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("subscription_generation")
