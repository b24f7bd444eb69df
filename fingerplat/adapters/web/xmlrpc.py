"""XML-RPC at ``POST /RPC2`` and ``/t/<slug>/RPC2`` (SPEC section 5).

The tutorial's ``getUser``/``getUsers`` plus ``getUserInfo`` and an
authenticated ``setUser``, with standard introspection. Requests are parsed
by the standard library's unmarshaller fed through defusedxml's expat parser:
DTDs, entity declarations and external references are refused before any
expansion happens, and the body is size-checked before it is parsed at all.

Every refusal is a fault with a stable code (documented in docs/web.md):
the HTTP-like codes below for domain errors, the interoperability codes
(-32700...) for protocol errors.
"""

from __future__ import annotations

import logging
import re
import xmlrpc.client
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

from aiohttp import web
from defusedxml import DefusedXmlException
from defusedxml.xmlrpc import DefusedExpatParser

from fingerplat.adapters.user_fields import user_dict
from fingerplat.adapters.web import tenancy
from fingerplat.adapters.web.keys import ERROR_KIND, SERVICE
from fingerplat.adapters.web.payloads import BodyTimeout, PayloadTooLarge, read_body
from fingerplat.adapters.web.principals import audited_basic_password, refuse, remote_addr
from fingerplat.adapters.web.statuses import status_for
from fingerplat.domain import rules
from fingerplat.domain.errors import (
    AuthenticationFailed,
    FingerplatError,
    NetworkRejected,
)
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import Channel, Context, Tenant

log = logging.getLogger("fingerplat.web.xmlrpc")

NO_SUCH_USER = "No such user"
# Amplification bounds (SPEC section 11): a request of at most max_body_bytes
# runs at most MAX_MULTICALL calls, and all its answers together list at most
# MAX_LISTED_USERS usernames, so no request makes the server build an answer
# of unbounded size (a multicall of 100 getUsers on a 10,000-user tenant made
# a 61 MB answer before these limits).
MAX_MULTICALL = 50
MAX_LISTED_USERS = 1000
PAGE_DEFAULT = 100

# Stable fault codes.
FAULT_UNAUTHENTICATED = 401
FAULT_FORBIDDEN = 403
FAULT_NOT_FOUND = 404
FAULT_CONFLICT = 409
FAULT_TOO_MANY = 429
FAULT_INVALID = 422
FAULT_TOO_LARGE = 413
FAULT_UNAVAILABLE = 503
FAULT_PARSE = -32700
FAULT_BAD_REQUEST = -32600
FAULT_NO_METHOD = -32601
FAULT_BAD_PARAMS = -32602
FAULT_INTERNAL = -32603


# Characters XML 1.0 cannot carry at all; stored text should never hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class RpcFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fault_for(error: FingerplatError) -> RpcFault:
    """A domain error's fault: its code is the HTTP status the JSON API answers with."""
    return RpcFault(status_for(error, default=FAULT_INVALID), str(error))


def xml_safe(value: Any) -> Any:
    """Drop characters XML cannot represent, recursively, so an answer always parses."""
    if isinstance(value, str):
        return _NOT_XML.sub("\ufffd", value)
    if isinstance(value, list):
        return [xml_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: xml_safe(v) for k, v in value.items()}
    return value


def parse_call(body: bytes) -> tuple[str, tuple[Any, ...]]:
    """(method name, params) of a methodCall, via defused expat; faults on anything else."""
    unmarshaller = xmlrpc.client.Unmarshaller()
    parser = DefusedExpatParser(unmarshaller, forbid_dtd=True)
    try:
        parser.feed(body)
        parser.close()
        params = unmarshaller.close()
    except DefusedXmlException as exc:
        raise RpcFault(FAULT_PARSE, f"refused XML: {type(exc).__name__}") from None
    except ExpatError as exc:
        raise RpcFault(FAULT_PARSE, f"malformed XML: {exc}") from None
    except (xmlrpc.client.Error, ValueError, TypeError, KeyError, IndexError) as exc:
        raise RpcFault(FAULT_BAD_REQUEST, f"not an XML-RPC methodCall: {exc}") from None
    method = unmarshaller.getmethodname()
    if not method:
        raise RpcFault(FAULT_BAD_REQUEST, "not an XML-RPC methodCall: no methodName")
    return method, tuple(params)


