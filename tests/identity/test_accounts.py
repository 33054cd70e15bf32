"""Accounts, roles and permissions (identity/): real database, real Argon2id."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.clock import utcnow
from notifier.errors import InputError, NotFound, PermissionDenied, StateError
from notifier.identity import (
    Permission,
    Role,
    add_account,
    authenticate_password,
    authenticate_token,
    authorize,
    disable_account,
    issue_token,
    list_accounts,
    reset_password,
)
from notifier.identity.accounts import LOCK_AFTER
from notifier.identity.permissions import parse_roles
from notifier.storage.schema import account_tokens, accounts, audit_events

PW = "correct horse battery"


def _admin(app: App):  # type: ignore[no-untyped-def]
    return add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)


def _actions(app: App) -> list[tuple[str, str, dict[str, object]]]:
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_events.c.actor, audit_events.c.action, audit_events.c.payload).order_by(
                audit_events.c.seq
            )
        ).all()
    return [(a, b, json.loads(p)) for a, b, p in rows]


def test_first_account_must_be_an_admin_and_later_ones_need_one(app: App) -> None:
    with pytest.raises(StateError, match="must be an admin"):
        add_account(app, None, "op", frozenset({Role.OPERATOR}), password=PW)
    admin = _admin(app)
    with pytest.raises(StateError, match="without an admin"):
        add_account(app, None, "second", frozenset({Role.ADMIN}), password=PW)
    op = add_account(app, admin, "li", frozenset({Role.OPERATOR}), password=PW, display="李经办")
    with pytest.raises(PermissionDenied, match="accounts.manage"):
        add_account(app, op, "wang", frozenset({Role.OPERATOR}), password=PW)
    actions = _actions(app)
    assert [a[1] for a in actions] == ["account.created", "account.created", "account.refused"]
    assert actions[1][0] == admin.actor and actions[2][0] == op.actor


def test_names_are_unique_after_nfkc_and_case_fold(app: App) -> None:
    admin = _admin(app)
    add_account(app, admin, "Li", frozenset({Role.OPERATOR}), password=PW)
    for same in ("li", "ＬＩ", " li\u200b"):
        with pytest.raises(StateError, match="exists already"):
            add_account(app, admin, same, frozenset({Role.OPERATOR}), password=PW)


def test_passwords_are_argon2id_never_clear_and_logins_are_audited(app: App) -> None:
    admin = _admin(app)
    add_account(app, admin, "zhang", frozenset({Role.AUDITOR}), password=PW)
    with app.engine.connect() as conn:
        stored = conn.execute(
            sa.select(accounts.c.password_hash).where(accounts.c.name == "zhang")
        ).scalar_one()
        dump = json.dumps([list(r) for r in conn.execute(sa.select(audit_events))], default=str)
    assert stored.startswith("$argon2id$") and PW not in stored and PW not in dump
    assert authenticate_password(app, "ZHANG", PW).name == "zhang"
    with pytest.raises(PermissionDenied, match="wrong account name or password"):
        authenticate_password(app, "zhang", "wrong password!")
    with pytest.raises(PermissionDenied, match="wrong account name or password"):
        authenticate_password(app, "nobody", PW)  # the same answer for an unknown name
    assert [a[1] for a in _actions(app)][-3:] == [
        "account.login",
        "account.login_failed",
        "account.login_failed",
    ]
    with pytest.raises(InputError, match="at least 10"):
        add_account(app, admin, "short", frozenset({Role.AUDITOR}), password="short")


def test_repeated_failures_lock_the_account_with_growing_back_off(app: App) -> None:
    admin = _admin(app)
    add_account(app, admin, "wang", frozenset({Role.OPERATOR}), password=PW)
    now = utcnow()
    for _ in range(LOCK_AFTER):
        with pytest.raises(PermissionDenied):
            authenticate_password(app, "wang", "not the password", now=now)
    with pytest.raises(PermissionDenied, match="locked"):
        authenticate_password(app, "wang", PW, now=now)  # even the right password, while locked
    assert authenticate_password(app, "wang", PW, now=now + timedelta(minutes=2)).name == "wang"
    reset_password(app, admin, "wang", "another good password")
    assert authenticate_password(app, "wang", "another good password").name == "wang"


def test_tokens_are_shown_once_stored_hashed_and_die_with_the_account(app: App) -> None:
    admin = _admin(app)
    op = add_account(app, admin, "chen", frozenset({Role.OPERATOR}), password=PW)
    token = issue_token(app, admin, "chen", "laptop")
    with app.engine.connect() as conn:
        stored = conn.execute(sa.select(account_tokens.c.token_sha256)).scalar_one()
    assert token.startswith("ntk_") and len(token) > 40 and token not in stored
    assert authenticate_token(app, token).id == op.id
    with pytest.raises(PermissionDenied):
        authenticate_token(app, token + "x")
    disable_account(app, admin, "chen")
    with pytest.raises(PermissionDenied):
        authenticate_token(app, token)
    with pytest.raises(PermissionDenied):
        authenticate_password(app, "chen", PW)
    with pytest.raises(NotFound):
        disable_account(app, admin, "ghost")
    assert [a.disabled for a in list_accounts(app, admin)] == [False, True]


def test_roles_permissions_and_levels(app: App) -> None:
    admin = _admin(app)
    with pytest.raises(InputError, match="bound to approval levels"):
        add_account(app, admin, "rev", frozenset({Role.REVIEWER}), password=PW)
    with pytest.raises(InputError, match="level 3 does not exist"):
        add_account(app, admin, "rev", frozenset({Role.REVIEWER}), levels=[3], password=PW)
    rev2 = add_account(app, admin, "rev2", frozenset({Role.REVIEWER}), levels=[2], password=PW)
    both = add_account(app, admin, "both", parse_roles(["审核"]), levels=[1, 2], password=PW)
    authorize(rev2, Permission.RUNS_APPROVE, level=2)
    with pytest.raises(PermissionDenied, match="at level 1"):
        authorize(rev2, Permission.RUNS_APPROVE, level=1)
    authorize(both, Permission.RUNS_APPROVE, level=1)
    auditor = add_account(app, admin, "aud", parse_roles(["auditor"]), password=PW)
    with pytest.raises(PermissionDenied, match="unmask"):
        authorize(auditor, Permission.UNMASK)  # unmasking is never part of a role
    granted = add_account(app, admin, "aud2", parse_roles(["审计"]), password=PW, unmask=True)
    authorize(granted, Permission.UNMASK)
    with pytest.raises(PermissionDenied):
        authorize(auditor, Permission.RUNS_CREATE)
    with pytest.raises(ValueError, match="unknown role"):
        parse_roles(["boss"])


def test_the_cli_actor_comes_from_a_token_or_a_password_never_from_by(
    app: App, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from notifier.identity.acting import TOKEN_ENV, acting

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    legacy = acting(app, by="li", interactive=False)  # no accounts yet: the typed name, with a warning
    assert legacy.account is None and legacy.name == "li" and "no accounts yet" in capsys.readouterr().err
    admin = _admin(app)
    op = add_account(app, admin, "li", frozenset({Role.OPERATOR}), password=PW)
    with pytest.raises(PermissionDenied, match="NOTIFIER_TOKEN"):
        acting(app, by="li", interactive=False)  # accounts exist: --by alone proves nothing
    token_file = tmp_path / "token"
    token_file.write_text(issue_token(app, admin, "li") + "\n")
    who = acting(app, token_file=str(token_file), interactive=False)
    assert who.account == op and who.name == op.actor
    with pytest.raises(PermissionDenied, match="does not match"):
        acting(app, token_file=str(token_file), by="admin", interactive=False)
    monkeypatch.setenv(TOKEN_ENV, token_file.read_text())
    assert acting(app, by="LI", interactive=False).account == op
    monkeypatch.delenv(TOKEN_ENV)
    asked: list[str] = []
    who = acting(app, ask=lambda p: asked.append(p) or "li", ask_secret=lambda p: PW, interactive=True)
    assert who.account == op and asked == ["account: "]
    with pytest.raises(PermissionDenied, match="accounts.manage"):
        who.require(Permission.ACCOUNTS)


def test_a_refusal_on_another_account_is_audited_without_waiting_for_the_database(app: App) -> None:
    """reset_password / issue_token for someone else check the permission before their write
    transaction: the refusal's audit event must not wait on the caller's own lock."""
    import time

    admin = _admin(app)
    op = add_account(app, admin, "li", frozenset({Role.OPERATOR}), password=PW)
    started = time.monotonic()
    with pytest.raises(PermissionDenied, match="accounts.manage"):
        issue_token(app, op, "admin")
    with pytest.raises(PermissionDenied, match="accounts.manage"):
        reset_password(app, op, "admin", "another good password")
    assert time.monotonic() - started < 10
    assert [a[1] for a in _actions(app)][-2:] == ["account.refused", "account.refused"]
