"""The classic finger(1) client (Debian's netkit ``finger``) against a real ``serve``.

netkit finger only speaks to port 79, so ``serve`` binds 127.0.0.1:79 here,
as it would in production; the suite runs as root (CI does), which may bind it.
"""

from __future__ import annotations

import asyncio
import shutil

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat

FINGER = shutil.which("finger") or "/usr/bin/finger"


async def run_finger(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        FINGER, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, err.decode()
    return out.decode("utf-8", "replace")


async def test_classic_client_shows_status_and_plan_and_lists_users(
    cli: Fingerplat, serve_factory, service: FingerplatService, operator: Context
) -> None:
    """One ``serve`` on port 79 for every question the classic client asks."""
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    await service.users.set_status(operator, None, "alice", "at the tea party")
    await service.users.set_plan(operator, None, "alice", "Finish the croquet match.")
    await service.users.add_user(operator, None, "bob")
    await service.users.add_user(operator, None, "carol", hidden=True)
    server = await serve_factory(cli.env, "--finger", "127.0.0.1:79", "--setter", "",
                                 "--web", "")
    assert server.address("finger") == ("127.0.0.1", 79)

    short = await run_finger("alice@127.0.0.1")
    assert "Alice Liddell" in short
    assert "at the tea party" in short
    assert "Finish the croquet match." in short

    verbose = await run_finger("-l", "alice@127.0.0.1")
    assert "Recent statuses" in verbose

    unknown = await run_finger("nobody@127.0.0.1")
    assert "No such user" in unknown

    listing = await run_finger("@127.0.0.1")
    assert "alice" in listing and "bob" in listing
    assert "carol" not in listing
