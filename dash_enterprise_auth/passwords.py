"""Password hashing for the basic connector's users file (Argon2id via argon2-cffi)."""
from __future__ import annotations

import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that a wrong username
# costs the same time as a wrong password and does not reveal who exists.
_DUMMY_HASH = _hasher.hash("dash-enterprise-auth: no such user")


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("the password is empty")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True only for a non-empty password matching ``stored_hash``."""
    try:
        ok = _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None and bool(password)


def plain_equal(expected: str, given: str) -> bool:
    """Constant-time comparison for dash-auth's plain username/password pairs."""
    return hmac.compare_digest(expected.encode(), given.encode())
