"""retention: purged_at on deliveries, run_messages and residents; the per-database pseudonym key

`notifier retention apply` removes bodies and contacts and marks the rows it emptied, so every
view can say 已按保留期限删除 instead of showing an empty cell. `audit_keys` holds the random key
audit pseudonyms fall back to when `[audit] pseudonym_key` names no set environment variable.

Events written before pseudonyms that hold a phone number, ID number or e-mail address (an
opt-out's subject, a receipt's raw fields) are masked once, here, with the append-only guard on
UPDATE lifted for this transaction only; `audit.redacted` events record what was redacted, so the
chain keeps verifying (audit/redact.py). Downgrading does not bring the numbers back.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


_SQLITE_GUARD = """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"""
_PG_GUARD = """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"""


def _redact_old_events() -> None:
    from notifier.audit.redact import redact_all
    from notifier.clock import utcnow

    pg = op.get_bind().dialect.name == "postgresql"
    op.execute(
        "DROP TRIGGER audit_events_append_only ON audit_events"
        if pg
        else "DROP TRIGGER audit_events_no_update"
    )
    redact_all(op.get_bind(), utcnow())
    op.execute(_PG_GUARD if pg else _SQLITE_GUARD)


def upgrade() -> None:
    # plain ADD COLUMN (nullable): SQLite keeps the data dictionary's f_ columns untouched
    for table in ("deliveries", "run_messages", "residents"):
        op.add_column(table, sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "audit_keys",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_audit_keys")),
    )
    _redact_old_events()


def downgrade() -> None:
    op.drop_table("audit_keys")
    for table in ("residents", "run_messages", "deliveries"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("purged_at")
