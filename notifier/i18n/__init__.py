"""Translations of what people read (console, and the messages it shows) from gettext catalogs.

The catalogs are plain `.po` files under `locale/<lang>/LC_MESSAGES/notifier.po`, compiled in
memory with Babel when first used: no build step, no binary files in the repository. zh_CN is
the default; the message ids are English. Statuses, roles and channels have fixed Chinese names
(`label`), the same everywhere staff read them.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DEFAULT_LANGUAGE = "zh_CN"
LANGUAGES = ("zh_CN", "en")


@lru_cache(maxsize=None)
def translations(language: str = DEFAULT_LANGUAGE) -> NullTranslations:
    """The catalog of `language` (en and unknown languages: the English message ids)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "notifier.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain="notifier")


def gettext(message: str, language: str = DEFAULT_LANGUAGE) -> str:
    return translations(language).gettext(message)


def error_text(exc: Exception, language: str = DEFAULT_LANGUAGE) -> str:
    """A project error as staff read it: translated when it was raised `translatable` (a status
    among its values by its name: 已完成), else by the wordings i18n/patterns knows, else its
    English message."""
    from ..errors import NotifierError
    from .patterns import translate

    if not isinstance(exc, NotifierError):
        return str(exc)
    if exc.msgid is None:  # a text built without an id: known wordings are translated by pattern
        return translate(exc.message, language)
    return gettext(exc.msgid, language) % {k: _shown(k, v, language) for k, v in exc.params.items()}


def _shown(key: str, value: object, language: str) -> object:
    """A value of an error as staff read it: statuses by name, accounts by their name, and what
    was refused (`approve runs`) translated."""
    text = str(value)
    if key == "status":
        return label(text, language)
    if key == "by" and text.startswith("account:"):
        return text.split(":", 2)[-1]
    if key == "what":
        return gettext(text, language)
    return value


def label(value: str, language: str = DEFAULT_LANGUAGE) -> str:
    """A status, role or channel as staff read it: `sent` -> 已发送 (zh_CN), `sent` -> Sent (en)."""
    return gettext(LABELS.get(value, value), language)


LABELS: dict[str, str] = {
    # delivery statuses
    "pending": "Pending",
    "sending": "Sending",
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
    "undelivered": "Undelivered",
    "skipped": "Skipped",
    "unknown": "Outcome unknown",
    # run statuses
    "awaiting_approval": "Awaiting approval",
    "approved": "Approved",
    "completed": "Completed",
    "cancelled": "Cancelled",
    # channels
    "sms": "SMS",
    "email": "E-mail",
    "letter": "Letter",
    "none": "No channel",
    # roles
    "operator": "Operator",
    "reviewer": "Reviewer",
    "auditor": "Auditor",
    "admin": "Administrator",
}
"""Message ids of the fixed vocabulary (the catalogs translate them)."""
