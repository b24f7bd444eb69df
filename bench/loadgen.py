#!/usr/bin/env python3
"""A finger load generator: many concurrent clients, one query per connection.

Each client does what a real ``finger`` client does: connect, send one query
line ended by CRLF, read the answer until the server closes, close. Every
client loops like that for a fixed time window; only queries that start and
finish inside the window are counted, so a slow start or a straggler at the
end does not distort the rate.

The figure that separates fast servers on a small machine is **server CPU per
query**: with ``--server-pid`` the utime+stime of that process (and of all its
descendants, for multi-process servers, plus its reaped children) is read
from ``/proc`` at the start and at the end of the window and divided by the
queries completed in it. The load generator's own core usually saturates
first, so queries/s alone cannot tell two fast servers apart.

The query mix draws user names from a pattern: ``--users N --pattern
bench{:06d}`` asks for ``bench000000`` .. ``bench{N-1}`` (existing, seeded by
``bench/seed.py``) and, with probability ``--missing``, for indexes past N
(users that do not exist). ``--check`` verifies every answer: existing users
must not say ``No such user``, missing ones must.

Two client engines. ``--engine c`` (the default when a C compiler is
installed) drives the load from ``bench/loadgen_c/finger_load.c``, a small
single-threaded epoll client compiled on first use: on a 2-core machine the
client's core saturates first, and the C client roughly halves what the
client side spends per query compared with Python. ``--engine python`` is
pure asyncio (uvloop when installed), and ``--processes`` splits its clients
over several processes, each with its own event loop. Either way this script
samples the server CPU and prints the report. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NO_SUCH_USER = b"No such user"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Answer kinds recorded per query, besides success.
ERR_CONNECT = "connect"
ERR_TIMEOUT = "timeout"
ERR_RESET = "reset"
ERR_EMPTY = "empty"
ERR_WRONG = "wrong-answer"


# -- server CPU from /proc ------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, own utime+stime, reaped children's cutime+cstime) in clock ticks."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after it.
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime is field 14, so index 11.
    ppid = int(fields[1])
    own = int(fields[11]) + int(fields[12])
    reaped = int(fields[13]) + int(fields[14])
    return ppid, own, reaped


def _descendants(roots: list[int]) -> set[int]:
    """The given processes and every process below them, from one /proc scan."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def server_cpu_seconds(roots: list[int]) -> float:
    """CPU seconds used so far by ``roots``, their live descendants and reaped children.

    Only the roots' reaped-children counters are added: a live descendant's own
    reaped children are already inside its counters, and adding them at every
    level would count grandchildren twice.
    """
    ticks = 0
    for pid in _descendants(roots):
        stat = _proc_stat(pid)
        if stat is None:
            continue
        ticks += stat[1]
        if pid in roots:
            ticks += stat[2]
    return ticks / CLOCK_TICKS


# -- the client -----------------------------------------------------------------


@dataclass
class WorkerResult:
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: bytes = b""  # array('d') of seconds, completed queries only
    bytes_received: int = 0


class _FingerClient(asyncio.Protocol):
    """One query: send on connect, collect until EOF, resolve the future."""

    __slots__ = ("_chunks", "_done", "_query", "_transport")

    def __init__(self, query: bytes, done: asyncio.Future[bytes]) -> None:
        self._query = query
        self._done = done
        self._chunks: list[bytes] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.write(self._query)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)

    def eof_received(self) -> bool:
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done.done():
            return
        if exc is not None and not self._chunks:
            self._done.set_exception(exc)
        else:
            self._done.set_result(b"".join(self._chunks))


@dataclass
class WorkerPlan:
    host: str
    port: int
    clients: int
    queries: list[tuple[bytes, bool]]  # (query line, expected to exist)
    start_at: float  # time.monotonic() (system-wide on Linux) of the window start
    end_at: float
    warm_from: float
    timeout: float
    check: bool
    seed: int


