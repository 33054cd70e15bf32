"""SMS opt-out: a resident replies TD / 退订 / STOP ... and is never texted again.

The sender's number is stored in E.164 (the same form as `residents.phone` and
`deliveries.recipient`), so the existing gates apply with no further work: run creation chooses
another channel for an opted-out resident, and the dispatcher skips pending SMS to the number
at claim time. Adding is idempotent: a second 退订 changes nothing and is only audited.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .app import App
from .audit import log as audit
from .audit.pseudonyms import key_for, phone_subject
from .channels.base import InboundMessage
from .clock import utcnow
from .errors import InputError
from .masking import mask_phone
from .residents.validate import normalize_phone
from .storage.bulk import insert_new
from .storage.schema import opt_outs

KEYWORDS = frozenset({"td", "t", "退订", "stop", "n", "unsubscribe", "取消"})
"""Whole-message replies that mean "no more SMS" (compared as `keyword_of` leaves them). Chinese
carriers' convention is TD / 退订 (the templates end with 回TD退订); STOP / UNSUBSCRIBE are Twilio's."""

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")  # spaces, punctuation and symbols around the word


def keyword_of(body: str) -> str:
    """A reply as phones type it, made comparable: NFKC (full-width ＴＤ is TD, the ideographic
    space a space), zero-width characters dropped, surrounding spaces and punctuation (退订。)
    trimmed, case-folded."""
    return _EDGES.sub("", unicodedata.normalize("NFKC", body).translate(_INVISIBLE)).casefold()


def is_opt_out(body: str) -> bool:
    """Only a reply that is exactly a keyword counts: "不要退订" or a question must not opt out."""
    return keyword_of(body) in KEYWORDS


@dataclass(frozen=True)
class InboundResult:
    opted_out: bool  # the message was an opt-out keyword
    added: bool  # and the number was not on the list before
    phone: str | None  # E.164

    def as_json(self) -> dict[str, Any]:
        return {"opted_out": self.opted_out, "added": self.added, "phone": mask_phone(self.phone)}


def add_opt_out(
    app: App, phone: str, *, source: str, actor: str, detail: dict[str, Any] | None = None
) -> bool:
    """Put an E.164 number on the opt-out list; True if it was not there yet. Audited either way
    (`optout.added` / `optout.repeated`), in the same transaction as the insert."""
    insert = insert_new(app.engine, opt_outs, "phone")
    with app.engine.begin() as conn:
        added = (
            conn.execute(
                insert.values(phone=phone, source=source, created_at=utcnow()).returning(opt_outs.c.phone)
            ).first()
            is not None
        )
        audit.record(
            conn,
            actor,
            "optout.added" if added else "optout.repeated",
            phone_subject(key_for(conn, app.config), phone),
            phone=mask_phone(phone),
            source=source,
            **(detail or {}),
        )
    return added


def handle_inbound_sms(app: App, message: InboundMessage, *, actor: str | None = None) -> InboundResult:
    """An inbound SMS: an opt-out keyword puts the sender on the list; other text is ignored here
    (staff read replies in the provider's console). `actor` defaults to the provider's name.
    InputError if the sender is not a usable number."""
    if not is_opt_out(message.text):
        return InboundResult(False, False, None)
    try:
        phone, _ = normalize_phone(message.sender)
    except ValueError:
        raise InputError(
            f"inbound SMS From {mask_phone(message.sender)!r} is not a valid phone number"
        ) from None
    keyword = message.text.strip()
    added = add_opt_out(
        app,
        phone,
        source=f"sms reply {keyword!r}",
        actor=actor or message.provider,
        detail={"message_sid": message.message_id, "keyword": keyword},
    )
    return InboundResult(True, added, phone)


@dataclass(frozen=True)
class OptOut:
    phone: str  # E.164; show it masked (mask_phone) unless the viewer may unmask
    source: str
    created_at: Any

    def as_json(self) -> dict[str, Any]:
        return {"phone": mask_phone(self.phone), "source": self.source, "created_at": str(self.created_at)}


def list_opt_outs(app: App, *, limit: int = 500, offset: int = 0) -> tuple[int, list[OptOut]]:
    """The total and one page of the list, newest first."""
    import sqlalchemy as sa

    with app.reader.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(opt_outs)).scalar_one())
        rows = conn.execute(
            sa.select(opt_outs)
            .order_by(opt_outs.c.created_at.desc(), opt_outs.c.phone)
            .limit(limit)
            .offset(offset)
        ).all()
    return total, [OptOut(r.phone, r.source, r.created_at) for r in rows]


def parse_phone(text: str) -> str:
    """A number as staff type it (138 0000 0000, +86…) in E.164, or InputError saying why."""
    try:
        phone, _ = normalize_phone(text)
    except ValueError:
        raise InputError(f"{mask_phone(text.strip())!r} is not a valid mobile number") from None
    return phone


def remove_opt_out(app: App, phone: str, *, actor: str, reason: str) -> bool:
    """Take a number off the list (the resident asked to receive SMS again); True if it was on
    it. A reason is required and audited."""
    if not reason.strip():
        raise InputError("removing an opt-out needs a reason (recorded in the audit log)")
    with app.engine.begin() as conn:
        removed = conn.execute(opt_outs.delete().where(opt_outs.c.phone == phone)).rowcount > 0
        audit.record(
            conn,
            actor,
            "optout.removed" if removed else "optout.remove_unknown",
            phone_subject(key_for(conn, app.config), phone),
            phone=mask_phone(phone),
            reason=reason.strip(),
        )
    return removed
