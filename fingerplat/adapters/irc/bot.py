"""One configured IRC bot: a supervisor that keeps it connected, and its behaviour.

The supervisor connects in the background (startup never waits for an IRC
server), reconnects with jittered exponential back-off, and tries to win
back its configured nick after a collision. Queries are answered from the
service's public reads (hidden users look exactly like unknown ones);
announcements come from the service's change events, never from polling.
Every outgoing line goes through the throttle and :func:`safe_line`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fingerplat.adapters.irc.client import FingerBotClient
from fingerplat.adapters.irc.text import (
    USAGE,
    Query,
    announcement,
    fallback_nicks,
    no_such_user,
    parse_channel,
    parse_private,
    safe_line,
    status_reply,
)
from fingerplat.adapters.irc.throttle import OutLine, OutputQueue, TokenBucket
from fingerplat.config import IrcConfig
from fingerplat.domain.backoff import Backoff
from fingerplat.domain.errors import FingerplatError, InvalidInput, NotFound
from fingerplat.domain.model import ChangeEvent, Tenant
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.irc")

# The seam for running each bot on exactly one node (issue 5): asked before
# every connection attempt and then every ``leadership_interval`` seconds
# while connected; False keeps (or takes) the bot off IRC.
ShouldRun = Callable[[IrcConfig], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class IrcTiming:
    """Timings and limits of a bot; the defaults suit a public network, tests shorten them."""

    backoff_initial: float = 2.0
    backoff_max: float = 300.0
    stable_after: float = 60.0  # registered this long: the back-off starts over
    connect_timeout: float = 30.0  # TCP + TLS + registration
    rate: float = 1.0  # lines per second...
    burst: int = 4  # ...after a burst of this many
    queue_size: int = 50  # lines waiting; more are dropped (and logged)
    regain_interval: float = 60.0  # how often to ask for the configured nick back
    leadership_interval: float = 5.0  # how often to ask should_run (takeover latency)
    rejoin_delay: float = 10.0  # after a kick
    quit_timeout: float = 2.0


class IrcBot:
    def __init__(self, service: FingerplatService, cfg: IrcConfig, *, metrics: Metrics,
                 timing: IrcTiming | None = None, should_run: ShouldRun | None = None) -> None:
        self.service = service
        self.cfg = cfg
        self.metrics = metrics
        self.timing = timing or IrcTiming()
        self.should_run = should_run
        self.label = f"{cfg.nick}@{cfg.server}:{cfg.port}"
        self.client: FingerBotClient | None = None
        self.queue = OutputQueue(self.timing.queue_size, on_drop=self._count_drop)
        self.bucket = TokenBucket(self.timing.rate, self.timing.burst)
        # Queries wait here and are answered one at a time, so answers keep their order.
        self._inbox: asyncio.Queue[tuple[str, Query]] = asyncio.Queue(self.timing.queue_size)
        self._tenant: Tenant | None = None
        self._tenant_key = cfg.tenant.strip().lower()
        self._accepting = True
        self._closing = asyncio.Event()
        self._registered_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        self._unsubscribe = self.service.events.subscribe(self._on_event)
        self._spawn(self._supervise(), "supervisor")
        self._spawn(self._send_forever(), "sender")
        self._spawn(self._answer_forever(), "answerer")

    @property
    def nickname(self) -> str:
        client = self.client
        if client is not None and client.ready.is_set():
            return str(client.nickname)
        return self.cfg.nick

    @property
    def connected(self) -> bool:
        client = self.client
        return bool(client is not None and client.ready.is_set() and client.connected)

    @property
    def address(self) -> str:
        scheme = "ircs" if self.cfg.tls else "irc"
        host = f"[{self.cfg.server}]" if ":" in self.cfg.server else self.cfg.server
        where = f" in {', '.join(self.cfg.channels)}" if self.cfg.channels else ""
        return f"{scheme}://{host}:{self.cfg.port} as {self.nickname}{where}"

    def close(self) -> None:
        """Stop answering and announcing; the connection stays up until :meth:`drain`."""
        self._accepting = False
        if self._unsubscribe is not None:
            with contextlib.suppress(ValueError):
                self._unsubscribe()
            self._unsubscribe = None

    async def drain(self, timeout: float) -> None:
        """Flush queued lines (bounded), say QUIT, and stop every task of this bot."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        if self.connected and not self.queue.empty():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), max(0.0, deadline - loop.time()))
        self._closing.set()
        client = self.client
        if client is not None and client.connected:
            quit_in = min(self.timing.quit_timeout, max(0.1, deadline - loop.time()))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit("fingerplat shutting down"), quit_in)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if client is not None and client.connected:
            with contextlib.suppress(Exception):
                await client.disconnect(expected=True)

    def _spawn(self, coro: Awaitable[None], what: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"irc {what} {self.label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the bot is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    # -- connection supervisor ----------------------------------------------------------

    async def _may_run(self) -> bool:
        if self.should_run is None:
            return True
        try:
            return bool(await self.should_run(self.cfg))
        except Exception:
            log.exception("irc %s: should_run failed; staying off IRC for now", self.label)
            return False

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.timing.backoff_initial, self.timing.backoff_max)
        while not self._closing.is_set():
            if not await self._may_run():
                await self._pause(self.timing.leadership_interval)
                continue
            self._registered_at = None
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, reset, TLS, timeout, protocol error
                log.warning("irc %s: connection failed: %s", self.label,
                            str(exc) or type(exc).__name__)
            if self._closing.is_set():
                break
            if (self._registered_at is not None
                    and loop.time() - self._registered_at >= self.timing.stable_after):
                backoff.reset()
            delay = backoff.next_delay()
            log.info("irc %s: reconnecting in %.1f s", self.label, delay)
            await self._pause(delay)

    async def _session(self) -> None:
        """One connection: connect, register, serve until it drops or we must leave."""
        cfg = self.cfg
        client = FingerBotClient(self, cfg.nick, fallback_nicks(cfg.nick))
        self.client = client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.connect_timeout  # TCP + TLS + registration
        try:
            await asyncio.wait_for(
                client.connect(cfg.server, cfg.port, tls=cfg.tls, tls_verify=cfg.tls_verify,
                               password=cfg.server_password, channels=list(cfg.channels)),
                self.timing.connect_timeout,
            )
            await self._first(client.ready, client.gone,
                              timeout=max(0.1, deadline - loop.time()),
                              what="connecting and registering")
            if not client.ready.is_set():
                raise ConnectionError("the server closed the connection during registration")
            self.metrics.connections.labels("irc").inc()
            try:
                await self._serve(client)
            finally:
                self.metrics.connections.labels("irc").dec()
        finally:
            stale = self.queue.clear()
            if stale:
                log.info("irc %s: dropped %d queued lines after disconnect", self.label, stale)
            if client.connected and not self._closing.is_set():
                with contextlib.suppress(Exception):
                    await client.disconnect(expected=True)
            if self.client is client and not self._closing.is_set():
                self.client = None

    async def _serve(self, client: FingerBotClient) -> None:
        tick = min(self.timing.regain_interval, self.timing.leadership_interval)
        loop = asyncio.get_running_loop()
        next_regain = loop.time() + self.timing.regain_interval
        next_lead = loop.time() + self.timing.leadership_interval
        while True:
            await self._first(client.gone, self._closing, timeout=tick, what=None)
            if client.gone.is_set():
                log.warning("irc %s: disconnected", self.label)
                return
            if self._closing.is_set():
                return
            now = loop.time()
            if self.should_run is not None and now >= next_lead:
                next_lead = now + self.timing.leadership_interval
                if not await self._may_run():
                    log.info("irc %s: another node runs this bot now; leaving", self.label)
                    with contextlib.suppress(Exception):
                        await client.quit("handing over")
                    return
            if now >= next_regain:
                next_regain = now + self.timing.regain_interval
                if not client.is_same_nick(client.nickname, self.cfg.nick):
                    log.info("irc %s: asking for nick %s back", self.label, self.cfg.nick)
                    await client.set_nickname(self.cfg.nick)

    @staticmethod
    async def _first(*events: asyncio.Event, timeout: float, what: str | None) -> None:
        """Wait until one of ``events`` is set, at most ``timeout`` seconds."""
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not done and what is not None:
            raise TimeoutError(f"{what} took longer than {timeout:g} s")

    def on_registered(self, client: FingerBotClient) -> None:
        self._registered_at = asyncio.get_running_loop().time()
        log.info("irc %s: registered as %s", self.label, client.nickname)

    def schedule_rejoin(self, client: FingerBotClient, channel: str) -> None:
        async def rejoin() -> None:
            await self._pause(self.timing.rejoin_delay)
            if self.client is client and client.connected and not client.in_channel(channel):
                with contextlib.suppress(Exception):
                    await client.join(channel)

        self._spawn(rejoin(), f"rejoin {channel}")

    # -- output -------------------------------------------------------------------------

    def _count_drop(self, line: OutLine) -> None:
        self.metrics.refused.labels("irc", "output_queue_full").inc()

    async def _send_forever(self) -> None:
        while True:
            line = await self.queue.get()
            try:
                await self.bucket.take()
                client = self.client
                if client is None or not client.ready.is_set() or not client.connected:
                    log.debug("irc %s: not connected, dropped a line to %s", self.label,
                              line.target)
                    continue
                text = safe_line(line.text, nick=str(client.nickname),
                                 user=str(client.username), target=line.target)
                await client.rawmsg("PRIVMSG", line.target, text)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("irc %s: could not send to %s: %s", self.label, line.target, exc)
            finally:
                self.queue.task_done()

    # -- queries ------------------------------------------------------------------------

    async def on_private(self, client: FingerBotClient, by: str, message: str) -> None:
        query = parse_private(message)
        if query is not None:
            await self._answer(by, query)

    async def on_channel(self, client: FingerBotClient, channel: str, by: str,
                         message: str) -> None:
        query = parse_channel(message)
        if query is not None:
            await self._answer(channel, query)

    async def _answer(self, target: str, query: Query) -> None:
        if not self._accepting:
            return
        if self.queue.full or self._inbox.full():
            # Flooded: do not even look the user up; the reply could not be sent.
            self._count_drop(OutLine(target, ""))
            log.warning("irc %s: flooded, ignored a query from %s", self.label, target)
            return
        self._inbox.put_nowait((target, query))

    async def _answer_forever(self) -> None:
        while True:
            target, query = await self._inbox.get()
            if query.name is None:
                self.queue.offer(OutLine(target, USAGE))
                continue
            reply = await self._lookup(query.name)
            if self._accepting:
                self.queue.offer(OutLine(target, reply))

    async def _lookup(self, name: str) -> str:
        try:
            with self.metrics.observe("irc"):
                tenant = await self._resolve_tenant()
                user = await self.service.public.public_user(tenant, name)
        except InvalidInput as exc:
            return str(exc)
        except NotFound:
            log.error("irc %s: tenant %r does not exist", self.label, self.cfg.tenant)
            return no_such_user(name)
        except FingerplatError as exc:
            log.warning("irc %s: lookup failed: %s", self.label, exc)
            return "Sorry, the directory is not available right now."
        except Exception:
            log.exception("irc %s: lookup of %r failed", self.label, name)
            return "Sorry, something went wrong."
        if user is None:
            return no_such_user(name)
        # The finger log: IRC tells us no client address, so the network is "unknown".
        self.service.finger_log.note_lookup(tenant, user, "irc", None)
        if not tenant.shows("status"):  # the tenant keeps statuses out of public answers
            return f"{user.username}: (status not public)"
        return status_reply(user.username, user.status)

    async def _resolve_tenant(self) -> Tenant:
        if self._tenant is None:
            self._tenant = await self.service.public.resolve_tenant(self.cfg.tenant)
            self._tenant_key = self._tenant.slug
        return self._tenant

    # -- announcements ---------------------------------------------------------------------

    def _on_event(self, event: ChangeEvent) -> None:
        """Called by the service after a commit: only queue lines here, never wait."""
        if event.kind in ("tenant", "resync"):
            self._tenant = None  # renamed, removed, re-created or missed: look it up again
            return
        if event.kind != "status" or not self._accepting or event.username is None:
            return
        truncated = bool(event.data.get("truncated"))
        if event.data.get("hidden"):
            return
        if self._tenant is not None:
            if event.tenant_id != self._tenant.id or not self._tenant.shows("status"):
                return
        elif event.tenant_slug != self._tenant_key:
            return
        else:
            truncated = True  # the tenant's settings are not known here: read them first
        client = self.client
        if client is None or not client.ready.is_set():
            log.debug("irc %s: not connected, no announcement for %s", self.label,
                      event.username)
            return
        if truncated:
            # An event from another node too long for NOTIFY lost its status and
            # "hidden" flag: read the public view now (hidden stays unannounced).
            self._spawn(self._announce_current(event.username), "announce")
            return
        self._announce(client, announcement(event.username, event.status))

    def _announce(self, client: FingerBotClient, text: str) -> None:
        for channel in self.cfg.channels:
            if client.in_channel(channel):
                self.queue.offer(OutLine(channel, text))

    async def _announce_current(self, username: str) -> None:
        try:
            tenant = await self._resolve_tenant()
            user = await self.service.public.public_user(tenant, username)
        except Exception as exc:
            log.warning("irc %s: cannot announce %s: %s", self.label, username, exc)
            return
        client = self.client
        if not tenant.shows("status"):
            return
        if user is not None and client is not None and client.ready.is_set() and self._accepting:
            self._announce(client, announcement(user.username, user.status))
