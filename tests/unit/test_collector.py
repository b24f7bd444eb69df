"""The cyclic GC pause around bulk work (issue 18): off inside, as it was after."""

from __future__ import annotations

import asyncio
import gc

from fingerplat.domain import collector


def test_paused_turns_the_collector_off_and_back_on() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # nested: still off when the inner one ends
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_coroutines_end_with_the_collector_on() -> None:
    seen: list[tuple[str, bool]] = []

    async def both() -> None:
        gate = asyncio.Event()

        @collector.paused_during
        async def first() -> None:
            await gate.wait()  # the second one begins and ends meanwhile
            seen.append(("first", gc.isenabled()))

        @collector.paused_during
        async def second() -> None:
            gate.set()
            seen.append(("second", gc.isenabled()))

        await asyncio.gather(first(), second())

    asyncio.run(both())
    assert seen == [("second", False), ("first", False)]
    assert gc.isenabled()


def test_an_error_inside_ends_the_pause() -> None:
    try:
        with collector.paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()
