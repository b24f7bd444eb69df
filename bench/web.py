#!/usr/bin/env python3
"""The web benchmark: fingerplat's ``/~user`` page against a Twisted web resource.

    .venv/bin/python bench/web.py                    # 1,000 users, SQLite, 10 s per cell
    .venv/bin/python bench/web.py --repeat 3 --db postgresql

What it does, in one go (issue 6, the web target):

1. Creates a fresh database (a SQLite file in a temporary directory, or a
   PostgreSQL database that it drops at the end), migrates it with
   ``fingerplat db upgrade`` and seeds it with ``bench/seed.py``.
2. Starts ``fingerplat serve --finger '' --setter '' --web 127.0.0.1:0`` and
   the Twisted peer ``bench/peers/twisted_web.py`` (the tutorial's
   ``FingerResource``, same users in a dict, same page) from
   ``bench/.venv-peers``, both pinned to CPU 0 with ``taskset``; reads each
   port from its ``web listening on http://HOST:PORT`` line and checks that
   an existing user's page (200, with the status) and a missing user's (404)
   come back right.
3. Primes each server with ``--prime`` seconds of the same load (fills the
   read cache and pools, as a running server has them).
4. Runs ``wrk -c 64`` pinned to CPU 1 against each server, with keep-alive
   and with ``Connection: close``, ``--repeat`` times interleaved; a Lua
   script asks for ``/~<user>`` of a random seeded user per request and
   prints wrk's summary as JSON. Server CPU (utime+stime of the server, and of
   its workers with ``--workers``, from
   ``/proc/PID/stat``) is read before and after each run and divided by the
   completed requests.
5. Prints one table: requests/s, p50, p99, errors (socket errors, timeouts
   and non-2xx answers), CPU µs per request, the ratio to Twisted's CPU per
   request in the same mode, and how busy the server's and wrk's cores were.

By default both servers run without an access log (fingerplat with
``[log] level = "warning"``, Twisted with a ``Site`` that does not log);
``--access-log`` keeps both. Only loopback addresses are used; everything it
starts, it stops (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import run  # bench/run.py: databases, the Twisted venv, machine line, pinning
from seed import STATUSES  # bench/seed.py: what each seeded user's status is

HERE = Path(__file__).resolve().parent
LISTEN_RE = re.compile(r"web listening on http://(\S+):(\d+)")
MODES = ("keep-alive", "close")
CLK_TCK = os.sysconf("SC_CLK_TCK")

BENCH_CONFIG = """\
# Written by bench/web.py: the access log is {word}; everything else is the default.
[log]
level = "{level}"
"""

# Per request: a random seeded user's page. done() prints wrk's summary as one
# JSON line (latencies in microseconds) for web.py to parse.
LUA = r"""
local users = 1000
local pattern = "/~bench%06d"

function init(args)
  users = tonumber(args[1])
  math.randomseed(tonumber(args[2]))
end

