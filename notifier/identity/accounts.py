"""Accounts: create, list, disable, reset a password, issue a token, authenticate; all audited.

Names are unique after NFKC + case-fold (actors.actor_name), so "Li", "ｌｉ" and "li" are one
account. Failed password logins are counted per account; after `LOCK_AFTER` in a row the account
is locked for a time that doubles with every further failure (capped), which bounds guessing
without letting a stranger lock a colleague out for good. Every login, failed login, refusal and
account change is an audit event under the acting account.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name
from ..app import App
from ..audit import log as audit
from ..clock import as_utc, utcnow
from ..errors import InputError, NotFound, PermissionDenied, StateError
from ..storage.schema import account_tokens, accounts
from .passwords import hash_password, needs_rehash, verify_password
from .permissions import Account, Permission, Role, authorize
from .tokens import new_token, token_digest

LOCK_AFTER = 5
LOCK_BASE = timedelta(minutes=1)
LOCK_MAX = timedelta(hours=1)
SYSTEM = "system"
"""The actor of the first admin account, created by `notifier init` before any account exists."""


class AccountLocked(PermissionDenied):
    """Too many failed logins in a row: refused until `until`, whatever the password."""

    def __init__(self, until: datetime, timezone: Any) -> None:
        super().__init__(
            f"account locked after repeated failed logins; try again after {until.astimezone(timezone):%H:%M}"
        )
        self.until = until


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        display=row.display,
        roles=frozenset(Role(r) for r in row.roles),
        levels=frozenset(int(x) for x in row.levels),
        unmask=bool(row.unmask),
        disabled=row.disabled_at is not None,
    )


def _key(name: str) -> str:
    return actor_name(name, "an account name").casefold()


def find_account(conn: sa.Connection, name: str) -> Account:
    row = conn.execute(sa.select(accounts).where(accounts.c.name_key == _key(name))).one_or_none()
    if row is None:
        raise NotFound(f"no account {actor_name(name, 'an account name')!r}")
    return _account(row)


def account_by_id(app: App, account_id: int) -> Account | None:
    with app.reader.connect() as conn:
        row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).one_or_none()
    return _account(row) if row is not None else None


def account_count(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one())


def refused(app: App, exc: PermissionDenied, what: str) -> None:
    """Record a refusal in its own transaction (the refused action's own one is rolled back)."""
    who = exc.account.actor if isinstance(exc.account, Account) else "anonymous"
    perm = exc.permission.value if isinstance(exc.permission, Permission) else None
    with app.engine.begin() as conn:
        audit.record(conn, who, "account.refused", what, permission=perm, reason=exc.message)


def require(
    app: App, by: Account | None, permission: Permission, what: str, *, subject: str | None = None
) -> None:
    """authorize(), with a refusal audited (as `subject`, default `what`) before it is raised.
    Call it outside any write transaction: the audit event takes one of its own. No account
    (a database without accounts, or the first admin): nothing to check."""
    if by is None:
        return
    try:
        authorize(by, permission, what=what)
    except PermissionDenied as exc:
        refused(app, exc, subject or what)
        raise


def _guard_others(app: App, by: Account, name: str, what: str) -> None:
    """Acting on another account needs `accounts.manage`. Checked before the caller's write
    transaction, so a refusal is audited in a transaction of its own without waiting on it."""
    with app.reader.connect() as conn:
        target = find_account(conn, name)
    if target.id != by.id:
        require(app, by, Permission.ACCOUNTS, what)


def _check_levels(app: App, roles: frozenset[Role], levels: Iterable[int]) -> frozenset[int]:
    names = app.config.approval.levels
    out = frozenset(levels)
    bad = sorted(x for x in out if not 1 <= x <= len(names))
    if bad:
        raise InputError(f"approval level {bad[0]} does not exist; [approval] levels are 1..{len(names)}")
    if Role.REVIEWER in roles and not out:
        choices = ", ".join(f"{i} ({n})" for i, n in enumerate(names, 1))
        raise InputError(f"a reviewer is bound to approval levels: give --level N ({choices})")
    if out and Role.REVIEWER not in roles:
        raise InputError("approval levels are for reviewers: add the reviewer role")
    return out


def add_account(
    app: App,
    by: Account | None,
    name: str,
    roles: frozenset[Role],
    *,
    levels: Iterable[int] = (),
    display: str | None = None,
    password: str | None = None,
    unmask: bool = False,
) -> Account:
    """A new account. `by` is the admin creating it; None only for the very first account
    (`notifier init`), which must be an admin."""
    require(app, by, Permission.ACCOUNTS, "add accounts")
    if not roles:
        raise InputError("an account needs at least one role (--role operator|reviewer|auditor|admin)")
    clean = actor_name(name, "an account name")
    bound = _check_levels(app, roles, levels)
    pw_hash = hash_password(password) if password is not None else None
    now = utcnow()
    with app.engine.begin() as conn:
        if by is None and (account_count(conn) or Role.ADMIN not in roles):
            raise StateError(
                "only the first account can be created without an admin, and it must be an admin"
            )
        if conn.execute(sa.select(accounts.c.id).where(accounts.c.name_key == clean.casefold())).first():
            raise StateError(f"an account named {clean!r} exists already (names ignore case and width)")
        new_id = conn.execute(
            accounts.insert()
            .values(
                name=clean,
                name_key=clean.casefold(),
                display=display,
                password_hash=pw_hash,
                roles=sorted(r.value for r in roles),
                levels=sorted(bound),
                unmask=unmask,
                created_at=now,
                updated_at=now,
            )
            .returning(accounts.c.id)
        ).scalar_one()
        account = Account(new_id, clean, display, roles, bound, unmask)
        audit.record(
            conn,
            by.actor if by else SYSTEM,
            "account.created",
            account.actor,
            roles=sorted(r.value for r in roles),
            levels=sorted(bound),
            unmask=unmask,
            password=pw_hash is not None,
        )
    return account


def list_accounts(app: App, by: Account) -> list[Account]:
    require(app, by, Permission.ACCOUNTS, "list accounts")
    with app.reader.connect() as conn:
        return [_account(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.id))]


