"""Token and password primitives, and the directory cursor: pure functions."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fingerplat.domain.errors import InvalidInput
from fingerplat.service import credential_crypto
from fingerplat.service.users import decode_cursor, encode_cursor


def test_new_secrets_have_256_bits_and_differ() -> None:
    made = {credential_crypto.new_token_secret() for _ in range(50)}
    assert len(made) == 50
    assert all(len(s) >= 43 and set(s) <= set(string.ascii_letters + string.digits + "-_")
               for s in made)


def test_format_and_parse_round_trip() -> None:
    secret = credential_crypto.new_token_secret()
    token = credential_crypto.format_token(42, secret)
    assert token == f"fp_42_{secret}"
    assert credential_crypto.parse_token(token) == (42, secret)
    assert credential_crypto.parse_token(f"  {token}\r\n") == (42, secret)


@pytest.mark.parametrize("bad", [
    "", "fp", "fp_", "fp_1", "fp_1_", "fp__x", "fp_a_x", "fp_-1_x", "FP_1_x", "xx_1_x",
    "fp_" + "1" * 19 + "_x", "fp_1_" + "x" * 201, "Bearer fp_1_x",
])
def test_parse_refuses_malformed_tokens(bad: str) -> None:
    assert credential_crypto.parse_token(bad) is None


def test_secret_is_stored_as_sha256_and_compared_exactly() -> None:
    secret = credential_crypto.new_token_secret()
    stored = credential_crypto.hash_token_secret(secret)
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert credential_crypto.token_secret_matches(secret, stored)
    assert not credential_crypto.token_secret_matches(secret + "x", stored)
    assert not credential_crypto.token_secret_matches(secret[:-1], stored)
    assert not credential_crypto.token_secret_matches(secret, "0" * 64)


def test_passwords_use_argon2id() -> None:
    stored = credential_crypto.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert credential_crypto.password_matches("correct horse battery", stored)
    assert not credential_crypto.password_matches("Correct horse battery", stored)
    assert not credential_crypto.password_matches("correct horse battery", None)
    assert not credential_crypto.password_matches("x", "not a hash")
    assert not credential_crypto.password_needs_rehash(stored)


@given(st.from_regex(r"[a-z_][a-z0-9_.-]{0,31}", fullmatch=True))
def test_cursor_round_trip(username: str) -> None:
    cursor = encode_cursor(username)
    assert "=" not in cursor
    assert decode_cursor(cursor) == username


@given(st.text(max_size=60))
def test_garbage_cursor_is_invalid_input_or_a_valid_name(cursor: str) -> None:
    try:
        name = decode_cursor(cursor)
    except InvalidInput as error:
        assert "invalid cursor" in str(error)
    else:
        assert name == name.lower() and len(name) <= 32
