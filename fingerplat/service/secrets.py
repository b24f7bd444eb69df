"""Token and password handling: random secrets, hashes, constant-time checks."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fingerplat.domain import rules

TOKEN_PREFIX = "fp"
TOKEN_SECRET_BYTES = 32  # 256 bits

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the admin name is unknown, so both paths cost the same.

    Made on first use, not at import: hashing costs ~0.2 s, which every CLI
    command would otherwise pay at start-up.
    """
    return _hasher.hash(secrets.token_urlsafe(16))


def new_token_secret() -> str:
    return secrets.token_urlsafe(TOKEN_SECRET_BYTES)


def format_token(token_id: int, secret: str) -> str:
    """The string a user holds: ``fp_<id>_<secret>``; the id lets us find the row."""
    return f"{TOKEN_PREFIX}_{token_id}_{secret}"


def parse_token(token: str) -> tuple[int, str] | None:
    parts = token.strip().split("_", 2)
    # ASCII digits only: "²".isdigit() is true, and int("²") then raised (a 500).
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not rules.ascii_digits(parts[1]):
        return None
    if len(parts[1]) > 18 or not parts[2] or len(parts[2]) > 200:
        return None
    return int(parts[1]), parts[2]


def hash_token_secret(secret: str) -> str:
    """SHA-256 suffices: the secret has 256 bits of entropy, nothing to brute-force."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token_secret(secret), stored_hash)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password: str, stored_hash: str | None) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