def disable_account(app: App, by: Account, name: str) -> Account:
    """Disable an account and revoke its tokens; it stays in the audit trail."""
    require(app, by, Permission.ACCOUNTS, "disable accounts")
    now = utcnow()
    with app.engine.begin() as conn:
        target = find_account(conn, name)
        if target.id == by.id:
            raise StateError("an admin cannot disable their own account")
        conn.execute(
            accounts.update().where(accounts.c.id == target.id).values(disabled_at=now, updated_at=now)
        )
        revoked = conn.execute(
            account_tokens.update()
            .where(account_tokens.c.account_id == target.id, account_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        audit.record(conn, by.actor, "account.disabled", target.actor, tokens_revoked=revoked)
    return Account(target.id, target.name, target.display, target.roles, target.levels, target.unmask, True)


def reset_password(app: App, by: Account, name: str, password: str) -> None:
    """Set a new password (and lift a lockout). An admin for anyone, anyone for themselves."""
    _guard_others(app, by, name, "reset passwords of others")
    pw_hash = hash_password(password)
    now = utcnow()
    with app.engine.begin() as conn:
        target = find_account(conn, name)
        conn.execute(
            accounts.update()
            .where(accounts.c.id == target.id)
            .values(password_hash=pw_hash, failed_logins=0, locked_until=None, updated_at=now)
        )
        audit.record(conn, by.actor, "account.password_reset", target.actor)


def issue_token(app: App, by: Account, name: str, label: str | None = None) -> str:
    """A new personal token for the named account, returned once and stored only hashed."""
    _guard_others(app, by, name, "issue tokens for others")
    token = new_token()
    now = utcnow()
    with app.engine.begin() as conn:
        target = find_account(conn, name)
        if target.disabled:
            raise StateError(f"account {target.name} is disabled")
        tid = conn.execute(
            account_tokens.insert()
            .values(account_id=target.id, token_sha256=token_digest(token), label=label, created_at=now)
            .returning(account_tokens.c.id)
        ).scalar_one()
        audit.record(conn, by.actor, "account.token_issued", target.actor, token=tid, label=label)
    return token


def authenticate_token(app: App, token: str) -> Account:
    """The account a personal token belongs to (refused if unknown, revoked or disabled)."""
    now = utcnow()
    with app.engine.begin() as conn:
        row = conn.execute(
            sa.select(accounts, account_tokens.c.id.label("token_id"), account_tokens.c.revoked_at)
            .join(account_tokens, account_tokens.c.account_id == accounts.c.id)
            .where(account_tokens.c.token_sha256 == token_digest(token))
        ).one_or_none()
        if row is None or row.revoked_at is not None or row.disabled_at is not None:
            why = (
                "unknown token" if row is None else "revoked token" if row.revoked_at else "disabled account"
            )
            subject = f"account:{row.id}:{row.name}" if row is not None else "token"
            audit.record(conn, "anonymous", "account.login_failed", subject, method="token", reason=why)
            failed = True
        else:
            conn.execute(
                account_tokens.update().where(account_tokens.c.id == row.token_id).values(last_used_at=now)
            )
            failed = False
    if failed:
        raise PermissionDenied("the token is not valid (unknown, revoked, or its account is disabled)")
    return _account(row)


def authenticate_password(app: App, name: str, password: str, *, now: datetime | None = None) -> Account:
    """Log in with a password. The same refusal for an unknown name and a wrong password; a
    locked account is refused without checking the password, until the lock expires."""
    now = now or utcnow()
    refusal = PermissionDenied("wrong account name or password")
    with app.engine.begin() as conn:
        row = conn.execute(sa.select(accounts).where(accounts.c.name_key == _key(name))).one_or_none()
        if row is None:
            verify_password(None, password)  # the same time as a wrong password
            audit.record(conn, "anonymous", "account.login_failed", "account:?", method="password")
            ok = False
        elif row.locked_until is not None and as_utc(row.locked_until) > now:
            audit.record(
                conn, "anonymous", "account.login_failed", f"account:{row.id}:{row.name}", reason="locked"
            )
            refusal = AccountLocked(as_utc(row.locked_until), app.config.timezone)
            ok = False
        elif row.disabled_at is not None or not verify_password(row.password_hash, password):
            failures = row.failed_logins + 1
            lock = None
            if failures >= LOCK_AFTER:
                lock = now + min(LOCK_MAX, LOCK_BASE * 2 ** (failures - LOCK_AFTER))
            conn.execute(
                accounts.update()
                .where(accounts.c.id == row.id)
                .values(failed_logins=failures, locked_until=lock)
            )
            audit.record(
                conn,
                "anonymous",
                "account.login_failed",
                f"account:{row.id}:{row.name}",
                method="password",
                failures=failures,
                locked_until=lock.isoformat() if lock else None,
            )
            ok = False
        else:
            values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
            if needs_rehash(row.password_hash):
                values["password_hash"] = hash_password(password)
            conn.execute(accounts.update().where(accounts.c.id == row.id).values(**values))
            audit.record(
                conn, f"account:{row.id}:{row.name}", "account.login", f"account:{row.id}:{row.name}"
            )
            ok = True
    if not ok:
        raise refusal
    return _account(row)
