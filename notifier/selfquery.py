"""Self-query: a resident who gives their 身份证号 and 姓名 sees the notices sent to them.

Both must match the register (after normalising: NFKC, invisible characters and spaces dropped,
the ID's x upper-cased, the name case-folded), or nothing is shown; a wrong pair, an unknown ID
and a resident with no notice get one and the same answer, so the page never tells whether an ID
number is registered. What is shown is what the resident already knows: item, department, day,
channel, status, the contact masked (138****0000).

Nothing typed is stored or logged. The ID number and the client address appear only as keyed
hashes (HMAC-SHA256 under a key derived from `[verification] secret`): in the audit event every
query leaves, and as the keys of the attempt counters (`query_attempts`), which live in the
database so every worker of `serve` counts against one limit. The optional SMS one-time code
(`[selfquery] otp`) is stored as a keyed hash beside a random token the form carries, with its
expiry and a count of wrong tries.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .app import App
from .audit import log as audit
from .clock import as_utc, utcnow
from .config import Config, resolve_secret
from .errors import ConfigError
from .masking import mask_name_ends
from .runs.snapshot import RunSnapshot
from .status import Channel, DeliveryStatus, RunStatus
from .storage.schema import deliveries, query_attempts, query_codes, runs
from .verification import MIN_SECRET
from .verify_page import mask_recipient

log = logging.getLogger("notifier.selfquery")
ACTOR = "public:selfquery"
ACTION = "selfquery.asked"
SHOWN_RUNS = (RunStatus.APPROVED.value, RunStatus.COMPLETED.value)
"""Runs whose notices a resident sees: approved (being sent) or completed; never a draft."""
HIDDEN = (DeliveryStatus.SKIPPED.value,)
"""Deliveries never attempted (no contact, opted out, cancelled) were not sent to anyone."""
MAX_NOTICES = 200
CODE_DIGITS = 6
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"\s+")


class Outcome:
    """What the audit event says a query came to."""

    MATCHED = "matched"  # the list was shown
    UNMATCHED = "unmatched"  # no such pair (or no notice): the uniform "nothing found"
    LIMITED = "limited"  # over the per-address or per-ID limit
    OTP_SENT = "otp_sent"  # matched; a code went to the registered mobile
    OTP_FAILED = "otp_failed"  # matched, but no mobile on the register or the SMS failed
    OTP_WRONG = "otp_wrong"  # a wrong, expired or used-up code


def normalise_id(typed: str) -> str:
    """How an ID number is compared: NFKC (full-width digits), no spaces or invisible characters,
    X upper-cased: the register stores it the same way (residents/validate.check_id_number)."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", typed))
    return _SPACES.sub("", text).upper()


def normalise_name(typed: str) -> str:
    """How a name is compared: NFKC, no spaces or invisible characters, case-folded."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", typed))
    return _SPACES.sub("", text).casefold()


class QueryKeys:
    """The keyed hashes of self-query, under one key derived from the verification secret (one
    purpose per hash, so no value can stand for another)."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET:
            raise ConfigError(f"verification.secret must be at least {MIN_SECRET} characters")
        self._key = hmac.new(secret.encode(), b"notifier-selfquery-1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "QueryKeys()"

    def mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def subject(self, id_number: str) -> str:
        """The audit subject of a query: the normalised ID number's keyed hash (32 hex digits)."""
        return "id:" + self.mac("id", normalise_id(id_number))[:32]

    def address(self, address: str) -> str:
        return "addr:" + self.mac("address", address)[:32]


def query_keys(config: Config) -> QueryKeys | None:
    """The keys, or None when `[verification] secret` is unset or too short (then /query says it
    is not available)."""
    try:
        secret = resolve_secret(config.verification.secret, "verification.secret")
        return QueryKeys(str(secret)) if secret else None
    except ConfigError as exc:  # unset, or too short: the page says it is not available
        log.warning("/query is not available: %s", exc.message)
        return None


@dataclass(frozen=True)
class Resident:
    """The register's resident a query matched (internal: never shown as is)."""

    resident_id: str
    name: str
    phone: str  # E.164, "" without a mobile number


@dataclass(frozen=True)
class SentNotice:
    """One notice as /query lists it, masked."""

    title: str
    department: str
    sent_on: str  # local date, YYYY-MM-DD ("" before it is sent)
    channel: Channel
    status: DeliveryStatus
    recipient: str  # masked phone, e-mail or address


def find_resident(app: App, id_number: str, name: str) -> Resident | None:
    """The resident with this ID number and name, both as normalised; one indexed-size query,
    the names compared in constant time."""
    idn, wanted = normalise_id(id_number)[:32], normalise_name(name)
    t = app.residents
    with app.reader.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.resident_id, t.c.name, t.c.phone, t.c.phone_kind).where(t.c.id_number == idn)
        ).all()
    found = None
    for row in rows:
        if hmac.compare_digest(normalise_name(row.name or "").encode(), wanted.encode()) and wanted:
            found = Resident(row.resident_id, row.name or "", row.phone if row.phone_kind == "mobile" else "")
    return found


def notices_of(app: App, resident_id: str) -> list[SentNotice]:
    """The resident's deliveries in approved or completed runs (not skipped), newest first."""
    d, r = deliveries, runs
    query = (
        sa.select(d.c.channel, d.c.status, d.c.recipient, d.c.sent_at, d.c.updated_at, r.c.snapshot)
        .select_from(d.join(r, r.c.id == d.c.run_id))
        .where(d.c.resident_id == resident_id, r.c.status.in_(SHOWN_RUNS), d.c.status.not_in(HIDDEN))
        .order_by(d.c.id.desc())
        .limit(MAX_NOTICES)
    )
    with app.reader.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        item = RunSnapshot.from_json(row.snapshot).item
        channel, status = Channel(row.channel), DeliveryStatus(row.status)
        when = row.sent_at or (row.updated_at if status is not DeliveryStatus.PENDING else None)
        out.append(
            SentNotice(
                title=item.title,
                department=item.department or "",
                sent_on=as_utc(when).astimezone(app.config.timezone).date().isoformat() if when else "",
                channel=channel,
                status=status,
                recipient=mask_recipient(channel, row.recipient or ""),
            )
        )
    return out