@dataclass
class Call:
    """One request's state shared by the methods: the tenant and, lazily, the principal."""

    request: web.Request
    tenant: Tenant
    _ctx: Context | None = None
    _refused: AuthenticationFailed | None = None
    listed: int = 0  # usernames put in this request's answers so far

    def may_list(self, count: int) -> None:
        """Count ``count`` more usernames against the request's budget, or fault."""
        if self.listed + count > MAX_LISTED_USERS:
            raise RpcFault(
                FAULT_TOO_LARGE,
                f"answer too large: one request lists at most {MAX_LISTED_USERS} usernames "
                "in all; ask for the rest in another request (getUsersPage)",
            )
        self.listed += count

    @property
    def service(self) -> Any:
        return self.request.config_dict[SERVICE]

    async def authenticated(self) -> Context:
        """The request's token context, checked once per request.

        A request carries one ``Authorization`` header: when it fails, every
        ``setUser`` of a ``system.multicall`` gets the same fault without
        checking (and counting, and auditing) the same credentials again.
        """
        if self._refused is not None:
            raise self._refused
        if self._ctx is None:
            try:
                token = await audited_basic_password(self.request, Channel.XMLRPC)
                if token is None:
                    await refuse(self.request, Channel.XMLRPC,
                                 "setUser needs HTTP Basic authentication with an API token "
                                 "as the password")
                principal = await self.service.credentials.authenticate_token(
                    token, Channel.XMLRPC, remote_addr(self.request)
                )
            except AuthenticationFailed as error:
                self._refused = error
                raise
            self._ctx = Context(principal, Channel.XMLRPC, remote_addr(self.request))
        return self._ctx


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RpcFault(FAULT_BAD_PARAMS, f"{name} must be a string")
    return value


async def get_user(call: Call, user: Any) -> str:
    """getUser(user): the user's status; "No such user" for unknown or hidden users."""
    name = _string(user, "user").strip().lower()
    if not rules.USERNAME_RE.fullmatch(name):
        return NO_SUCH_USER
    found = await call.service.public.public_user(call.tenant, name)
    if found is None:
        return NO_SUCH_USER
    call.service.finger_log.note_lookup(call.tenant, found, "xmlrpc", remote_addr(call.request))
    return found.status or ""


async def get_users(call: Call) -> list[str]:
    """getUsers(): the usernames of the tenant's visible users, the first 1000 at most."""
    tenancy.check_listing(call.request, call.tenant)
    room = MAX_LISTED_USERS - call.listed
    if room <= 0:
        call.may_list(1)  # a spent budget is a fault, never a silently empty list
    page = await call.service.users.directory(call.tenant, limit=room)
    call.may_list(len(page.users))
    return [u.username for u in page.users]


async def get_users_page(call: Call, cursor: Any, limit: Any) -> dict[str, Any]:
    """getUsersPage(cursor, limit): one page of usernames and the cursor of the next."""
    tenancy.check_listing(call.request, call.tenant)
    after = _string(cursor, "cursor")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise RpcFault(FAULT_BAD_PARAMS, "limit must be an integer between 1 and 1000")
    call.may_list(limit)
    page = await call.service.users.directory(call.tenant, limit=limit, cursor=after or None)
    call.listed -= limit - len(page.users)
    return {
        "users": [u.username for u in page.users],
        "total": page.total,
        "next_cursor": page.next_cursor or "",
    }


#: getUserInfo's members (docs/web.md).
INFO_KEYS = ("username", "full_name", "status", "status_set_at", "status_expires_at", "plan")


