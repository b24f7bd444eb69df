"""The cryptography of credentials: token secrets, password hashes (argon2id),
session tokens, sealed values and signatures, all checked in constant time.

(Named so as not to shadow the standard library's ``secrets``, which it uses.)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from fingerplat.domain import rules

if TYPE_CHECKING:
    from argon2 import PasswordHasher

TOKEN_PREFIX = "fp"
TOKEN_SECRET_BYTES = 32  # 256 bits


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2id with the library's current recommended parameters.

    Imported on first use: only password commands and the web login hash, and
    every other CLI command would otherwise load argon2 (and cffi) at start-up.
    """
    from argon2 import PasswordHasher

    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the admin name is unknown, so both paths cost the same.

    Made on first use, not at import: hashing costs ~0.2 s, which every CLI
    command would otherwise pay at start-up.
    """
    return _hasher().hash(secrets.token_urlsafe(16))


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
    return _hasher().hash(password)


def password_matches(password: str, stored_hash: str | None) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return _hasher().verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)


# -- web sessions ----------------------------------------------------------------

SESSION_TOKEN_BYTES = 32  # 256 bits: the cookie is unguessable, so SHA-256 storage suffices


def new_session_token() -> str:
    return secrets.token_urlsafe(SESSION_TOKEN_BYTES)


def seal(value: str, cookie_token: str) -> str:
    """Encrypt ``value`` with a key only the session's cookie gives.

    Used for a just-created API token's secret, kept in the session until the
    next page shows it: the database (which holds only the cookie's hash)
    never holds a usable secret. A fresh nonce per sealing; the key stream is
    SHAKE-256 of (purpose, cookie token, nonce), an XOF used as a stream
    cipher, and an HMAC tag refuses anything altered.
    """
    nonce = secrets.token_bytes(16)
    plain = value.encode("utf-8")
    stream = hashlib.shake_256(b"fingerplat-seal|" + cookie_token.encode() + b"|" + nonce)
    cipher = bytes(a ^ b for a, b in zip(plain, stream.digest(len(plain)), strict=True))
    tag = hmac.new(cookie_token.encode(), nonce + cipher, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(nonce + tag + cipher).decode("ascii")


def unseal(sealed: str, cookie_token: str) -> str | None:
    """The value :func:`seal` sealed with this cookie token, or None."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
    except (ValueError, UnicodeError):
        return None
    nonce, tag, cipher = raw[:16], raw[16:32], raw[32:]
    expected = hmac.new(cookie_token.encode(), nonce + cipher, hashlib.sha256).digest()[:16]
    if len(nonce) != 16 or not hmac.compare_digest(tag, expected):
        return None
    stream = hashlib.shake_256(b"fingerplat-seal|" + cookie_token.encode() + b"|" + nonce)
    plain = bytes(a ^ b for a, b in zip(cipher, stream.digest(len(cipher)), strict=True))
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        return None


def sign(key: bytes, purpose: str, value: str) -> str:
    """An HMAC-SHA256 of ``value`` for one ``purpose`` (hex)."""
    return hmac.new(key, f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()


def signature_matches(key: bytes, purpose: str, value: str, presented: str) -> bool:
    return hmac.compare_digest(sign(key, purpose, value).encode(), presented.encode("utf-8",
                                                                                    "replace"))
