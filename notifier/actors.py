"""Who acted, as recorded: an account's actor (`account:ID:name`, identity/) or, in a database
without accounts, the name typed after `--by`; compared the way people read them.

Separation of duties (a run's creator never approves it, one person one level) must not be
dodged by spelling: "Li", " li", "ｌｉ" (full-width) and "li\u200b" are one person. Names are
stored NFKC-normalised and trimmed, and compared case-folded as well.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .errors import InputError, StateError

_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"\s+")


def actor_name(text: str | None, what: str = "--by USER") -> str:
    """The name as stored: NFKC, invisible characters removed, inner spaces collapsed, trimmed."""
    name = _SPACES.sub(" ", _INVISIBLE.sub("", unicodedata.normalize("NFKC", text or ""))).strip()
    if not name:
        raise InputError(f"{what} is required: it is recorded as who acted")
    return name


def same_actor(a: str, b: str) -> bool:
    return actor_name(a).casefold() == actor_name(b).casefold()


def unmasking_actor(config: Any, by: str | None, what: str) -> str:
    """Who sees `what` with personal data in full: refused unless `[audit] unmask_allowed`, and
    always a named person, whom the caller records in the audit log."""
    if not config.audit.unmask_allowed:
        raise StateError.translatable(
            "unmasked %(what)s is not allowed: set [audit] unmask_allowed = true in %(config)s",
            what=what,
            config=config.where(),
        )
    return actor_name(by, f"--unmask needs --by USER: unmasked {what}")
