"""The audit trail: tampering of every kind is found and located, checkpoints catch a rewritten
chain, exports are masked and end with the chain head, coverage accounts for every resident.
Real SQLite and PostgreSQL; the tampering is done as an attacker would: drop the triggers, write SQL."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.audit import log as audit
from notifier.audit.checkpoints import read_checkpoints, take_checkpoint, verify_log
from notifier.audit.coverage import coverage, resident_history
from notifier.audit.export import ExportFilter, export_events
from notifier.cli import main
from notifier.errors import StateError
from notifier.residents.importer import import_residents
from notifier.storage.schema import audit_events, audit_head, deliveries, opt_outs
from tests.support.campaign import (
    NOON,
    ON,
    PEOPLE,
    approve_all,
    campaign,
    rule,
    send,
    smtp_project,
    write_roster,
)
from tests.support.smtp_server import SmtpServer
from tests.support.tamper import drop_triggers


@pytest.fixture
def sent(app: App, tmp_path: Path) -> tuple[App, int]:
    return app, campaign(app, tmp_path)


def check(app: App, from_checkpoint: bool = False) -> audit.VerifyResult:
    return verify_log(app, from_checkpoint=from_checkpoint)[0]


# -- tampering ------------------------------------------------------------------------------


def event(conn: sa.Connection, seq: int) -> sa.Row[Any]:
    return conn.execute(sa.select(audit_events).where(audit_events.c.seq == seq)).one()


def head(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(audit_head.c.seq)).scalar_one())


def set_event(conn: sa.Connection, seq: int, **values: Any) -> None:
    conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(**values))


def rehash_from(conn: sa.Connection, seq: int, *, update_head: bool = True) -> None:
    """Recompute every hash from `seq` on, as someone who knows the (public) algorithm would."""
    prev = event(conn, seq - 1).hash if seq > 1 else audit.GENESIS
    for r in conn.execute(
        sa.select(audit_events).where(audit_events.c.seq >= seq).order_by(audit_events.c.seq)
    ).all():
        h = audit.event_hash(prev, r.seq, r.ts, r.actor, r.action, r.subject, r.payload)
        set_event(conn, r.seq, prev_hash=prev, hash=h)
        prev = h
    if update_head:
        conn.execute(audit_head.update().values(hash=prev))


def renumber(conn: sa.Connection, from_seq: int, delta: int) -> None:
    """Move events from `from_seq` on by `delta` (two steps: PostgreSQL checks the key row by row)."""
    e = audit_events
    conn.execute(e.update().where(e.c.seq >= from_seq).values(seq=-e.c.seq))
    conn.execute(e.update().where(e.c.seq < 0).values(seq=-e.c.seq + delta))


def forged(conn: sa.Connection, seq: int, prev: str) -> dict[str, Any]:
    ts = event(conn, seq - 1).ts
    payload = audit.canonical_json({"run": 1, "from": "pending", "to": "delivered"})
    return {
        "seq": seq,
        "ts": ts,
        "actor": "dispatcher",
        "action": "delivery.status",
        "subject": "delivery:99",
        "payload": payload,
        "prev_hash": prev,
        "hash": audit.event_hash(prev, seq, ts, "dispatcher", "delivery.status", "delivery:99", payload),
    }


def t_change(conn: sa.Connection) -> int:
    set_event(conn, 6, payload=event(conn, 6).payload.replace("sending", "failed"))
    return 6


def t_change_and_rehash_one(conn: sa.Connection) -> int:
    r = event(conn, 3)
    payload = r.payload.replace("reviewer", "someone")
    set_event(
        conn,
        3,
        actor="someone",
        payload=payload,
        hash=audit.event_hash(r.prev_hash, 3, r.ts, "someone", r.action, r.subject, payload),
    )
    return 3


def t_change_last_and_rehash(conn: sa.Connection) -> int:
    n = head(conn)
    set_event(conn, n, actor="someone")
    rehash_from(conn, n, update_head=False)
    return n


def t_delete(conn: sa.Connection) -> int:
    conn.execute(audit_events.delete().where(audit_events.c.seq == 5))
    return 5


def t_delete_last(conn: sa.Connection) -> int:
    n = head(conn)
    conn.execute(audit_events.delete().where(audit_events.c.seq == n))
    return n


def t_delete_and_renumber(conn: sa.Connection) -> int:
    conn.execute(audit_events.delete().where(audit_events.c.seq == 4))
    renumber(conn, 5, -1)
    conn.execute(audit_head.update().values(seq=audit_head.c.seq - 1))
    return 4


def t_insert_linked(conn: sa.Connection) -> int:
    prev = event(conn, 4).hash
    renumber(conn, 5, 1)
    conn.execute(audit_events.insert().values(**forged(conn, 5, prev)))
    conn.execute(audit_head.update().values(seq=audit_head.c.seq + 1))
    return 5


def t_insert_unlinked(conn: sa.Connection) -> int:
    renumber(conn, 7, 1)
    conn.execute(audit_events.insert().values(**forged(conn, 7, "f" * 64)))
    return 7


def t_insert_after_head(conn: sa.Connection) -> int:
    n = head(conn)
    conn.execute(audit_events.insert().values(**forged(conn, n + 1, event(conn, n).hash)))
    return n + 1


def _swap(conn: sa.Connection, a: int, b: int, cols: tuple[str, ...]) -> int:
    ra, rb = event(conn, a), event(conn, b)
    set_event(conn, a, **{c: getattr(rb, c) for c in cols})
    set_event(conn, b, **{c: getattr(ra, c) for c in cols})
    return a


ROW = ("ts", "actor", "action", "subject", "payload", "prev_hash", "hash")
TAMPER = {
    "changed": (t_change, "changed"),
    "changed-and-rehashed": (t_change_and_rehash_one, "changed"),
    "last-changed-and-rehashed": (t_change_last_and_rehash, "changed"),
    "deleted": (t_delete, "missing"),
    "deleted-last": (t_delete_last, "missing"),
    "deleted-and-renumbered": (t_delete_and_renumber, "missing"),
    "inserted-linked": (t_insert_linked, "inserted"),
    "inserted-unlinked": (t_insert_unlinked, "inserted"),
    "inserted-after-head": (t_insert_after_head, "inserted"),
    "swapped-rows": (lambda c: _swap(c, 5, 10, ROW), "reordered"),
    "swapped-neighbours": (lambda c: _swap(c, 6, 7, ROW), "reordered"),
    "swapped-payloads": (lambda c: _swap(c, 5, 10, ("payload",)), "reordered"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampering_is_found_at_the_right_event(sent: tuple[App, int], case: str) -> None:
    app, _ = sent
    assert check(app).ok
    tamper, kind = TAMPER[case]
    with app.engine.begin() as conn:
        drop_triggers(conn)
        where = tamper(conn)
    r = check(app)
    assert (r.ok, r.first_bad, r.kind, r.events) == (False, where, kind, where - 1), r.reason


def test_verification_across_pages_with_checkpoints(
    sent: tuple[App, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast pass reads the driver's rows in pages; checkpoints inside it are matched, and tampering
    on a later page still goes to the diagnosis."""
    app, _ = sent
    monkeypatch.setattr(audit, "_PAGE", 4)
    take_checkpoint(app)
    with app.engine.begin() as conn:
        for i in range(9):
            audit.record(conn, "clerk", "note", "run:1", text=f"later {i}")
    take_checkpoint(app)
    r = check(app)
    assert r.ok and r.checkpoints_matched == 2 and r.events == r.head_seq
    with app.engine.begin() as conn:
        drop_triggers(conn)
        where = r.head_seq - 3
        set_event(conn, where, payload=event(conn, where).payload.replace("later", "sooner"))
    r = check(app)
    assert (r.ok, r.first_bad, r.kind, r.checkpoints_matched) == (False, where, "changed", 1), r.reason


