"""One setter conversation: commands in, one ``+OK``/``-ERR`` reply line out.

The session is the protocol of SPEC section 3 without the socket, so the TCP
and UNIX listeners share it::

    AUTH <token>                      authenticate; reply names the principal
    SET <user>[@<tenant>] <status>    set a status
    CLEAR <user>[@<tenant>]           clear it
    EXPIRE <user>[@<tenant>] <when>   the current status expires (45m, 1h30m, 14:00, RFC 3339)
    PLAN <user>[@<tenant>]            then plan lines, ended by "." alone
    QUIT

Commands are case-insensitive. Without ``@tenant`` the session's home tenant
is meant (the default tenant on TCP, ``unix_tenant`` on the UNIX socket).
Plan lines are dot-stuffed as in SMTP (RFC 5321 section 4.5.2): a line that
starts with "." has that dot removed, so ".." stands for a line ".".

The session never decides who may do what: every change goes to the service
with the session's principal (anonymous until ``AUTH`` succeeds), and the
service refuses and audits. The session only maps domain errors to ``-ERR``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fingerplat.adapters.times import iso_utc
from fingerplat.domain import rules
from fingerplat.domain.errors import (
    AuthenticationFailed,
    FingerplatError,
    InvalidInput,
    PermissionDenied,
    Unavailable,
)
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import Channel, Context, Principal, Role
from fingerplat.domain.text import printable
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.setter")

MAX_COMMAND_BYTES = 4096
# A plan may be 16 KiB; we read a little more so the service can name the exact
# size in its refusal, and stop collecting beyond that.
PLAN_MARGIN_BYTES = 4096
MAX_PLAN_READ_BYTES = rules.PLAN_MAX_BYTES + PLAN_MARGIN_BYTES
MAX_AUTH_FAILURES = 3
COMMANDS = ("AUTH", "SET", "CLEAR", "EXPIRE", "PLAN", "QUIT")
USAGE = {
    "AUTH": "AUTH <token>",
    "SET": "SET <user>[@<tenant>] <status>",
    "CLEAR": "CLEAR <user>[@<tenant>]",
    "EXPIRE": "EXPIRE <user>[@<tenant>] <DURATION|TIME>",
    "PLAN": "PLAN <user>[@<tenant>]",
    "QUIT": "QUIT",
}

# One change: (user, tenant or None, argument) -> the text after "+OK".
Action = Callable[[str, "str | None", "str | None"], Awaitable[str]]


def ok(message: str) -> str:
    return "+OK " + printable(message)


def err(message: str) -> str:
    return "-ERR " + printable(message)


def split_target(text: str) -> tuple[str, str | None]:
    """``alice@acme`` -> (``alice``, ``acme``); no ``@``: the home tenant (None)."""
    user, sep, tenant = text.partition("@")
    if sep and not tenant:
        raise InvalidInput(f"empty tenant after '@' in {text[:80]!r}")
    return user, (tenant or None)


@dataclass
class _PlanInProgress:
    user: str
    tenant: str | None
    lines: list[str] = field(default_factory=list)
    size: int = 0
    problem: str | None = None


class SetterSession:
    """State of one connection: the principal, a plan being read, the bare form."""

    def __init__(
        self,
        service: FingerplatService,
        *,
        remote_addr: str | None,
        principal: Principal | None = None,
        home_tenant: str | None = None,
        bare_form: bool = False,
        refusal: str | None = None,
    ) -> None:
        self.service = service
        self.remote_addr = remote_addr
        self.principal = principal or Principal.anonymous()
        self.home_tenant = home_tenant
        self.bare_form = bare_form
        # Why the connection has no principal (a local user without an account):
        # given instead of the generic "AUTH first" hint.
        self.refusal = refusal
        self.closed = False
        self.auth_failures = 0
        self._plan: _PlanInProgress | None = None
        self._bare_user: str | None = None
        self._lines_seen = 0

    @property
    def reading_plan(self) -> bool:
        return self._plan is not None

    def context(self) -> Context:
        return Context(self.principal, Channel.SETTER, self.remote_addr)

    # -- input -------------------------------------------------------------------

    async def feed(self, raw: bytes) -> str | None:
        """One line (without its line end); returns the reply, or None for none."""
        self._lines_seen += 1
        if self._plan is not None:
            return await self._plan_line(raw)
        if len(raw) > MAX_COMMAND_BYTES:
            return err(f"line too long: at most {MAX_COMMAND_BYTES} bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return err("line is not valid UTF-8")
        if self._bare_user is not None:
            user, self._bare_user = self._bare_user, None
            return await self._change(self._set, user, self.home_tenant, line)
        line = line.strip()
        if not line:
            return None
        verb, _, rest = line.partition(" ")
        command = verb.upper()
        if command not in COMMANDS:
            if self.bare_form and self._lines_seen == 1 and not rest:
                self._bare_user = verb  # the tutorial's form: the status comes next
                return None
            return err(f"unknown command {verb[:40]!r}: use AUTH, SET, CLEAR, EXPIRE, PLAN or QUIT")
        return await getattr(self, "_cmd_" + command.lower())(rest.strip())

    def overlong(self) -> str | None:
        """The reader dropped a line longer than it buffers."""
        self._lines_seen += 1
        if self._plan is not None:
            self._plan.problem = self._too_big()
            return None
        return err(f"line too long: at most {MAX_COMMAND_BYTES} bytes")

    # -- commands ----------------------------------------------------------------

    async def _cmd_auth(self, rest: str) -> str:
        if not rest or " " in rest:
            return err(f"usage: {USAGE['AUTH']}")
        try:
            self.principal = await self.service.credentials.authenticate_token(
                rest, Channel.SETTER, self.remote_addr)
        except AuthenticationFailed as error:
            self.principal = Principal.anonymous()
            self.auth_failures += 1
            if self.auth_failures >= MAX_AUTH_FAILURES:
                self.closed = True
                return err(f"{error}; too many failed attempts, closing")
            return err(str(error))
        except Unavailable:
            return err("service temporarily unavailable")
        self.refusal = None
        return ok(f"authenticated as {self.principal.name}")

    async def _cmd_set(self, rest: str) -> str:
        target, _, status = rest.partition(" ")
        if not target or not status.strip():
            return err(f"usage: {USAGE['SET']}")
        return await self._targeted(self._set, target, status)

    async def _cmd_clear(self, rest: str) -> str:
        if not rest or " " in rest:
            return err(f"usage: {USAGE['CLEAR']}")
        return await self._targeted(self._clear, rest, None)

    async def _cmd_expire(self, rest: str) -> str:
        target, _, when = rest.partition(" ")
        if not target or not when.strip() or " " in when.strip():
            return err(f"usage: {USAGE['EXPIRE']} (a duration like 45m or a time like 14:00)")
        return await self._targeted(self._expire, target, when.strip())

    async def _cmd_plan(self, rest: str) -> str | None:
        if not rest or " " in rest:
            return err(f"usage: {USAGE['PLAN']} (then the text, ended by a line '.')")
        try:
            user, tenant = split_target(rest)
        except InvalidInput as error:
            self._plan = _PlanInProgress("", None, problem=str(error))
            return None
        self._plan = _PlanInProgress(user, tenant or self.home_tenant)
        return None  # the one reply comes after the terminating "."

    async def _cmd_quit(self, rest: str) -> str:
        self.closed = True
        return ok("bye")

    # -- plan text ---------------------------------------------------------------

    def _too_big(self) -> str:
        return (f"plan is longer than {MAX_PLAN_READ_BYTES} bytes; at most "
                f"{rules.PLAN_MAX_BYTES} (16 KiB) allowed, nothing changed")

    async def _plan_line(self, raw: bytes) -> str | None:
        plan = self._plan
        assert plan is not None
        if raw == b".":
            self._plan = None
            if plan.problem is not None:
                return err(plan.problem)
            return await self._change(self._set_plan, plan.user, plan.tenant, "\n".join(plan.lines))
        if plan.problem is not None:
            return None  # keep reading up to "." so the protocol stays in step
        if raw.startswith(b"."):
            raw = raw[1:]
        plan.size += len(raw) + 1
        if plan.size > MAX_PLAN_READ_BYTES:
            plan.problem = self._too_big()
            plan.lines.clear()
            return None
        try:
            plan.lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            plan.problem = "plan is not valid UTF-8 text, nothing changed"
            plan.lines.clear()
        return None

    # -- calling the service -----------------------------------------------------

    async def _targeted(self, action: Action, target: str, argument: str | None) -> str:
        try:
            user, tenant = split_target(target)
        except InvalidInput as error:
            return err(str(error))
        return await self._change(action, user, tenant or self.home_tenant, argument)

    async def _change(self, action: Action, user: str, tenant: str | None,
                      argument: str | None) -> str:
        """Run one change through the service and map the outcome to a reply."""
        try:
            if self.principal.role is not Role.ANONYMOUS:
                # Credentials are checked on every use, not once: a token revoked
                # (or a user removed) since AUTH stops this session here.
                await self.service.credentials.check_principal(self.context())
        except AuthenticationFailed as error:
            self.principal = Principal.anonymous()
            return err(f"{error}: not authenticated any more, nothing changed; "
                       "send AUTH <token> again")
        except Unavailable:
            return err("service temporarily unavailable, nothing changed")
        try:
            return ok(await action(user, tenant, argument))
        except PermissionDenied as error:
            if self.principal.role is Role.ANONYMOUS:
                return err(self.refusal or f"not authenticated: send AUTH <token> first ({error})")
            return err(str(error))
        except Unavailable:
            return err("service temporarily unavailable, nothing changed")
        except FingerplatError as error:
            return err(str(error))
        except Exception:
            log.exception("setter command failed for %s", self.principal.name)
            return err("internal error, nothing changed")

    async def _set(self, user: str, tenant: str | None, status: str | None) -> str:
        updated = await self.service.users.set_status(self.context(), tenant, user, status)
        return f"status of {updated.username} set"

    async def _clear(self, user: str, tenant: str | None, _: str | None) -> str:
        updated = await self.service.users.clear_status(self.context(), tenant, user)
        return f"status of {updated.username} cleared"

    async def _expire(self, user: str, tenant: str | None, when: str | None) -> str:
        updated = await self.service.users.set_expiry(self.context(), tenant, user,
                                                Expiry.parse(when or ""))
        moment = updated.status_expires_at
        until = iso_utc(moment, "seconds") or "-"
        return f"status of {updated.username} expires at {until}"

    async def _set_plan(self, user: str, tenant: str | None, text: str | None) -> str:
        updated = await self.service.users.set_plan(self.context(), tenant, user, text or "")
        return f"plan of {updated.username} set ({len(updated.plan.encode())} bytes)"
