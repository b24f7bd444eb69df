"""``serve --workers N``: N processes answering on the same addresses.

One Python process answers finger on one core at most (the event loop is one
thread), so a machine with more cores runs several. The parent reserves every
TCP listen address first (a socket bound with ``SO_REUSEPORT`` but not
listening, which also turns port 0 into one concrete port shared by all),
then forks the workers. Each worker binds its own listening socket to the
same address with ``SO_REUSEPORT`` (fingerplat/adapters/net/sockets.py) and runs
the ordinary ``serve`` runtime, handing it those sockets as an argument
(``serve(prebound=...)``); the kernel spreads incoming connections over the
workers' sockets. The parent only waits: it passes SIGTERM, SIGINT and
SIGHUP on to every worker and exits when they have, with the first failing
worker's status (a worker that dies stops the others: the supervisor, e.g.
systemd, restarts the whole service).

Things that must run once per deployment stay in worker 0: IRC bots, sources
(importers) and the Unix-socket setter. Every worker has its own connection
pool and read cache; a change made through one worker reaches the others'
caches like any other process's change (LISTEN/NOTIFY on PostgreSQL, the
database file's signature on SQLite).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass

from fingerplat.adapters.net import sockets
from fingerplat.config import Config
from fingerplat.server.runtime import listen_error


@dataclass(frozen=True)
class Reservation:
    host: str
    port: int  # as configured (may be 0)
    actual_port: int
    holder: socket.socket


@dataclass
class Worker:
    """What a forked worker runs with (``fork_workers`` returns it in the child)."""

    index: int
    config: Config
    #: This worker's listening sockets, for ``serve(prebound=...)``.
    prebound: sockets.PreboundSockets


def tcp_listen_specs(config: Config) -> list[tuple[str, str, int]]:
    """(adapter, host, port) of every TCP listener, as configured."""
    return [(adapter, *spec.host_port)
            for adapter, specs in (("finger", config.finger.listen),
                                   ("setter", config.setter.listen),
                                   ("web", config.web.listen))
            for spec in specs]


def reserve(config: Config) -> list[Reservation]:
    """Hold every TCP listen address (port 0 becomes a concrete port) before forking."""
    reserved: list[Reservation] = []
    try:
        for adapter, host, port in tcp_listen_specs(config):
            try:
                holder = sockets.reuseport_socket(host, port, listen=False)
            except OSError as error:
                raise listen_error(adapter, host, port, error) from None
            reserved.append(Reservation(host, port, holder.getsockname()[1], holder))
    except BaseException:
        for item in reserved:
            item.holder.close()
        raise
    return reserved


def worker_config(config: Config, index: int) -> Config:
    """Worker 0 runs everything; the others leave out what must run once."""
    if index == 0:
        return config
    return config.model_copy(update={
        "irc": [],
        "source": [],
        "setter": config.setter.model_copy(update={"unix_socket": None}),
    })


class Supervisor:
    """The parent: forwards signals to the workers and waits for them."""

    def __init__(self, pids: list[int], reserved: list[Reservation]) -> None:
        self.pids = set(pids)
        self.reserved = reserved
        self.stopping = False

    def _forward(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:
            self.stopping = True
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def wait(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._forward)
        status = 0
        while self.pids:
            try:
                pid, raw = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            if pid not in self.pids:
                continue
            self.pids.discard(pid)
            code = os.waitstatus_to_exitcode(raw)
            if code != 0 and status == 0:
                status = code if code > 0 else 1
            if not self.stopping:
                # A worker ended on its own: stop the rest, so the service
                # manager sees the failure and restarts the whole thing.
                print(f"fingerplat: worker {pid} exited ({code}); stopping the others",
                      file=sys.stderr, flush=True)
                self.stopping = True
                status = status or 1
                for other in list(self.pids):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(other, signal.SIGTERM)
        for item in self.reserved:
            item.holder.close()
        return status


def fork_workers(config: Config, count: int) -> Worker | Supervisor:
    """Fork ``count`` workers: a :class:`Worker` in each child, a :class:`Supervisor` here."""
    reserved = reserve(config)
    sys.stdout.flush()
    sys.stderr.flush()
    pids: list[int] = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            prebound = sockets.PreboundSockets()
            for item in reserved:
                item.holder.close()
                prebound.put(item.host, item.port,
                             sockets.reuseport_socket(item.host, item.actual_port, listen=True))
            return Worker(index, worker_config(config, index), prebound)
        pids.append(pid)
    return Supervisor(pids, reserved)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the parent dies (even by SIGKILL), so no
    orphaned worker keeps answering on the port. Best effort elsewhere."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
