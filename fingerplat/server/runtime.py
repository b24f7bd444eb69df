"""``fingerplat serve``: the program around the composition root.

The engines, the service and the schema check come from the bootstrap
(fingerplat/bootstrap.py, shared with the CLI and the tests). This runtime
starts each configured listener with the adapter that speaks its protocol
(on the sockets a ``--workers`` worker made, when given), prints every bound
address, and on SIGTERM stops accepting, drains in-flight work and closes the
pool. It is the only module that knows every adapter; adapters only ever see
the service, their own settings and the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.adapters.net.sockets import PreboundSockets
from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.bootstrap import Wired, open_service, wire
from fingerplat.config import Config, format_address
from fingerplat.domain.errors import CannotListen, FingerplatError, InvalidInput, NotFound
from fingerplat.metrics import Metrics
from fingerplat.repository.engine import is_sqlite, sqlite_file
from fingerplat.repository.hot_reads import PgHotReads
from fingerplat.repository.own_commits import OwnCommits
from fingerplat.repository.sqlite_watch import sqlite_change_token
from fingerplat.server import logs, privileges, systemd
from fingerplat.server.leadership import LEADERSHIP_INTERVAL, BotLeadership
from fingerplat.service import FingerplatService
from fingerplat.service.event_bridge import EventBridge, start_event_bridge
from fingerplat.service.pseudo_kinds import Places

log = logging.getLogger("fingerplat.server")

DRAIN_TIMEOUT = 10.0
#: At most this long before listening is spent filling the read cache
#: (warm_up). The warming itself stops at the cache's budget (a million
#: users' answers fit the default 128 MiB, compressed: about 36 s of CPU on
#: a loaded machine), so this bounds a huge directory and a database that
#: answers slowly; what is left warms in the background.
WARM_UP_SECONDS = 60.0

# (user, remote host chain, verbose) -> answer lines, already neutralised.
ForwardFn = Callable[[str, list[str], bool], Awaitable[list[str]]]


class RunningListener(Protocol):
    """What every adapter's ``start_*`` function returns."""

    name: str

    @property
    def addresses(self) -> list[str]: ...

    async def close(self) -> None:
        """Stop accepting new connections."""

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for in-flight requests to finish, then drop the rest."""


@dataclass
class Runtime:
    config: Config
    database_url: str
    announce: Callable[[str], None] = print
    engine: AsyncEngine | None = None
    read_engine: AsyncEngine | None = None
    service: FingerplatService | None = None
    metrics: Metrics = field(default_factory=Metrics)
    listeners: list[RunningListener] = field(default_factory=list)
    leadership: BotLeadership | None = None
    event_bridge: EventBridge | None = None
    hot_reads: PgHotReads | None = None
    #: Run the expiry sweeper (tests turn it off to show reads need no write).
    expiry_sweeper: bool = True
    #: ``serve --workers``: the listening sockets the worker made for this
    #: process (shared with the others through SO_REUSEPORT), handed to each
    #: adapter; None binds as usual.
    prebound: PreboundSockets | None = None
    #: The engines and the service, from the bootstrap (set by prepare_database).
    wired: Wired | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _warming: asyncio.Task[None] | None = None
    _forwarder: ForwardFn | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    async def prepare_database(self) -> None:
        """SQLite: create and migrate on first start. PostgreSQL: refuse an old schema.

        The engines, the service and the check are the bootstrap's
        (fingerplat/bootstrap.py), shared with the CLI and the tests; serve
        adds its read pool and, on PostgreSQL, the prepared-statement reads.
        """
        self.wired = wire(self.database_url, self.config.database, read_pool=True,
                          hot_reads=True)
        self.engine, self.read_engine = self.wired.engine, self.wired.read_engine
        self.service, self.hot_reads = self.wired.service, self.wired.hot_reads
        self.announce((await self.wired.prepare()).line)

    async def start_change_events(self) -> None:
        """Share change events between nodes (PostgreSQL) and cache the public reads.

        The read cache is exact only while every change reaches it as an
        event, so it is guarded: on SQLite by the database file's signature
        (another process, e.g. the CLI, may write it), on PostgreSQL by the
        LISTEN connection being up (fingerplat/service/cache.py).
        """
        assert self.engine is not None and self.service is not None
        guard = None
        if is_sqlite(self.database_url):
            path = sqlite_file(self.database_url)
            guard = sqlite_change_token(path) if path is not None else None
            if guard is not None:  # issue 16: our finger log commits keep the cache
                guard = self.service.finger_log.own_commits = OwnCommits(guard)
        else:
            bridge = self.event_bridge = await start_event_bridge(self.engine,
                                                                  self.service.events)
            if bridge is not None:
                listener = bridge.listener
                guard = lambda: 0 if listener.subscribed else None  # noqa: E731
                # What to watch during a failover (docs/operations.md): 0 while
                # this node cannot follow other nodes' changes.
                following = Gauge(
                    "fingerplat_change_events_listening",
                    "1 while the LISTEN connection follows other nodes' changes, else 0",
                    registry=self.metrics.registry)
                self.metrics.add_flusher(
                    lambda: following.set(1 if listener.subscribed else 0))
        limits = self.config.database.read_cache_limits()
        if limits is not None:
            max_bytes, max_entries = limits
            self.service.enable_read_cache(max_bytes=max_bytes, max_entries=max_entries,
                                           guard=guard, membership=True)

    def forwarder(self) -> ForwardFn | None:
        """The finger proxy, handed to the finger adapter as a plain callable."""
        if self._forwarder is None:  # one proxy (one concurrency limit) for every listener
            from fingerplat.adapters.proxy.forwarder import Forwarder

            self._forwarder = Forwarder(self.config.forwarding, metrics=self.metrics)
        return self._forwarder

    async def start_listeners(self) -> None:
        """Bind every configured listener and start the background tasks, then announce them."""
        assert self.service is not None
        await self._start_finger()
        await self._start_setters()
        await self._start_web()
        await self._start_irc()
        await self._start_background()
        for listener in self.listeners:
            for address in listener.addresses:
                self.announce(f"{listener.name} listening on {address}")

    async def _start_finger(self) -> None:
        from fingerplat.adapters.finger.server import start_finger_server

        assert self.service is not None
        cfg = self.config
        for spec in cfg.finger.listen:
            host, port = spec.host_port
            if spec.tenant is not None:
                try:
                    await self.service.public.resolve_tenant(spec.tenant)
                except NotFound as error:
                    raise NotFound(f"finger listener {spec.address}: {error}") from None
            try:
                self.listeners.append(await start_finger_server(
                    self.service, host, port, tenant=spec.tenant, settings=cfg.finger,
                    metrics=self.metrics, forward=self.forwarder(),
                    trusted=TrustedProxies(cfg.network.trusted_proxies), prebound=self.prebound,
                ))
            except OSError as error:
                raise listen_error("finger", host, port, error) from None

    async def _start_setters(self) -> None:
        """The TCP setters, and the UNIX socket one when configured."""
        from fingerplat.adapters.setter.server import start_setter_server

        assert self.service is not None
        cfg = self.config
        for spec in cfg.setter.listen:
            host, port = spec.host_port
            try:
                self.listeners.append(await start_setter_server(
                    self.service, host, port, settings=cfg.setter, metrics=self.metrics,
                    trusted=TrustedProxies(cfg.network.trusted_proxies), prebound=self.prebound,
                ))
            except OSError as error:
                raise listen_error("setter", host, port, error) from None
        if cfg.setter.unix_socket:
            from fingerplat.adapters.setter.unix import start_unix_setter

            self.listeners.append(await start_unix_setter(
                self.service, cfg.setter.unix_socket, tenant=cfg.setter.unix_tenant,
                settings=cfg.setter, metrics=self.metrics,
            ))

    async def _start_web(self) -> None:
        if not self.config.web.listen:
            return
        from fingerplat.adapters.web.server import start_web_server

        assert self.service is not None
        try:
            self.listeners.append(await start_web_server(
                self.service, self.config.web, metrics=self.metrics,
                trusted=TrustedProxies(self.config.network.trusted_proxies),
                prebound=self.prebound,
            ))
        except CannotListen as error:
            raise with_listen_hint(error) from None

    async def _start_irc(self) -> None:
        cfg = self.config
        if not cfg.irc:
            return
        from fingerplat.adapters.irc import IrcTiming, start_irc_bots

        assert self.service is not None
        # Connects in the background: a down IRC server never delays startup.
        # On PostgreSQL several nodes may run this configuration: an advisory
        # lock per bot lets exactly one of them run it (docs/operations.md).
        timing = None
        if not is_sqlite(self.database_url):
            self.leadership = BotLeadership(
                self.database_url, connect_timeout=cfg.database.connect_timeout,
                command_timeout=cfg.database.command_timeout,
            )
            timing = IrcTiming(leadership_interval=LEADERSHIP_INTERVAL)
        self.listeners.append(await start_irc_bots(
            self.service, cfg.irc, metrics=self.metrics, timing=timing,
            should_run=self.leadership,
        ))

    async def _start_background(self) -> None:
        """Sources and sweepers: tasks shaped like listeners, so serve stops and drains them."""
        assert self.service is not None
        if self.config.source:
            from fingerplat.adapters.sources.runner import start_sources

            # Background tasks: a failing source is logged and retried, never fatal.
            self.listeners.append(await start_sources(self.service, self.config.source,
                                                      metrics=self.metrics))
        from fingerplat.server.auth_sweeper import start_auth_sweeper

        self.listeners.append(start_auth_sweeper(self.service))
        if self.expiry_sweeper:
            from fingerplat.server.expiry_sweeper import start_expiry_sweeper

            # Clears expired statuses (history and audit); reads never wait for it.
            self.listeners.append(start_expiry_sweeper(self.service))

    def start_issue16(self) -> None:
        """Pseudo-users' ``help`` places, and the finger log's writer and purger tasks."""
        assert self.service is not None
        finger, web = [], []
        for listener in self.listeners:
            if listener.name == "finger":
                finger.extend(a.split(" ", 1)[0] for a in listener.addresses)
            elif listener.name == "web":
                web.extend(listener.addresses)
        public_url = getattr(self.config.web, "public_url", None)
        self.service.pseudo_users.pseudo_places = Places(finger=tuple(finger),
                                            web=(public_url,) if public_url else tuple(web))
        self.service.finger_log.start_finger_log(days=self.config.privacy.finger_log_days)
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self.service.finger_log.finger_log_writer(),
                                                 name="finger-log-writer"))
        self._background.append(loop.create_task(self.service.finger_log.finger_log_purger(),
                                                 name="finger-log-purger"))

    async def stop_issue16(self) -> None:
        """Stop the background tasks: the finger log writer writes what it holds first
        (bounded by the drain timeout), the purger is cancelled."""
        tasks, self._background = self._background, []
        recorder = self.service.finger_log.finger_log_recorder if self.service is not None else None
        if recorder is not None:
            recorder.stop()
        if tasks:
            writer, *others = tasks
            for task in others:
                task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), DRAIN_TIMEOUT)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def start(self) -> None:
        try:
            await self.prepare_database()
            await self.start_change_events()
            await self.warm_up(WARM_UP_SECONDS)
            await self.start_listeners()
            self.start_issue16()
        except BaseException:
            await self.stop()
            raise

    async def warm_up(self, seconds: float) -> None:
        """Fill the read cache before listening, for at most ``seconds``; the rest follows.

        A freshly started server would otherwise pay a database read for the
        first query of every user, and a flood of queries at start would
        compete with the warming for the CPU. So, like a server that loads
        its users before it listens, the membership of names and every
        visible user's finger answer are loaded first, bounded in time (a
        directory too large for that goes on warming in the background
        while the listeners answer).
        """
        if self.service is None or self.service.read_cache is None:
            return
        from fingerplat.adapters.finger.answer import FingerAnswerer

        cache = self.service.read_cache
        for spec in self.config.finger.listen:  # the answers each finger listener will look up
            FingerAnswerer(self.service, tenant=spec.tenant,
                           max_listed_users=self.config.finger.max_listed_users)
        self.start_warming()
        waits: list[asyncio.Future[object]] = []
        if self._warming is not None:
            waits.append(asyncio.ensure_future(asyncio.shield(self._warming)))
        if cache.membership is not None:
            waits.append(asyncio.ensure_future(cache.membership.settled(seconds)))
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=seconds)
            for future in pending:
                future.cancel()
            for future in waits:
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: a failure is logged by its owner

    def start_warming(self) -> None:
        """Fill the read cache in the background, so a fresh server answers from memory."""
        if self.service is None or self.service.read_cache is None:
            return
        service = self.service

        async def warm() -> None:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                count = await service.warm_read_cache()
            except FingerplatError as error:
                log.debug("read cache not warmed: %s", error)
                return
            log.debug("read cache warmed: %d answers in %.1fs", count, loop.time() - started)

        self._warming = asyncio.get_running_loop().create_task(warm())

    async def stop(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._warming
            self._warming = None
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                await listener.close()
        await asyncio.gather(
            *(listener.drain(DRAIN_TIMEOUT) for listener in self.listeners),
            return_exceptions=True,
        )
        self.listeners.clear()
        await self.stop_issue16()
        if self.leadership is not None:
            # After the bots said QUIT: releasing earlier could let another
            # node's bot in while ours is still on IRC.
            with contextlib.suppress(Exception):
                await self.leadership.close()
            self.leadership = None
        if self.event_bridge is not None:
            with contextlib.suppress(Exception):
                await self.event_bridge.stop()
            self.event_bridge = None
        if self.service is not None:
            with contextlib.suppress(Exception):
                await self.service.stop_read_cache()
            self.service.disable_read_cache()
        if self.wired is not None:
            wired, self.wired = self.wired, None
            self.engine = self.read_engine = self.hot_reads = None
            await wired.close()

    def request_stop(self) -> None:
        self._stopping.set()

    def reload(self, load: Callable[[], Config]) -> None:
        """SIGHUP: re-read the configuration and apply what can change live.

        Listeners that implement ``reconfigure(config)`` take new limits and
        timeouts at once; the log level and format change at once; anything
        else (addresses, database, TLS, bots, sources) is reported as needing
        a restart. A broken file changes nothing and is reported.
        """
        try:
            new = load()
        except FingerplatError as error:
            self.announce(f"reload refused, configuration unchanged: {error}")
            return
        changed = _changed_keys(self.config.model_dump(), new.model_dump())
        if not changed:
            # Same settings, but files behind them (a renewed certificate at the
            # same path, edited templates) may have changed: re-read them.
            for listener in self.listeners:
                reconfigure = getattr(listener, "reconfigure", None)
                if reconfigure is not None:
                    reconfigure(new)
            self.announce("reload: configuration unchanged; certificates and templates re-read")
            return
        live_prefixes = tuple(LIVE_KEYS)
        live = [k for k in changed if k.startswith(live_prefixes)]
        restart = [k for k in changed if not k.startswith(live_prefixes)]
        self.config = new
        logs.configure(new.log.level, new.log.format)
        for listener in self.listeners:
            reconfigure = getattr(listener, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(new)
        if self.service is not None:  # issue 16: the next purge uses the new retention
            self.service.finger_log.finger_log_days = new.privacy.finger_log_days
        reconfigure_proxy = getattr(self._forwarder, "reconfigure", None)
        if reconfigure_proxy is not None:
            reconfigure_proxy(new.forwarding)
        if live:
            self.announce(f"reload: applied {', '.join(live)}")
        if restart:
            self.announce(f"reload: needs a restart to change {', '.join(restart)}")

    async def serve_until_stopped(self, reload: Callable[[], Config] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        if reload is not None:
            loop.add_signal_handler(signal.SIGHUP, self.reload, reload)
        self.announce("ready")
        systemd.notify("READY=1")
        await self._stopping.wait()
        systemd.notify("STOPPING=1")
        self.announce("stopping: draining in-flight requests")
        await self.stop()
        self.announce("stopped")


# Configuration keys a running server applies on SIGHUP (README: "Reloading").
LIVE_KEYS = (
    "finger.idle_timeout", "finger.max_connections", "finger.rate_limit",
    "finger.max_listed_users", "finger.access_log", "finger.max_connections_per_address",
    "finger.answer_on_accept", "web.front_door",
    "setter.idle_timeout", "setter.auth_timeout", "setter.max_connections",
    "setter.max_connections_per_address", "web.max_connections",
    "web.max_connections_per_address", "forwarding.", "log.",
    "web.templates", "web.tls_cert", "web.tls_key",
    "privacy.",
)


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(_changed_keys(a, b, f"{prefix}{key}."))
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


async def check_database(config: Config, database_url: str) -> None:
    """What ``serve`` does to the database before listening, and nothing else.

    ``serve --workers N`` runs this once in the parent, so N workers never
    race to create or migrate the same SQLite file.
    """
    async with open_service(database_url, config.database, prepare=True):
        pass


def listen_error(adapter: str, host: str, port: int, error: OSError) -> CannotListen:
    """A bind failure as one line naming the address (``address already in use``)."""
    # os.strerror, not error.strerror: an adapter may already have re-worded the latter.
    reason = (os.strerror(error.errno) if error.errno else str(error)).lower()
    if error.errno == errno.EACCES and port < 1024:
        reason += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    return with_listen_hint(CannotListen(adapter, format_address(host, port), reason,
                                         in_use=error.errno == errno.EADDRINUSE))


def with_listen_hint(error: CannotListen) -> CannotListen:
    """Name what moves the port when another server holds it (serve's option, the key)."""
    if not error.in_use or error.adapter not in ("finger", "setter", "web"):
        return error
    return CannotListen(
        error.adapter, error.address, error.reason.lower(), in_use=True,
        hint=f" (is another server running? choose another address with "
             f"`serve --{error.adapter} HOST:PORT` or [{error.adapter}] listen in the "
             "configuration file)",
    )


def log_event_loop() -> None:
    """Say which event loop runs: uvloop is a dependency wherever it installs
    (the CLI's ``run`` picks it when importable), and the standard loop costs
    1.4-2.2 times the CPU per cached query (bench/README.md)."""
    loop = type(asyncio.get_running_loop())
    if loop.__module__.startswith("uvloop"):
        log.debug("event loop: uvloop")
    else:
        log.warning("event loop: the standard asyncio loop (%s.%s; uvloop not installed), "
                    "slower per query", loop.__module__, loop.__qualname__)


async def serve(config: Config, database_url: str, *, user: str | None = None,
                group: str | None = None, announce: Callable[[str], None] = print,
                reload: Callable[[], Config] | None = None,
                prebound: PreboundSockets | None = None) -> None:
    """Run the server until SIGTERM/SIGINT. Raises FingerplatError for user errors.

    ``prebound``: a ``--workers`` worker's listening sockets (workers.py).

    ``reload`` re-reads the configuration (file plus command-line overrides)
    on SIGHUP; without it SIGHUP keeps its default meaning. ``user``/``group``
    are checked before binding and taken on after it (docs/operations.md).
    """
    logs.configure(config.log.level, config.log.format)
    log_event_loop()
    run_as = privileges.resolve(user, group)
    runtime = Runtime(config, database_url, announce=announce, prebound=prebound)
    await runtime.start()
    if run_as is not None:
        database = sqlite_file(database_url) if is_sqlite(database_url) else None
        try:
            privileges.hand_over_sqlite(database, run_as)
            privileges.become(run_as)
            privileges.check_sqlite_access(database, run_as)
        except OSError as error:
            await runtime.stop()
            raise InvalidInput(f"cannot drop privileges: {error}") from None
        except FingerplatError:
            await runtime.stop()
            raise
        announce(f"privileges dropped: uid {os.getuid()}, gid {os.getgid()}")
    await runtime.serve_until_stopped(reload)
