"""How long a `fingerplat` command takes to start and finish, as a user meets it.

Runs each command N times and prints the median wall time and the median CPU
time (user + system of the child), for one or more installed checkouts in the
same run, so a before/after pair is measured under the same load (their runs
alternate):

    .venv/bin/python bench/cli_start.py                            # this checkout
    .venv/bin/python bench/cli_start.py --fingerplat /old/.venv/bin/fingerplat \
        --fingerplat .venv/bin/fingerplat --runs 21                 # before, after

Commands: ``--version``, ``--help`` and ``user set alice away`` on a fresh
SQLite database of each checkout (created and given a user ``alice`` first).
The targets (issue 17): --version and --help <= 0.15 s, user set <= 0.4 s,
medians on an idle core. ``python -X importtime`` shows where start-up goes:

    .venv/bin/python -X importtime -m fingerplat_cli.main --version 2>&1 | sort -t'|' -k2 -n
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

COMMANDS = (("--version",), ("--help",), ("user", "set", "alice", "away"))


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) for one run."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def environment(executable: str, workdir: Path) -> dict[str, str]:
    """The environment of one checkout's runs: its own fresh SQLite database, with alice."""
    database = workdir / f"cli-{abs(hash(executable))}.db"
    env = {**os.environ, "FINGERPLAT_DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    env.pop("FINGERPLAT_CONFIG", None)
    # An installed fingerplat reads its modules' bytecode from __pycache__; with
    # this set (as in some CI and sandbox shells) every run compiles the
    # project's own modules from source again, which no user pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([executable, "user", "add", "alice"], env=env, check=True,
                   capture_output=True)
    return env


def measure(executables: list[str], runs: int,
            workdir: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """Medians per checkout and command; the checkouts' runs alternate.

    On a shared machine the load moves within a sitting: alternating run by run
    gives before and after the same share of it, where measuring one checkout
    after the other would not.
    """
    envs = {exe: environment(exe, workdir) for exe in executables}
    results: dict[str, dict[str, tuple[float, float]]] = {exe: {} for exe in executables}
    for command in COMMANDS:
        samples: dict[str, list[tuple[float, float]]] = {exe: [] for exe in executables}
        for exe in executables:
            run_once([exe, *command], envs[exe])  # warm the page cache and __pycache__
        for _ in range(runs):
            for exe in executables:
                samples[exe].append(run_once([exe, *command], envs[exe]))
        for exe in executables:
            results[exe][" ".join(command)] = (
                statistics.median(s[0] for s in samples[exe]),
                statistics.median(s[1] for s in samples[exe]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fingerplat", action="append", metavar="PATH",
                        help="a fingerplat executable (repeat for before/after; default: "
                             "this checkout's .venv/bin/fingerplat)")
    parser.add_argument("--runs", type=int, default=11, help="runs per command (median)")
    args = parser.parse_args()
    executables = args.fingerplat or [str(Path(__file__).resolve().parents[1] / ".venv" /
                                          "bin" / "fingerplat")]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fingerplat-cli-bench-") as tmp:
        table = measure(executables, args.runs, Path(tmp))
    print(f"load average at the start: {load:.2f}, at the end: {os.getloadavg()[0]:.2f} "
          f"(medians of {args.runs} runs; wall s / CPU s)")
    print(f"{'command':<22}" + "".join(f"{exe[-40:]:>44}" for exe in executables))
    for command in COMMANDS:
        name = " ".join(command)
        cells = "".join(f"{table[exe][name][0]:>32.3f} / {table[exe][name][1]:.3f}"
                        for exe in executables)
        print(f"{name:<22}{cells}")


if __name__ == "__main__":
    main()