def masked_name(resident: Resident) -> str:
    return mask_name_ends(resident.name)


# -- attempts, counted in the database -----------------------------------------------------------
def count_attempts(
    app: App, keys: list[str], window_seconds: float, now: datetime | None = None
) -> list[int]:
    """Count one attempt against each key in the current fixed window; the counts including it.
    One transaction (an upsert per key), so concurrent workers never lose a count; rows of
    windows already past are deleted on the way."""
    window = max(1, int(window_seconds))
    at = int((now or utcnow()).timestamp())
    start = at - at % window
    q = query_attempts
    with app.engine.begin() as conn:
        conn.execute(q.delete().where(q.c.window_start < start - window))
        return [_bump(conn, key, start) for key in keys]


def _bump(conn: sa.Connection, key: str, start: int) -> int:
    q = query_attempts
    values = {"key_hash": key, "window_start": start, "count": 1}
    insert: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(q)
    stmt = insert.values(**values).on_conflict_do_update(
        index_elements=[q.c.key_hash, q.c.window_start], set_={"count": q.c.count + 1}
    )
    conn.execute(stmt)
    return int(
        conn.execute(sa.select(q.c.count).where(q.c.key_hash == key, q.c.window_start == start)).scalar_one()
    )


def record_query(app: App, subject: str, outcome: str, **payload: Any) -> None:
    """The audit event of one query: keyed hashes and the outcome, never what was typed."""
    with app.engine.begin() as conn:
        audit.record(conn, ACTOR, ACTION, subject, outcome=outcome, **payload)


# -- SMS one-time codes --------------------------------------------------------------------------
def new_token() -> str:
    """The random token a code form carries (also given for no match, so both pages look alike)."""
    return secrets.token_urlsafe(24)


def issue_code(
    app: App, keys: QueryKeys, token: str, resident: Resident, subject: str, minutes: float
) -> str:
    """A fresh 6-digit code for `token`, stored as keyed hashes; expired codes are deleted."""
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    now = utcnow()
    c = query_codes
    with app.engine.begin() as conn:
        conn.execute(c.delete().where(c.c.expires_at < now))
        conn.execute(
            c.insert().values(
                token_hash=keys.mac("token", token),
                resident_id=resident.resident_id,
                subject=subject,
                code_hash=keys.mac("code", f"{token}\x00{code}"),
                expires_at=now + timedelta(minutes=minutes),
                attempts=0,
            )
        )
    return code


@dataclass(frozen=True)
class CodeCheck:
    """A typed code's verdict: whose notices it unlocks (None: wrong, expired or used up) and
    the subject of the query it answers ("" for a token that was never issued)."""

    resident_id: str | None
    subject: str


def check_code(app: App, keys: QueryKeys, token: str, typed: str, max_attempts: int) -> CodeCheck:
    """Check a typed code in one transaction: a right one is used up (deleted), a wrong one
    counts a try, and after `max_attempts` wrong tries or past its expiry none is accepted."""
    c = query_codes
    given = keys.mac("code", f"{token}\x00{typed.strip()}")
    with app.engine.begin() as conn:
        row = conn.execute(
            sa.select(c).where(c.c.token_hash == keys.mac("token", token)).with_for_update()
        ).first()
        if row is None:
            return CodeCheck(None, "")
        live = as_utc(row.expires_at) > utcnow() and row.attempts < max_attempts
        if live and hmac.compare_digest(row.code_hash, given):
            conn.execute(c.delete().where(c.c.token_hash == row.token_hash))
            return CodeCheck(row.resident_id, row.subject)
        conn.execute(c.update().where(c.c.token_hash == row.token_hash).values(attempts=row.attempts + 1))
        return CodeCheck(None, row.subject)


def code_text(code: str, minutes: float) -> str:
    """The SMS a resident receives."""
    return f"您正在查询本人收到的通知，验证码{code}，{minutes:g}分钟内有效。如非本人操作，请忽略本短信。"


async def send_code(app: App, resident: Resident, code: str, minutes: float) -> bool:
    """Send the code by the first configured SMS provider (the one-method provider seam, as the
    dispatcher does); False when it could not be handed over. Never logs the number or the code.
    The message is not a delivery of any run (run 0, delivery 0) and is not rate-spaced or failed
    over: a resident who gets no code asks again."""
    from .channels.base import OutboundMessage
    from .channels.registry import build_provider

    sms = app.config.channels.get(Channel.SMS)
    if sms is None or not resident.phone:
        return False
    try:
        provider = build_provider(app.config, sms.providers[0])
        await provider.open()
        try:
            await provider.send(
                OutboundMessage(
                    delivery_id=0,
                    run_id=0,
                    channel=Channel.SMS,
                    resident_id=resident.resident_id,
                    recipient=resident.phone,
                    recipient_name=resident.name,
                    body=code_text(code, minutes),
                    segments=1,
                    meta={"purpose": "selfquery"},
                )
            )
        finally:
            await provider.close()
    except Exception as exc:  # any provider failure: audited as otp_failed; only its kind is logged
        log.warning("self-query code not sent: %s", exc.__class__.__name__)
        return False
    return True
