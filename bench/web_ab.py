"""Two fingerplat builds serve one database at once; wrk alternates between them.

    bench/web_ab.py DATABASE_URL CONFIG LUA BEFORE_FINGERPLAT AFTER_FINGERPLAT [ROUNDS]

The database is migrated and seeded (bench/seed.py, 1,000 users); CONFIG is
a serve config (as bench/web.py writes it: log level warning); LUA is
bench/web.py's request script (a random /~benchNNNNNN page). Both servers
are pinned to CPU 0 and wrk to CPU 1; each is primed with 10 s of keep-alive
load, then every round runs 5 s of keep-alive and 5 s of ``Connection:
close`` against each, the order swapped every round. Prints the server's
CPU (utime + stime) per request of every run, and the medians: a
same-sitting before/after check where bench/web.py runs the builds minutes
apart.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(name: str, fingerplat: str, db: str, config: str) -> tuple[subprocess.Popen[bytes], int]:
    path = f"/tmp/web-ab-{name}.log"
    with open(path, "w") as log:
        proc = subprocess.Popen(
            ["taskset", "-c", "0", fingerplat, "--database-url", db, "--config", config,
             "serve", "--finger", "", "--setter", "", "--web", "127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        found = re.search(r"web listening on http://127.0.0.1:(\d+)", Path(path).read_text())
        if found:
            return proc, int(found.group(1))
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"{name} did not start (see {path})")


def wrk(port: int, seconds: int, lua: str, close: bool) -> tuple[int, int]:
    """(requests, non-2xx answers) of one wrk run."""
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s", "-s", lua]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    done = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(done.group(1)) if done else 0, int(bad.group(1)) if bad else 0


def main() -> None:
    db, config, lua = sys.argv[1:4]
    builds = {"before": sys.argv[4], "after": sys.argv[5]}
    rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    servers = {name: start(name, path, db, config) for name, path in builds.items()}
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for _proc, port in servers.values():
            wrk(port, 10, lua, close=False)  # prime: every page kept
        for round_ in range(rounds):
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for mode in ("keep-alive", "close"):
                for name in order:
                    proc, port = servers[name]
                    before = cpu_seconds(proc.pid)
                    requests, bad = wrk(port, 5, lua, close=mode == "close")
                    per_request = (cpu_seconds(proc.pid) - before) / max(requests, 1) * 1e6
                    results.setdefault((name, mode), []).append(per_request)
                    load = Path("/proc/loadavg").read_text().split()[0]
                    print(f"round {round_ + 1} {name:6} {mode:10} {requests / 5:8.0f} req/s "
                          f"{per_request:6.1f} µs/req non-2xx {bad} load {load}", flush=True)
        for (name, mode), runs in sorted(results.items()):
            print(f"{name:6} {mode:10} median {statistics.median(runs):6.1f} µs/req  runs "
                  + ", ".join(f"{run:.1f}" for run in runs))
    finally:
        for proc, _port in servers.values():
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
