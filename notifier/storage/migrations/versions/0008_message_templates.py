"""run_messages.templates: the registered SMS template calls rendered with each message;
an index of deliveries by recipient for per-number spacing

Aliyun and Tencent send only registered templates; the variables of a message are rendered
when the run is created, with its text, and stored beside it, so what is sent is what was
approved. Messages stored before this revision have none (their providers need no template).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("run_messages") as batch:
        batch.add_column(sa.Column("templates", JSONType, nullable=True))
    op.create_index("ix_deliveries_recipient", "deliveries", ["recipient", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_recipient", table_name="deliveries")
    with op.batch_alter_table("run_messages") as batch:
        batch.drop_column("templates")