async def _client_loop(plan: WorkerPlan, offset: int, result: WorkerResult,
                       lat: array) -> None:
    loop = asyncio.get_running_loop()
    queries = plan.queries
    n = len(queries)
    i = offset
    now = time.monotonic
    errors = result.errors
    while True:
        began = now()
        if began >= plan.end_at:
            return
        query, exists = queries[i % n]
        i += 1
        done: asyncio.Future[bytes] = loop.create_future()
        kind: str | None = None
        answer = b""
        transport = None
        try:
            async with asyncio.timeout(plan.timeout):
                transport, _ = await loop.create_connection(
                    lambda q=query, d=done: _FingerClient(q, d), plan.host, plan.port
                )
                answer = await done
        except TimeoutError:
            kind = ERR_TIMEOUT
        except ConnectionRefusedError:
            kind = ERR_CONNECT
        except OSError:
            kind = ERR_RESET if transport is not None else ERR_CONNECT
        finally:
            if transport is not None and kind is not None:
                transport.abort()
        ended = now()
        if began < plan.start_at or ended > plan.end_at:
            if kind == ERR_CONNECT and began < plan.start_at:
                await asyncio.sleep(0.01)
            continue
        if kind is None:
            if not answer:
                kind = ERR_EMPTY
            elif plan.check and ((NO_SUCH_USER in answer) == exists):
                kind = ERR_WRONG
        if kind is None:
            result.completed += 1
            result.bytes_received += len(answer)
            lat.append(ended - began)
        else:
            errors[kind] = errors.get(kind, 0) + 1
            if kind == ERR_CONNECT:
                await asyncio.sleep(0.01)  # do not spin on a dead server


async def _run_worker(plan: WorkerPlan) -> WorkerResult:
    result = WorkerResult()
    lat = array("d")
    delay = plan.warm_from - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    rng = random.Random(plan.seed)
    n = len(plan.queries)
    await asyncio.gather(*(
        _client_loop(plan, rng.randrange(n), result, lat) for _ in range(plan.clients)
    ))
    result.latencies = lat.tobytes()
    return result


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (a faster client is a truer benchmark), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_worker(plan: WorkerPlan) -> WorkerResult:
    factory = _loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:  # type: ignore[arg-type]
        return runner.run(_run_worker(plan))


def _worker_entry(plan: WorkerPlan, conn: mp.connection.Connection) -> None:
    try:
        conn.send(run_worker(plan))
    finally:
        conn.close()


# -- the query mix ----------------------------------------------------------------


