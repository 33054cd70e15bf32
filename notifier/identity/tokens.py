"""Personal API tokens: random, shown once, stored as SHA-256 (a token is as good as a password,
but has 256 bits of entropy, so a fast hash is enough and lookups stay an index probe)."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "ntk_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()
