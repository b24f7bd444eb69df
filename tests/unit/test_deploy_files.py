"""The files in deploy/ are what an operator copies: they must parse and hang together.

No container engine runs here, so the compose file and the Containerfile are
checked structurally (parsed, wiring between services, ports, health checks).
The systemd unit is checked structurally and, when ``systemd-analyze`` is
installed, by ``systemd-analyze verify`` on a copy whose ExecStart points at a
binary that exists (the real one names /usr/local/bin/fingerplat, which a test
machine does not have). The HAProxy example is checked by ``haproxy -c`` when
HAProxy is installed, and structurally always.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fingerplat import config as config_module
from fingerplat.repository.engine import database_hosts, describe_database
from fingerplat.server import systemd

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPO = DEPLOY.parent


# -- systemd --------------------------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(DEPLOY / "fingerplat.service", encoding="utf-8")
    return parser


def test_unit_runs_unprivileged_with_only_the_bind_capability() -> None:
    service = _unit()["Service"]
    assert service["User"] == "fingerplat"
    assert service["Group"] == "fingerplat"
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["NoNewPrivileges"] == "yes"


def test_unit_starts_serve_with_the_config_file_and_reloads_on_hup() -> None:
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/usr/local/bin/fingerplat"
    assert argv[1:] == ["serve", "--config", "/etc/fingerplat/fingerplat.toml"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    # serve reports readiness with sd_notify (see the test below), so systemd waits for it.
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"


def test_readiness_reaches_the_socket_systemd_names(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Type=notify is only right if serve's notification really arrives at NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify("READY=1") is True
        assert receiver.recv(256) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert systemd.notify("READY=1") is False


def test_unit_hardening() -> None:
    service = _unit()["Service"]
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service",
        "RestrictSUIDSGID": "yes",
        "ProtectKernelTunables": "yes",
    }
    for key, value in expected.items():
        assert service.get(key) == value, key
    # ProtectSystem=strict makes everything read-only: the state dir must be writable.
    writable = service["ReadWritePaths"].split()
    assert "/var/lib/fingerplat" in writable
    assert service["StateDirectory"] == "fingerplat"
    # The setter socket of the example config lives in the runtime directory.
    example = config_module.load(DEPLOY / "fingerplat.toml")
    assert example.setter.unix_socket is not None
    assert Path(example.setter.unix_socket).parent == Path("/run") / service["RuntimeDirectory"]
    assert "/run/fingerplat" in writable
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        # Structure is checked by the tests above; nothing more to run here.
        assert _unit().has_section("Service")
        return
    text = (DEPLOY / "fingerplat.service").read_text(encoding="utf-8")
    copy = tmp_path / "fingerplat.service"
    copy.write_text(
        text.replace("ExecStart=/usr/local/bin/fingerplat", f"ExecStart={sys.executable}"),
        encoding="utf-8",
    )
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60, check=False)
    output = (result.stdout + result.stderr).strip()
    # verify exits 0 on unknown keys or bad values but names them: none may appear.
    ours = [line for line in output.splitlines() if "fingerplat.service" in line]
    assert result.returncode == 0, output
    assert ours == [], output


# -- configuration examples -------------------------------------------------------------


def test_example_config_is_accepted_by_fingerplat() -> None:
    cfg = config_module.load(DEPLOY / "fingerplat.toml")
    assert {spec.host_port[1] for spec in cfg.finger.listen} == {79}
    assert all(spec.host_port[0] == "127.0.0.1" for spec in cfg.setter.listen)
    assert all(spec.host_port[0] == "127.0.0.1" for spec in cfg.web.listen)
    assert cfg.database_url is not None and cfg.database_url.startswith("postgresql+asyncpg://")


def test_container_config_binds_all_addresses_on_unprivileged_ports() -> None:
    cfg = config_module.load(DEPLOY / "container.toml")
    ports = {
        "finger": [s.host_port for s in cfg.finger.listen],
        "setter": [s.host_port for s in cfg.setter.listen],
        "web": [s.host_port for s in cfg.web.listen],
    }
    assert ports == {
        "finger": [("0.0.0.0", 1079)],
        "setter": [("0.0.0.0", 1179)],
        "web": [("0.0.0.0", 8000)],
    }


# -- container image ------------------------------------------------------------------------


def _containerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        assert stages, "instruction before FROM"
        stages[-1].append((word.upper(), rest.strip()))
    return stages


def test_containerfile_runs_serve_as_a_non_root_user() -> None:
    stages = _containerfile_stages()
    assert all(s[0][1].startswith("python:3.11-slim") for s in stages)
    final = stages[-1]
    users = [arg for word, arg in final if word == "USER"]
    assert users == ["fingerplat"]
    # USER comes before the process starts and after the root-only steps.
    words = [word for word, _ in final]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")
    expose = " ".join(arg for word, arg in final if word == "EXPOSE").split()
    assert {p.split("/")[0] for p in expose} == {"1079", "1179", "8000"}
    entry = [arg for word, arg in final if word == "ENTRYPOINT"]
    cmd = [arg for word, arg in final if word == "CMD"]
    assert entry == ['["fingerplat"]']
    assert cmd == ['["serve", "--config", "/etc/fingerplat/fingerplat.toml"]']
    copies = [arg for word, arg in final if word == "COPY"]
    assert "deploy/container.toml /etc/fingerplat/fingerplat.toml" in copies
    assert any(word == "HEALTHCHECK" and "/healthz" in arg for word, arg in final)


def test_containerfile_copies_only_paths_that_exist() -> None:
    for stage in _containerfile_stages():
        for word, arg in stage:
            if word != "COPY" or arg.startswith("--from"):
                continue
            *sources, _dest = arg.split()
            for source in sources:
                assert (REPO / source).exists(), source


# -- compose ------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_has_postgres_migrate_and_server() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "postgres-standby", "migrate", "fingerplat"}
    pg = services["postgres"]
    assert pg["image"].rsplit("/", 1)[-1].startswith("postgres:")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "ports" not in pg, "PostgreSQL must not be published on the host"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])


def test_compose_runs_the_migration_once_before_serve() -> None:
    services = _compose()["services"]
    migrate, server = services["migrate"], services["fingerplat"]
    assert migrate["command"] == ["db", "upgrade", "--grant-to", "fingerplat_app"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["command"] == ["serve", "--config", "/etc/fingerplat/fingerplat.toml"]
    assert migrate["image"] == server["image"]
    assert server["build"]["dockerfile"] == "deploy/Containerfile"
    assert (DEPLOY / server["build"]["context"] / server["build"]["dockerfile"]).resolve() == (
        DEPLOY / "Containerfile"
    ).resolve()


def test_compose_wires_the_database_url_to_the_postgres_service() -> None:
    """Both servers and the read-write target (SPEC 12); the schema owner migrates,
    serve runs as the runtime role (docs/operations.md, "Two PostgreSQL roles")."""
    services = _compose()["services"]
    pg = services["postgres"]
    pg_env = pg["environment"]
    users = {}
    for name in ("migrate", "fingerplat"):
        url = services[name]["environment"]["FINGERPLAT_DATABASE_URL"]
        match = re.fullmatch(
            r"postgresql\+asyncpg://(?P<user>[^:]+):(?P<pw>\$\{(?P<var>\w+)[^}]*\})"
            r"@postgres:5432,postgres-standby:5432/fingerplat"
            r"\?target_session_attrs=read-write",
            url,
        )
        assert match, url
        assert match["var"] in pg_env, "the role's password reaches the init script"
        users[name] = match["user"]
        resolved = url.replace(match["pw"], "pw")
        assert database_hosts(resolved) == ["postgres:5432", "postgres-standby:5432"]
        assert "target_session_attrs=read-write" in describe_database(resolved)
    assert users == {"migrate": "fingerplat_owner", "fingerplat": "fingerplat_app"}
    assert pg_env["POSTGRES_USER"] not in users.values()
    assert pg_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in pg["volumes"] if v.startswith("./")}
    for source in mounts.values():
        assert (DEPLOY / source).exists(), source
    init = (DEPLOY / mounts["/docker-entrypoint-initdb.d/10-fingerplat-roles.sh"]).read_text()
    assert "-f /fingerplat/roles.sql" in init and "/fingerplat/roles.sql" in mounts
    assert "app=fingerplat_app" in init and "owner=fingerplat_owner" in init


def test_compose_standby_streams_from_the_primary_and_is_waited_for() -> None:
    """A standby made with pg_basebackup -R; nothing writes before it is there
    (replication is synchronous: a write waits for the standby)."""
    services = _compose()["services"]
    primary, standby = services["postgres"], services["postgres-standby"]
    assert standby["image"] == primary["image"]
    assert "ports" not in standby
    script = " ".join(standby["command"])
    assert "pg_basebackup -h postgres" in script and " -R " in script
    # the promoted standby must not wait for a standby of its own
    assert "synchronous_standby_names=" in script.split("exec postgres", 1)[1]
    assert standby["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "wal_level=replica" in primary["command"]
    init = [v for v in primary["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init, primary["volumes"]
    script_path = DEPLOY / init[0].split(":", 1)[0]
    text = script_path.read_text(encoding="utf-8")
    assert "host replication" in text and "synchronous_standby_names = '*'" in text
    for name in ("migrate", "fingerplat"):
        needs = services[name]["depends_on"]
        assert needs["postgres-standby"]["condition"] == "service_healthy"
    data_volumes = {v.split(":", 1)[0] for s in (primary, standby) for v in s["volumes"]
                    if v.endswith(":/var/lib/postgresql/data")}
    assert len(data_volumes) == 2  # one data directory each


def test_compose_publishes_finger_and_keeps_setter_and_web_on_loopback() -> None:
    server = _compose()["services"]["fingerplat"]
    published: dict[int, str] = {}
    for mapping in server["ports"]:
        parts = mapping.split(":")
        container = int(parts[-1])
        published[container] = ":".join(parts[:-1])
    inside = config_module.load(DEPLOY / "container.toml")
    assert set(published) == {
        inside.finger.listen[0].host_port[1],
        inside.setter.listen[0].host_port[1],
        inside.web.listen[0].host_port[1],
    }
    assert published[1079] == "${FINGERPLAT_FINGER_PORT:-79}"
    assert published[1179].startswith("127.0.0.1:")
    assert published[8000].startswith("127.0.0.1:")
    health = " ".join(server["healthcheck"]["test"])
    assert "127.0.0.1:8000/healthz" in health
    assert server["read_only"] is True
    assert server["cap_drop"] == ["ALL"]


# -- HAProxy --------------------------------------------------------------------------------


def _haproxy_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for raw in (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not raw[0].isspace():
            current = line.strip()
            sections[current] = []
        else:
            assert current is not None
            sections[current].append(line.strip())
    return sections


def test_haproxy_balances_finger_setter_and_web_over_three_nodes_with_proxy_headers() -> None:
    s = _haproxy_sections()
    for frontend, backend, mode, port in (
        ("finger", "finger_nodes", "tcp", 79),
        ("setter", "setter_nodes", "tcp", 1179),
        ("web", "web_nodes", "http", 8000),
    ):
        front = s[f"frontend {frontend}"]
        back = s[f"backend {backend}"]
        assert f"mode {mode}" in front and f"mode {mode}" in back
        assert f"default_backend {backend}" in front
        assert any(line.startswith("bind ") for line in front)
        servers = [line for line in back if line.startswith("server ")]
        assert len(servers) == 3  # the three nodes tests/e2e/test_haproxy.py runs
        assert all(line.split()[2].endswith(f":{port}") for line in servers)
        defaults = [line for line in back if line.startswith("default-server")]
        assert any(" check" in line for line in defaults)
        if mode == "tcp":  # the nodes see the client through a PROXY v2 header, checks too
            assert any("send-proxy-v2" in line and "check-send-proxy" in line
                       for line in defaults)
    assert "option forwardfor" in s["frontend web"]
    web = s["backend web_nodes"]
    assert "option httpchk" in web
    assert any("uri /healthz" in line for line in web)
    assert "http-check expect status 200" in web


def test_haproxy_config_is_valid() -> None:
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if haproxy is None:
        assert _haproxy_sections()["frontend finger"]
        return
    result = subprocess.run([haproxy, "-c", "-f", str(DEPLOY / "haproxy.cfg")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


# -- configuration at rest (issue 12 item 15) ------------------------------------------

INSTALL_RE = re.compile(r"^\s*#?\s*install\s+(?P<args>.*)$")


def _installs(text: str) -> list[list[str]]:
    """The argument lists of every ``install`` command line (commented ones too)."""
    found = []
    for line in text.splitlines():
        match = INSTALL_RE.match(line)
        if match:
            found.append(shlex.split(match.group("args").split("#")[0]))
    return found


@pytest.mark.parametrize("name", ["README.md", "fingerplat.service"])
def test_configuration_is_installed_not_world_readable(name: str) -> None:
    """The TOML file may hold secrets ([[irc]] password): group-readable at most."""
    installs = _installs((DEPLOY / name).read_text(encoding="utf-8"))
    into_etc = [args for args in installs if any(a.startswith("/etc/fingerplat") for a in args)]
    assert into_etc, name
    for args in into_etc:
        mode = args[args.index("-m") + 1]
        assert int(mode, 8) & 0o007 == 0, (name, args)  # nothing for "other"
        if int(mode, 8) & 0o040:  # group-readable: then the group is the service's
            assert "-g" in args and args[args.index("-g") + 1] == "fingerplat", args


def test_containerfile_makes_its_configuration_group_readable_only() -> None:
    final = _containerfile_stages()[-1]
    runs = " ".join(arg for word, arg in final if word == "RUN")
    assert "chmod 0640 /etc/fingerplat/fingerplat.toml" in runs
    assert "chown -R root:fingerplat /etc/fingerplat" in runs


def test_example_config_shows_the_password_file() -> None:
    text = (DEPLOY / "fingerplat.toml").read_text(encoding="utf-8")
    assert 'password_file = "/etc/fingerplat/irc.pass"' in text
    assert not re.search(r"^\s*password\s*=", text, re.MULTILINE)
