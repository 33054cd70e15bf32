"""audit_events: an index by action and seq, so the latest events of one kind (provider pauses,
shown on /metrics and in the console) are found without scanning the log

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_action_seq", "audit_events", ["action", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_action_seq", table_name="audit_events")
