"""run_messages: every message of a run rendered and stored when the run is created

Approvers see exactly what will be sent and the dispatcher sends the stored text
(deliveries.message_id), never a re-render from data changed since. Pending deliveries of runs
created before this revision have no stored message: the dispatcher skips them with a reason
(and releases their notice key) so a re-created run reaches those residents.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("recipient_name", sa.Text(), nullable=True),
        sa.Column("township", sa.Text(), nullable=True),
        sa.Column("village", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_messages_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_run_messages"),
        sa.UniqueConstraint("run_id", "resident_id", "channel", name="uq_run_messages_run_resident_channel"),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("message_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_deliveries_message_id_run_messages", "run_messages", ["message_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("fk_deliveries_message_id_run_messages", type_="foreignkey")
        batch.drop_column("message_id")
    op.drop_table("run_messages")
