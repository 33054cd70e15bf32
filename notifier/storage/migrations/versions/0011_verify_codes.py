"""run_messages.verify_code, .postcode: the verification code printed on each notice (verification.py)
and the postcode a letter's window shows

Stored with the message when the run is created, indexed, so the public page /v finds a
notice by its code in one query instead of recomputing codes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_messages") as batch:
        batch.add_column(sa.Column("verify_code", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("postcode", sa.String(length=16), nullable=True))
    op.create_index("ix_run_messages_verify_code", "run_messages", ["verify_code"])


def downgrade() -> None:
    op.drop_index("ix_run_messages_verify_code", table_name="run_messages")
    with op.batch_alter_table("run_messages") as batch:
        batch.drop_column("postcode")
        batch.drop_column("verify_code")
