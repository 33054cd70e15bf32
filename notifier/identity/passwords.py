"""Password hashing with Argon2id (argon2-cffi): never stored or logged in clear."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import InputError

MIN_LENGTH = 10
_HASHER = PasswordHasher()  # Argon2id, the library's recommended parameters


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InputError(f"a password needs at least {MIN_LENGTH} characters")
    if password.strip() != password:
        raise InputError("a password cannot start or end with a space")


def hash_password(password: str) -> str:
    check_policy(password)
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True if `password` matches; a missing or broken hash never matches. Always costs one
    Argon2 computation, so a missing account takes as long as a wrong password."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


_DUMMY = _HASHER.hash("not a password of anyone")
