"""query_attempts, query_codes, residents.id_number index: the self-query page's rate limits,
SMS one-time codes, and its lookup by ID number

/query counts queries per client address and per ID number (keyed hashes) in the database, so
several workers share one limit; its optional SMS codes are stored hashed with their expiry; it
finds the resident by ID number, which the index keeps to one probe on a large register.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_residents_id_number", "residents", ["id_number"])
    op.create_table(
        "query_attempts",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", "window_start", name="pk_query_attempts"),
    )
    op.create_index("ix_query_attempts_window_start", "query_attempts", ["window_start"])
    op.create_table(
        "query_codes",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("resident_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_query_codes"),
    )
    op.create_index("ix_query_codes_expires_at", "query_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_query_codes_expires_at", table_name="query_codes")
    op.drop_table("query_codes")
    op.drop_index("ix_query_attempts_window_start", table_name="query_attempts")
    op.drop_table("query_attempts")
    op.drop_index("ix_residents_id_number", table_name="residents")
