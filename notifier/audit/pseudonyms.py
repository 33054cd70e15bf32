"""Pseudonyms: what an audit event holds where it must name a phone number (issue 16, PIPL art. 51).

The chain is kept for years and hashes every event, so an event can never be edited later: a raw
number in it would outlive every retention period. Events name a number by a keyed hash (HMAC-SHA256,
first 96 bits) beside its masked form, `phone:139****5678#3f0c…`: an auditor holding the key finds
every event about one number (`notifier audit pseudonym PHONE`), nobody without it can recover the
number from a dump, even though 11-digit numbers are few enough to try them all against a plain hash.

The key is `[audit] pseudonym_key`, `env:NAME` (default NOTIFIER_PSEUDONYM_KEY). When that variable
is not set, a random key kept in the database (`audit_keys`) is used instead, created on first use:
a dump of the database then carries its key, which is weaker, but events still never hold the
number itself, and the pseudonyms stay stable. Changing the key later starts new pseudonyms: events
before and after no longer match (documented in docs/retention.md).

`scrub` is the safety net for text that comes from outside (a provider's receipt, its refusal
message): mobile numbers, ID numbers and e-mail addresses in it are masked before it is hashed in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from typing import Any

import sqlalchemy as sa

from ..clock import utcnow
from ..config import Config
from ..masking import mask_phone, mask_text
from ..storage.bulk import insert_new
from ..storage.schema import audit_keys

_DB_KEY = "pseudonym"
HEX = 24  # hex digits of the MAC kept: 96 bits


def configured_key(config: Config) -> bytes | None:
    """The key from `[audit] pseudonym_key` (an `env:NAME` that is set, or a literal), else None."""
    value = config.audit.pseudonym_key
    if value.startswith("env:"):
        value = os.environ.get(value[4:], "")
    return value.encode("utf-8") if value else None


def database_key(conn: sa.Connection) -> bytes:
    """The database's own random key, made on first use (two first uses at once keep the first)."""
    k = audit_keys
    row = conn.execute(sa.select(k.c.value).where(k.c.name == _DB_KEY)).scalar_one_or_none()
    if row is None:
        conn.execute(
            insert_new(conn.engine, k, "name").values(
                name=_DB_KEY, value=secrets.token_hex(32), created_at=utcnow()
            )
        )
        row = conn.execute(sa.select(k.c.value).where(k.c.name == _DB_KEY)).scalar_one()
    return bytes.fromhex(str(row))


def key_for(conn: sa.Connection, config: Config) -> bytes:
    return configured_key(config) or database_key(conn)


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """The keyed hash of one value of one kind (`phone`, ...): equal values, equal pseudonyms."""
    msg = json.dumps([kind, value], ensure_ascii=False).encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:HEX]


def phone_subject(key: bytes, phone: str) -> str:
    """`phone:139****5678#<pseudonym>`: the subject of an event about an (E.164) phone number."""
    return f"phone:{mask_phone(phone)}#{pseudonym(key, 'phone', phone)}"


# A digest or a provider's message id (SM + 32 hex digits): a run of 11 digits inside it is no phone
# number, and masking it would spoil the evidence (a file's sha256, a receipt's message id).
_TOKEN = re.compile(r"[A-Za-z]{0,4}(?=[0-9a-f]*[a-f])[0-9a-f]{16,}")


def scrub(value: Any) -> Any:
    """`value` (JSON-like) with phone numbers, ID numbers and e-mail addresses in its text masked
    (digests and message ids left whole)."""
    if isinstance(value, str):
        return value if _TOKEN.fullmatch(value) else mask_text(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def subject_of_phone(engine: sa.Engine, config: Config, phone: str) -> str:
    """The subject events about `phone` (E.164) carry, for an auditor's search."""
    with engine.begin() as conn:
        return phone_subject(key_for(conn, config), phone)
