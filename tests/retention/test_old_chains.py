"""Old databases (issue 16, item 1): events written before pseudonyms held phone numbers; migration
0015 masks them and records the redaction, so the chain still verifies, and changing a redacted
event, passing a changed event off as redacted, or changing the redaction record is still caught."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from notifier.audit import log as audit
from notifier.audit.redact import ACTION
from notifier.storage.db import _alembic_config, create_db_engine, migrate
from notifier.storage.schema import audit_events
from tests.support.tamper import drop_triggers

PHONE = "13912345678"


@pytest.fixture
def old(db_url: str) -> Iterator[sa.Engine]:
    """A database at 0011 whose log holds an opt-out and a receipt as they were written then."""
    engine = create_db_engine(db_url)
    command.upgrade(_alembic_config(engine), "0011")
    with engine.begin() as conn:
        audit.record(conn, "clerk", "run.created", "run:1", audience=3)
        audit.record(conn, "twilio", "optout.added", f"phone:+86{PHONE}", source="sms reply 'TD'")
        audit.record(conn, "clerk", "run.approved", "run:1", level=1)
        audit.record(
            conn,
            "twilio",
            "delivery.receipt",
            "delivery:7",
            run=1,
            outcome="applied",
            raw={"To": f"+86{PHONE}", "MessageStatus": "delivered", "Body": f"wang2@example.com {PHONE}"},
        )
        audit.record(conn, "system", "run.completed", "run:1")
    yield engine
    engine.dispose()


def _verify(engine: sa.Engine) -> audit.VerifyResult:
    with audit.snapshot(engine) as conn:
        return audit.verify(conn)


def _rows(engine: sa.Engine) -> list[sa.Row[object]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)))


def test_the_migration_masks_old_events_and_the_chain_still_verifies(old: sa.Engine) -> None:
    assert _verify(old).ok
    before = _rows(old)
    migrate(old)
    after = _rows(old)
    text = "\n".join(f"{r.subject} {r.payload}" for r in after)
    assert PHONE not in text and "wang2@example.com" not in text
    assert after[1].subject == "phone:+86139****5678"
    assert json.loads(after[3].payload)["raw"]["To"] == "+86139****5678"
    assert [r.hash for r in after[:5]] == [r.hash for r in before]  # hashes and links untouched
    assert [r.payload for i, r in enumerate(after[:5]) if i in (0, 2, 4)] == [
        before[i].payload for i in (0, 2, 4)
    ]
    [record] = [json.loads(r.payload) for r in after if r.action == ACTION]
    assert (record["first"], record["last"], record["events"]) == (2, 4, 2)
    result = _verify(old)
    assert result.ok and result.events == 6, result.reason
    migrate(old)  # at head: nothing more happens
    assert len(_rows(old)) == 6


@pytest.mark.parametrize(
    "seq, change",
    [
        (2, {"subject": "phone:+86139****0000"}),  # a redacted event changed again
        (3, {"payload": '{"level":2}'}),  # an event inside the redacted range passed off as redacted
        (6, {"payload": '{"reason":"x","first":2,"last":4,"events":2,"digest":"00"}'}),  # the record itself
    ],
)
def test_tampering_after_the_redaction_is_still_detected(
    old: sa.Engine, seq: int, change: dict[str, str]
) -> None:
    migrate(old)
    with old.begin() as conn:
        drop_triggers(conn)
        conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(**change))
    result = _verify(old)
    assert not result.ok and result.kind == "changed"
    assert result.first_bad is not None and 2 <= result.first_bad <= 6


def test_a_check_from_a_checkpoint_inside_a_redacted_range_verifies_it_whole(old: sa.Engine) -> None:
    migrate(old)
    third = _rows(old)[2]
    with audit.snapshot(old) as conn:
        result = audit.verify(conn, start=audit.Checkpoint(third.seq, third.hash))
    assert result.ok and result.events == 6 and result.from_seq == 0  # the full check ran
    with old.begin() as conn:
        drop_triggers(conn)
        conn.execute(audit_events.update().where(audit_events.c.seq == 4).values(payload='{"run":1}'))
    with audit.snapshot(old) as conn:
        assert not audit.verify(conn, start=audit.Checkpoint(third.seq, third.hash)).ok
