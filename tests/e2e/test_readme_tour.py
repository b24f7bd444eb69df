"""The README's tour, copied as written, against a real `fingerplat serve`.

Every shell line of the section "A short tour" runs in one bash, in order,
the way a newcomer pastes them into a second terminal: only the three
listener ports are moved to free ones (a configuration file gives serve and
`fingerplat finger` the same addresses), and the lines that need root (port
79) are left out. If the README drifts from what the program does, this fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

from tests.e2e.conftest import Fingerplat

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_PORTS = {"finger": 1079, "setter": 1179, "web": 8000}
NEEDS_ROOT = ("sudo ", "finger alice@127.0.0.1")  # port 79: shown, not run here


def tour_lines() -> list[str]:
    text = README.read_text()
    section = text.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        for line in block.splitlines():
            if line.strip() and not line.startswith(NEEDS_ROOT):
                lines.append(line)
    return lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_tour_has_the_lines_a_newcomer_copies():
    lines = tour_lines()
    assert lines[0].startswith("fingerplat user add alice")
    assert any("nc 127.0.0.1 1179" in line for line in lines)
    assert any("webfinger" in line for line in lines)


async def test_every_line_of_the_tour_works_as_written(
    cli: Fingerplat, tmp_path: Path, serve_factory  # type: ignore[no-untyped-def]
):
    ports = {kind: free_port() for kind in DEFAULT_PORTS}
    config = tmp_path / "fingerplat.toml"
    config.write_text("".join(f'[{kind}]\nlisten = ["127.0.0.1:{port}"]\n'
                              for kind, port in ports.items()))
    env = {**cli.env, "FINGERPLAT_CONFIG": str(config),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    await serve_factory(env)

    script = "\n".join(tour_lines())
    for kind, port in DEFAULT_PORTS.items():
        script = script.replace(f"127.0.0.1:{port}", f"127.0.0.1:{ports[kind]}")
        script = script.replace(f"127.0.0.1 {port}", f"127.0.0.1 {ports[kind]}")
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, env=env, cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out_bytes, err_bytes = await asyncio.wait_for(process.communicate(), 120)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert process.returncode == 0, (out, err)
    assert "Traceback" not in err

    assert "Login: alice" in out and "Name: Alice Liddell" in out and "Status: away" in out
    assert "Login: bob" in out and "in the lab" in out  # bob@acme.example, one listener
    assert "+OK" in out and "-ERR" not in out  # the setter session
    assert "status.set" in out and "setter" in out  # the audit shows the setter's change
    assert '"subject": "acct:bob@acme.example"' in out.replace('":"', '": "')  # WebFinger
    # XML-RPC getUser, after the setter's SET (the pseudo-user and finger log lines follow it)
    after_webfinger = out.split("acct:bob@acme.example", 1)[1]
    assert "Recent status changes" in after_webfinger  # echo recent | nc
    assert "giving a talk" in after_webfinger.split("Recent status changes", 1)[0]
    assert "127.0.0.0/24" in out  # user fingered alice: the network, never the address
