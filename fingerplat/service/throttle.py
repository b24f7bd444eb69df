"""The authentication throttle and the flood-proof audit of failures (SPEC section 11).

Every way in calls the same three steps, in :mod:`fingerplat.service.credentials`:

1. :meth:`ThrottleUseCases.auth_gate` before the secret is checked: counts
   the attempt against its (account, address) and address keys, or refuses it
   unchecked (:class:`TooManyAttempts`) when a key is over its limit;
2. :meth:`ThrottleUseCases.auth_failed` when the secret is wrong: counts the
   failure, audits it (one row each for the first few of a window, then only
   counted), holds the reply a little, refuses;
3. :meth:`ThrottleUseCases.auth_passed` when it is right: gives the slot back.

Anonymous refusals of every kind (a ``SET`` before ``AUTH``, an API write
without a token) go through the same address counter instead of one audit
row each (:meth:`ThrottleUseCases.record_anonymous_refusal`, which the
core's refusal recording calls). The counters live in the
database (``auth_throttle``), so every worker and node shares them; the rules
are in :mod:`fingerplat.domain.throttle`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NoReturn

from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import AuthenticationFailed, PermissionDenied, TooManyAttempts
from fingerplat.domain.model import Channel, Context, Principal
from fingerplat.domain.throttle import (
    ADDRESS_PREFIX,
    Counter,
    ThrottlePolicy,
    account_key,
    address_key,
    count_failure,
    restart_if_expired,
    unreported,
)
from fingerplat.service.base import Refusal, UseCase
from fingerplat.service.ports import Repository

log = logging.getLogger("fingerplat.service.throttle")

SUMMARY_ACTION = AuditAction.AUTH_FAILURES
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class AuthAttempt:
    """One authentication attempt that the gate let through."""

    ctx: Context  # anonymous, with the channel and the client address
    account_key: str | None
    address_key: str
    counted: bool  # False: a token from a clean address, not counted until it fails
    account_attempts: int = 0
    address_attempts: int = 0

    @property
    def keys(self) -> list[str]:
        return [k for k in (self.account_key, self.address_key) if k is not None]


def _seconds(until: datetime, now: datetime, policy: ThrottlePolicy) -> int:
    """Whole seconds from ``now`` to ``until``, at least 1 and at most one window.

    (Concurrent attempts read the clock before queueing on the row lock, so a
    window may have been opened a moment "after" this attempt's ``now``.)
    """
    longest = math.ceil(policy.window.total_seconds())
    return min(longest, max(1, math.ceil((until - now).total_seconds())))


def _wait_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


class KeyLocks:
    """In-process queues per throttle key, taken before the database's row locks.

    Forty parallel attempts on one key would otherwise each hold a pooled
    connection while waiting for the row lock, and a flood could empty the
    pool for everybody. Queued here they wait without a connection; the row
    lock still orders attempts of different processes and nodes. Keys are
    taken in sorted order (as the rows are), and forgotten when unused.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, keys: list[str]) -> AsyncIterator[None]:
        ordered = sorted(set(keys))
        for key in ordered:
            lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
            self._locks[key] = (lock, users + 1)
        taken: list[asyncio.Lock] = []
        try:
            for key in ordered:
                lock = self._locks[key][0]
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()
            for key in ordered:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class ThrottleUseCases(UseCase):
    """The throttle's steps, shared by every credential check.

    One per service (``service.throttle``): the credential and self-service
    use cases hold it, and the core sends it every anonymous refusal.
    """

    # An instance attribute may replace it (tests, benchmarks); see docs/security.md.
    throttle_policy: ThrottlePolicy = ThrottlePolicy()
    _throttle_locks: KeyLocks | None = None

    @property
    def _key_locks(self) -> KeyLocks:
        if self._throttle_locks is None:
            self._throttle_locks = KeyLocks()
        return self._throttle_locks

    # -- the three steps -------------------------------------------------------

    def throttle_keys(self, ctx: Context, kind: str, account: str | None) -> list[str]:
        """The keys an attempt counts under: (account, address) when known, and address."""
        acct = account_key(kind, account, ctx.remote_addr) if account else None
        return [k for k in (acct, address_key(ctx.remote_addr)) if k is not None]

    async def throttle_clean(self, repo: Repository, keys: list[str]) -> bool:
        """Whether none of the keys has an attempt in its current window (a plain read)."""
        now = self.clock()
        seen = await repo.throttle.peek(keys)
        return all(c.clean or self.throttle_policy.expired(c, now) for c in seen.values())

    async def auth_gate(
        self, ctx: Context, kind: str, account: str | None, *, action: AuditAction, target: str,
        clean: bool = False,
    ) -> AuthAttempt:
        """Count an attempt before its secret is checked, or refuse it unchecked.

        Passwords are always counted first, so parallel guesses cannot all
        reach argon2 before the first failure is recorded. A token (256 random
        bits, one SHA-256) is let through uncounted when the caller found its
        keys ``clean`` (:meth:`throttle_clean`, read in the same transaction
        as the token), so scripts using a token in parallel are never
        serialised here and pay no write; once its address has failed, its
        tokens are counted like passwords.
        """
        policy = self.throttle_policy
        keys = self.throttle_keys(ctx, kind, account)
        addr = keys[-1]
        acct = keys[0] if len(keys) > 1 else None
        if clean:
            return AuthAttempt(ctx, acct, addr, counted=False)
        refused_for = 0
        async with self._key_locks.hold(keys), self._uow() as repo:
            now = self.clock()
            counters = await self._current(repo, keys, now)
            over = [c for c in counters.values() if policy.over_limit(c)]
            if over:
                refused_for = max(_seconds(policy.window_end(c), now, policy) for c in over)
                failed, own_row = count_failure(counters[addr], now, ctx.channel.value, policy)
                await repo.throttle.save(failed)
                if own_row:
                    await self._audit(repo, ctx, action, target[:300], tenant=None,
                                      outcome="denied",
                                      detail=f"too many failed attempts: refused unchecked "
                                             f"for {refused_for} s")
            else:
                for counter in counters.values():
                    counted = replace(counter, attempts=counter.attempts + 1, updated_at=now)
                    if policy.over_limit(counted):
                        counted = replace(counted, blocked_until=policy.window_end(counted))
                    await repo.throttle.save(counted)
                    counters[counter.key] = counted
        if refused_for:
            log.info("throttled %s on %s from %s for %d s", action, target, ctx.remote_addr,
                     refused_for)
            raise TooManyAttempts(
                f"too many failed attempts from your address: try again in "
                f"{_wait_words(refused_for)}", refused_for)
        return AuthAttempt(ctx, acct, addr, counted=True,
                           account_attempts=counters[acct].attempts if acct else 0,
                           address_attempts=counters[addr].attempts)

    async def auth_failed(
        self, attempt: AuthAttempt, action: AuditAction, target: str, *, tenant: str | None,
        username: str | None = None, message: str,
    ) -> NoReturn:
        """Count and (within the audit's allowance) record a failure, slow down, refuse."""
        policy = self.throttle_policy
        ctx = attempt.ctx
        now = self.clock()
        own_row = False
        async with self._key_locks.hold(attempt.keys), self._uow() as repo:
            now = self.clock()
            before = await repo.throttle.lock(attempt.keys, now)
            counters = await self._current(repo, attempt.keys, now, locked=before)
            for key, counter in counters.items():
                restarted = counter.window_start != before[key].window_start
                if not attempt.counted or restarted:
                    counter = replace(counter, attempts=counter.attempts + 1)
                if key == attempt.address_key:
                    counter, own_row = count_failure(counter, now, ctx.channel.value, policy)
                else:
                    counter = replace(counter, updated_at=now)
                if policy.over_limit(counter):
                    counter = replace(counter, blocked_until=policy.window_end(counter))
                counters[key] = counter
                await repo.throttle.save(counter)
            if own_row:
                await self._audit(repo, ctx, action, target[:300], tenant=tenant,
                                  username=username, outcome="denied", detail=message)
        log.info("denied %s on %s from %s: %s", action, target, ctx.remote_addr, message)
        error = AuthenticationFailed(message)
        blocked = [c for c in counters.values() if policy.over_limit(c)]
        if blocked:
            error.retry_after = max(_seconds(policy.window_end(c), now, policy) for c in blocked)
        pause = policy.delay(
            counters[attempt.account_key].attempts if attempt.account_key else 0,
            counters[attempt.address_key].attempts,
        )
        if pause > 0:
            await asyncio.sleep(pause)
        raise error

    async def auth_passed(self, repo: Repository, attempt: AuthAttempt) -> None:
        """The secret was right: forget the account's failures, give the slot back."""
        if not attempt.counted:
            return
        now = self.clock()
        counters = await repo.throttle.lock(attempt.keys, now)
        if attempt.account_key is not None:
            await repo.throttle.drop([attempt.account_key])
        addr = counters[attempt.address_key]
        if addr.attempts > 0 and not self.throttle_policy.expired(addr, now):
            await repo.throttle.save(replace(addr, attempts=addr.attempts - 1, updated_at=now))

    # -- anonymous refusals ----------------------------------------------------

    async def record_anonymous_refusal(self, refusal: Refusal) -> None:
        """Refusals of anonymous clients count against their address, audited sparingly.

        An anonymous client can repeat a refused request as fast as it likes
        (200 ``SET`` lines without ``AUTH``); one audit row each would let it
        flood the trail. The first few of a window get their row, the rest are
        counted into ``auth.failures`` summary rows (at most one a minute).
        """
        ctx = refusal.ctx
        policy = self.throttle_policy
        addr = address_key(ctx.remote_addr)
        async with self._key_locks.hold([addr]), self._uow() as repo:
            now = self.clock()
            counters = await self._current(repo, [addr], now)
            counter, own_row = count_failure(counters[addr], now, ctx.channel.value, policy)
            await repo.throttle.save(counter)
            if own_row:
                await self._audit(repo, ctx, refusal.action, refusal.target,
                                  tenant=refusal.tenant, username=refusal.username,
                                  outcome="denied", detail=refusal.message)
        log.info("denied %s on %s for %s from %s: %s", refusal.action, refusal.target,
                 ctx.principal.name, ctx.remote_addr, refusal.message)

    async def deny_unauthenticated(
        self, channel: Channel, remote_addr: str | None, action: AuditAction, target: str,
        message: str,
    ) -> NoReturn:
        """Refuse a request that brought no usable credentials, and audit it (sparingly).

        For adapters that find the credentials missing or unreadable before
        the service sees them (an API write without ``Authorization``, a
        non-Basic header on XML-RPC).
        """
        await self._deny(Context(Principal.anonymous(), channel, remote_addr),
                         AuditAction(action),
                         target[:300], tenant=None, message=message,
                         error=AuthenticationFailed)

    # -- windows and their summaries -------------------------------------------

    async def _current(
        self, repo: Repository, keys: list[str], now: datetime,
        *, locked: dict[str, Counter] | None = None,
    ) -> dict[str, Counter]:
        """The keys' counters, locked, each in its current window.

        An ended window of an address that still owes the audit its summary
        gets the summary row first (in this transaction).
        """
        rows = locked if locked is not None else await repo.throttle.lock(keys, now)
        current: dict[str, Counter] = {}
        for key, counter in rows.items():
            fresh = restart_if_expired(counter, now, self.throttle_policy)
            if fresh is not counter:
                await self._summarise(repo, counter, now)
            current[key] = fresh
        return current

    async def _summarise(self, repo: Repository, counter: Counter, now: datetime) -> Counter:
        """Write an ``auth.failures`` row for the address's unreported failures, if any.

        The row covers the time since the previous summary (or the window's
        start) up to now, or to the window's end once it has ended; the
        counter comes back with those failures marked reported.
        """
        count = unreported(counter)
        if not counter.key.startswith(ADDRESS_PREFIX) or count == 0:
            return counter
        label = counter.key.removeprefix(ADDRESS_PREFIX)
        start = max(counter.window_start, counter.summarised_at or counter.window_start)
        end = min(now, self.throttle_policy.window_end(counter))
        try:
            channel = Channel(counter.last_channel or "")
        except ValueError:
            channel = Channel.WEB
        window = {"window_start": start.isoformat(), "window_end": end.isoformat()}
        await self._audit(
            repo, Context(Principal.anonymous(), channel, label), SUMMARY_ACTION,
            f"addr:{label}", tenant=None, outcome="denied",
            before=window, after={"failures": count, "total": counter.failures, **window},
            detail=f"{count} more failed or refused attempts from {label} between "
                   f"{start:%Y-%m-%d %H:%M:%S} and {end:%H:%M:%S} UTC (counted, not "
                   "written one by one)",
        )
        return replace(counter, audited=counter.failures, summarised_at=now)

    async def flush_auth_failures(self) -> int:
        """Write the summary rows that are due, forget ended windows; returns rows written.

        ``serve`` calls this every few seconds (fingerplat/server/auth_sweeper.py):
        an address that keeps failing gets one ``auth.failures`` row a minute
        at most, and the last one shortly after it stops.
        """
        policy = self.throttle_policy
        now = self.clock()
        written = 0
        async with self._uow() as repo:
            keys = await repo.throttle.due(now - policy.window, now - policy.summary_every,
                                           SWEEP_BATCH)
            if not keys:
                return 0
            rows = await repo.throttle.lock(keys, now)
            ended: list[str] = []
            for counter in rows.values():
                if policy.expired(counter, now):
                    summarised = await self._summarise(repo, counter, now)
                    ended.append(counter.key)
                elif policy.summary_due(counter, now):
                    summarised = await self._summarise(repo, counter, now)
                    await repo.throttle.save(summarised)
                else:
                    continue
                if summarised is not counter:
                    written += 1
            await repo.throttle.drop(ended)
        return written

    async def audit_refusal(self, ctx: Context, action: AuditAction, target: str,
                            message: str) -> None:
        """Record a refusal an adapter made on its own (a form without its CSRF token).

        Anonymous ones go through the address counter like every anonymous
        refusal, so a flood of them adds a few rows and one summary.
        """
        await self._core.record_refusal(Refusal(ctx, AuditAction(action), target[:300],
                                                tenant=None, username=None, message=message,
                                                error=PermissionDenied))
