"""Who is asking: remote address, bearer tokens and HTTP Basic tokens.

Tokens are checked by the service (hash, expiry, revocation, audit of
failures); this module only finds them in the request.
"""

from __future__ import annotations

import base64
import binascii
from typing import NoReturn

from aiohttp import web

from fingerplat.adapters.web.keys import SERVICE
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import AuthenticationFailed
from fingerplat.domain.model import Channel, Context, Principal


def remote_addr(request: web.Request) -> str | None:
    """The peer address. Forwarded headers are not trusted: they are client-controlled."""
    return request.remote


def anonymous(request: web.Request, channel: Channel) -> Context:
    return Context(Principal.anonymous(), channel, remote_addr(request))


def bearer_token(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when no header was sent.

    A header in another scheme, or an empty one, is an authentication failure,
    not an anonymous request: the caller clearly meant to authenticate.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed("expected 'Authorization: Bearer <token>'")
    return value.strip()


def basic_password(request: web.Request) -> str | None:
    """The password of HTTP Basic auth (XML-RPC puts the token there); None when absent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise AuthenticationFailed("expected HTTP Basic authentication with a token as password")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed("malformed HTTP Basic credentials") from None
    _, sep, password = decoded.partition(":")
    if not sep or not password:
        raise AuthenticationFailed("HTTP Basic credentials need a token as the password")
    return password


async def token_context(
    request: web.Request, token: str | None, channel: Channel
) -> Context:
    """The acting context: anonymous without a token, the token's principal with one."""
    if token is None:
        return anonymous(request, channel)
    principal = await request.config_dict[SERVICE].credentials.authenticate_token(
        token, channel, remote_addr(request)
    )
    return Context(principal, channel, remote_addr(request))


async def refuse(request: web.Request, channel: Channel, message: str) -> NoReturn:
    """401 for a request without usable credentials, audited by the service.

    The service counts such refusals per client address and writes only the
    first few of a window one row each (SPEC section 11), so this is safe to
    call for every anonymous request an attacker sends.
    """
    await request.config_dict[SERVICE].throttle.deny_unauthenticated(
        channel, remote_addr(request), AuditAction.AUTH_TOKEN,
        f"{request.method} {request.path}"[:300], message,
    )
    raise AssertionError("deny_unauthenticated returned")  # pragma: no cover


async def audited_bearer_token(request: web.Request, channel: Channel) -> str | None:
    """:func:`bearer_token`, with an unreadable header refused and audited."""
    try:
        return bearer_token(request)
    except AuthenticationFailed as error:
        await refuse(request, channel, str(error))


async def audited_basic_password(request: web.Request, channel: Channel) -> str | None:
    """:func:`basic_password`, with unreadable credentials refused and audited."""
    try:
        return basic_password(request)
    except AuthenticationFailed as error:
        await refuse(request, channel, str(error))
