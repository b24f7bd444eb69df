"""The IRC adapter's pure parts: wire safety, query parsing, nicks, throttle, back-off.

No I/O here (they live beside the integration tests because they belong to
the IRC adapter's test area); the same rules are proven end to end in
test_safety.py against a real server.
"""

from __future__ import annotations

import random

import pytest

from fingerplat.adapters.irc.bots import check_irc_config
from fingerplat.adapters.irc.text import (
    IRC_LINE_MAX_BYTES,
    Query,
    fallback_nicks,
    fit_bytes,
    irc_text,
    parse_channel,
    parse_private,
    privmsg_budget,
    safe_line,
)
from fingerplat.adapters.irc.throttle import OutLine, OutputQueue, TokenBucket
from fingerplat.config import IrcConfig
from fingerplat.domain.backoff import Backoff
from fingerplat.domain.errors import InvalidInput

EVERY_CONTROL = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]) + "\u2028\u2029"


def test_no_control_character_survives() -> None:
    text = safe_line("a" + EVERY_CONTROL + "z", nick="fingerbot", user="fingerbot",
                     target="#acme")
    assert text.startswith("a") and text.endswith("z")
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text)
    assert "\u2028" not in text and "\u2029" not in text
    # Made visible, not silently removed: a reader sees something was there.
    assert "^J" in text and "^M" in text and "^@" in text and "^[" in text


def test_tab_and_bidi_controls() -> None:
    assert irc_text("a\tb") == "a b"
    # Shown, like every other output shows them, never applied.
    assert irc_text("\u202eabc\u2066d\u2069") == "\\u202eabc\\u2066d\\u2069"


@pytest.mark.parametrize("target", ["#acme", "someone", "#" + "c" * 49])
def test_a_line_fits_512_bytes_with_the_longest_prefix(target: str) -> None:
    text = safe_line("\U0001f600" * 500, nick="fingerbot", user="fingerbot", target=target)
    longest_prefix = f":fingerbot!~fingerbot@{'h' * 63} PRIVMSG {target} :"
    assert len((longest_prefix + text + "\r\n").encode()) <= IRC_LINE_MAX_BYTES
    assert text.endswith("…")
    text.encode("utf-8")  # cut on a character boundary


def test_fit_bytes_keeps_short_text_and_cuts_long_text() -> None:
    assert fit_bytes("hello", 5) == "hello"
    assert fit_bytes("héllo wörld", 8) == "héll…"
    assert len(fit_bytes("x" * 1000, 100).encode()) == 100


def test_empty_text_still_makes_a_valid_line() -> None:
    assert safe_line("", nick="n", user="u", target="t") == " "
    assert privmsg_budget("n", "u", "t") > 300


@pytest.mark.parametrize(("message", "query"), [
    ("alice", Query("alice")),
    ("  finger Alice  ", Query("Alice")),
    ("FINGER alice", Query("alice")),
    ("!finger alice", Query("alice")),
    ("finger", Query(None)),
    ("help", Query(None)),
    ("hello there bot", Query(None)),
    ("\x01VERSION\x01", None),
    ("\x02alice\x02", None),
    ("", None),
])
def test_private_messages(message: str, query: Query | None) -> None:
    assert parse_private(message) == query


@pytest.mark.parametrize(("message", "query"), [
    ("!finger alice", Query("alice")),
    ("!FINGER alice", Query("alice")),
    ("!finger", Query(None)),
    ("alice", None),
    ("finger alice", None),
    ("who is !finger alice", None),
])
def test_channel_messages(message: str, query: Query | None) -> None:
    assert parse_channel(message) == query


def test_fallback_nicks_fit_short_nicklen_too() -> None:
    nicks = fallback_nicks("fingerbot")
    assert nicks[:2] == ["fingerbot_", "fingerbo_"]
    assert "fingerbot" not in nicks
    assert len(nicks) == len(set(nicks))
    assert sum(len(n) <= 9 for n in nicks) >= 8


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=1.0, burst=4, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(4)] == [0, 0, 0, 0]
    assert bucket.try_take() == pytest.approx(1.0)
    now[0] += 0.5
    assert bucket.try_take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.try_take() == 0
    now[0] += 100
    assert [bucket.try_take() for _ in range(5)][-1] > 0  # never more than the burst


async def test_output_queue_drops_when_full() -> None:
    dropped: list[OutLine] = []
    queue = OutputQueue(2, on_drop=dropped.append)
    assert queue.offer(OutLine("#a", "1")) and queue.offer(OutLine("#a", "2"))
    assert not queue.offer(OutLine("#a", "3"))
    assert queue.full and len(queue) == 2 and queue.dropped == 1
    assert dropped == [OutLine("#a", "3")]
    assert (await queue.get()).text == "1"
    queue.task_done()
    assert queue.clear() == 1 and queue.empty()


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(initial=1, maximum=30, _random=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(30, 2 ** n) for n in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jittered, not lock-step
    backoff.reset()
    assert backoff.next_delay() <= 1


@pytest.mark.parametrize(("overrides", "key"), [
    ({"nick": "bad nick"}, "irc[0].nick"),
    ({"nick": "9lives"}, "irc[0].nick"),
    ({"channels": ["#ok", "no-prefix"]}, "irc[0].channels"),
    ({"channels": ["#a,#b"]}, "irc[0].channels"),
    ({"channels": ["#a b"]}, "irc[0].channels"),
    ({"server": "irc.example.net\r\nQUIT"}, "irc[0].server"),
    ({"password": "pw\r\nQUIT"}, "irc[0].password"),
])
def test_config_the_protocol_cannot_carry_is_refused(overrides: dict, key: str) -> None:
    values = {"server": "irc.example.net", "nick": "fingerbot", "channels": ["#acme"]}
    with pytest.raises(InvalidInput, match=key.replace("[", r"\[").replace("]", r"\]")):
        check_irc_config(IrcConfig(**{**values, **overrides}), 0)


def test_good_config_is_accepted() -> None:
    check_irc_config(IrcConfig(server="irc.example.net", nick="finger[bot]",
                               channels=["#acme", "&local", "#a-b.c"]), 0)