function request()
  return wrk.format(nil, string.format(pattern, math.random(0, users - 1)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass
class Server:
    name: str
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    failure: str | None = None
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {m: [] for m in MODES})


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process (all its threads) and its children (workers), from /proc."""
    total = 0.0
    for one in run.process_tree(pid):
        try:
            stat = Path(f"/proc/{one}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start(server: Server, workdir: Path, timeout: float = 60.0) -> None:
    log = workdir / f"{server.name.replace(' ', '_')}.log"
    with log.open("wb") as out:
        server.proc = subprocess.Popen(server.command, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=workdir, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = LISTEN_RE.search(log.read_text(errors="replace"))
        if match:
            server.port = int(match.group(2))
            return
        if server.proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(server)
    server.failure = f"did not print 'web listening on': {log.read_text()[-2000:].strip()}"


stop = run.stop  # SIGTERM, then SIGKILL of the process group: same as the finger runs


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def sanity_check(server: Server, users: int) -> None:
    """An existing user's page shows their status; a missing user is a 404."""
    index = users // 2
    present = get(server.port, f"/~bench{index:06d}")
    absent = get(server.port, f"/~bench{users + 7:06d}")
    status = html.escape(STATUSES[index % len(STATUSES)])
    if present[0] != 200 or status not in present[1] or absent[0] != 404:
        server.failure = (f"unexpected answers: existing user -> {present[0]} "
                          f"{present[1][:200]!r}; missing user -> {absent[0]}")


def wrk(server: Server, args: argparse.Namespace, script: Path, mode: str,
        duration: float, seed: int) -> dict[str, Any]:
    """One wrk run; server CPU from /proc and wrk's own CPU from its rusage."""
    assert server.proc is not None
    cmd = [*run._pin(None if args.no_pin else "1"), "wrk", "-t", str(args.threads),
           "-c", str(args.connections), "-d", f"{duration:g}s", "--timeout", "5s",
           "-s", str(script)]
    if mode == "close":
        cmd += ["-H", "Connection: close"]
    cmd += [f"http://127.0.0.1:{server.port}/", "--", str(args.users), str(seed)]
    cpu_before, client_before = cpu_seconds(server.proc.pid), children_cpu()
    began = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=duration + 60)
    wall = time.monotonic() - began
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    client = children_cpu() - client_before
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {proc.stdout[-1000:]} {proc.stderr[-1000:]}")
    result = json.loads(line.removeprefix("WRKJSON "))
    requests = result["requests"]
    result.update(
        mode=mode,
        rps=requests / (result["duration_us"] / 1e6),
        errors=sum(result[k] for k in ("connect", "read", "write", "status", "timeout")),
        cpu_us_per_request=cpu * 1e6 / requests if requests else None,
        server_busy=cpu / wall, client_busy=client / wall,
        bytes_per_request=result["bytes"] / requests if requests else None,
    )
    return result


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(servers: list[Server], reference: Server | None) -> str:
    head = ("server", "mode", "req/s", "p50 ms", "p99 ms", "errors", "CPU µs/req",
            "CPU × twisted", "bytes/req", "server busy", "wrk busy")
    rows = [head]
    for s in servers:
        for mode in MODES:
            runs = s.runs[mode]
            if s.failure or not runs:
                rows.append((s.name, mode, "failed", *[""] * (len(head) - 3)))
                continue
            cpu = median(runs, "cpu_us_per_request")
            ref = median(reference.runs[mode], "cpu_us_per_request") if reference else None
            p50, p99 = median(runs, "p50_us"), median(runs, "p99_us")
            busy, client = median(runs, "server_busy"), median(runs, "client_busy")
            rows.append((
                s.name, mode, _fmt(median(runs, "rps"), ",.0f"),
                _fmt(p50 / 1000 if p50 is not None else None, ".2f"),
                _fmt(p99 / 1000 if p99 is not None else None, ".2f"),
                str(sum(int(r["errors"]) for r in runs)), _fmt(cpu, ".1f"),
                _fmt(cpu / ref if cpu and ref else None, ".2f"),
                _fmt(median(runs, "bytes_per_request"), ",.0f"),
                "-" if busy is None else f"{busy * 100:.0f} %",
                "-" if client is None else f"{client * 100:.0f} %",
            ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("| " + " | ".join(
            c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)
        ) + " |")
        if n == 0:
            lines.append("|" + "|".join(
                "-" * (w + 2) if i < 2 else "-" * (w + 1) + ":" for i, w in enumerate(widths)
            ) + "|")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="fingerplat's /~user page against a Twisted web resource, with wrk.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--users", type=int, default=1000, help="seeded users")
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg", default="postgres@127.0.0.1:5432",
                   help="PostgreSQL USER@HOST:PORT with CREATE DATABASE rights")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    p.add_argument("--repeat", type=int, default=1, help="rounds (medians reported)")
    p.add_argument("--prime", type=float, default=15.0,
                   help="seconds of unmeasured keep-alive load on each server first")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="wrk threads (one core: 1)")
    p.add_argument("--access-log", action="store_true", help="keep both servers' access logs")
    p.add_argument("--no-tutorial-page", action="store_true",
                   help="skip the extra row of Twisted serving the tutorial's tiny page "
                        "(not the same page: for scale only)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--workers", default="1",
                   help="comma-separated `serve --workers` counts, e.g. 1,2 (more than one: "
                        "not pinned; CPU counted over all of serve's processes)")
    p.add_argument("--json", metavar="FILE", help="also write every run as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("web: wrk is not installed (Debian: apt-get install wrk)")
    cmd = run.fingerplat_command()
    if cmd is None:
        raise SystemExit("web: no fingerplat command (install the project into .venv)")
    workdir = Path(tempfile.mkdtemp(prefix="fingerplat-web-bench-"))
    script = workdir / "users.lua"
    script.write_text(LUA)
    machine_line = run.machine()
    began = time.monotonic()
    servers: list[Server] = []
    pg_name: str | None = None
    try:
        url, pg_name = run.create_database(args.db, args.users, workdir, args.pg)
        step = subprocess.run([*cmd, "--database-url", url, "db", "upgrade"],
                              capture_output=True, text=True, check=False, timeout=300)
        if step.returncode != 0:
            raise SystemExit(f"web: db upgrade failed: {step.stderr.strip()}")
        subprocess.run([sys.executable, str(HERE / "seed.py"), url, "--users", str(args.users)],
                       check=True, timeout=900)
        config = workdir / "bench.toml"
        config.write_text(BENCH_CONFIG.format(
            word="on" if args.access_log else "off (level warning)",
            level="info" if args.access_log else "warning"))
        pin = run._pin(None if args.no_pin else "0")
        twisted = [*pin, str(run.peers_python()), str(HERE / "peers" / "twisted_web.py"),
                   "--host", "127.0.0.1", "--port", "0", "--users", str(args.users)]
        if args.access_log:
            twisted.append("--access-log")
        servers = []
        for workers in (int(w) for w in args.workers.split(",")):
            # Several workers may use every core: only a single process is pinned.
            serve = [*(pin if workers == 1 else []), *cmd, "--database-url", url,
                     "--config", str(config), "serve",
                     "--finger", "", "--setter", "", "--web", "127.0.0.1:0"]
            if workers > 1:
                serve += ["--workers", str(workers)]
            servers.append(Server(
                f"fingerplat serve ({args.db})" + (f" x{workers} workers" if workers > 1 else ""),
                serve))
        servers.append(Server("twisted FingerResource", twisted))
        if not args.no_tutorial_page:
            servers.append(Server("twisted, tutorial's tiny page",
                                  [*twisted, "--page", "tutorial"]))
        for s in servers:
            start(s, workdir)
            if not s.failure:
                sanity_check(s, args.users)
            state = s.failure or f"port {s.port}, pid {s.proc.pid if s.proc else '?'}"
            print(f"  {s.name}: {state}", file=sys.stderr)
        live = [s for s in servers if not s.failure]
        for s in live:
            wrk(s, args, script, "keep-alive", args.prime, seed=1)
        for rep in range(args.repeat):
            for s in live:
                for mode in MODES:
                    try:
                        result = wrk(s, args, script, mode, args.duration, seed=rep + 2)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        s.failure = str(exc)
                        print(f"  {s.name} {mode}: {exc}", file=sys.stderr)
                        break
                    result["repeat"] = rep
                    s.runs[mode].append(result)
                    print(f"  run {rep + 1}/{args.repeat} {s.name} {mode}: "
                          f"{result['rps']:,.0f} req/s, p99 {result['p99_us'] / 1000:.1f} ms, "
                          f"{result['errors']} errors, "
                          f"{_fmt(result['cpu_us_per_request'], '.1f')} µs/req",
                          file=sys.stderr)
    finally:
        for s in servers:
            stop(s)
        if pg_name:
            run.drop_database(args.pg, pg_name)
        shutil.rmtree(workdir, ignore_errors=True)
    reference = next((s for s in servers if s.name == "twisted FingerResource"), None)
    print()
    print(machine_line)
    print(f"wrk -t{args.threads} -c{args.connections}, {args.duration:g}s x {args.repeat} per "
          f"cell (medians), random /~user of {args.users:,} seeded users, "
          f"access log {'on' if args.access_log else 'off'}; server on CPU 0, wrk on CPU 1"
          f"{' (unpinned)' if args.no_pin or not shutil.which('taskset') else ''}; "
          f"load average {os.getloadavg()[0]:.2f} at the end; "
          f"total {time.monotonic() - began:.0f}s")
    print(table(servers, reference))
    for s in servers:
        if s.failure:
            print(f"failed: {s.name}: {s.failure}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"server": s.name, "failure": s.failure, "runs": s.runs} for s in servers], indent=2))
    return 1 if any(s.failure for s in servers) else 0


if __name__ == "__main__":
    sys.exit(main())
