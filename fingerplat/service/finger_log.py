"""Who fingered me: an opt-in, privacy-aware record of the lookups of a user.

cfingerd's ``.fingerlog`` for today: when a tenant *and* one of its users
both opted in (``tenants.finger_log`` and ``users.finger_log``, both off by
default), every public lookup of that user (finger, web page, JSON API,
XML-RPC, WebFinger, IRC) is recorded with its time, its channel and the
client's *network* only: the IPv4 /24 or IPv6 /48 around the address, never
the address itself. Rows older than ``[privacy] finger_log_days`` are deleted
by the server (:meth:`FingerLogUseCases.purge_finger_log`, one node at a
time) and are never shown even before that.

The lookup paths must stay as fast as without a log, so:

* whether to record is decided from flags already in hand: ``Tenant`` and
  ``User`` carry their opt-in, and the adapters' kept answers carry the
  decision with them (a change of either flag publishes the change event
  that drops those answers);
* recording is a ``deque.append`` of a tuple (:meth:`FingerLogRecorder.record`);
  the network is computed and the rows written by a background task, every
  second or every :data:`BATCH` entries, in one statement;
* the queue is bounded (:data:`MAX_QUEUE`): past it entries are dropped and
  counted (``dropped``) rather than let memory grow under a flood. The full
  address lives only in that queue, in memory, for at most about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fingerplat.domain import rules
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import Conflict, InvalidInput, UserNotFound
from fingerplat.domain.model import Context, FingerLogEntry, Tenant, User
from fingerplat.repository.own_commits import OwnCommits
from fingerplat.service import permissions
from fingerplat.service.base import ServiceBase, user_target

log = logging.getLogger("fingerplat.finger_log")

MAX_QUEUE = 100_000
BATCH = 5000
FLUSH_INTERVAL = 1.0
PURGE_INTERVAL = 3600.0
DEFAULT_DAYS = 7
READ_LIMIT_MAX = 1000
UNKNOWN_NETWORK = "unknown"

Row = tuple[int, int, datetime, str, str]  # tenant_id, user_id, at, channel, network
Write = Callable[[list[Row]], Awaitable[None]]


@functools.lru_cache(maxsize=4096)
def network_of(address: str | None) -> str:
    """The /24 (IPv4) or /48 (IPv6) holding ``address``; never the address itself.

    An IPv4-mapped IPv6 address counts as IPv4. Anything that is not an IP
    address (a UNIX socket, an IRC nick's host, nothing) is ``unknown``.
    """
    if not address:
        return UNKNOWN_NETWORK
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return UNKNOWN_NETWORK
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class FingerLogRecorder:
    """A bounded in-memory queue of lookups, written in batches by :meth:`run`."""

    def __init__(self, *, max_queue: int = MAX_QUEUE, batch: int = BATCH,
                 interval: float = FLUSH_INTERVAL) -> None:
        self.max_queue = max_queue
        self.batch = batch
        self.interval = interval
        self.queue: deque[tuple[int, int, str, str | None, float]] = deque()
        self.dropped = 0
        self.written = 0
        self._wake: asyncio.Event | None = None
        self._stopping = False

    def stop(self) -> None:
        """Ask :meth:`run` to write what it holds and return (a clean shutdown)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    def record(self, tenant_id: int, user_id: int, channel: str, remote: str | None) -> None:
        """Note one lookup; O(1), no await, no I/O."""
        queue = self.queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append((tenant_id, user_id, channel, remote, time.time()))
        if len(queue) >= self.batch and self._wake is not None:
            self._wake.set()

    def take(self, limit: int | None = None) -> list[Row]:
        """Up to ``limit`` queued lookups as rows (networks computed here, off the hot path).

        Times are kept to the second: as precise as anyone reading "who
        fingered me" needs, and a batch then holds one or two distinct times,
        converted for the database once each instead of once a row.
        """
        queue = self.queue
        popleft = queue.popleft
        stamps: dict[int, datetime] = {}
        count = len(queue) if limit is None else min(limit, len(queue))
        rows = []
        for _ in range(count):
            tenant_id, user_id, channel, remote, at = popleft()
            second = int(at)
            moment = stamps.get(second)
            if moment is None:
                moment = stamps[second] = datetime.fromtimestamp(second, UTC)
            rows.append((tenant_id, user_id, moment, channel, network_of(remote)))
        return rows

    async def flush(self, write: Write) -> int:
        """Write everything queued, a batch (at most ``batch`` rows) per transaction."""
        done = 0
        while self.queue:
            rows = self.take(self.batch)
            await write(rows)
            self.written += len(rows)
            done += len(rows)
        return done

    async def run(self, write: Write) -> None:
        """Flush every ``interval`` seconds, or as soon as a batch is full; until cancelled.

        A failed write (database down) is logged and its rows are lost: this
        log is a courtesy, and it must never pile up without bound.
        """
        self._wake = asyncio.Event()
        try:
            while not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                self._wake.clear()
                try:
                    await self.flush(write)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("finger log write failed, entries lost: %s", error)
        finally:
            self._wake = None


class FingerLogUseCases(ServiceBase):
    finger_log_recorder: FingerLogRecorder | None = None
    finger_log_days: int = DEFAULT_DAYS
    own_commits: OwnCommits | None = None

    def note_lookup(self, tenant: Tenant, user: User, channel: str,
                    remote: str | None) -> None:
        """Record a public lookup of ``user`` when both opted in (synchronous, cheap)."""
        recorder = self.finger_log_recorder
        if recorder is not None and tenant.finger_log and user.finger_log:
            recorder.record(tenant.id, user.id, channel, remote)

    def start_finger_log(self, *, days: int = DEFAULT_DAYS,
                         recorder: FingerLogRecorder | None = None) -> FingerLogRecorder:
        """Begin recording (the composition root runs :meth:`finger_log_writer`)."""
        self.finger_log_days = days
        self.finger_log_recorder = recorder or FingerLogRecorder()
        return self.finger_log_recorder

    async def write_finger_log(self, rows: list[Row]) -> None:
        """One batch in one statement; a batch naming a user removed since the lookup
        (the foreign key refuses it) is written again without that user's rows."""
        try:
            await self._write_finger_log(rows, check=False)
        except Conflict:
            await self._write_finger_log(rows, check=True)

    async def _write_finger_log(self, rows: list[Row], *, check: bool) -> None:
        """One transaction, announced to the SQLite cache guard as ours
        (fingerplat/repository/own_commits.py): it changes no public read."""
        own = self.own_commits
        announced = False
        try:
            async with self._uow() as repo:
                if check:
                    existing = await repo.existing_user_ids([row[1] for row in rows])
                    rows = [row for row in rows if row[1] in existing]
                    if not rows:
                        return
                if own is not None:
                    # The unit holds SQLite's write lock from its BEGIN IMMEDIATE;
                    # announce before the first write (which may start the WAL over).
                    own.expect()
                    announced = True
                await repo.add_finger_log(rows)
        except BaseException:
            if announced:
                assert own is not None
                own.settle(False)
            raise
        if announced:
            assert own is not None
            own.settle(True)

    async def finger_log_writer(self) -> None:
        """The background task writing the recorder's queue; flushes once more on cancel."""
        recorder = self.finger_log_recorder
        if recorder is None:
            return
        try:
            await recorder.run(self.write_finger_log)
        finally:
            try:
                await asyncio.shield(recorder.flush(self.write_finger_log))
            except Exception as error:
                log.warning("last finger log write failed: %s", error)

    async def purge_finger_log(self, days: int | None = None) -> int | None:
        """Delete lookups older than the retention; None when another node is at it."""
        keep = self.finger_log_days if days is None else days
        before = self.clock() - timedelta(days=keep)
        async with self._uow() as repo:
            deleted = await repo.purge_finger_log(before)
        if deleted:
            log.info("finger log: %d entries older than %d days deleted", deleted, keep)
        return deleted

    async def finger_log_purger(self, interval: float = PURGE_INTERVAL) -> None:
        """Purge at start and then every ``interval`` seconds, until cancelled."""
        while True:
            try:
                await self.purge_finger_log()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("finger log purge failed, will try again: %s", error)
            await asyncio.sleep(interval)

    async def fingered(self, ctx: Context, tenant_name: str | None, name: str,
                       limit: int = 100) -> list[FingerLogEntry]:
        """Who looked ``name`` up lately: for the user themself and the tenant's admins."""
        if limit < 1 or limit > READ_LIMIT_MAX:
            raise InvalidInput(f"limit must be between 1 and {READ_LIMIT_MAX}")
        username = rules.username(name)
        since = self.clock() - timedelta(days=self.finger_log_days)
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, tenant_name)
            user = await repo.user(tenant.id, username, with_plan=False)
            p = ctx.principal
            if user is None and permissions.can_manage_users(p, tenant.id):
                raise UserNotFound(username, tenant.slug)
            await self._require(
                ctx, lambda p: user is not None and permissions.can_write_status(
                    p, tenant.id, user.id),
                AuditAction.FINGER_LOG_READ, user_target(username, tenant),
                tenant=tenant.slug, username=username,
                message=f"{p.name} may not read who fingered {username}")
            assert user is not None
            return await repo.finger_log(user.id, since=since, limit=limit)