def tenant_of(index: int, tenant_size: int, tenants: int) -> int:
    """The tenant of name ``index`` when users are spread over tenants (run.py --tenants):
    ``tenant_size`` consecutive indexes per tenant, missing names in existing tenants."""
    return (index // tenant_size) % tenants if tenant_size > 0 and tenants > 0 else 0


def build_queries(users: int, pattern: str, missing: float, verbose: bool,
                  count: int, seed: int, fixed: str | None,
                  missing_span: int = 0, tenant_size: int = 0,
                  tenants: int = 0) -> list[tuple[bytes, bool]]:
    """A pre-drawn list of queries, so the hot loop does no random draws or formatting.

    The pattern gets the name's index and its tenant (``{0}`` and ``{1}``; a
    pattern with one ``{}`` ignores the second).
    """
    if fixed is not None:
        return [((fixed + "\r\n").encode(), True)]
    rng = random.Random(seed)
    prefix = "/W " if verbose else ""
    out: list[tuple[bytes, bool]] = []
    for _ in range(count):
        if users <= 0 or rng.random() < missing:
            index = users + rng.randrange(missing_span or max(users, 1000))
            name = pattern.format(index, tenant_of(index, tenant_size, tenants))
            exists = False
        else:
            index = rng.randrange(users)
            name = pattern.format(index, tenant_of(index, tenant_size, tenants))
            exists = True
        out.append(((prefix + name + "\r\n").encode(), exists))
    return out


# -- orchestration ------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


C_SOURCE = Path(__file__).resolve().parent / "loadgen_c" / "finger_load.c"


def c_engine(choice: str) -> Path | None:
    """The compiled C client (built once per source version into a cache dir), or None."""
    if choice == "python":
        return None
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None or not C_SOURCE.exists():
        if choice == "c":
            raise SystemExit("loadgen: --engine c needs cc and bench/loadgen_c/finger_load.c")
        return None
    source = C_SOURCE.read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fingerplat-bench"
    binary = cache / f"finger_load-{hashlib.sha256(source).hexdigest()[:16]}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(f".{os.getpid()}.tmp")
        build = subprocess.run([compiler, "-O2", "-o", str(tmp), str(C_SOURCE)],
                               capture_output=True, text=True, check=False)
        if build.returncode != 0:
            if choice == "c":
                raise SystemExit(f"loadgen: building the C client failed: {build.stderr}")
            return None
        tmp.replace(binary)
    return binary


def c_pattern(pattern: str) -> str:
    """``bench{:06d}`` (str.format) as ``bench%06d`` (printf) for the C client;
    ``bench{0:06d}@t{1:05d}.x`` (name and tenant) as ``bench%1$06d@t%2$05d.x``."""
    out = pattern.replace("%", "%%")
    if re.search(r"\{1(?::0?\d*d?)?\}", out):
        converted, n = re.subn(r"\{([01])(?::(0?\d*)d?)?\}",
                               lambda m: f"%{int(m.group(1)) + 1}${m.group(2) or ''}d", out)
        if n != 2 or "{" in converted:
            raise SystemExit("loadgen: a tenant pattern needs exactly one {0...} and one {1...}")
        return converted
    converted, n = re.subn(r"\{(?::(0?\d*)d?)?\}", lambda m: f"%{m.group(1) or ''}d", out)
    if n != 1:
        raise SystemExit("loadgen: the C engine needs exactly one {} or {:0Nd} in --pattern")
    return converted


def run_c(args: argparse.Namespace, binary: Path) -> dict[str, object]:
    """Drive the C client; sample server CPU when it prints "start" and "end"."""
    if args.processes != 1:
        raise SystemExit("loadgen: the C engine runs one process; use --engine python "
                         "for --processes")
    if not args.no_probe:
        _wait_for_port(args.host, args.port, 10)
    cmd = [str(binary), args.host, str(args.port), str(args.concurrency), str(args.warmup),
           str(args.duration), str(args.timeout), str(args.users), str(args.missing),
           c_pattern(args.pattern), "1" if args.check else "0", str(args.seed),
           "1" if args.verbose else "0", str(args.mix_size)]
    if args.query is not None:
        cmd.append(args.query)
    roots = args.server_pid or []
    db_pids = args.db_pid or []

    def sample() -> Sample:
        return (server_cpu_seconds(roots) if roots else None,
                server_cpu_seconds(db_pids) if db_pids else None,
                server_cpu_seconds([os.getpid()]))

    samples: dict[str, Sample] = {}
    report: dict[str, object] = {}
    env = {**os.environ, "FINGER_LOAD_MISSING_SPAN": str(args.missing_span),
           "FINGER_LOAD_TENANT_SIZE": str(args.tenant_size),
           "FINGER_LOAD_TENANTS": str(args.tenants)}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            word = line.strip()
            if word in ("start", "end"):
                samples[word if word == "end" else "before"] = sample()
            elif word.startswith("{"):
                report = json.loads(word)
    if proc.returncode != 0 or not report:
        raise SystemExit(f"loadgen: the C client failed (exit {proc.returncode})")
    before = samples.get("before", NO_SAMPLE)
    after = samples.get("end", NO_SAMPLE)
    cpu = _delta(before[0], after[0])
    db_cpu = _delta(before[1], after[1])
    client_cpu = _delta(before[2], after[2])
    completed = int(report["completed"])  # type: ignore[call-overload]
    return {
        "target": f"{args.host}:{args.port}",
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "processes": 1,
        "event_loop": "c-epoll",
        **report,
        "server_pids": roots,
        "server_cpu_s": cpu,
        "server_cpu_us_per_query": (cpu / completed * 1e6) if cpu is not None and completed
        else None,
        "db_pids": db_pids,
        "db_cpu_s": db_cpu,
        "db_cpu_us_per_query": (db_cpu / completed * 1e6) if db_cpu is not None and completed
        else None,
        "server_cpu_share": (cpu / args.duration) if cpu is not None else None,
        "client_cpu_share": (client_cpu / args.duration) if client_cpu is not None else None,
    }


def _wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"loadgen: nothing listening on {host}:{port}") from None
            time.sleep(0.05)


