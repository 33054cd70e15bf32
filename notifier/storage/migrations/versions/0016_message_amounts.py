"""run_messages.amount: the amount in fen a notice states (rules with amount:)

Stored with the message when the run is created, so public lists and change notices read the
amount residents were told instead of recomputing it from a register that has changed since.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_messages") as batch:
        batch.add_column(sa.Column("amount", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_messages") as batch:
        batch.drop_column("amount")
