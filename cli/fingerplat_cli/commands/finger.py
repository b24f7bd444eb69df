"""``fingerplat finger QUERY``: the tutorial's finger client, with limits.

``fingerplat finger alice@example.org`` asks example.org about alice, as the
classic ``finger`` does; ``--host`` names the server explicitly (then an
``@`` in the query is sent as it is, for forwarding chains). Without either
the local host is asked. The answer is printed line by line with control
characters shown as ``^X``, so a hostile server cannot drive the terminal.
"""

from __future__ import annotations

import click

from fingerplat.adapters.proxy.client import finger
from fingerplat.domain.errors import InvalidInput
from fingerplat_cli.app import handle_errors, run
from fingerplat_cli.output import notice

DEFAULT_HOST = "localhost"
MAX_ANSWER_BYTES = 1024 * 1024


def split_query(query: str, host: str | None) -> tuple[str, str]:
    """(query to send, host to ask): ``user@host`` names the host when --host does not."""
    if host is not None:
        return query, host
    sent, at, named = query.rpartition("@")
    if not at:
        return query, DEFAULT_HOST
    named = named.strip()
    if named.startswith("[") and named.endswith("]"):
        named = named[1:-1]
    if not named:
        raise InvalidInput("empty host name after '@'")
    return sent, named


@click.command("finger")
@click.argument("query", default="")
@click.option("--host", "host", metavar="H",
              help=f"Finger server to ask (default: the host in QUERY, else {DEFAULT_HOST}).")
@click.option("--port", type=click.IntRange(1, 65535), default=79, show_default=True,
              help="Port of the finger server.")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=300), default=10,
              show_default=True, metavar="S", help="Seconds to connect, and then to answer.")
@handle_errors
def command(query: str, host: str | None, port: int, timeout: float) -> None:
    """Ask a finger server about QUERY (user, user@host, /W user, or empty for the list)."""
    sent, target = split_query(query, host)
    answer = run(finger(sent, target, port, timeout=timeout, max_bytes=MAX_ANSWER_BYTES))
    for line in answer.lines:
        click.echo(line)
    if answer.truncated:
        notice(f"fingerplat: answer truncated at {MAX_ANSWER_BYTES} bytes")