def run(args: argparse.Namespace) -> dict[str, object]:
    binary = c_engine(args.engine)
    if binary is not None:
        return run_c(args, binary)
    queries = build_queries(args.users, args.pattern, args.missing, args.verbose,
                            args.mix_size, args.seed, args.query, args.missing_span,
                            args.tenant_size, args.tenants)
    if not args.no_probe:
        _wait_for_port(args.host, args.port, 10)
    processes = max(1, args.processes)
    per_proc = [args.concurrency // processes + (1 if i < args.concurrency % processes else 0)
                for i in range(processes)]
    setup = 0.3 + 0.1 * processes
    warm_from = time.monotonic() + setup
    start_at = warm_from + args.warmup
    end_at = start_at + args.duration
    plans = [
        WorkerPlan(args.host, args.port, n, queries, start_at, end_at, warm_from,
                   args.timeout, args.check, args.seed + i)
        for i, n in enumerate(per_proc) if n > 0
    ]
    roots = args.server_pid or []
    db_pids = args.db_pid or []

    def sample() -> Sample:
        return (server_cpu_seconds(roots) if roots else None,
                server_cpu_seconds(db_pids) if db_pids else None,
                server_cpu_seconds([os.getpid()]))

    samples: dict[str, Sample] = {}
    results: list[WorkerResult] = []
    if processes == 1:
        # In-process: the samples are timers on the same event loop as the clients.
        async def main() -> WorkerResult:
            loop = asyncio.get_running_loop()
            handles = [
                loop.call_at(loop.time() + (when - time.monotonic()),
                             lambda key=key: samples.__setitem__(key, sample()))
                for key, when in (("before", start_at), ("after", end_at))
            ]
            try:
                return await _run_worker(plans[0])
            finally:
                for handle in handles:
                    handle.cancel()

        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            results.append(runner.run(main()))
    else:
        ctx = mp.get_context("fork")
        pipes = []
        procs = []
        for plan in plans:
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker_entry, args=(plan, child), daemon=True)
            proc.start()
            child.close()
            pipes.append(parent)
            procs.append(proc)
        time.sleep(max(0.0, start_at - time.monotonic()))
        samples["before"] = sample()
        time.sleep(max(0.0, end_at - time.monotonic()))
        samples["after"] = sample()
        for pipe, proc in zip(pipes, procs, strict=True):
            if pipe.poll(args.timeout + 30):
                results.append(pipe.recv())
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        if len(results) != len(plans):
            raise SystemExit("loadgen: a worker process died; see its error above")
    before = samples.get("before", NO_SAMPLE)
    after = samples.get("after", NO_SAMPLE)
    return summarise(args, results, before, after)


# CPU seconds so far of (server, database backends, this load generator with its children).
Sample = tuple[float | None, float | None, float | None]
NO_SAMPLE: Sample = (None, None, None)


