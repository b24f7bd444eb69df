"""Resident memory of a node once its warm start has filled the read cache.

    .venv/bin/python bench/warm_memory.py DATABASE_URL [--trace]

Starts the real composition root (finger, setter and web listeners on
loopback, default configuration) on a seeded database (bench/seed.py), waits
until the warm start stops adding entries, and prints the entries kept, the
cache's own estimate of their bytes and the process's resident memory.
``--trace`` starts tracemalloc first and prints the lines that hold the most
memory (resident memory is then inflated by tracemalloc itself).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tracemalloc

import uvloop

from fingerplat.config import Config
from fingerplat.server.runtime import Runtime


def resident_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def measure(database_url: str, trace: bool) -> None:
    config = Config.model_validate({
        "finger": {"listen": ["127.0.0.1:0"], "access_log": False},
        "setter": {"listen": ["127.0.0.1:0"]},
        "web": {"listen": ["127.0.0.1:0"]},
    })
    if trace:
        tracemalloc.start()
    runtime = Runtime(config, database_url, announce=lambda _line: None)
    await runtime.start()
    try:
        cache = runtime.service.read_cache
        assert cache is not None, "the read cache is off"
        kept = -1
        while len(cache) != kept:  # the warm start adds entries in batches
            kept = len(cache)
            await asyncio.sleep(1)
        gc.collect()
        print(f"entries {len(cache):,}  estimated {cache.bytes / 2**20:.1f} MiB  "
              f"resident {resident_mb():.1f} MB")
        if trace:
            current, _peak = tracemalloc.get_traced_memory()
            print(f"traced {current / 2**20:.1f} MiB since start; the largest:")
            for stat in tracemalloc.take_snapshot().statistics("lineno")[:12]:
                print(f"  {stat}")
    finally:
        await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    uvloop.run(measure(args.database_url, args.trace))


if __name__ == "__main__":
    main()
