#!/usr/bin/env python3
"""Run the whole finger benchmark in one go and print one table.

    .venv/bin/python bench/run.py                 # default: a few minutes
    .venv/bin/python bench/run.py --duration 30 --repeat 6   # the long, careful run

What it does, in order:

1. Creates fresh databases for every (users, db) pair: a SQLite file in a
   temporary directory, and a PostgreSQL database on ``--pg`` (default
   ``127.0.0.1:5432``, user postgres) that it creates now and drops at the end,
   also when interrupted.
2. Migrates each with ``fingerplat db upgrade`` and seeds it with
   ``bench/seed.py`` (bulk SQL; 1,000 and 100,000 users by default).
3. Starts every server as a real process pinned to CPU 0 (``taskset -c 0``
   when available): the bare reference server(s) from ``bench/peers/`` and
   ``fingerplat serve --finger 127.0.0.1:0 --setter 127.0.0.1:0 --web
   127.0.0.1:0`` per database, reading the port from the printed ``finger
   listening on HOST:PORT`` line. Idle servers cost nothing, so all run at once
   and the repeats are interleaved: drift on a shared machine hits every
   server alike.
4. Runs ``bench/loadgen.py`` pinned to CPU 1 against each, ``--repeat`` times,
   with the server PID (and for PostgreSQL the PIDs of the backends serving
   that database, measured apart), and reports medians.
5. Prints a table: q/s, p50, p99, errors, server CPU µs per query, database
   backend CPU µs per query (PostgreSQL; on SQLite the database runs inside
   the server process and is already in its figure), and the ratios to the
   bare asyncio server measured in the same run.

Only loopback addresses are used. Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LISTEN_RE = re.compile(r"finger listening on (\S+):(\d+)")

BENCH_CONFIG = """\
# Written by bench/run.py. The rate limit is lifted (all load comes from one
# address) and the access log is {access_log_word}; everything else is the default.
[finger]
rate_limit = 100000000
max_connections = 10000
access_log = {access_log}
"""


@dataclass
class Target:
    name: str
    users: int
    db: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    check: bool = False
    database_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    port: int = 0
    db_pids: list[int] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    failure: str | None = None
    prime: float = 1.0  # seconds of load before measuring (fills pools and caches)
    # --tenants: the users spread over this many tenants, asked for as user@domain
    # with the pattern's {1} the tenant of name {0} ((index // tenant_size) % tenants).
    tenants: int = 0
    tenant_size: int = 0
    pattern: str | None = None

    @property
    def label(self) -> str:
        return self.name if not self.users else f"{self.name} {self.db} {self.users:,} users"


def _pin(cpu: str | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", cpu]


def fingerplat_command() -> list[str] | None:
    """The ``fingerplat`` console script of this Python environment, or on PATH."""
    local = Path(sys.executable).parent / "fingerplat"
    if local.exists():
        return [str(local)]
    found = shutil.which("fingerplat")
    return [found] if found else None


def serve_available(cmd: list[str]) -> tuple[bool, str]:
    proc = subprocess.run([*cmd, "serve", "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


# -- databases ---------------------------------------------------------------------


def _pg_dsn(base: str, dbname: str) -> str:
    return f"postgresql://{base}/{dbname}"


async def _pg_admin(base: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(base, "postgres"), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _pg_backends(base: str, dbname: str) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(base, "postgres"), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            dbname,
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def create_database(kind: str, users: int, workdir: Path, pg: str,
                    suffix: str = "") -> tuple[str, str | None]:
    """A fresh database; returns (SQLAlchemy URL, PostgreSQL database name or None)."""
    if kind == "sqlite":
        path = workdir / f"bench-{users}{suffix}.db"
        return f"sqlite+aiosqlite:///{path}", None
    name = f"fingerplat_bench_{os.getpid()}_{users}{suffix}"
    try:
        asyncio.run(_pg_admin(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_pg_admin(pg, f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as exc:
        raise SystemExit(f"run: PostgreSQL at {pg} is not reachable ({exc}); "
                         "pass --pg USER@HOST:PORT or --db sqlite") from None
    return f"postgresql+asyncpg://{pg}/{name}", name


def drop_database(pg: str, name: str) -> None:
    with contextlib.suppress(Exception):
        asyncio.run(_pg_admin(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- servers -----------------------------------------------------------------------


def start(target: Target, workdir: Path, timeout: float = 150.0) -> None:
    # serve listens once its warm start is done or WARM_UP_SECONDS (60 s)
    # have passed: a million users take about that on a loaded machine.
    target.log = workdir / f"{target.name}-{target.db}-{target.users}.log".replace("/", "_")
    out = target.log.open("wb")
    env = {**os.environ, **target.env}
    target.proc = subprocess.Popen(target.command, stdout=out, stderr=subprocess.STDOUT,
                                   env=env, cwd=workdir, start_new_session=True)
    out.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = target.log.read_text(errors="replace")
        match = LISTEN_RE.search(text)
        if match:
            target.port = int(match.group(2))
            return
        if target.proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(target)
    tail = target.log.read_text(errors="replace")[-2000:]
    target.failure = f"did not print 'finger listening on': {tail.strip()}"


def stop(target: Target) -> None:
    proc = target.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def finger(port: int, query: str, timeout: float = 10.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(query.encode() + b"\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def tenant_pattern(pattern: str) -> str:
    """``bench{:06d}`` as ``bench{0:06d}@t{1:05d}.bench.example`` (seed.py --tenants)."""
    from seed import TENANT_DOMAIN

    return (re.sub(r"\{(:[^}]*)?\}", lambda m: "{0" + (m.group(1) or "") + "}", pattern, count=1)
            + "@" + TENANT_DOMAIN.replace("{", "{1", 1))


def query_name(target: Target, pattern: str, index: int) -> str:
    """The query for name ``index`` of ``target`` (user@domain with --tenants)."""
    if not target.tenants:
        return pattern.format(index)
    tenant = (index // target.tenant_size) % target.tenants
    return (target.pattern or pattern).format(index, tenant)


def sanity_check(target: Target, pattern: str) -> None:
    """One existing and one missing user answered correctly, or the target is marked failed."""
    try:
        present = finger(target.port, query_name(target, pattern, target.users // 2))
        absent = finger(target.port, query_name(target, pattern, target.users + 7))
    except OSError as exc:
        target.failure = f"sanity query failed: {exc}"
        return
    if "No such user" in present or "No such user" not in absent:
        target.failure = (f"unexpected answers: existing user -> {present[:200]!r}; "
                          f"missing user -> {absent[:200]!r}")


# -- the load ----------------------------------------------------------------------


def load(target: Target, args: argparse.Namespace, duration: float, warmup: float,
         pattern: str, seed: int = 1) -> dict[str, Any]:
    assert target.proc is not None
    cmd = [
        *_pin(None if args.no_pin else "1"), sys.executable, str(HERE / "loadgen.py"),
        "--port", str(target.port), "--duration", str(duration), "--warmup", str(warmup),
        "--concurrency", str(args.concurrency), "--processes", str(args.loadgen_processes),
        "--users", str(max(target.users, 1)), "--pattern", target.pattern or pattern,
        "--tenants", str(target.tenants), "--tenant-size", str(target.tenant_size),
        "--missing", str(args.missing), "--missing-span", str(args.missing_span),
        "--server-pid", str(target.proc.pid), "--json",
        "--no-probe", "--engine", args.engine,
        "--mix-size", str(args.mix_size or max(20_000, 2 * target.users)),
        "--seed", str(seed),
    ]
    if target.check:
        cmd.append("--check")
    for pid in target.db_pids:
        cmd += ["--db-pid", str(pid)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=duration + warmup + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed: {proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["rss_mb"] = resident_mb(target.proc.pid)
    return result


def process_tree(root: int) -> list[int]:
    """``root`` and its direct children (``serve --workers``), from /proc."""
    pids = [root]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{root}/task").iterdir():
            children = (task / "children").read_text().split()
            pids += [int(pid) for pid in children]
    return pids


def resident_mb(root: int) -> float | None:
    """Resident memory of ``root`` and its children (workers), in MB, right after a run."""
    total = 0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024 if total else None


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f} %"


def table(targets: list[Target], reference: Target | None) -> str:
    ref_qps = median(reference.runs, "qps") if reference and reference.runs else None
    ref_cpu = (median(reference.runs, "server_cpu_us_per_query")
               if reference and reference.runs else None)
    head = ("server", "users", "db", "q/s", "p50 ms", "p99 ms", "errors",
            "CPU µs/q", "DB µs/q", "q/s ÷ bare", "CPU × bare", "CPU × twisted",
            "server busy", "loadgen busy", "RSS MB")
    twisted = {t.users: median(t.runs, "server_cpu_us_per_query")
               for t in targets if t.name.startswith("twisted") and t.runs}
    rows = [head]
    for t in targets:
        if t.failure or not t.runs:
            rows.append((t.name, str(t.users or "-"), t.db, "failed", *[""] * (len(head) - 4)))
            continue
        qps = median(t.runs, "qps")
        cpu = median(t.runs, "server_cpu_us_per_query")
        db_cpu = median(t.runs, "db_cpu_us_per_query")
        errors = sum(int(r["errors"]) for r in t.runs)
        rows.append((
            t.name, f"{t.users:,}" if t.users else "-", t.db,
            _fmt(qps, ",.0f"), _fmt(median(t.runs, "p50_ms"), ".2f"),
            _fmt(median(t.runs, "p99_ms"), ".2f"), str(errors), _fmt(cpu, ".1f"),
            _fmt(db_cpu, ".1f"),
            _fmt(qps / ref_qps if qps and ref_qps else None, ".2f"),
            _fmt(cpu / ref_cpu if cpu and ref_cpu else None, ".2f"),
            _fmt(cpu / twisted[t.users] if cpu and twisted.get(t.users) else None, ".2f"),
            _pct(median(t.runs, "server_cpu_share")), _pct(median(t.runs, "client_cpu_share")),
            _fmt(max((r["rss_mb"] for r in t.runs if r.get("rss_mb")), default=None), ",.0f"),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("| " + " | ".join(
            c.ljust(widths[i]) if i < 3 else c.rjust(widths[i]) for i, c in enumerate(r)
        ) + " |")
        if n == 0:
            lines.append("|" + "|".join(
                "-" * (w + 2) if i < 3 else "-" * (w + 1) + ":" for i, w in enumerate(widths)
            ) + "|")
    return "\n".join(lines)


def finger_log_ratios(targets: list[Target]) -> list[str]:
    """With ``--finger-log both``: each server with the log against its twin without, same run."""
    lines = []
    for t in targets:
        if not t.name.endswith(" +finger log") or not t.runs:
            continue
        plain = next((p for p in targets if p.name == t.name.removesuffix(" +finger log")
                      and p.users == t.users and p.db == t.db and p.runs), None)
        if plain is None:
            continue
        qps, base_qps = median(t.runs, "qps"), median(plain.runs, "qps")
        cpu, base_cpu = (median(t.runs, "server_cpu_us_per_query"),
                         median(plain.runs, "server_cpu_us_per_query"))
        lines.append(
            f"finger log on, {t.users:,} users, {t.db}: q/s {_fmt(qps, ',.0f')} vs "
            f"{_fmt(base_qps, ',.0f')} without = "
            f"{_fmt(qps / base_qps if qps and base_qps else None, '.3f')}; CPU µs/q "
            f"{_fmt(cpu, '.1f')} vs {_fmt(base_cpu, '.1f')} = "
            f"{_fmt(cpu / base_cpu if cpu and base_cpu else None, '.3f')}")
    return lines


# -- main --------------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Seed, start and load every server; print one table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    p.add_argument("--repeat", type=int, default=1, help="runs per server (medians reported)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--loadgen-processes", type=int, default=1,
                   help="client processes (only with --engine python)")
    p.add_argument("--engine", choices=("auto", "c", "python"), default="auto",
                   help="load generator engine (auto: the C client when cc exists)")
    p.add_argument("--users", default="1000,100000", help="comma-separated user counts")
    p.add_argument("--db", default="sqlite,postgresql", help="sqlite and/or postgresql")
    p.add_argument("--missing", type=float, default=0.10, help="fraction of missing users")
    p.add_argument("--mix-size", type=int, default=0,
                   help="queries pre-drawn at random (existing and missing names) that "
                        "each run picks from; this bounds how many distinct users are asked "
                        "for (default 0: 2 x users, at least 20,000, so nearly every user is)")
    p.add_argument("--pattern", default="bench{:06d}")
    p.add_argument("--peers", default="bare,twisted",
                   help="reference servers from bench/peers (bare, bare-epoll, twisted; "
                        "'' for none)")
    p.add_argument("--workers", default="1",
                   help="comma-separated `serve --workers` counts to measure, e.g. 1,2")
    p.add_argument("--prime", type=float, default=30.0,
                   help="seconds of unmeasured load on each fingerplat server before the "
                        "runs: fills its read cache with the query mix")
    p.add_argument("--fresh", action="store_true",
                   help="restart every server before each run, no priming (a freshly started "
                        "server, as after a deploy; combine with --warmup 0)")
    p.add_argument("--fresh-draws", action="store_true",
                   help="measured rounds draw their queries with seeds the priming did not "
                        "use (else every load replays seed 1's sequence, which the priming "
                        "has already asked: with a million users, what it filled)")
    p.add_argument("--missing-span", type=int, default=0,
                   help="missing names are drawn from this many (default: users); with "
                        "--missing 1 and --mix-size 200000, a flood of distinct unknown names")
    p.add_argument("--baseline", action="append", default=[], metavar="LABEL=FINGERPLAT",
                   help="also run this fingerplat executable (e.g. an older checkout's "
                        "venv/bin/fingerplat) on the same databases, as 'fingerplat LABEL'")
    p.add_argument("--no-fingerplat", action="store_true", help="measure the peers only")
    p.add_argument("--no-web", action="store_true", help="start serve with no web listener")
    p.add_argument("--finger-log", choices=("off", "on", "both"), default="off",
                   help="who fingered me (issue 16): 'on' opts every tenant and user in; "
                        "'both' runs each fingerplat server twice, on twin databases, without "
                        "and with it, and prints the ratio of the same run")
    p.add_argument("--tenants", default="0", metavar="N[,N...]",
                   help="spread the users over N tenants (seed.py --tenants: one domain each) "
                        "and ask for user@domain; 0 (the default): all in the default tenant, "
                        "asked for by plain name. A list runs each shape on its own database "
                        "in the same sitting, e.g. 0,1,10000 (fingerplat only: use --peers '')")
    p.add_argument("--tenant-features", action="store_true",
                   help="seed with issue 15's tenant settings (public fields, networks, "
                        "expiring statuses): compare with a run without")
    p.add_argument("--access-log", action="store_true",
                   help="keep fingerplat's per-query access log on (off by default)")
    p.add_argument("--config-extra", action="append", default=[], metavar="TOML",
                   help="TOML appended to the bench config, e.g. "
                        "'[database]\\npool_size = 20' (repeatable)")
    p.add_argument("--serve-arg", action="append", default=[],
                   help="extra argument for `fingerplat serve` (repeatable)")
    p.add_argument("--pg", default="postgres@127.0.0.1:5432",
                   help="PostgreSQL USER@HOST:PORT with CREATE DATABASE rights")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--json", metavar="FILE", help="also write every run as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    return p.parse_args(argv)


def build_targets(args: argparse.Namespace, workdir: Path,
                  created: list[str]) -> tuple[list[Target], list[str]]:
    notes: list[str] = []
    server_pin = _pin(None if args.no_pin else "0")
    targets: list[Target] = []
    peers = _csv(args.peers)
    for peer in peers:
        if peer == "twisted":
            python = peers_python()
            for users in (int(u) for u in _csv(args.users)):
                targets.append(Target(
                    "twisted tutorial", users, "dict",
                    [*server_pin, str(python), str(HERE / "peers" / "twisted_finger.py"),
                     "--host", "127.0.0.1", "--port", "0", "--users", str(users),
                     "--pattern", args.pattern],
                    check=True,
                ))
            continue
        impl = {"bare": "asyncio", "bare-epoll": "epoll"}.get(peer)
        if impl is None:
            raise SystemExit(f"run: unknown peer {peer!r}")
        targets.append(Target(
            f"{peer} ({'uvloop' if impl == 'asyncio' and _has_uvloop() else impl})", 0, "-",
            [*server_pin, sys.executable, str(HERE / "peers" / "bare_server.py"),
             "--impl", impl, "--listen", "127.0.0.1:0"],
        ))
    if args.no_fingerplat:
        return targets, notes
    cmd = fingerplat_command()
    ok, text = serve_available(cmd) if cmd else (False, "no fingerplat command found")
    if not ok:
        notes.append("fingerplat serve is not available yet: " + text.splitlines()[-1:][0]
                     if text else "fingerplat serve is not available yet")
        return targets, notes
    assert cmd is not None
    config = workdir / "bench.toml"
    config.write_text(BENCH_CONFIG.format(
        access_log="true" if args.access_log else "false",
        access_log_word="on" if args.access_log else "off")
        + "".join("\n" + extra.replace("\\n", "\n") + "\n" for extra in args.config_extra))
    logs = {"off": [False], "on": [True], "both": [False, True]}[args.finger_log]
    for users, db, finger_log, spread in ((int(u), d, f, int(n)) for u in _csv(args.users)
                                          for d in _csv(args.db) for f in logs
                                          for n in _csv(args.tenants)):
        # One database per (users, db, finger log): a log writer must not disturb
        # the plain server's read cache (on SQLite, another process's commit).
        if db not in ("sqlite", "postgresql"):
            raise SystemExit(f"run: unknown database kind {db!r}")
        url, pg_name = create_database(db, users, workdir, args.pg,
                                       ("_log" if finger_log else "")
                                       + (f"_t{spread}" if spread else ""))
        if pg_name:
            created.append(pg_name)
        step = subprocess.run([*cmd, "--database-url", url, "db", "upgrade"],
                              capture_output=True, text=True, check=False, timeout=300)
        if step.returncode != 0:
            raise SystemExit(f"run: db upgrade failed on {db}: {step.stderr.strip()}")
        began = time.monotonic()
        subprocess.run([sys.executable, str(HERE / "seed.py"), url, "--users", str(users),
                        "--pattern", args.pattern,
                        *(["--finger-log"] if finger_log else []),
                        *(["--tenants", str(spread)] if spread else []),
                        *(["--tenant-features"] if args.tenant_features else [])],
                       check=True, timeout=900)
        shape = dict(tenants=spread, tenant_size=-(-users // spread) if spread else 0,
                     pattern=tenant_pattern(args.pattern) if spread else None)
        suffix = f" ({spread:,} tenants, user@domain)" if spread else ""
        print(f"  seeded {users:,} users{suffix} on {db}"
              f"{' (finger log on)' if finger_log else ''} "
              f"in {time.monotonic() - began:.1f}s", file=sys.stderr)
        for spec in args.baseline:
            label, _, executable = spec.rpartition("=")
            serve = [*server_pin, executable, "--database-url", url, "--config",
                     str(config), "serve", "--finger", "127.0.0.1:0", "--setter",
                     "127.0.0.1:0", "--web", "" if args.no_web else "127.0.0.1:0"]
            targets.append(Target(f"fingerplat {label or 'baseline'}{suffix}", users, db, serve,
                                  check=True, database_url=url, prime=args.prime, **shape))
        for workers in (int(w) for w in _csv(args.workers)):
            # Several workers may use every core: pinning them all to CPU 0
            # would measure nothing. They share CPU 0 and 1 with the client.
            pin = server_pin if workers == 1 else []
            serve = [*pin, *cmd, "--database-url", url, "--config", str(config),
                     "serve", "--finger", "127.0.0.1:0", "--setter", "127.0.0.1:0"]
            # --web '' turns the listener off (the default would be port 8000).
            serve += ["--web", "" if args.no_web else "127.0.0.1:0"]
            if workers > 1:
                serve += ["--workers", str(workers)]
            serve += args.serve_arg
            name = "fingerplat serve" + (f" x{workers} workers" if workers > 1 else "")
            name += " +finger log" if finger_log else ""
            name += suffix
            targets.append(Target(name, users, db, serve, check=True, database_url=url,
                                  prime=args.prime, **shape))
    return targets, notes


def peers_python() -> Path:
    """The interpreter of bench/.venv-peers (Twisted), created on first use.

    Twisted is the peer's dependency, never fingerplat's: it lives in its own
    virtual environment next to this script.
    """
    venv = HERE / ".venv-peers"
    python = venv / "bin" / "python"
    if not python.exists():
        print("  creating bench/.venv-peers with Twisted (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    probe = subprocess.run([str(python), "-c", "import twisted"], capture_output=True,
                           check=False)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "twisted"],
                       check=True, timeout=900)
    return python


def machine() -> str:
    """One line naming what the numbers were measured on."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0]
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return (f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
            f"Python {platform.python_version()}, "
            f"{'uvloop' if _has_uvloop() else 'no uvloop'}, load average {load:.2f} at start, "
            f"commit {commit or 'unknown'}")


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="fingerplat-bench-"))
    created: list[str] = []
    targets: list[Target] = []
    began = time.monotonic()
    machine_line = machine()
    try:
        print(f"work directory {workdir}", file=sys.stderr)
        targets, notes = build_targets(args, workdir, created)
        for note in notes:
            print(f"NOTE: {note}", file=sys.stderr)
        for t in targets:
            start(t, workdir)
            if t.failure:
                print(f"  {t.label}: {t.failure}", file=sys.stderr)
                continue
            if t.check:
                sanity_check(t, args.pattern)
                if t.failure:
                    print(f"  {t.label}: {t.failure}", file=sys.stderr)
            print(f"  started {t.label} on port {t.port} "
                  f"(pid {t.proc.pid if t.proc else '?'})", file=sys.stderr)
        live = [t for t in targets if not t.failure]
        # Fill every pool once, so the database backends exist to be measured.
        for t in live if not args.fresh else []:
            load(t, args, t.prime, 0.2, args.pattern)
            if t.db == "postgresql" and t.database_url:
                t.db_pids = asyncio.run(_pg_backends(args.pg, t.database_url.rsplit("/", 1)[1]))
        for rep in range(args.repeat):
            for t in live:
                if args.fresh:  # a freshly started server for every run
                    stop(t)
                    start(t, workdir)
                    if t.failure:
                        print(f"  {t.label}: {t.failure}", file=sys.stderr)
                        continue
                try:
                    # --fresh-draws: each round's queries drawn with a seed of
                    # its own (the same for every server), none of them the
                    # priming's: uniform random lookups, not a replay of what
                    # the priming already filled.
                    seed = 1000 + rep if args.fresh_draws else 1
                    result = load(t, args, args.duration, args.warmup, args.pattern, seed)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    t.failure = str(exc)
                    print(f"  {t.label}: {exc}", file=sys.stderr)
                    continue
                result["repeat"] = rep
                t.runs.append(result)
                print(f"  run {rep + 1}/{args.repeat} {t.label}: "
                      f"{result['qps']:,.0f} q/s, p99 {result['p99_ms']:.1f} ms, "
                      f"{result['errors']} errors, "
                      f"{_fmt(result['server_cpu_us_per_query'], '.1f')} µs/q, server busy "
                      f"{_pct(result.get('server_cpu_share'))}",
                      file=sys.stderr)
    finally:
        for t in targets:
            stop(t)
        for name in created:
            drop_database(args.pg, name)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    reference = next((t for t in targets if t.name.startswith("bare (")), None)
    print()
    print(machine_line)
    mix = (f"{args.mix_size:,}" if args.mix_size else "2 x users (at least 20,000)")
    print(f"{args.concurrency} connections, one query per connection, "
          f"{args.duration:g}s x {args.repeat} per server (medians), "
          f"{int(args.missing * 100)}% missing users"
          f"{f' (from {args.missing_span:,} names)' if args.missing_span else ''}, "
          f"{'each server freshly started for each run, no priming, ' if args.fresh else ''}"
          f"each query picked at random from {mix} "
          f"pre-drawn ones; server on CPU 0, load generator on "
          f"CPU 1{' (unpinned)' if args.no_pin or not shutil.which('taskset') else ''}; "
          f"total {time.monotonic() - began:.0f}s")
    print(table(targets, reference))
    for line in finger_log_ratios(targets):
        print(line)
    for t in targets:
        if t.failure:
            print(f"failed: {t.label}: {t.failure}")
    if args.json:
        Path(args.json).write_text(json.dumps([
            {"server": t.name, "users": t.users, "db": t.db, "failure": t.failure,
             "runs": t.runs} for t in targets
        ], indent=2))
    return 1 if any(t.failure for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
