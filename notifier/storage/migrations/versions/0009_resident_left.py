"""residents who left (deceased, moved away): left_at, left_as, left_reason

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable): SQLite keeps the data dictionary's f_ columns untouched
    op.add_column("residents", sa.Column("left_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("residents", sa.Column("left_as", sa.String(length=16), nullable=True))
    op.add_column("residents", sa.Column("left_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("left_reason")
        batch.drop_column("left_as")
        batch.drop_column("left_at")
