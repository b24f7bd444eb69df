"""Browser sessions of the admin UI and the self-service page, over the service's store.

Two mechanisms, both shared by every worker and node because their state
lives in the database:

* A signed-in browser has a :class:`Session`: the cookie carries a random
  token, the service finds the session by the token's hash (one indexed
  lookup per request). Each session has its own CSRF secret, echoed by every
  form (the synchroniser-token pattern). Flash messages and a just-created
  token's sealed secret are written back only when they change.
* An anonymous visitor of a login form gets no server-side state at all: a
  random nonce in a cookie, and in the form the nonce's HMAC under a key
  every node shares (:meth:`~fingerplat.service.web_sessions.WebSessionUseCases.shared_key`),
  the "signed double submit" pattern. A forged form needs the victim's
  cookie, which another site can neither read nor set (HttpOnly,
  SameSite=Strict), and no number of visits can push anything out.
"""

from __future__ import annotations

import hmac
import re
import secrets as pysecrets
from typing import Any

from aiohttp import web

from fingerplat.domain.model import Principal, WebSession
from fingerplat.service import FingerplatService, credential_crypto

FLASH_MAX = 5
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{43}")


class Session:
    """One request's view of a stored session; remembers what must be written back."""

    def __init__(self, token: str, stored: WebSession) -> None:
        self.token = token
        self.stored = stored
        self._data: dict[str, Any] = dict(stored.data)
        self.dirty = False

    @property
    def principal(self) -> Principal:
        return self.stored.principal

    @property
    def home_tenant(self) -> str | None:
        return self.stored.home_tenant

    @property
    def csrf_token(self) -> str:
        return self.stored.csrf_secret

    def csrf_matches(self, presented: str | None) -> bool:
        """Constant-time comparison, so the token cannot be guessed byte by byte."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf_token.encode())

    def flash(self, kind: str, message: str) -> None:
        """A one-shot message shown on the next page (after a redirect)."""
        flashes = [*self._data.get("flashes", []), [kind, message[:500]]][-FLASH_MAX:]
        self._data["flashes"] = flashes
        self.dirty = True

    def take_flashes(self) -> list[tuple[str, str]]:
        shown = [(str(k), str(m)) for k, m in self._data.pop("flashes", [])]
        if shown:
            self.dirty = True
        return shown

    @property
    def secret_once(self) -> str | None:
        sealed = self._data.get("sealed")
        return credential_crypto.unseal(sealed, self.token) if isinstance(sealed, str) else None

    @secret_once.setter
    def secret_once(self, value: str | None) -> None:
        """Kept sealed with the cookie token: the stored row alone cannot reveal it."""
        if value is None:
            self._data.pop("sealed", None)
        else:
            self._data["sealed"] = credential_crypto.seal(value, self.token)
        self.dirty = True

    def take_secret(self) -> str | None:
        shown = self.secret_once
        if "sealed" in self._data:
            self.secret_once = None
        return shown

    @property
    def data(self) -> dict[str, Any]:
        return self._data


async def load(service: FingerplatService, token: str | None, kind: str) -> Session | None:
    if not token:
        return None
    stored = await service.web_sessions.web_session(token, kind)
    return Session(token, stored) if stored is not None else None


async def start(service: FingerplatService, principal: Principal,
                old: Session | None) -> Session:
    """A fresh session after a successful login; the previous one (if any) ends."""
    if old is not None:
        await service.web_sessions.end_web_session(old.token)
    token, stored = await service.web_sessions.start_web_session(principal)
    return Session(token, stored)


async def save(service: FingerplatService, session: Session | None) -> None:
    if session is not None and session.dirty:
        session.dirty = False
        await service.web_sessions.save_web_session_data(session.stored, session.data)


def set_session_cookie(response: web.StreamResponse, name: str, token: str, *, path: str,
                       secure: bool) -> None:
    response.set_cookie(name, token, path=path, httponly=True, secure=secure,
                        samesite="Strict")


# -- the login forms: signed double submit, no server-side state ------------------


def login_nonce(request: web.Request, cookie_name: str) -> tuple[str, bool]:
    """The visitor's login-form nonce from its cookie, or a new one: (nonce, is_new)."""
    sent = request.cookies.get(cookie_name, "")
    if _NONCE_RE.fullmatch(sent):
        return sent, False
    return pysecrets.token_urlsafe(32), True


def login_form_token(key: bytes, purpose: str, nonce: str) -> str:
    """What the login form carries: the nonce's HMAC for this form's purpose."""
    return credential_crypto.sign(key, purpose, nonce)


def login_form_valid(request: web.Request, key: bytes, purpose: str, cookie_name: str,
                     presented: object) -> bool:
    """Whether a posted login form echoes the signature of the nonce in its cookie."""
    nonce = request.cookies.get(cookie_name, "")
    if not _NONCE_RE.fullmatch(nonce) or not isinstance(presented, str) or not presented:
        return False
    return credential_crypto.signature_matches(key, purpose, nonce, presented)


def set_login_cookie(response: web.StreamResponse, name: str, nonce: str, *, path: str,
                     secure: bool) -> None:
    """A session cookie (no Max-Age): the nonce lives as long as the browser window."""
    response.set_cookie(name, nonce, path=path, httponly=True, secure=secure,
                        samesite="Strict")
