"""The TOML configuration file (SPEC section 10), validated strictly.

Unknown keys and wrong types are refused at start with the key's dotted name,
so a typo never silently falls back to a default. Command-line options are
merged over the file by the CLI; defaults live here.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from fingerplat import CONFIG_ENV as CONFIG_ENV  # re-exported: defined light for the CLI
from fingerplat import DATABASE_URL_ENV as DATABASE_URL_ENV
from fingerplat.domain.errors import InvalidInput

Seconds = StrictInt | StrictFloat

_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
               "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
               "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes from ``"64MB"``, ``"1.5 GiB"``, ``"512k"`` (binary multiples); "auto" is 0."""
    if text.strip().lower() == "auto":
        return 0
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid size {text!r}: a number with a unit such as "
                         '"64MB" or "1GiB", or "auto"')
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_address(text: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT``; port 0 asks the OS for a free port."""
    value = text.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise InvalidInput(f"invalid listen address {text!r}: expected HOST:PORT")
    host = host or default_host
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise InvalidInput(f"invalid listen address {text!r}: port must be 0-65535")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class PublicUrl:
    """``scheme://authority/path``: where the platform is reached from outside."""

    scheme: str
    authority: str  # host[:port], lower-case
    host: str  # the host name alone (no port, no brackets)
    path: str = ""  # a prefix without the trailing slash (usually empty)

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


def parse_public_url(text: str) -> PublicUrl:
    """An ``http(s)://host[:port][/path]`` URL, or ValueError saying what is wrong."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r} needs a host name and no user name or password")
    if parts.query or parts.fragment:
        raise ValueError(f"{text!r} must not have a query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    host = parts.hostname.lower().rstrip(".")
    shown = f"[{host}]" if ":" in host else host
    authority = f"{shown}:{port}" if port is not None else shown
    return PublicUrl(parts.scheme, authority, host, parts.path.rstrip("/"))


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListenSpec(_Section):
    address: StrictStr
    tenant: StrictStr | None = None

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        try:
            parse_address(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_address(self.address)


def _listen_list(value: Any) -> Any:
    if isinstance(value, list):
        return [{"address": v} if isinstance(v, str) else v for v in value]
    return value


#: The share of ``max_connections`` one client address may hold when
#: ``max_connections_per_address`` is not set: a quarter, but at least this
#: many (a small ``max_connections`` is not cut down to one per address).
PER_ADDRESS_FLOOR = 16


def per_address_share(max_connections: int, configured: int | None) -> int:
    """Connections one client address may hold open at once (SPEC section 11).

    ``configured`` (``max_connections_per_address``) wins; otherwise a quarter
    of ``max_connections``, at least ``PER_ADDRESS_FLOOR``, never more than
    ``max_connections``.
    """
    if configured is not None:
        return min(configured, max_connections)
    return min(max_connections, max(max_connections // 4, PER_ADDRESS_FLOOR))


class FingerConfig(_Section):
    listen: list[ListenSpec] = Field(default_factory=lambda: [ListenSpec(address="127.0.0.1:1079")])
    idle_timeout: Seconds = 10
    max_connections: StrictInt = Field(1000, ge=1)
    max_connections_per_address: StrictInt | None = Field(None, ge=1)
    proxy_protocol: StrictBool = False
    rate_limit: Seconds = Field(20, gt=0)
    max_listed_users: StrictInt = Field(200, ge=1)
    access_log: StrictBool = True
    # The listener answers a query whose answer is kept from the socket it
    # accepted, with no transport (adapters/finger/server.py). False: every
    # connection goes to the asyncio protocol (the normal path, for comparison).
    answer_on_accept: StrictBool = True

    _listen = field_validator("listen", mode="before")(_listen_list)


class SetterConfig(_Section):
    listen: list[ListenSpec] = Field(default_factory=lambda: [ListenSpec(address="127.0.0.1:1179")])
    unix_socket: StrictStr | None = None
    unix_tenant: StrictStr = "default"
    idle_timeout: Seconds = 300
    # An anonymous session must AUTH within this many seconds (blank lines
    # do not count as activity); then it is closed.
    auth_timeout: Seconds = Field(30, gt=0)
    max_connections: StrictInt = Field(200, ge=1)
    max_connections_per_address: StrictInt | None = Field(None, ge=1)
    proxy_protocol: StrictBool = False

    _listen = field_validator("listen", mode="before")(_listen_list)


class WebConfig(_Section):
    listen: list[ListenSpec] = Field(default_factory=lambda: [ListenSpec(address="127.0.0.1:8000")])
    tls_cert: StrictStr | None = None
    tls_key: StrictStr | None = None
    templates: StrictStr | None = None
    max_body_bytes: StrictInt = Field(64 * 1024, ge=1024)
    # Where the platform is reached from outside ("https://finger.example.org"):
    # absolute links (WebFinger) are built from it, never from the Host header.
    # Default: the first web listen address.
    public_url: StrictStr | None = None
    max_connections: StrictInt = Field(1000, ge=1)
    max_connections_per_address: StrictInt | None = Field(None, ge=1)
    proxy_protocol: StrictBool = False
    # The front door answers requests for kept pages before aiohttp
    # (adapters/web/front_door.py). False: every request goes through aiohttp.
    front_door: StrictBool = True

    _listen = field_validator("listen", mode="before")(_listen_list)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parse_public_url(value)  # ValueError names what is wrong
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> WebConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("web.tls_cert and web.tls_key must be given together")
        if self.proxy_protocol and self.tls_cert is not None:
            # The PROXY header comes before the TLS handshake; the listener
            # reads it above TLS, so the two cannot be combined here.
            raise ValueError("web.proxy_protocol cannot be combined with web.tls_cert/tls_key: "
                             "terminate TLS at the proxy (or use X-Forwarded-For)")
        return self


class ForwardingConfig(_Section):
    port: StrictInt = Field(79, ge=1, le=65535)
    timeout: Seconds = Field(5, gt=0)
    max_hops: StrictInt = Field(3, ge=1, le=10)
    max_bytes: StrictInt = Field(65536, ge=256)
    allow: list[StrictStr] = Field(default_factory=list)

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP network like 127.0.0.2/32") from None
        return value


def _check_networks(value: list[str], example: str) -> list[str]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP network like {example}") from None
    return value


class NetworkConfig(_Section):
    """Who may speak for a client: PROXY protocol headers and X-Forwarded-For (SPEC 12)."""

    trusted_proxies: list[StrictStr] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _check_networks(value, "10.0.0.0/8")


class IrcConfig(_Section):
    server: StrictStr
    port: StrictInt = Field(6697, ge=1, le=65535)
    tls: StrictBool = True
    nick: StrictStr = "fingerbot"
    channels: list[StrictStr] = Field(default_factory=list)
    tenant: StrictStr = "default"
    # The server password: in the file, or (better) from a file of its own or
    # an environment variable, so the configuration need not hold a secret.
    password: StrictStr | None = None
    password_file: StrictStr | None = None
    password_env: StrictStr | None = None
    tls_verify: StrictBool = True
    # The secret read from password_file or password_env, each time the
    # configuration is loaded (at start and on SIGHUP); never dumped or shown.
    _secret: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_password(self) -> IrcConfig:
        given = [k for k in ("password", "password_file", "password_env")
                 if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of password, password_file and password_env "
                             f"(found {' and '.join(given)})")
        if self.password_file is not None:
            self._secret = _secret_from_file(self.password_file)
        elif self.password_env is not None:
            self._secret = _secret_from_env(self.password_env)
        return self

    @property
    def server_password(self) -> str | None:
        """The IRC server password, wherever it came from (None: no password)."""
        return self._secret if self._secret is not None else self.password


def _secret_from_file(path: str) -> str:
    """The file's content without its final line end; a clear error naming the key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"password_file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"password_file {path} cannot be read: {reason}") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ValueError(f"password_file {path} is empty")
    return secret


def _secret_from_env(name: str) -> str:
    secret = os.environ.get(name)
    if secret is None:
        raise ValueError(f"password_env: the environment variable {name} is not set")
    if not secret:
        raise ValueError(f"password_env: the environment variable {name} is empty")
    return secret


class SourceConfig(_Section):
    kind: Literal["users-file", "passwd", "web"]
    tenant: StrictStr = "default"
    path: StrictStr | None = None
    url: StrictStr | None = None
    interval: Seconds = Field(30, gt=0)
    timeout: Seconds = Field(5, gt=0)
    cache_ttl: Seconds | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> SourceConfig:
        if self.kind == "users-file" and not self.path:
            raise ValueError("a users-file source needs path")
        if self.kind == "web" and (not self.url or "{user}" not in self.url):
            raise ValueError("a web source needs url containing {user}")
        return self


class DatabaseConfig(_Section):
    pool_size: StrictInt = Field(10, ge=1)
    max_overflow: StrictInt = Field(10, ge=0)
    pool_timeout: Seconds = Field(5, gt=0)
    connect_timeout: Seconds = Field(5, gt=0)
    command_timeout: Seconds = Field(10, gt=0)
    # The public read cache of `serve`, exact through change events
    # (docs/performance.md): a size in bytes with a unit ("64MB", "1GiB"),
    # "auto" (the default: 1/32 of the machine's memory, 16-128 MiB), or, as
    # before this was in bytes, a bare number of entries; 0: off.
    read_cache: StrictInt | StrictStr = "auto"

    @field_validator("read_cache")
    @classmethod
    def _read_cache(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("read_cache must be 0 (off), a number of entries, "
                                 'a size such as "64MB", or "auto"')
            return value
        parse_size(value)
        return value.strip()

    def read_cache_limits(self) -> tuple[int | None, int | None] | None:
        """(max bytes, max entries) for the read cache; None: off; None inside: default/none."""
        value = self.read_cache
        if isinstance(value, int):
            return None if value == 0 else (sys.maxsize, value)
        if value.lower() == "auto":
            return (None, None)
        size = parse_size(value)
        return None if size == 0 else (size, None)


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class PrivacyConfig(_Section):
    """``[privacy]`` (issue 16): how long the opt-in finger log keeps a lookup."""

    finger_log_days: StrictInt = Field(7, ge=1, le=3650)


class Config(_Section):
    database_url: StrictStr | None = None
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    finger: FingerConfig = Field(default_factory=FingerConfig)
    setter: SetterConfig = Field(default_factory=SetterConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    forwarding: ForwardingConfig = Field(default_factory=ForwardingConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    irc: list[IrcConfig] = Field(default_factory=list)
    source: list[SourceConfig] = Field(default_factory=list)
    log: LogConfig = Field(default_factory=LogConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)


def _field_names() -> set[str]:
    names: set[str] = set()
    for model in (Config, DatabaseConfig, FingerConfig, SetterConfig, WebConfig,
                  ForwardingConfig, NetworkConfig, IrcConfig, SourceConfig, LogConfig, ListenSpec,
                  PrivacyConfig):
        names.update(model.model_fields)
    return names


def _describe(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    known = _field_names()
    # pydantic adds union-member labels ("int", "float") to the location: drop them.
    parts = [str(p) for p in first["loc"] if isinstance(p, int) or p in known]
    if first["type"] == "extra_forbidden" and first["loc"] and str(first["loc"][-1]) not in parts:
        parts.append(str(first["loc"][-1]))
    key = ".".join(parts)
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{origin}: unknown key {key!r}"
    message = first["msg"].removeprefix("Value error, ")
    return f"{origin}: key {key!r}: {message}" if key else f"{origin}: {message}"


def from_mapping(data: dict[str, Any], origin: str = "configuration") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_describe(exc, origin)) from None


def load(path: str | os.PathLike[str] | None) -> Config:
    """Read a TOML file (or return the defaults when ``path`` is None)."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"config file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"config file {file} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"config file {file} is not valid TOML: {exc}") from None
    return from_mapping(data, str(file))


def with_overrides(config: Config, **overrides: Any) -> Config:
    """A copy of ``config`` with dotted-key overrides (``finger.listen=[...]``) applied."""
    data = config.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return from_mapping(data, "command line")
