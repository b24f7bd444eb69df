"""A PostgreSQL primary failing over to its standby under a running, loaded ``serve``.

Two throwaway clusters of the test's own (tests/support/replicated_postgres.py):
a primary and a standby streaming from it (``pg_basebackup -R``, synchronous
replication). One real ``serve`` process has the SPEC's multi-host URL
(``h1,h2/db?target_session_attrs=read-write``). With finger queries and setter
writes running, the primary stops (``pg_ctl stop -m fast``) and the standby is
promoted (``pg_ctl promote``). What a user sees:

* finger keeps answering for the users it had been asked about (from what the
  node holds): not one of those answers fails;
* writes are refused with the setter's "temporarily unavailable" for a while,
  then accepted again, by the same process and the same setter connection;
* LISTEN is back on the new primary: a change made there by another process
  (the CLI) reaches the node's read cache, i.e. its finger answer changes;
* every write acknowledged before, during or after the failover is on the
  new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import asyncpg

from fingerplat.domain.model import Context, TokenScope
from fingerplat.repository import migrations
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, finger
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    Node,
    SetterClient,
    node_env,
    nodes_fixture,
    write_config,
)
from tests.support.replicated_postgres import ReplicatedPostgres

REFUSED = "-ERR service temporarily unavailable, nothing changed"
READERS = {"alice": "Status: reading along", "bob": "Status: also reading"}


async def _prepare(url: str, operator: Context) -> str:
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        service = FingerplatService(engine)
        for name, shown in READERS.items():
            await service.users.add_user(operator, None, name)
            await service.users.set_status(operator, None, name, shown.removeprefix("Status: "))
        await service.users.add_user(operator, None, "carol")
        return (await service.credentials.create_token(
            operator, TokenScope.USER, username="carol")).secret
    finally:
        await engine.dispose()


class Load:
    """Finger queries for the cached readers and setter writes for carol, all the time."""

    def __init__(self, node: Node, setter: SetterClient) -> None:
        self.node = node
        self.setter = setter
        self.finger_ok = 0
        self.finger_failed: list[str] = []
        self.web_ok = 0
        self.web_failed: list[str] = []
        self.acknowledged: list[str] = []
        self.refused: list[tuple[float, str]] = []
        self.accepted_at: list[float] = []
        self.running = True

    async def read(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            while self.running:
                await self._read_once(http)

    async def _read_once(self, http: aiohttp.ClientSession) -> None:
        web = "http://{}:{}".format(*self.node.address("web"))
        try:
            async with http.get(f"{web}/~alice") as response:
                page = f"{response.status} {await response.text()}"
        except (OSError, TimeoutError, aiohttp.ClientError) as error:
            page = f"no answer: {error!r}"
        if page.startswith("200 ") and "reading along" in page:
            self.web_ok += 1
        else:
            self.web_failed.append(page[:200])
        for name, shown in READERS.items():
            try:
                answer = await finger(*self.node.address("finger"), name, timeout=10)
            except (OSError, TimeoutError) as error:
                answer = f"no answer: {error!r}"
            if shown in answer:
                self.finger_ok += 1
            else:
                self.finger_failed.append(answer)
        await asyncio.sleep(0.02)

    async def write(self) -> None:
        number = 0
        while self.running:
            number += 1
            text = f"write {number}"
            reply = await self.setter.ask(f"SET carol {text}", timeout=20)
            if reply.startswith("+OK"):
                self.acknowledged.append(text)
                self.accepted_at.append(time.monotonic())
            else:
                self.refused.append((time.monotonic(), reply))
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.02)

    async def accepted_after(self, moment: float, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for at in self.accepted_at if at > moment) < count:
            assert time.monotonic() < deadline, (
                f"no write accepted {timeout} s after the promotion; last refusals "
                f"{self.refused[-3:]}, log {[x for x in self.node.err if 'access' not in x]}")
            await asyncio.sleep(0.05)


async def test_primary_fails_over_to_the_standby_under_load(
    operator: Context, tmp_path: Path, nodes
) -> None:
    pg = ReplicatedPostgres()
    tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.to_thread(pg.start)
        token = await _prepare(pg.url, operator)
        primary = await asyncpg.connect(host="127.0.0.1", port=pg.primary_port,
                                        user="postgres", database="postgres")
        try:  # a commit waits for the standby: what is acknowledged survives promotion
            assert await primary.fetchval(
                "SELECT sync_state FROM pg_stat_replication") == "sync"
        finally:
            await primary.close()
        config = write_config(tmp_path / "fingerplat.toml", """
