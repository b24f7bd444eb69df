"""Who fingered me: an opt-in, privacy-aware record of the lookups of a user.

cfingerd's ``.fingerlog`` for today: when a tenant *and* one of its users
both opted in (``tenants.finger_log`` and ``users.finger_log``, both off by
default), every public lookup of that user (finger, web page, JSON API,
XML-RPC, WebFinger, IRC) is recorded with its time, its channel and the
client's *network* only: the IPv4 /24 or IPv6 /48 around the address, never
the address itself. Rows older than ``[privacy] finger_log_days`` are deleted
by the server (:meth:`FingerLogUseCases.purge_finger_log`, one node at a
time) and are never shown even before that.

The lookup paths must stay as fast as without a log (SPEC §13: "never slows
the cached answer path by more than a few percent"), so:

* whether to record is decided from flags already in hand: ``Tenant`` and
  ``User`` carry their opt-in, and the adapters' kept answers carry the
  decision with them (a change of either flag publishes the change event
  that drops those answers);
* recording (:meth:`FingerLogRecorder.record`) is two dictionary look-ups and
  a count: the network of an address is computed once and remembered, and
  lookups of one user through one channel from one network are *one row*
  for a while (a *generation*, :data:`GENERATION` seconds) with a count.
  A lookup not seen before in the generation is written by the background
  task within a second (:data:`FLUSH_INTERVAL`), as its own row; repeats only
  raise the row's count, which is written when the generation ends (and on
  shutdown). Someone fingered by a script every second is 2 writes a minute,
  not 60; a lookup, however often repeated, is shown within a second;
* the number of rows in a generation is bounded (:data:`MAX_QUEUE`): past it
  new ones are dropped and counted (``dropped``) rather than let memory grow
  under a flood. Full addresses live only in memory, in the small cache of
  their networks (:data:`NETWORK_CACHE`); the queue holds networks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from fingerplat.domain import rules
from fingerplat.domain.addresses import client_ip
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import Conflict, InvalidInput, UserNotFound
from fingerplat.domain.model import Context, FingerLogEntry, Tenant, User
from fingerplat.repository.own_commits import OwnCommits
from fingerplat.service import permissions
from fingerplat.service.base import UseCase, user_target

log = logging.getLogger("fingerplat.finger_log")

MAX_QUEUE = 100_000
BATCH = 5000
FLUSH_INTERVAL = 1.0
GENERATION = 60.0
NETWORK_CACHE = 4096
PURGE_INTERVAL = 3600.0
DEFAULT_DAYS = 7
READ_LIMIT_MAX = 1000
UNKNOWN_NETWORK = "unknown"

Key = tuple[int, int, str, str]  # tenant_id, user_id, channel, network
Row = tuple[int, int, datetime, str, str, int]  # tenant_id, user_id, at, channel, network, count
Count = tuple[int, int]  # row id, count
# Writes new rows and sets counts in one transaction; the new rows' ids, in
# order (None for a row not written: its user was removed since).
Write = Callable[[list[Row], list[Count]], Awaitable[Sequence[int | None]]]


def network_of(address: str | None) -> str:
    """The /24 (IPv4) or /48 (IPv6) holding ``address``; never the address itself.

    An IPv4-mapped IPv6 address counts as IPv4. Anything that is not an IP
    address (a UNIX socket, an IRC nick's host, nothing) is ``unknown``.
    """
    ip = client_ip(address)
    if ip is None:
        return UNKNOWN_NETWORK
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class Tally:
    """The count of one key in one generation; ``live`` until the generation ends.

    Returned by :meth:`FingerLogRecorder.record` so that a caller that will
    see the same key again (a kept finger answer and its last client) can
    count the repeat itself, while ``live``.
    """

    __slots__ = ("count", "live")

    def __init__(self, count: int = 1, live: bool = True) -> None:
        self.count = count
        self.live = live


class FingerLogRecorder:
    """Lookups counted in memory, one key per user, channel and network, written by :meth:`run`.

    ``counts`` holds the current generation's keys and their counts; ``fresh``
    the keys not written yet (with the time of their first lookup); ``ids``
    the written ones' row ids and the count last written.
    """

    def __init__(self, *, max_queue: int = MAX_QUEUE, batch: int = BATCH,
                 interval: float = FLUSH_INTERVAL, generation: float = GENERATION) -> None:
        self.max_queue = max_queue
        self.batch = batch
        self.interval = interval
        self.generation = generation
        self.counts: dict[Key, Tally] = {}
        self.fresh: list[tuple[Key, float]] = []
        self.ids: dict[Key, tuple[int, int]] = {}
        self.started = time.monotonic()
        self.networks: dict[str | None, str] = {}
        self.dropped = 0
        self.written = 0
        self._wake: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    def stop(self) -> None:
        """Ask :meth:`run` to write what it holds and return (a clean shutdown)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    def record(self, tenant_id: int, user_id: int, channel: str, remote: str | None) -> Tally:
        """Note one lookup; O(1), no await, no I/O, nothing allocated for a repeat
        but the key. Its tally: a dead one when the lookup was dropped."""
        network = self.networks.get(remote)
        if network is None:
            network = self._network(remote)
        key = (tenant_id, user_id, channel, network)
        counts = self.counts
        seen = counts.get(key)
        if seen is not None:
            seen.count += 1  # one hash of the key, not two
            return seen
        if len(counts) >= self.max_queue:
            self.dropped += 1
            return Tally(0, live=False)
        seen = counts[key] = Tally()
        fresh = self.fresh
        fresh.append((key, time.time()))
        if len(fresh) >= self.batch and self._wake is not None:
            self._wake.set()
        return seen

    def _network(self, remote: str | None) -> str:
        """The network of ``remote``, remembered (a bounded cache, emptied when full)."""
        networks = self.networks
        if len(networks) >= NETWORK_CACHE:
            networks.clear()
        network = networks[remote] = network_of(remote)
        return network

    def _rows(self, fresh: list[tuple[Key, float]], counts: dict[Key, Tally]) -> list[Row]:
        """New rows for ``fresh`` keys with their counts so far. Times are kept to
        the second: converted once per distinct second, not once a row."""
        stamps: dict[int, datetime] = {}
        rows = []
        for (tenant_id, user_id, channel, network), at in fresh:
            second = int(at)
            moment = stamps.get(second)
            if moment is None:
                moment = stamps[second] = datetime.fromtimestamp(second, UTC)
            rows.append((tenant_id, user_id, moment, channel, network,
                         counts[(tenant_id, user_id, channel, network)].count))
        return rows

    def due(self) -> bool:
        """Whether the current generation is over (its counts must be written)."""
        return time.monotonic() - self.started >= self.generation

    async def flush(self, write: Write, *, final: bool = True) -> int:
        """Write what is pending; the number of rows written.

        ``final`` (a clean shutdown, a test, the end of a generation) ends the
        generation: rows not written yet are written with their counts, the
        counts of rows written before are set, and counting starts over. Else
        only new rows are written, at most ``batch`` per transaction.
        """
        async with self._lock:
            if final:
                return await self._end_generation(write)
            done = 0
            while self.fresh:
                fresh = self.fresh[:self.batch]
                del self.fresh[:self.batch]
                counts = self.counts
                rows = self._rows(fresh, counts)
                ids = await write(rows, [])
                written = self.ids
                for (key, _at), row, row_id in zip(fresh, rows, ids, strict=True):
                    if row_id is not None:
                        written[key] = (row_id, row[5])
                self.written += len(rows)
                done += len(rows)
            return done

    async def _end_generation(self, write: Write) -> int:
        counts, fresh, ids = self.counts, self.fresh, self.ids
        self.counts, self.fresh, self.ids = {}, [], {}
        self.started = time.monotonic()
        for tally in counts.values():  # before any await: kept tallies count no more
            tally.live = False
        rows = self._rows(fresh, counts)
        changed = [(row_id, counts[key].count) for key, (row_id, synced) in ids.items()
                   if counts[key].count != synced]
        done = 0
        batch = self.batch
        for start in range(0, max(len(rows), len(changed)), batch):
            chunk = rows[start:start + batch]
            await write(chunk, changed[start:start + batch])
            self.written += len(chunk)
            done += len(chunk)
        return done

    async def run(self, write: Write) -> None:
        """Write new rows every ``interval`` seconds (or as soon as a batch is
        full) and counts at the end of each generation; until cancelled.

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
                    await self.flush(write, final=self._stopping or self.due())
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("finger log write failed, entries lost: %s", error)
        finally:
            self._wake = None


class FingerLogUseCases(UseCase):
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

    async def write_finger_log(self, rows: list[Row],
                               counts: Sequence[Count] = ()) -> list[int | None]:
        """New rows and new counts of rows written before, in one transaction; the
        new rows' ids. A batch naming a user removed since the lookup (the foreign
        key refuses it) is written again without that user's rows (their id: None)."""
        try:
            return list(await self._write_finger_log(rows, counts, check=False))
        except Conflict:
            return await self._write_finger_log(rows, counts, check=True)

    async def _write_finger_log(self, rows: list[Row], counts: Sequence[Count], *,
                                check: bool) -> list[int | None]:
        """One transaction, announced to the SQLite cache guard as ours
        (fingerplat/repository/own_commits.py): it changes no public read."""
        own = self.own_commits
        announced: list[bool] = []

        def announce() -> None:
            # The unit holds SQLite's write lock from its BEGIN IMMEDIATE;
            # announce before the first write (which may start the WAL over).
            if own is not None:
                own.expect()
                announced.append(True)

        try:
            ids = await self._write_rows(rows, counts, check=check, before_write=announce)
        except BaseException:
            if own is not None and announced:
                own.settle(False)
            raise
        if own is not None and announced:
            own.settle(True)
        return ids

    async def _write_rows(self, rows: list[Row], counts: Sequence[Count], *, check: bool,
                          before_write: Callable[[], None]) -> list[int | None]:
        async with self._uow() as repo:
            existing = (await repo.existing_user_ids([row[1] for row in rows])
                        if check else None)
            kept = rows if existing is None else [row for row in rows if row[1] in existing]
            if not kept and not counts:
                return [None] * len(rows)
            before_write()
            new_ids = iter(await repo.add_finger_log(kept))
            await repo.set_finger_log_counts(counts)
        # the ids of the rows kept, None for the others
        return [next(new_ids) if existing is None or row[1] in existing else None
                for row in rows]

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
