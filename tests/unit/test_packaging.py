"""The default install is the fast one: uvloop comes with ``pip install fingerplat``."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging

import pytest
from packaging.requirements import Requirement

from fingerplat.server.runtime import log_event_loop
from fingerplat_cli.app import run


def _requirements() -> dict[str, Requirement]:
    return {Requirement(r).name: Requirement(r)
            for r in importlib.metadata.requires("fingerplat") or []}


def test_uvloop_is_a_regular_dependency_where_it_installs() -> None:
    uvloop = _requirements()["uvloop"]
    assert "extra" not in str(uvloop.marker)
    assert uvloop.marker is not None
    linux = {"sys_platform": "linux", "platform_python_implementation": "CPython"}
    assert uvloop.marker.evaluate(linux)
    assert not uvloop.marker.evaluate({**linux, "sys_platform": "win32"})
    assert not uvloop.marker.evaluate({**linux, "platform_python_implementation": "PyPy"})


def test_the_speed_extra_still_installs() -> None:
    """`pip install 'fingerplat[speed]'` (scripts/test, older instructions) keeps working."""
    assert "speed" in (importlib.metadata.metadata("fingerplat").get_all("Provides-Extra") or [])


def test_commands_and_serve_run_on_uvloop(caplog: pytest.LogCaptureFixture) -> None:
    async def loop_module() -> str:
        log_event_loop()
        return type(asyncio.get_running_loop()).__module__

    with caplog.at_level(logging.DEBUG, logger="fingerplat.server"):
        assert run(loop_module()).startswith("uvloop")
    assert "event loop: uvloop" in caplog.text


def test_the_standard_loop_is_named_on_the_log(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        log_event_loop()

    with caplog.at_level(logging.DEBUG, logger="fingerplat.server"):
        asyncio.run(main())
    assert "standard asyncio loop" in caplog.text
