"""SQLite: one text format for every stored time

Rows written through storage/bulk.executemany before this revision stored times in the sqlite3
driver's format ('2026-04-01 04:00:00+00:00') rather than SQLAlchemy's ('2026-04-01
04:00:00.000000'), so comparing them in SQL could be off within a second. All times are UTC;
this rewrites the former into the latter. The audit table is left as written: it is append-only,
and `audit verify` reads both formats.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        if table in ("audit_events", "alembic_version"):
            continue
        for col in inspector.get_columns(table):
            if isinstance(col["type"], sa.DateTime):
                name = col["name"]
                bind.exec_driver_sql(
                    f'UPDATE "{table}" SET "{name}" = CASE WHEN length("{name}") = 25 '
                    f"THEN substr(\"{name}\", 1, 19) || '.000000' "
                    f'ELSE substr("{name}", 1, length("{name}") - 6) END '
                    f"WHERE \"{name}\" LIKE '%+00:00'"
                )


def downgrade() -> None:
    pass
