"""Verification codes: a short code on every notice that lets a resident check it is genuine.

Scams imitate 补贴发放 notices, so each delivery carries a code a resident can type at `/v` (or
scan on a letter) to see the county's own record of it. The code is HMAC-SHA256, under a secret
read from the environment (`[verification] secret`), of the delivery's stable identity — the
notice key, the resident and the channel — so a re-sent or fallback delivery of the same notice
on another channel has its own code, and recomputing a code needs the secret. It is the first
50 bits of the MAC in Crockford base32 (10 characters, shown as `ABCDE-FGHJK`): guessing one of a
county's few hundred thousand codes takes about 2^32 tries per hit, and `/v` limits tries per
address. Typed codes are forgiving: case, `I`/`L` for `1`, `O` for `0`, hyphens and spaces.

The code is stored with the message at run creation (run_messages.verify_code, indexed), so
looking one up is one indexed query; self-query and public lists can reuse `Verifier`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from .config import Config, resolve_secret
from .errors import ConfigError
from .rendering.templates import MissingValue

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
LENGTH = 10  # characters; 5 bits each
BITS = LENGTH * 5
MIN_SECRET = 16
PATH = "/v"
_TYPED = str.maketrans({"I": "1", "L": "1", "O": "0"})
_SEPARATORS = str.maketrans("", "", " -_\t\u3000")
SAMPLE_CODE = "0000000000"  # what checks and previews show where a run would print a real code


def encode(bits: int, length: int = LENGTH) -> str:
    """`length` Crockford base32 characters of the low `5 * length` bits of `bits`."""
    return "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(length)))


def normalise(typed: str) -> str | None:
    """The canonical form of a typed code, or None when it cannot be one (wrong length or a
    character outside the alphabet): upper case, I/L read as 1, O as 0, separators dropped."""
    text = typed.strip().upper().translate(_SEPARATORS).translate(_TYPED)
    if len(text) != LENGTH or any(c not in ALPHABET for c in text):
        return None
    return text


def display(code: str) -> str:
    """ABCDE-FGHJK: in two halves, easier to read aloud and to type."""
    return f"{code[:5]}-{code[5:]}" if len(code) == LENGTH else code


@dataclass(frozen=True)
class DeliveryIdentity:
    """What a code stands for: one notice to one resident on one channel."""

    notice_key: str
    resident_id: str
    channel: str

    def message(self) -> bytes:
        """Unambiguous bytes to sign (a JSON array: no separator can be forged by a value)."""
        return json.dumps(["notifier-verify-1", self.notice_key, self.resident_id, self.channel]).encode()


class Verifier:
    """Derives codes and their public URLs; holds the secret, never shows it."""

    def __init__(self, secret: str, public_url: str = "") -> None:
        if len(secret) < MIN_SECRET:
            raise ConfigError(
                f"verification.secret must be at least {MIN_SECRET} characters (a random string)"
            )
        self._key = secret.encode()
        self.public_url = public_url.rstrip("/")

    def __repr__(self) -> str:
        return f"Verifier(public_url={self.public_url!r})"

    def code(self, identity: DeliveryIdentity) -> str:
        mac = hmac.new(self._key, identity.message(), hashlib.sha256).digest()
        return encode(int.from_bytes(mac[:8], "big") >> (64 - BITS))

    def url(self, code: str) -> str:
        """Where the code is checked: `[serve] public_url` + /v/CODE (a relative path without it)."""
        return f"{self.public_url}{PATH}/{code}"


def verifier(config: Config) -> Verifier | None:
    """The configured verifier, or None when `[verification] secret` names an unset variable
    (runs are then created without codes; a template using one says how to set it)."""
    try:
        secret = resolve_secret(config.verification.secret, "verification.secret")
    except ConfigError:
        return None
    if not secret:
        return None
    return Verifier(str(secret), config.serve.public_url)


def require_verifier(config: Config) -> Verifier:
    """The configured verifier, or a ConfigError saying how to configure one."""
    found = verifier(config)
    if found is None:
        raise ConfigError(missing_secret_message(config))
    return found


def missing_secret_message(config: Config) -> str:
    secret = str(config.verification.secret)
    where = f"the environment variable {secret[4:]}" if secret.startswith("env:") else "[verification] secret"
    return (
        f"verification codes need a secret: set {where} to a random string of at least {MIN_SECRET} "
        "characters (python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )


def template_values(config: Config, codes: Verifier | None, code: str | None) -> dict[str, Any]:
    """`verify_code` (shown as ABCDE-FGHJK) and `verify_url` for a message's template; without a
    secret both are missing values whose printing is a render error saying how to set it."""
    if codes is None or code is None:
        hint = missing_secret_message(config)
        return {"verify_code": MissingValue(hint=hint), "verify_url": MissingValue(hint=hint)}
    return {"verify_code": display(code), "verify_url": codes.url(code)}
