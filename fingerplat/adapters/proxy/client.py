"""An RFC 1288 finger client: one query, one answer, bounded in time and size.

Used by ``fingerplat finger`` and by the forwarding proxy. A remote server is
outside our control, so every step has a limit: the connection must be made
within ``timeout`` seconds, the whole answer must arrive within ``timeout``
seconds after that, and at most ``max_bytes`` are read (the rest is dropped and
the answer is marked truncated). Failures become domain errors with a message
that says what happened in words a user understands.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from dataclasses import dataclass

from fingerplat.domain.errors import InvalidInput, Unavailable
from fingerplat.domain.text import printable_lines

# RFC 1288 puts no limit on a query; ours (and most servers') refuse longer lines.
MAX_QUERY_BYTES = 512
_READ_CHUNK = 16 * 1024


@dataclass(frozen=True, slots=True)
class FingerAnswer:
    """A remote server's answer, already split into terminal-safe lines."""

    host: str
    port: int
    lines: list[str]
    truncated: bool
    size: int  # bytes received (at most max_bytes)


def check_query(query: str) -> bytes:
    """The query line as bytes, refusing what would break the one-line protocol."""
    if any(ch in query for ch in "\r\n"):
        raise InvalidInput("a finger query must be a single line")
    if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in query):
        raise InvalidInput("a finger query must not contain control characters")
    data = query.encode("utf-8")
    if len(data) > MAX_QUERY_BYTES:
        raise InvalidInput(
            f"finger query is {len(data)} bytes long; at most {MAX_QUERY_BYTES} are allowed"
        )
    return data


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_connect_error(error: OSError, host: str, port: int) -> str:
    """A short sentence for why a connection failed (refused, unreachable, unknown name)."""
    where = _where(host, port)
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host {host!r}"
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return f"connection refused by {where} (no finger server there?)"
    if error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"{where} is unreachable"
    reason = error.strerror or type(error).__name__
    return f"cannot connect to {where}: {reason}"


async def _read_capped(reader: asyncio.StreamReader, max_bytes: int) -> tuple[bytes, bool]:
    """Read until EOF or ``max_bytes``; the flag says whether more was on offer."""
    chunks: list[bytes] = []
    size = 0
    while size < max_bytes:
        chunk = await reader.read(min(_READ_CHUNK, max_bytes - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    # The cap is reached: one more byte means the answer was longer.
    more = await reader.read(1)
    return b"".join(chunks), bool(more)


def split_answer(data: bytes) -> list[str]:
    """Decode (UTF-8, invalid bytes replaced) and neutralise every line."""
    text = data.decode("utf-8", errors="replace")
    lines = printable_lines(text)
    if lines and lines[-1] == "":
        lines.pop()  # the line end of the last line, not an empty line
    return lines


async def finger(
    query: str,
    host: str,
    port: int = 79,
    *,
    timeout: float,
    max_bytes: int,
    address: str | None = None,
) -> FingerAnswer:
    """Send ``query`` to the finger server at ``host``:``port`` and return its answer.

    ``address``, when given, is the IP address to connect to instead of
    resolving ``host`` again; the proxy passes the address it has checked so
    a second DNS answer cannot send it elsewhere. ``host`` then only names
    the server in messages.
    """
    line = check_query(query) + b"\r\n"
    if timeout <= 0:
        raise InvalidInput("timeout must be a positive number of seconds")
    if max_bytes < 1:
        raise InvalidInput("max_bytes must be positive")
    target = address or host
    where = _where(host, port)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target, port), timeout=timeout
        )
    except TimeoutError:
        raise Unavailable(f"no connection to {where} within {timeout:g} s") from None
    except OSError as error:
        raise Unavailable(describe_connect_error(error, host, port)) from None
    try:
        try:
            writer.write(line)
            async with asyncio.timeout(timeout):
                await writer.drain()
                data, truncated = await _read_capped(reader, max_bytes)
        except TimeoutError:
            raise Unavailable(f"{where} did not answer within {timeout:g} s") from None
        except (ConnectionResetError, BrokenPipeError):
            raise Unavailable(f"{where} closed the connection before answering") from None
        except OSError as error:
            raise Unavailable(describe_connect_error(error, host, port)) from None
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout=1)
    return FingerAnswer(host=host, port=port, lines=split_answer(data), truncated=truncated,
                        size=len(data))