[database]
pool_size = 4
max_overflow = 2
pool_timeout = 2
connect_timeout = 2
command_timeout = 2
""")
        node: Node = await nodes(node_env(tmp_path, pg.url), "--config", config, *PORTS_ZERO)
        await node.wait_line(lambda line: "subscribed" in line)
        setter = await SetterClient.connect(node.address("setter"))
        assert (await setter.ask(f"AUTH {token}")).startswith("+OK")
        for name, shown in READERS.items():  # asked once: now held by the node
            assert shown in await finger(*node.address("finger"), name)

        load = Load(node, setter)
        tasks = [asyncio.create_task(load.read()), asyncio.create_task(load.write())]
        await load.accepted_after(0, 5, timeout=20)
        # The web page too must have been answered (and so held) before the stop,
        # as the finger answers were above: a page never asked has nothing to hold.
        deadline = time.monotonic() + 20
        while load.web_ok < 2:
            assert time.monotonic() < deadline, f"no web page answered: {load.web_failed[:1]}"
            await asyncio.sleep(0.05)

        # -- the primary goes away; the standby takes over ------------------------------
        log_mark = len(node.err)
        await asyncio.to_thread(pg.stop_primary)
        stopped = time.monotonic()
        # Writes are refused while there is no primary (the stop alone takes a moment:
        # wait for the refusal rather than assume it).
        deadline = time.monotonic() + 20
        while not load.refused:
            assert time.monotonic() < deadline, "a write was accepted with no primary"
            await asyncio.sleep(0.05)
        # ...and reads are answered from what the node held (it says so once).
        await node.wait_line(lambda line: "answering from what the read cache held" in line,
                             start=log_mark, timeout=20)
        health = "http://{}:{}/healthz".format(*node.address("web"))
        async with aiohttp.ClientSession() as http, http.get(health) as resp:
            assert resp.status == 503  # a load balancer sees the node cannot write
        await asyncio.to_thread(pg.promote_standby)
        promoted = time.monotonic()
        await load.accepted_after(promoted, 3, timeout=30)
        await node.wait_line(lambda line: "subscribed again" in line, start=log_mark,
                             timeout=30)
        load.running = False
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

        refused_replies = {reply for _at, reply in load.refused}
        assert refused_replies == {REFUSED}, refused_replies
        window = max(at for at, _reply in load.refused) - min(at for at, _ in load.refused)
        print(f"writes refused for {window:.2f} s ({len(load.refused)} refusals; stop "
              f"took {promoted - stopped:.2f} s until promoted), "
              f"{load.finger_ok} finger answers, {len(load.finger_failed)} failed, "
              f"{load.web_ok} web pages, {len(load.web_failed)} failed")
        assert load.finger_failed == [], load.finger_failed[:5]
        assert load.web_failed == [], load.web_failed[:5]
        assert load.finger_ok > 0 and load.web_ok > 0

        # -- what an operator watches: the metric is back to 1 ----------------------------
        async with (aiohttp.ClientSession() as http,
                    http.get("http://{}:{}/metrics".format(*node.address("web"))) as resp):
            assert "fingerplat_change_events_listening 1.0" in await resp.text()
        async with aiohttp.ClientSession() as http, http.get(health) as resp:
            assert resp.status == 200

        # -- LISTEN is back on the new primary: another client's change reaches the cache
        answer = await finger(*node.address("finger"), "alice")
        assert READERS["alice"] in answer  # asked again: kept in the cache
        cli = Fingerplat(node_env(tmp_path, pg.url), tmp_path)
        await asyncio.to_thread(cli, "user", "set", "alice", "changed on the new primary",
                                ok=True)
        deadline = time.monotonic() + 15
        while "Status: changed on the new primary" not in answer:
            assert time.monotonic() < deadline, f"the node still answers {answer!r}"
            await asyncio.sleep(0.1)
            answer = await finger(*node.address("finger"), "alice")

        # -- nothing acknowledged was lost ----------------------------------------------
        conn = await asyncpg.connect(host="127.0.0.1", port=pg.standby_port, user="postgres",
                                     database="postgres")
        try:
            assert not await conn.fetchval("SELECT pg_is_in_recovery()")
            kept = {row["text"] for row in await conn.fetch(
                "SELECT h.text FROM status_history h JOIN users u ON u.id = h.user_id "
                "WHERE u.username = 'carol'")}
        finally:
            await conn.close()
        lost = [text for text in load.acknowledged if text not in kept]
        assert lost == [], f"acknowledged but lost: {lost}"
        assert len(load.acknowledged) >= 8

        setter.close()
        assert node.process.returncode is None  # the same process throughout
        assert await node.stop() == 0
        assert not [line for line in node.err if "Traceback" in line], node.err[-30:]
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await asyncio.to_thread(pg.destroy)
