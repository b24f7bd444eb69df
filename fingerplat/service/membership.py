"""Which user names exist, per tenant, so a name that does not costs no database read.

A flood of random names (an enumeration scanner, the cheapest attack on a
finger server) used to cost a database round trip per name, and filled the
read cache with "no such user" entries that pushed real users out. The
membership holds, per tenant, the set of every existing username and the
subset that is hidden. A public read of a name that is not there, or hidden,
is answered "no such user" from memory; both take the same path (two set
lookups and nothing else), so hidden and missing users stay
indistinguishable in content and in timing. Names that exist and are
visible go on to the read cache and the database as before.

It is exact by the same means as the read cache (fingerplat/service/cache.py),
and the cache drives it from the same change events:

* a ``status``, ``plan`` or ``user`` event makes its name *uncertain*: until a
  read of that one name (in the background, batched) says whether it exists
  and is hidden, the name takes the ordinary path. A read that began before a
  newer event for the same name is not applied (a serial per name);
* a ``tenant`` event (settings, domains, removal, a large import) makes the
  whole tenant uncertain until it is read again; a tenant this node has not
  loaded yet (created after start) is uncertain until its first load;
* ``resync``, an unknown kind, and the guard noticing a change it cannot
  attribute (another process on the same SQLite file, a lost LISTEN
  connection) make everything uncertain until a full load.

"Uncertain" only ever means "ask the database": the membership never answers
"no such user" for a name it is not sure of. Loads run in one background
task, in keyset pages, yielding to the event loop between pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fingerplat.domain.backoff import Backoff
from fingerplat.service.ports import Repository

log = logging.getLogger(__name__)

Read = Callable[[Callable[[Repository], Awaitable[Any]]], Awaitable[Any]]

#: Names per page of a full or tenant load.
PAGE = 20_000
#: Uncertain names checked per statement.
VERIFY_BATCH = 500


class _Names:
    """One tenant's usernames: all of them, and the hidden ones among them."""

    __slots__ = ("all", "hidden")

    def __init__(self) -> None:
        # name -> the same string: the read cache tags a user's entries with
        # this object instead of a copy of its own (5 MB per 100,000 users).
        self.all: dict[str, str] = {}
        self.hidden: set[str] = set()

    def set(self, name: str, hidden: bool | None) -> None:
        """``hidden`` None: the name does not exist."""
        if hidden is None:
            self.all.pop(name, None)
            self.hidden.discard(name)
            return
        self.all.setdefault(name, name)
        if hidden:
            self.hidden.add(name)
        else:
            self.hidden.discard(name)