async def get_user_info(call: Call, user: Any) -> dict[str, str]:
    """getUserInfo(user): struct with username, full_name, status, status_set_at, plan."""
    name = _string(user, "user").strip().lower()
    if not rules.USERNAME_RE.fullmatch(name):
        raise RpcFault(FAULT_NOT_FOUND, NO_SUCH_USER)
    found = await call.service.public.public_user(call.tenant, name)
    if found is None:
        raise RpcFault(FAULT_NOT_FOUND, NO_SUCH_USER)
    call.service.finger_log.note_lookup(call.tenant, found, "xmlrpc", remote_addr(call.request))
    # Fields the tenant does not publish are left out; XML-RPC has no nil: "".
    return user_dict(found, INFO_KEYS, fields=call.tenant.public_fields, none="")


async def set_user(call: Call, user: Any, status: Any, expires_in: Any = None) -> bool:
    """setUser(user, status[, expires_in_seconds]): set (or with "" clear) a status.

    Needs a token (Basic auth). The optional third argument makes the status
    expire that many seconds from now.
    """
    name = _string(user, "user")
    text = _string(status, "status")
    expires = None
    if expires_in is not None:
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise RpcFault(FAULT_BAD_PARAMS, "expires_in_seconds must be a number of seconds")
        expires = Expiry.after(expires_in)
    ctx = await call.authenticated()
    await call.service.users.set_status(ctx, call.tenant.slug, name, text if text.strip() else None,
                                  expires=expires)
    return True


Method = Callable[..., Awaitable[Any]]
METHODS: dict[str, tuple[Method, str, list[str]]] = {
    "getUser": (get_user, "getUser(user) -> the status (string); 'No such user' when unknown.",
                ["string", "string"]),
    "getUsers": (get_users, f"getUsers() -> array of visible usernames (the first "
                 f"{MAX_LISTED_USERS}; getUsersPage pages through all).", ["array"]),
    "getUsersPage": (get_users_page,
                     "getUsersPage(cursor, limit) -> struct {users, total, next_cursor}: "
                     "limit (1-1000) usernames after cursor ('' for the first page); "
                     "next_cursor is '' on the last page.",
                     ["struct", "string", "int"]),
    "getUserInfo": (get_user_info,
                    "getUserInfo(user) -> struct {username, full_name, status, status_set_at "
                    "(ISO 8601 UTC or ''), plan}; fault 404 when unknown.",
                    ["struct", "string"]),
    "setUser": (set_user,
                "setUser(user, status[, expires_in_seconds]) -> true. Needs HTTP Basic auth "
                "with an API token as the password; an empty status clears it; the status "
                "expires after expires_in_seconds when given.",
                ["boolean", "string", "string"]),
}
# Methods taking one optional parameter after those of their signature.
OPTIONAL_PARAMS = frozenset({"setUser"})
INTROSPECTION = {
    "system.listMethods": "system.listMethods() -> array of method names.",
    "system.methodHelp": "system.methodHelp(name) -> help text of a method.",
    "system.methodSignature": "system.methodSignature(name) -> array of signatures.",
    "system.multicall": "system.multicall([{methodName, params}, ...]) -> array of [result] "
                        "or fault structs, in order.",
}


def _arity(method: str, params: tuple[Any, ...], expected: int) -> None:
    if len(params) != expected:
        raise RpcFault(FAULT_BAD_PARAMS,
                       f"{method} takes {expected} parameter{'s' if expected != 1 else ''}, "
                       f"got {len(params)}")