def test_untouched_log_verifies_and_the_database_refuses_changes(sent: tuple[App, int]) -> None:
    app, _ = sent
    r = check(app)
    assert r.ok and r.first_bad is None and r.events == r.head_seq >= 13
    for stmt in (
        audit_events.update().where(audit_events.c.seq == 2).values(actor="x"),
        audit_events.delete().where(audit_events.c.seq == 2),
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with app.engine.begin() as conn:
                conn.execute(stmt)
    assert check(app).ok


def test_checkpoints_catch_a_rewritten_chain(app: App, tmp_path: Path) -> None:
    """The chain is rewritten from event 5 on with every hash recomputed: it verifies internally,
    but disagrees with the checkpoint taken after it; the checkpoint before it still matches."""
    import_residents(app, write_roster(tmp_path / "people.csv", PEOPLE))
    run_id = runs.create_run(app, rule(app), ON, "clerk").run
    approve_all(app, run_id)
    first = take_checkpoint(app)
    assert first["seq"] == 4 and not first["signed"]
    send(app, run_id)
    second = take_checkpoint(app)
    assert [c.seq for c in read_checkpoints(Path(second["file"]))] == [4, second["seq"]]
    r = check(app)
    assert r.ok and r.checkpoints_matched == 2
    with app.engine.begin() as conn:
        drop_triggers(conn)
        set_event(conn, 5, payload=event(conn, 5).payload.replace("sending", "failed"))
        rehash_from(conn, 5)
        assert audit.verify(conn).ok  # without the checkpoints nobody would know
    for from_checkpoint in (False, True):
        r = check(app, from_checkpoint)
        assert (r.ok, r.first_bad, r.kind) == (False, 5, "rewritten"), r.reason
        assert "after event 4" in r.reason  # type: ignore[operator]
    with pytest.raises(StateError, match="no checkpoint written"):
        take_checkpoint(app)


def test_truncated_log_disagrees_with_checkpoint(sent: tuple[App, int]) -> None:
    app, _ = sent
    cp = take_checkpoint(app)
    with app.engine.begin() as conn:
        drop_triggers(conn)
        conn.execute(audit_events.delete().where(audit_events.c.seq >= cp["seq"] - 1))
        conn.execute(audit_head.update().values(seq=cp["seq"] - 2, hash=event(conn, cp["seq"] - 2).hash))
    r = check(app)
    assert (r.ok, r.first_bad, r.kind) == (False, cp["seq"] - 1, "missing")


def test_from_checkpoint_reads_only_new_events(sent: tuple[App, int]) -> None:
    app, _ = sent
    cp = take_checkpoint(app)
    with app.engine.begin() as conn:
        audit.record(conn, "clerk", "note", "run:1", text="later")
    r = check(app, from_checkpoint=True)
    assert r.ok and r.from_seq == cp["seq"] and r.events == cp["seq"] + 1 and r.checkpoints_matched == 1


def test_damaged_checkpoint_file_and_signing_key(
    sent: tuple[App, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app, _ = sent
    path = Path(take_checkpoint(app)["file"])
    assert path.parent == Path(app.config.path).parent  # type: ignore[arg-type]
    with path.open("a") as f:
        f.write('{"seq": 3}\n')
    code = main(["--config", str(app.config.path), "audit", "verify", "--json"])
    assert code == 1 and ":2" in capsys.readouterr().err
    path.write_text(
        path.read_text(encoding="utf-8").splitlines(keepends=True)[0], encoding="utf-8"
    )  # repaired
    monkeypatch.setenv("NOTIFIER_AUDIT_KEY", "00" * 32)
    code = main(["--config", str(app.config.path), "audit", "checkpoint", "--json"])
    assert (
        code == 0
        and json.loads(capsys.readouterr().out)["signed"] is True
        and len(read_checkpoints(path)) == 2
    )


# -- signed checkpoints ---------------------------------------------------------------------

KEY = bytes(range(1, 33))
OTHER_KEY = bytes(range(101, 133))


def public_of(key: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return (
        Ed25519PrivateKey.from_private_bytes(key)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
        .hex()
    )


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv) + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def rewrite_line(path: Path, n: int, **changes: Any) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    obj = json.loads(lines[n - 1]) | changes
    lines[n - 1] = json.dumps({k: v for k, v in obj.items() if v is not None}, sort_keys=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_signed_checkpoint_verifies(
    sent: tuple[App, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64

    app, _ = sent
    cfg = str(app.config.path)
    monkeypatch.setenv("NOTIFIER_AUDIT_KEY", KEY.hex())
    code, cp = cli_json(capsys, "--config", cfg, "audit", "checkpoint")
    assert code == 0 and cp["signed"] is True and cp["public_key"] == public_of(KEY)
    line = json.loads(Path(cp["file"]).read_text(encoding="utf-8").splitlines()[0])
    assert (
        set(line) == {"seq", "hash", "at", "sig", "public_key"} and len(base64.b64decode(line["sig"])) == 64
    )
    with app.engine.begin() as conn:
        audit.record(conn, "clerk", "note", "run:1", text="later")
    monkeypatch.setenv("NOTIFIER_AUDIT_KEY", base64.b64encode(KEY).decode())  # base64 works as well
    assert cli_json(capsys, "--config", cfg, "audit", "checkpoint")[0] == 0
    code, out = cli_json(capsys, "--config", cfg, "audit", "verify")
    assert code == 0 and out["ok"] and out["problems"] == []
    last = out["checkpoints"]["last"]
    assert last["seq"] > cp["seq"] and last["at"].endswith("Z")  # the later checkpoint
    assert out["checkpoints"] | {"file": None, "last": None} == {
        "file": None,
        "last": None,
        "count": 2,
        "signed": 2,
        "matched": 2,
        "bad_signatures": 0,
        "signatures_checked_with": "line_public_key",
        "verify_public_key": None,
    }
    # With the public key configured, the lines are checked against it instead of their own.
    Path(cfg).write_text(Path(cfg).read_text() + f'\n[audit]\nverify_public_key = "{public_of(KEY)}"\n')
    code, out = cli_json(capsys, "--config", cfg, "audit", "verify", "--from-checkpoint")
    assert code == 0 and out["checkpoints"]["signatures_checked_with"] == "verify_public_key"
    assert out["checkpoints"]["verify_public_key"] == public_of(KEY) and out["from_seq"] == cp["seq"] + 1


@pytest.mark.parametrize("field", ["seq", "hash", "at"])
def test_tampered_signed_checkpoint_fails(
    sent: tuple[App, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], field: str
) -> None:
    app, _ = sent
    cfg = str(app.config.path)
    monkeypatch.setenv("NOTIFIER_AUDIT_KEY", KEY.hex())
    cp = take_checkpoint(app)
    path = Path(cp["file"])
    with app.engine.connect() as conn:
        other = event(conn, cp["seq"] - 1)
    # An edit that is consistent with the log (an earlier head), so only the signature shows it.
    rewrite_line(
        path,
        1,
        **{
            "seq": {"seq": other.seq, "hash": other.hash},
            "hash": {"hash": other.hash},
            "at": {"at": "2020-01-01T00:00:00Z"},
        }[field],
    )
    code, out = cli_json(capsys, "--config", cfg, "audit", "verify")
    assert code == 1 and not out["ok"] and out["kind"] == "checkpoint_signature" and out["first_bad"] is None
    [p] = out["problems"]
    assert (p["kind"], p["line"], p["file"]) == ("checkpoint_signature", 1, str(path))
    assert "bad signature: seq, hash or at was changed after signing" in p["message"]
    assert p["message"] in out["reason"] and out["checkpoints"]["bad_signatures"] == 1
    assert main(["--config", cfg, "audit", "verify"]) == 1
    assert "BROKEN (checkpoint_signature)" in capsys.readouterr().out
    with pytest.raises(StateError, match="no checkpoint written"):
        take_checkpoint(app)


def test_signature_checked_against_the_configured_key(
    sent: tuple[App, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app, _ = sent
    cfg = str(app.config.path)
    take_checkpoint(app)  # unsigned
    monkeypatch.setenv("NOTIFIER_AUDIT_KEY", OTHER_KEY.hex())
    path = Path(take_checkpoint(app)["file"])  # signed, but by a key nobody configured
    Path(cfg).write_text(Path(cfg).read_text() + f'\n[audit]\nverify_public_key = "{public_of(KEY)}"\n')
    code, out = cli_json(capsys, "--config", cfg, "audit", "verify")
    assert code == 1 and out["kind"] == "checkpoint_signature" and out["checkpoints"]["bad_signatures"] == 2
    assert [p["line"] for p in out["problems"]] == [1, 2]
    assert "not signed, but [audit] verify_public_key is set" in out["problems"][0]["message"]
    assert "signed with another key" in out["problems"][1]["message"]
    # A signing key that does not belong to the configured public key is refused before writing.
    before = path.read_text()
    code = main(["--config", cfg, "audit", "checkpoint"])
    err = capsys.readouterr().err
    assert code == 1 and "does not belong to [audit] verify_public_key" in err and path.read_text() == before


@pytest.mark.parametrize("value", ["zz" * 32, "00" * 31, "00" * 64, "c2hvcnQ=", "not a key at all"])
def test_wrong_signing_key_is_a_clear_error(
    sent: tuple[App, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    app, _ = sent
    monkeypatch.setenv("NOTIFIER_AUDIT_KEY", value)
    code = main(["--config", str(app.config.path), "audit", "checkpoint", "--json"])
    err = capsys.readouterr().err
    assert code == 1 and "NOTIFIER_AUDIT_KEY does not hold an Ed25519 private key" in err and value not in err
    assert "64 hex digits" in err and not (Path(app.config.path).parent / "audit-checkpoints.jsonl").exists()  # type: ignore[arg-type]


def test_cli_verify_and_checkpoint(sent: tuple[App, int], capsys: pytest.CaptureFixture[str]) -> None:
    app, _ = sent
    cfg = str(app.config.path)
    assert main(["--config", cfg, "audit", "checkpoint", "--json"]) == 0
    cp = json.loads(capsys.readouterr().out)
    assert set(cp) >= {"seq", "hash", "at", "file"} and cp["at"].endswith("Z")
    assert main(["--config", cfg, "audit", "verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["first_bad"], out["reason"], out["events"]) == (True, None, None, cp["seq"])
    assert out["checkpoints"]["matched"] == 1 and out["head"] == {"seq": cp["seq"], "hash": cp["hash"]}
    with app.engine.begin() as conn:
        drop_triggers(conn)
        t_delete(conn)
    assert main(["--config", cfg, "audit", "verify", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["first_bad"], out["kind"]) == (
        False,
        5,
        "missing",
    ) and "event 5 is missing" in out["reason"]


# -- exports --------------------------------------------------------------------------------

PHONE, ID_NUMBER = "13912345678", "110101199003071234"


def read_export(path: Path, fmt: str) -> list[list[Any]]:
    if fmt == "xlsx":
        return [
            list(r) for r in openpyxl.load_workbook(path, read_only=True).active.iter_rows(values_only=True)
        ]
    if fmt == "csv":
        return list(csv.reader(path.open(encoding="utf-8-sig")))
    return [list(json.loads(line).values()) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx"])
def test_export_is_masked_and_ends_with_the_head(sent: tuple[App, int], tmp_path: Path, fmt: str) -> None:
    app, run_id = sent
    with app.engine.begin() as conn:
        audit.record(conn, "clerk", "resident.corrected", "resident:F01", phone=PHONE, id_number=ID_NUMBER)
    out = export_events(app, tmp_path / f"all.{fmt}", fmt, ExportFilter()).as_json()
    text = (
        (tmp_path / f"all.{fmt}").read_bytes().decode("utf-8", "replace")
        if fmt != "xlsx"
        else json.dumps(read_export(tmp_path / f"all.{fmt}", fmt), ensure_ascii=False)
    )
    assert (
        PHONE not in text and ID_NUMBER not in text and "139****5678" in text and "110101********1234" in text
    )
    rows = read_export(tmp_path / f"all.{fmt}", fmt)
    body = rows[1:-1] if fmt != "jsonl" else rows[:-1]
    assert out["events"] == len(body) == out["head"]["seq"]
    last = rows[-1]
    with app.engine.connect() as conn:
        seq, h = audit.read_head(conn)
    if fmt == "jsonl":
        assert last[0]["seq"] == seq and last[0]["hash"] == h and last[0]["masked"] is True
    else:
        assert last[:3] == ["chain_head", seq if fmt == "xlsx" else str(seq), h]


def test_export_filters(sent: tuple[App, int], tmp_path: Path) -> None:
    app, run_id = sent
    with app.engine.connect() as conn:
        f01 = conn.execute(sa.select(deliveries.c.id).where(deliveries.c.resident_id == "F01")).scalar_one()

    def subjects(f: ExportFilter) -> list[str]:
        export_events(app, tmp_path / "x.jsonl", "jsonl", f)
        return [r[4] for r in read_export(tmp_path / "x.jsonl", "jsonl")[:-1]]

    assert subjects(ExportFilter(resident="F01")) == [f"delivery:{f01}"] * 2
    by_run = subjects(ExportFilter(run=run_id))
    assert by_run[:3] == [f"run:{run_id}"] * 3 and by_run[-1] == f"run:{run_id}" and len(by_run) == 4 + 4 * 2
    assert subjects(ExportFilter(run=run_id + 1)) == []
    on_send_day = subjects(ExportFilter(date_from=ON, date_to=ON))  # the dispatcher's clock said 2026-04-01
    assert len(on_send_day) == 8 and all(s.startswith("delivery:") for s in on_send_day)


def test_unmasked_export_is_refused_unless_allowed_and_audited(
    sent: tuple[App, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, _ = sent
    with app.engine.begin() as conn:
        audit.record(conn, "clerk", "resident.corrected", "resident:F01", phone=PHONE)
    cfg = str(app.config.path)
    code = main(
        [
            "--config",
            cfg,
            "audit",
            "export",
            "--format",
            "csv",
            "-o",
            str(tmp_path / "u.csv"),
            "--unmask",
            "--by",
            "auditor",
        ]
    )
    assert code == 1 and "unmask_allowed" in capsys.readouterr().err and not (tmp_path / "u.csv").exists()
    Path(cfg).write_text(Path(cfg).read_text() + "\n[audit]\nunmask_allowed = true\n")
    code = main(
        ["--config", cfg, "audit", "export", "--format", "csv", "-o", str(tmp_path / "u.csv"), "--unmask"]
    )
    assert code == 1 and "--by" in capsys.readouterr().err
    code = main(
        [
            "--config",
            cfg,
            "audit",
            "export",
            "--format",
            "csv",
            "-o",
            str(tmp_path / "u.csv"),
            "--unmask",
            "--by",
            "auditor",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["masked"] is False
    rows = read_export(tmp_path / "u.csv", "csv")
    assert PHONE in (tmp_path / "u.csv").read_text(encoding="utf-8-sig")
    # The unmasking is itself on the record, inside the export's head, and every row rehashes.
    assert rows[-2][2:5] == ["auditor", "audit.unmasked_export", "export:u.csv"]
    assert rows[-1][:2] == ["chain_head", rows[-2][0]]
    from datetime import datetime

    for seq, ts, actor, action, subject, payload, prev, h in rows[1:-1]:
        when = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
        assert audit.event_hash(prev, int(seq), when, actor, action, subject, payload) == h
    assert check(app).ok


# -- coverage -------------------------------------------------------------------------------


@pytest.fixture
def smtp_app(tmp_path: Path, db_url: str, smtp: SmtpServer) -> Iterator[App]:
    """A real SMTP server that knows no mailboxes wang2@ and nobody@ (permanent 550)."""
    smtp.refuse = {"wang2@example.com", "nobody@example.com"}
    a = App.open(smtp_project(tmp_path, db_url, smtp.port))
    yield a
    a.close()


def outcomes(app: App, run_id: int) -> tuple[Any, dict[str, dict[str, Any]]]:
    cov, stream = coverage(app, run_id)
    per = {r["resident"]: r for r in stream}
    return cov, per


def test_coverage_accounts_for_every_resident(smtp_app: App, tmp_path: Path) -> None:
    app = smtp_app
    email_only = ["F08", "王八", "", "nobody@example.com", "", "城关镇", "东村", "农村", "2", ""]
    import_residents(app, write_roster(tmp_path / "people.csv", [*PEOPLE, email_only]))
    run_id = runs.create_run(app, rule(app), ON, "clerk").run
    with app.engine.begin() as conn:  # F01 opts out after the run was frozen: skipped at sending time
        conn.execute(opt_outs.insert().values(phone="+8613800000001", source="test", created_at=NOON))
    approve_all(app, run_id)
    send(app, run_id)
    cov, per = outcomes(app, run_id)
    assert (cov.audience, cov.review, cov.counted, cov.balanced) == (6, 1, 6, True)
    assert cov.totals == {
        "delivered": 0,
        "sent": 2,
        "fallback": 1,
        "failed": 1,
        "skipped": 2,
        "unknown": 0,
        "pending": 0,
    }
    assert cov.skipped_by_reason["opted_out"] == 1 and cov.skipped_by_reason["no_contact"] == 1
    assert per["F01"]["outcome"] == "skipped" and per["F01"]["skip_reason"] == "opted_out"
    # F02's e-mail bounced; the letter sent as fallback counts the resident once, as reached by fallback.
    assert (per["F02"]["outcome"], per["F02"]["channel"], per["F02"]["channels"]) == (
        "fallback",
        "letter",
        "email:failed,letter:sent",
    )
    assert per["F03"]["outcome"] == "sent" and per["F03"]["channel"] == "letter" and per["F03"]["at"]
    assert per["F04"]["skip_reason"] == "no_contact"
    assert (
        per["F08"]["outcome"] == "failed"
        and "550" in per["F08"]["reason"]
        and "nobody@" not in per["F08"]["reason"]
    )
    # One complaint: everything F02 was sent, masked.
    hist = resident_history(app, "F02").as_json()
    assert [(d["channel"], d["status"]) for d in hist["deliveries"]] == [
        ("email", "failed"),
        ("letter", "sent"),
    ]
    assert (
        hist["deliveries"][0]["recipient"] == "w***@example.com"
        and hist["deliveries"][0]["rule"] == "farm-subsidy-2026"
    )
    assert hist["deliveries"][1]["recipient"] == "东村**"  # the postal address: village kept, house hidden


def test_coverage_of_a_cancelled_run_and_the_cli(
    app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import_residents(app, write_roster(tmp_path / "people.csv", PEOPLE))
    run_id = runs.create_run(app, rule(app), ON, "clerk").run
    runs.cancel_run(app, run_id, "clerk")
    cfg = str(app.config.path)
    assert main(["--config", cfg, "audit", "coverage", str(run_id), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["totals"]["skipped"] == out["audience"] == out["counted"] == 5 and out["review"] == 1
    assert out["skipped_by_reason"]["cancelled"] == 4 and out["skipped_by_reason"]["no_contact"] == 1
    assert sorted(r["resident"] for r in out["residents"]) == ["F01", "F02", "F03", "F04", "F05"]
    assert (
        main(
            [
                "--config",
                cfg,
                "audit",
                "coverage",
                str(run_id),
                "--format",
                "xlsx",
                "-o",
                str(tmp_path / "c.xlsx"),
                "--json",
            ]
        )
        == 0
    )
    rows = read_export(tmp_path / "c.xlsx", "xlsx")
    assert rows[0][:2] == ["resident", "outcome"] and len(rows) == 6
    assert main(["--config", cfg, "audit", "coverage", "99"]) == 1 and "no run 99" in capsys.readouterr().err
    assert main(["--config", cfg, "audit", "resident", "F01", "--json"]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert hist["in_register"] and hist["deliveries"][0]["status"] == "skipped"
    assert hist["deliveries"][0]["recipient"] == "138****0001"
    # Rows gone missing show as totals that no longer add up.
    with app.engine.begin() as conn:
        conn.execute(deliveries.delete().where(deliveries.c.resident_id == "F05"))
    assert main(["--config", cfg, "audit", "coverage", str(run_id), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["balanced"] is False