class Membership:
    """Per tenant, the names that exist; kept exact by change events."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._tenants: dict[int, _Names] = {}
        self._loaded = False  # a full load has been installed
        self._generation = 0  # bumped by reset(): loads begun before are discarded
        self._uncertain: dict[tuple[int, str], int] = {}  # name -> serial of its last event
        self._stale: dict[int, int] = {}  # tenant -> serial of its last event
        self._serial = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is uncertain
        self._task: asyncio.Task[None] | None = None
        self.loads = 0  # full loads installed (tests, metrics)

    # -- the question ---------------------------------------------------------------

    def absent(self, tenant_id: int, username: str) -> bool:
        """True only when ``username`` surely is no visible user of the tenant.

        Missing and hidden names both answer True, through the same lookups.
        """
        names = self._tenants.get(tenant_id)
        if names is None or not self._loaded:
            return False
        if self._uncertain and (tenant_id, username) in self._uncertain:
            return False
        return username not in names.all or username in names.hidden

    @property
    def ready(self) -> bool:
        return self._loaded

    def kept_name(self, tenant_id: int, username: str) -> str:
        """The membership's own string equal to ``username`` (else ``username``).

        For tags that live as long as the membership's names: one string per
        user in memory instead of two.
        """
        names = self._tenants.get(tenant_id)
        return names.all.get(username, username) if names is not None else username

    def names(self, tenant_id: int) -> frozenset[str] | None:
        """The visible names of a loaded tenant (a copy; None when not loaded)."""
        names = self._tenants.get(tenant_id)
        if names is None or not self._loaded:
            return None
        return frozenset(names.all.keys() - names.hidden)

    def count(self, tenant_id: int) -> int:
        """How many names the tenant has (0 when not loaded)."""
        names = self._tenants.get(tenant_id)
        return len(names.all) if names is not None else 0

    def __len__(self) -> int:
        return sum(len(n.all) for n in self._tenants.values())

    # -- what the change events do -------------------------------------------------------

    def touch(self, tenant_id: int, username: str) -> None:
        """A change to one user: uncertain until read again."""
        self._serial += 1
        self._uncertain[(tenant_id, username.lower())] = self._serial
        self._wake.set()
        self._idle.clear()

    def touch_tenant(self, tenant_id: int) -> None:
        """A change to a whole tenant (settings, removal, import): read it again."""
        self._serial += 1
        self._stale[tenant_id] = self._serial
        self._tenants.pop(tenant_id, None)
        self._wake.set()
        self._idle.clear()

    def reset(self) -> None:
        """Anything may have changed: everything uncertain until a full load."""
        self._generation += 1
        self._loaded = False
        self._tenants = {}
        self._stale.clear()
        self._wake.set()
        self._idle.clear()

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Load in the background (needs a running event loop)."""
        if self._task is None:
            self._wake.set()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def aclose(self) -> None:
        """Cancel the background loads and wait until they have let go of the database."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until nothing is uncertain (tests; a bench's warm start)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def _run(self) -> None:
        backoff = Backoff(initial=1.0, maximum=30.0)
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if not self._loaded:
                    await self._load_all()
                while self._loaded and self._stale:
                    tenant_id, serial = next(iter(self._stale.items()))
                    await self._load_tenant(tenant_id, serial)
                while self._loaded and self._uncertain:
                    await self._verify()
                backoff.reset()
                if (self._loaded and not self._uncertain and not self._stale
                        and not self._wake.is_set()):
                    self._idle.set()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # The database is away: names stay uncertain (the ordinary path
                # answers, and fails as it would have). Try again, backing off.
                delay = backoff.next_delay()
                (log.warning if backoff.attempt == 5 else log.debug)(
                    "user name membership not loaded (%s); retrying", error)
                await asyncio.sleep(delay)
                self._wake.set()

    async def _pages(self, tenant_id: int | None) -> dict[int, _Names]:
        found: dict[int, _Names] = {}
        after: tuple[int, str] | None = None
        while True:
            page: list[tuple[int, str, bool]] = await self._read(
                lambda repo, after=after: repo.usernames_page(after, PAGE, tenant_id=tenant_id))
            for tid, name, hidden in page:
                names = found.get(tid)
                if names is None:
                    names = found[tid] = _Names()
                names.all[name] = name
                if hidden:
                    names.hidden.add(name)
            if len(page) < PAGE:
                return found
            after = page[-1][:2]
            await asyncio.sleep(0)

    async def _load_all(self) -> None:
        generation = self._generation
        serial = self._serial
        tenant_ids: list[int] = await self._read(lambda repo: repo.tenant_ids())
        found = await self._pages(None)
        if generation != self._generation:
            self._wake.set()  # reset meanwhile: load again
            return
        tenants = {tid: found.get(tid) or _Names() for tid in tenant_ids}
        # Tenants changed while loading stay stale and are read again.
        for tid, stale_serial in self._stale.items():
            if stale_serial > serial:
                tenants.pop(tid, None)
        self._tenants = tenants
        self._stale = {t: s for t, s in self._stale.items() if s > serial}
        self._loaded = True
        self.loads += 1
        log.debug("user name membership loaded: %d names in %d tenants",
                  len(self), len(tenants))

    async def _load_tenant(self, tenant_id: int, serial: int) -> None:
        generation = self._generation
        exists = await self._read(lambda repo: repo.tenant_by_id(tenant_id))
        found = await self._pages(tenant_id) if exists is not None else {}
        if generation != self._generation or self._stale.get(tenant_id) != serial:
            return  # changed again meanwhile: the newer entry is read next
        del self._stale[tenant_id]
        if exists is not None:
            self._tenants[tenant_id] = found.get(tenant_id) or _Names()
        else:
            self._tenants.pop(tenant_id, None)

    async def _verify(self) -> None:
        """Read the uncertain names of one tenant (a batch) and settle them."""
        generation = self._generation
        (tenant_id, _), _ = next(iter(self._uncertain.items()))
        batch = {key: serial for key, serial in self._uncertain.items()
                 if key[0] == tenant_id}
        batch = dict(list(batch.items())[:VERIFY_BATCH])
        names = [name for _, name in batch]
        found: dict[str, bool] = await self._read(
            lambda repo: repo.usernames_in(tenant_id, names))
        if generation != self._generation:
            return
        target = self._tenants.get(tenant_id)
        for key, serial in batch.items():
            if self._uncertain.get(key) != serial:
                continue  # another event for this name meanwhile: read it again
            del self._uncertain[key]
            if target is not None:
                target.set(key[1], found.get(key[1]))
        if target is None and tenant_id not in self._stale:
            self.touch_tenant(tenant_id)  # a tenant created after the load: read it whole
