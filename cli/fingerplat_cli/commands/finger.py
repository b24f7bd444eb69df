"""``fingerplat finger QUERY``: the tutorial's finger client, with limits.

``fingerplat finger alice@example.org`` asks example.org about alice, as the
classic ``finger`` does; ``--host`` names the server explicitly (then an
``@`` in the query is sent as it is, for forwarding chains). Without either
the local fingerplat server is asked, at the first ``[finger] listen`` address
of the configuration (127.0.0.1:1079 by default), so ``fingerplat finger alice``
works beside a ``fingerplat serve`` with no options; a named host is asked on
port 79, the finger port. The answer is printed line by line with control
characters shown as ``^X``, so a hostile server cannot drive the terminal.
"""

from __future__ import annotations

import click

from fingerplat.adapters.proxy.client import finger
from fingerplat.domain.errors import InvalidInput
from fingerplat_cli.app import AppState, handle_errors, pass_state, run
from fingerplat_cli.output import notice

FINGER_PORT = 79
MAX_ANSWER_BYTES = 1024 * 1024


def split_query(query: str, host: str | None) -> tuple[str, str | None]:
    """(query to send, host to ask): ``user@host`` names the host when --host does not.

    ``None`` for the host means none was named: ask the local server.
    """
    if host is not None:
        return query, host
    sent, at, named = query.rpartition("@")
    if not at:
        return query, None
    named = named.strip()
    if named.startswith("[") and named.endswith("]"):
        named = named[1:-1]
    if not named:
        raise InvalidInput("empty host name after '@'")
    return sent, named


@click.command("finger")
@click.argument("query", default="")
@click.option("--host", "host", metavar="H",
              help="Finger server to ask (default: the host in QUERY, else the local server "
                   "at the first [finger] listen address, 127.0.0.1:1079 by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help=f"Port of the finger server (default: {FINGER_PORT} for a named host; "
                   "the configured port for the local server).")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=300), default=10,
              show_default=True, metavar="S", help="Seconds to connect, and then to answer.")
@pass_state
@handle_errors
def command(state: AppState, query: str, host: str | None, port: int | None,
            timeout: float) -> None:
    """Ask a finger server about QUERY (user, user@host, /W user, or empty for the list)."""
    sent, target = split_query(query, host)
    if target is None:
        target, local_port = local_finger_address(state)
        port = port or local_port
    port = port or FINGER_PORT
    answer = run(finger(sent, target, port, timeout=timeout, max_bytes=MAX_ANSWER_BYTES))
    for line in answer.lines:
        click.echo(line)
    if answer.truncated:
        notice(f"fingerplat: answer truncated at {MAX_ANSWER_BYTES} bytes")


def local_finger_address(state: AppState) -> tuple[str, int]:
    """Where the local ``serve`` answers finger: its first configured listen address.

    A wildcard address (``0.0.0.0``, ``::``) is asked on the loopback address.
    """
    listen = state.config.finger.listen
    if not listen:
        raise InvalidInput("no host given and the configuration has no [finger] listen "
                           "address to ask; name one with --host")
    host, port = listen[0].host_port
    if port == 0:
        raise InvalidInput("the configured [finger] listen address has port 0 (a free port "
                           "chosen at start); name the server with --host and --port")
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host), port
