#!/usr/bin/env python3
"""The failover window: seconds without writes, finger answers lost during it.

For each of ``--rounds`` rounds: a primary and a streaming standby as two
throwaway clusters (tests/support/replicated_postgres.py: ``pg_basebackup -R``,
synchronous replication, free ports, as the ``postgres`` OS user when run as
root), one ``fingerplat serve`` with the multi-host URL
(``h1,h2/db?target_session_attrs=read-write``), ``--readers`` finger clients
asking for cached users in a loop and one setter client writing in a loop.
Then ``pg_ctl stop -m fast`` on the primary and, as soon as it returns,
``pg_ctl promote`` on the standby (an operator or a failover manager adds its
own detection delay on top: not measured here). Reported per round:

* refused: from the first refused write to the first accepted one after it;
* stop-to-write: from the stop command to the first accepted write;
* LISTEN back: from the promotion to the node's "subscribed again" log line;
* finger answers during the window and how many failed (target 0);
* acknowledged writes missing on the new primary (must be 0).

    .venv/bin/python bench/failover.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support: the same clusters as the e2e test

from tests.support.replicated_postgres import ReplicatedPostgres  # noqa: E402

LISTEN_RE = re.compile(r"^(finger|setter) listening on (\S+):(\d+)$")
READERS = ("alice", "bob", "carol", "dave")


def fingerplat() -> str:
    return str(Path(sys.executable).parent / "fingerplat")


async def run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        fingerplat(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"fingerplat {' '.join(args)} failed: {err.decode()}")
    return out.decode().strip()


async def finger(port: int, query: str) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(query.encode() + b"\r\n")
        return (await asyncio.wait_for(reader.read(), 10)).decode()
    finally:
        writer.close()


class Round:
    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.running = True
        self.answers: list[tuple[float, bool]] = []  # (when, answered as before)
        self.accepted: list[tuple[float, str]] = []
        self.refused: list[float] = []

    async def read(self) -> None:
        while self.running:
            for name in READERS:
                try:
                    ok = f"Status: {name} reading" in await finger(self.ports["finger"], name)
                except (OSError, TimeoutError):
                    ok = False
                self.answers.append((time.monotonic(), ok))

    async def write(self, token: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.ports["setter"])

        async def ask(line: str) -> str:
            writer.write(line.encode() + b"\r\n")
            return (await asyncio.wait_for(reader.readline(), 30)).decode().strip()

        assert (await ask(f"AUTH {token}")).startswith("+OK")
        number = 0
        while self.running:
            number += 1
            reply = await ask(f"SET writer write {number}")
            if reply.startswith("+OK"):
                self.accepted.append((time.monotonic(), f"write {number}"))
            else:
                self.refused.append(time.monotonic())
            await asyncio.sleep(0.01)
        writer.close()


async def one_round(readers: int) -> dict[str, float]:
    pg = ReplicatedPostgres()
    proc: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(pg.start)
        url = pg.url
        await run("--database-url", url, "db", "upgrade")
        for name in (*READERS, "writer"):
            await run("--database-url", url, "user", "add", name)
        for name in READERS:
            await run("--database-url", url, "user", "set", name, f"{name} reading")
        token = await run("--database-url", url, "token", "create", "--user", "writer")
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
            config.write("[finger]\nrate_limit = 100000000\naccess_log = false\n"
                         "[database]\nconnect_timeout = 2\ncommand_timeout = 2\n"
                         "pool_timeout = 2\n")
            config.flush()
            proc = await asyncio.create_subprocess_exec(
                fingerplat(), "--database-url", url, "serve", "--config", config.name,
                "--finger", "127.0.0.1:0", "--setter", "127.0.0.1:0", "--web", "",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            ports: dict[str, int] = {}
            assert proc.stdout is not None and proc.stderr is not None
            while (line := (await asyncio.wait_for(proc.stdout.readline(), 60))
                   .decode().strip()) != "ready":
                if not line:
                    raise SystemExit("serve exited before it was ready")
                if match := LISTEN_RE.match(line):
                    ports[match.group(1)] = int(match.group(3))
            resubscribed: list[float] = []

            async def follow_log() -> None:
                assert proc is not None and proc.stderr is not None
                while raw := await proc.stderr.readline():
                    if b"subscribed again" in raw:
                        resubscribed.append(time.monotonic())

            log_task = asyncio.create_task(follow_log())
            state = Round(ports)
            for name in READERS:  # held by the node from now on
                await finger(ports["finger"], name)
            tasks = [asyncio.create_task(state.read()) for _ in range(readers)]
            tasks.append(asyncio.create_task(state.write(token)))
            await asyncio.sleep(2)
            stop_at = time.monotonic()
            await asyncio.to_thread(pg.stop_primary)
            await asyncio.to_thread(pg.promote_standby)
            promoted_at = time.monotonic()
            deadline = promoted_at + 60
            while not (resubscribed and any(at > promoted_at for at, _ in state.accepted)):
                if time.monotonic() > deadline:
                    raise SystemExit("writes or LISTEN not back 60 s after the promotion")
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            state.running = False
            await asyncio.gather(*tasks)
            first_refused = min(state.refused) if state.refused else promoted_at
            first_back = min(at for at, _ in state.accepted if at > first_refused)
            during = [ok for at, ok in state.answers if first_refused <= at <= first_back]
            conn = await asyncpg.connect(host="127.0.0.1", port=pg.standby_port,
                                         user="postgres", database="postgres")
            try:
                kept = {row["text"] for row in await conn.fetch(
                    "SELECT h.text FROM status_history h JOIN users u ON u.id = h.user_id "
                    "WHERE u.username = 'writer'")}
            finally:
                await conn.close()
            proc.terminate()
            await proc.wait()
            log_task.cancel()
            return {
                "refused_s": first_back - first_refused,
                "stop_to_write_s": first_back - stop_at,
                "stop_and_promote_s": promoted_at - stop_at,
                "listen_back_s": resubscribed[-1] - promoted_at,
                "refusals": len(state.refused),
                "finger_during": len(during),
                "finger_failed_during": during.count(False),
                "finger_failed_total": sum(1 for _, ok in state.answers if not ok),
                "acknowledged": len(state.accepted),
                "lost": sum(1 for _, text in state.accepted if text not in kept),
            }
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.to_thread(pg.destroy)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--readers", type=int, default=4, help="concurrent finger clients")
    args = parser.parse_args()
    results = []
    for number in range(1, args.rounds + 1):
        result = await one_round(args.readers)
        results.append(result)
        print(f"round {number}: writes refused {result['refused_s']:.2f} s "
              f"(stop to first write {result['stop_to_write_s']:.2f} s, of which stop + "
              f"promote {result['stop_and_promote_s']:.2f} s; {result['refusals']} refusals), "
              f"LISTEN back {result['listen_back_s']:.2f} s after promotion, finger "
              f"{result['finger_failed_during']:.0f} failed of {result['finger_during']:.0f} "
              f"during the window ({result['finger_failed_total']:.0f} in the whole run), "
              f"{result['lost']:.0f} of {result['acknowledged']:.0f} acknowledged writes lost",
              flush=True)
    if len(results) > 1:
        windows = [r["refused_s"] for r in results]
        print(f"writes refused: median {statistics.median(windows):.2f} s, "
              f"max {max(windows):.2f} s over {len(results)} rounds")


if __name__ == "__main__":
    asyncio.run(main())
