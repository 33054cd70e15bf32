"""audit guards: the database refuses every rewrite of audit_events; the checkpoint file's high-water mark

0001 refuses UPDATE and DELETE. Two rewrites got past it:
- SQLite `INSERT OR REPLACE` / `REPLACE` deletes the row holding the same seq and inserts the new
  one; SQLite fires DELETE triggers for that only with recursive_triggers on. A BEFORE INSERT
  trigger refusing an insert whose seq already exists works regardless.
- PostgreSQL `TRUNCATE` fires no row triggers: a BEFORE TRUNCATE statement trigger refuses it.
audit_checkpoint_state remembers the most checkpoints `audit verify` / `audit checkpoint` saw in
the checkpoint file, so a deleted or truncated file fails verification instead of passing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("checkpoints", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoint_state"),
    )
    op.execute(
        "INSERT INTO audit_checkpoint_state (id, file, checkpoints, seq, hash) VALUES (1, '', 0, 0, '"
        + "0" * 64
        + "')"
    )
    if op.get_bind().dialect.name == "postgresql":
        # The function of 0001 raises for any trigger, row or statement.
        op.execute("""CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
            FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""")
    else:
        op.execute("""CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
            WHEN EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq)
            BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_replace")
    op.drop_table("audit_checkpoint_state")
