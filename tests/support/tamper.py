"""Tampering as an attacker with the database owner's rights would start it: the append-only
triggers on the audit table dropped, so plain SQL can rewrite the log."""

from __future__ import annotations

import sqlalchemy as sa


def drop_triggers(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP TRIGGER audit_events_append_only ON audit_events")
    else:
        conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
