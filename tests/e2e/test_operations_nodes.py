"""Several ``serve`` nodes on one database: one IRC bot in all, taken over after kill -9.

Real processes, a real PostgreSQL and a real ngircd. That a change through
one node is answered by the other needs no process of its own:
tests/integration/test_two_nodes.py shows it with serve's runtime.
"""

from __future__ import annotations

from pathlib import Path

from fingerplat.domain.model import Context
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    Node,
    node_env,
    nodes_fixture,
    write_config,
)
from tests.integration.irc.ircd import IrcPeer, Ngircd, ensure_env, text_of
from tests.support.databases import DatabaseFactory


def _irc_config(tmp_path: Path, name: str, port: int) -> str:
    return write_config(tmp_path / name, f"""
[[irc]]
server = "127.0.0.1"
port = {port}
tls = false
nick = "fpbot"
channels = ["#ops"]
""")


RUNS = "this node runs the bot"
STANDS_BY = "this node stands by"


async def test_irc_bot_runs_on_one_node_and_fails_over_when_it_is_killed(
    db_factory: DatabaseFactory, operator: Context, tmp_path: Path, nodes
):
    """PostgreSQL only: on SQLite there is one node, and it always runs its bots."""
    ensure_env()
    database_url = await db_factory.make("postgresql")
    workdir = tmp_path / "ngircd"
    workdir.mkdir()
    workdir.chmod(0o755)
    ircd = Ngircd(workdir)
    ircd.start()
    peer = IrcPeer("watcher")
    try:
        engine = create_engine(database_url)
        try:
            pg = FingerplatService(engine)
            await pg.users.add_user(operator, None, "alice")
            await pg.users.set_status(operator, None, "alice", "on call")
        finally:
            await engine.dispose()

        await peer.connect(ircd.port)
        await peer.join("#ops")
        env = node_env(tmp_path, database_url)
        config = _irc_config(tmp_path, "irc.toml", ircd.port)
        args = ("--config", config, *PORTS_ZERO)
        first: Node = await nodes(env, *args)
        second: Node = await nodes(env, *args)

        await peer.wait_for(lambda line: line.startswith(":fpbot!") and "JOIN" in line,
                            timeout=15)
        # Exactly one of the two runs the bot; the other says it waits for the lock.
        for node in (first, second):
            await node.wait_line(lambda line: RUNS in line or STANDS_BY in line, timeout=15)
        runners = [n for n in (first, second) if any(RUNS in line for line in n.err)]
        assert len(runners) == 1, (first.err, second.err)
        running = runners[0]
        standby = second if running is first else first
        joins = [line for line in peer.lines if " JOIN " in line and "watcher" not in line]
        assert len(joins) == 1 and joins[0].startswith(":fpbot!"), joins

        mark = len(peer.lines)
        await peer.privmsg("#ops", "!finger alice")
        reply = await peer.wait_for(lambda line: line.startswith(":fpbot!")
                                    and " PRIVMSG #ops " in line, start=mark)
        assert text_of(reply) == "alice: on call"

        mark = len(peer.lines)
        await running.kill()  # kill -9: no QUIT, no unlock; PostgreSQL frees the lock
        await peer.wait_for(lambda line: line.startswith(":fpbot!") and " JOIN " in line,
                            timeout=20, start=mark)
        await standby.wait_line(lambda line: RUNS in line, timeout=5)

        mark = len(peer.lines)
        await peer.privmsg("#ops", "!finger alice")
        reply = await peer.wait_for(lambda line: line.startswith(":fpbot!")
                                    and " PRIVMSG #ops " in line, start=mark)
        assert text_of(reply) == "alice: on call"
        assert await standby.stop() == 0
        # A clean stop says goodbye on IRC.
        await peer.wait_for(lambda line: line.startswith(":fpbot!") and " QUIT " in line,
                            timeout=10, start=mark)
    finally:
        await peer.close()
        ircd.kill()
