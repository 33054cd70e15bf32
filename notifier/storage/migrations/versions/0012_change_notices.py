"""deliveries.change_kind and run_eligible: change notices (`audience: changes`, runs/changes.py)

A change run notifies only whose result changed since the last completed run of its rule; each
delivery says which kind of change it announces, and the run keeps who it found eligible so the
next change run can compare against it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("change_kind", sa.String(length=16), nullable=True))
    op.create_table(
        "run_eligible",
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", name="fk_run_eligible_run_id_runs"), nullable=False
        ),
        sa.Column("resident_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=True),  # fen
        sa.PrimaryKeyConstraint("run_id", "resident_id", name="pk_run_eligible"),
    )


def downgrade() -> None:
    op.drop_table("run_eligible")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("change_kind")