def _delta(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


def summarise(args: argparse.Namespace, results: list[WorkerResult],
              before: Sample, after: Sample) -> dict[str, object]:
    lat = array("d")
    errors: dict[str, int] = {}
    completed = 0
    received = 0
    for r in results:
        lat.frombytes(r.latencies)
        completed += r.completed
        received += r.bytes_received
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    ordered = sorted(lat)
    cpu = _delta(before[0], after[0])
    db_cpu = _delta(before[1], after[1])
    client_cpu = _delta(before[2], after[2])
    return {
        "target": f"{args.host}:{args.port}",
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "processes": args.processes,
        "event_loop": "uvloop" if _loop_factory() else "asyncio",
        "completed": completed,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "qps": completed / args.duration,
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p90_ms": percentile(ordered, 0.90) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] * 1000) if ordered else float("nan"),
        "mean_answer_bytes": (received / completed) if completed else 0,
        "server_pids": args.server_pid or [],
        "server_cpu_s": cpu,
        "server_cpu_us_per_query": (cpu / completed * 1e6) if cpu is not None and completed
        else None,
        "db_pids": args.db_pid or [],
        "db_cpu_s": db_cpu,
        "db_cpu_us_per_query": (db_cpu / completed * 1e6) if db_cpu is not None and completed
        else None,
        "server_cpu_share": (cpu / args.duration) if cpu is not None else None,
        "client_cpu_share": (client_cpu / args.duration) if client_cpu is not None else None,
    }


def _share(value: object) -> str:
    return f"{value * 100:.0f} %" if isinstance(value, float) else "-"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Finger load generator: one query per connection, fixed duration.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1079)
    p.add_argument("-d", "--duration", type=float, default=10.0,
                   help="seconds in the measured window")
    p.add_argument("-w", "--warmup", type=float, default=1.0,
                   help="seconds of load before the window (not counted)")
    p.add_argument("-c", "--concurrency", type=int, default=64,
                   help="concurrent connections in total")
    p.add_argument("-p", "--processes", type=int, default=1,
                   help="client processes (each with its own event loop)")
    p.add_argument("--users", type=int, default=1000,
                   help="existing users are pattern indexes 0..N-1")
    p.add_argument("--pattern", default="bench{:06d}",
                   help="user-name pattern, str.format with the index")
    p.add_argument("--missing", type=float, default=0.10,
                   help="fraction of queries for users that do not exist")
    p.add_argument("--missing-span", type=int, default=0,
                   help="missing names are drawn from this many (default: max(users, 1000)); "
                        "with --missing 1 and a large --mix-size, a flood of distinct names")
    p.add_argument("--tenants", type=int, default=0,
                   help="users spread over this many tenants: the pattern's {1} is the tenant "
                        "of name {0}, (index // --tenant-size) %% tenants (seed.py --tenants)")
    p.add_argument("--tenant-size", type=int, default=0, help="users per tenant")
    p.add_argument("--verbose", action="store_true", help="send /W queries")
    p.add_argument("--query", default=None,
                   help="send this fixed query instead of the user mix")
    p.add_argument("--check", action="store_true",
                   help="count answers that contradict the mix as errors")
    p.add_argument("--mix-size", type=int, default=20000,
                   help="how many queries to pre-draw; the run cycles through them, so "
                        "this bounds the distinct users asked for (use at least 2x --users "
                        "to ask for nearly every user)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=10.0, help="per-query timeout")
    p.add_argument("--server-pid", type=int, action="append",
                   help="measure this process's CPU (with descendants); repeatable")
    p.add_argument("--db-pid", type=int, action="append",
                   help="also measure these database backend processes, reported apart")
    p.add_argument("--no-probe", action="store_true",
                   help="do not check the port answers before starting")
    p.add_argument("--engine", choices=("auto", "c", "python"), default="auto",
                   help="c: the epoll client in bench/loadgen_c (built on first use with "
                        "cc); python: asyncio; auto: c when a C compiler is there")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.duration <= 0 or args.concurrency <= 0:
        raise SystemExit("loadgen: --duration and --concurrency must be positive")
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        cpu = report["server_cpu_us_per_query"]
        print(f"{report['target']}: {report['qps']:.0f} q/s over {args.duration:g}s, "
              f"{args.concurrency} connections, client {report['event_loop']}")
        print(f"latency p50 {report['p50_ms']:.2f} ms  p90 {report['p90_ms']:.2f} ms  "
              f"p99 {report['p99_ms']:.2f} ms  max {report['max_ms']:.2f} ms")
        print(f"completed {report['completed']}  errors {report['errors']} "
              f"{report['error_kinds'] or ''}")
        if cpu is not None:
            print(f"server CPU {report['server_cpu_s']:.2f} s = {cpu:.1f} µs/query")
        print(f"CPU busy: server {_share(report['server_cpu_share'])}, "
              f"load generator {_share(report['client_cpu_share'])} of one core")
        if report["db_cpu_us_per_query"] is not None:
            print(f"database CPU {report['db_cpu_s']:.2f} s = "
                  f"{report['db_cpu_us_per_query']:.1f} µs/query")
    return 0


if __name__ == "__main__":
    sys.exit(main())
