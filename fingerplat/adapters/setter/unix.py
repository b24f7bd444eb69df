"""The UNIX-socket setter: local users set their own status without a token.

The kernel tells us who is on the other end of a UNIX socket (``SO_PEERCRED``:
pid, uid, gid of the connecting process), which cannot be forged by the
client. The uid's login name is mapped by the service to the user of the
same name in ``[setter] unix_tenant``; uid 0 (root) administers that tenant.
That is the tutorial's "setting message by local users", done safely.

The socket file is made mode 0666 so that every local user can connect: the
peer credential, not the file mode, is the access control. Restrict the
directory it lives in if only some users should reach it.

Besides the TCP commands (``AUTH`` still works and replaces the local
principal), the first line may be the tutorial's bare form: a user name alone,
then the status on the next line, accepted only for oneself (or by root).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pwd
import socket
import stat
import struct

from fingerplat.adapters.setter.server import READ_LIMIT, SetterListener
from fingerplat.adapters.setter.session import SetterSession
from fingerplat.config import SetterConfig
from fingerplat.domain.errors import AuthenticationFailed, InvalidInput, Unavailable
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.setter")

SOCKET_MODE = 0o666
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected UNIX socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
    pid, uid, gid = _CREDENTIALS.unpack(raw)
    return pid, uid, gid


class UnixSetterServer(SetterListener):
    """The peer-credential setter (a ``RunningListener`` named ``setter-unix``)."""

    name = "setter-unix"

    def __init__(self, service: FingerplatService, path: str, *, tenant: str,
                 settings: SetterConfig, metrics: Metrics) -> None:
        super().__init__(service, settings=settings, metrics=metrics)
        self.path = path
        self.tenant = tenant
        self._inode: int | None = None

    @property
    def addresses(self) -> list[str]:
        return [f"unix:{self.path}"]

    async def session_for(self, writer: asyncio.StreamWriter,
                          remote: str | None) -> SetterSession:
        sock = writer.get_extra_info("socket")
        pid, uid, _gid = peer_credentials(sock)
        remote = f"unix:pid={pid},uid={uid}"
        session = SetterSession(self.service, remote_addr=remote, home_tenant=self.tenant,
                                bare_form=True)
        try:
            os_user = pwd.getpwuid(uid).pw_name
        except KeyError:
            session.refusal = f"uid {uid} has no local account name"
            return session
        try:
            session.principal = await self.service.credentials.local_principal(
                self.tenant, os_user, uid,
                                                                   remote)
        except AuthenticationFailed as error:
            session.refusal = f"{error}; ask an admin to add you, or AUTH <token>"
        except Unavailable:
            session.refusal = "service temporarily unavailable"
        return session

    async def close(self) -> None:
        await super().close()
        self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        """Unlink the socket file if it is still ours (not one a new server made)."""
        with contextlib.suppress(OSError):
            if self._inode is not None and os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a crashed server; refuse anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InvalidInput(f"setter-unix: {path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a leftover
        return
    finally:
        probe.close()
    raise InvalidInput(f"setter-unix: {path} is in use by another running server")


async def start_unix_setter(
    service: FingerplatService,
    path: str,
    *,
    tenant: str,
    settings: SetterConfig,
    metrics: Metrics,
) -> UnixSetterServer:
    """Bind the peer-credential setter on ``path`` for users of ``tenant``."""
    tenant = (await service.public.resolve_tenant(tenant)).slug  # an unknown tenant fails the start
    _clear_stale_socket(path)
    setter = UnixSetterServer(service, path, tenant=tenant, settings=settings, metrics=metrics)
    try:
        server = await asyncio.start_unix_server(setter.handle, path, limit=READ_LIMIT)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        if error.errno == errno.ENOENT:
            reason += " (does the directory exist?)"
        raise InvalidInput(f"setter-unix: cannot listen on {path}: {reason.lower()}") from None
    setter.servers.append(server)
    os.chmod(path, SOCKET_MODE)  # world-connectable: the peer credential is the check
    setter._inode = os.lstat(path).st_ino
    return setter