async def dispatch(
    call: Call, method: str, params: tuple[Any, ...], *, nested: bool = False
) -> Any:
    if method in METHODS:
        func, _, signature = METHODS[method]
        if not (method in OPTIONAL_PARAMS and len(params) == len(signature)):
            _arity(method, params, len(signature) - 1)
        try:
            return await func(call, *params)
        except FingerplatError as exc:
            raise fault_for(exc) from None
    if method == "system.listMethods":
        _arity(method, params, 0)
        return sorted([*METHODS, *INTROSPECTION])
    if method == "system.methodHelp":
        _arity(method, params, 1)
        name = _string(params[0], "method name")
        if name in METHODS:
            return METHODS[name][1]
        if name in INTROSPECTION:
            return INTROSPECTION[name]
        raise RpcFault(FAULT_NO_METHOD, f"no such method: {name[:100]!r}")
    if method == "system.methodSignature":
        _arity(method, params, 1)
        name = _string(params[0], "method name")
        if name in METHODS:
            signature = METHODS[name][2]
            if name in OPTIONAL_PARAMS:
                return [signature, [*signature, "int"]]
            return [signature]
        return "undef"
    if method == "system.multicall":
        if nested:
            raise RpcFault(FAULT_BAD_REQUEST, "system.multicall cannot be nested")
        _arity(method, params, 1)
        return await multicall(call, params[0])
    raise RpcFault(FAULT_NO_METHOD, f"no such method: {method[:100]!r}")


async def multicall(call: Call, calls: Any) -> list[Any]:
    if not isinstance(calls, list):
        raise RpcFault(FAULT_BAD_PARAMS, "system.multicall takes an array of calls")
    if len(calls) > MAX_MULTICALL:
        # -32602 as before (a stable code): too many calls is a bad parameter.
        raise RpcFault(FAULT_BAD_PARAMS,
                       f"system.multicall takes at most {MAX_MULTICALL} calls, got "
                       f"{len(calls)}: split them into several requests")
    results: list[Any] = []
    for entry in calls:
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("methodName"), str):
                raise RpcFault(FAULT_BAD_PARAMS, "each call needs a methodName string")
            params = entry.get("params", [])
            if not isinstance(params, list):
                raise RpcFault(FAULT_BAD_PARAMS, "params must be an array")
            results.append([await dispatch(call, entry["methodName"], tuple(params), nested=True)])
        except RpcFault as fault:
            results.append({"faultCode": fault.code, "faultString": fault.message})
    return results


def _xml_response(payload: str, *, close: bool = False, status: int = 200) -> web.Response:
    response = web.Response(text=payload, content_type="text/xml", charset="utf-8",
                            status=status)
    if close:
        response.force_close()
    return response


def fault_response(request: web.Request, fault: RpcFault, *, close: bool = False,
                   status: int = 200) -> web.Response:
    request[ERROR_KIND] = f"fault_{fault.code}"
    body = xmlrpc.client.dumps(
        xmlrpc.client.Fault(fault.code, xml_safe(fault.message)), methodresponse=True,
        encoding="utf-8",
    )
    return _xml_response(body, close=close, status=status)


async def rpc2(request: web.Request) -> web.Response:
    """One XML-RPC request: size check, defused parse, dispatch, marshal."""
    try:
        body = await read_body(request)
    except (PayloadTooLarge, BodyTimeout) as exc:
        # The rest of the body is never read: answer and close the connection.
        return fault_response(request, RpcFault(FAULT_BAD_REQUEST, str(exc)), close=True)
    try:
        method, params = parse_call(body)
        call = Call(request, await tenancy.resolve(request))
        result = await dispatch(call, method, params)
        payload = xmlrpc.client.dumps((xml_safe(result),), methodresponse=True, encoding="utf-8")
    except RpcFault as fault:
        return fault_response(request, fault)
    except NetworkRejected as exc:  # the client's network: HTTP 403, a fault as the body
        return fault_response(request, RpcFault(FAULT_FORBIDDEN, str(exc)), status=403)
    except FingerplatError as exc:
        return fault_response(request, fault_for(exc))
    except Exception:
        log.exception("xmlrpc: unexpected error")
        return fault_response(request, RpcFault(FAULT_INTERNAL, "internal error: logged"))
    return _xml_response(payload)


def add_routes(router: web.UrlDispatcher) -> None:
    tenancy.add_routed(router, "POST", "/RPC2", rpc2)
