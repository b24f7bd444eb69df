"""The admin UI's pure parts: sealing and signing, CSV cells (no I/O)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from fingerplat.adapters.web.admin import csv_export
from fingerplat.domain.model import AuditEvent
from fingerplat.service import credential_crypto


def test_a_sealed_secret_opens_only_with_its_cookie_token() -> None:
    sealed = credential_crypto.seal("fp_7_s3cret", "cookie-token-a")
    assert "s3cret" not in sealed
    assert credential_crypto.unseal(sealed, "cookie-token-a") == "fp_7_s3cret"
    assert credential_crypto.unseal(sealed, "cookie-token-b") is None
    assert credential_crypto.unseal(sealed[:-4] + "AAAA", "cookie-token-a") is None
    assert credential_crypto.unseal("not base64 at all!", "cookie-token-a") is None
    # A fresh nonce each time:
    assert credential_crypto.seal("x", "t") != credential_crypto.seal("x", "t")


def test_login_form_signature_is_bound_to_key_purpose_and_nonce() -> None:
    key, other = b"k" * 32, b"o" * 32
    token = credential_crypto.sign(key, "admin-login", "nonce")
    assert credential_crypto.signature_matches(key, "admin-login", "nonce", token)
    assert not credential_crypto.signature_matches(other, "admin-login", "nonce", token)
    assert not credential_crypto.signature_matches(key, "user-login", "nonce", token)
    assert not credential_crypto.signature_matches(key, "admin-login", "nonce2", token)
    assert not credential_crypto.signature_matches(key, "admin-login", "nonce", token + "x")
    assert not credential_crypto.signature_matches(key, "admin-login", "nonce", "é")


def test_csv_cells_starting_like_a_formula_get_a_quote() -> None:
    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_export.safe_cell(dangerous) == "'" + dangerous
    assert csv_export.safe_cell("plain") == "plain"
    assert csv_export.safe_cell(None) == ""
    event = AuditEvent(
        id=7, at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC), tenant="acme",
        actor="=HYPERLINK(\"http://evil\")", channel="web", action="status.set",
        target="-alice@acme", outcome="ok", before=None, after={"status": "=x"},
        remote_addr="127.0.0.1", detail="@here",
    )
    rows = list(csv.reader(io.StringIO(csv_export.encode([event], header=True).decode())))
    assert rows[0] == csv_export.HEADER
    assert rows[1] == ["7", "2026-11-21T12:00:00+00:00", "acme", "'=HYPERLINK(\"http://evil\")",
                       "web", "status.set", "'-alice@acme", "ok", "127.0.0.1", "'@here", "",
                       '{"status": "=x"}']
