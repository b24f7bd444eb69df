"""``serve --user/--group``: bind as root, then run as an unprivileged user.

Port 79 needs root (or ``CAP_NET_BIND_SERVICE``), but nothing after the
bind does; so ``serve`` resolves the names before starting (an unknown user
fails before any port is opened), binds every listener, then changes group
and user for good (``setgroups``, ``setgid``, ``setuid``: no way back).

The embedded SQLite database is a file the dropped user must keep writing,
together with the ``-wal``/``-shm`` files SQLite creates beside it. Choice
made here (documented in docs/operations.md): before dropping, the database
file and those sidecar files are given to the user; the directory is given
too only when it holds nothing but the database (a dedicated directory such
as ``/var/lib/fingerplat``), never a shared one such as ``/tmp`` or a home
directory. After dropping, access is checked, so a database the user cannot
write is one clear error at start instead of failures on the first write.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from fingerplat.domain.errors import InvalidInput

SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class RunAs:
    """The resolved target identity; ``uid`` None means "keep the user, change the group"."""

    user: str | None
    group: str | None
    uid: int | None
    gid: int
    home: str | None = None  # the user's home directory, for HOME after the switch


def resolve(user: str | None, group: str | None) -> RunAs | None:
    """Check the names and that we are root; None when no change was asked for."""
    if user is None and group is None:
        return None
    if os.geteuid() != 0:
        raise InvalidInput("--user/--group need fingerplat to be started as root")
    try:
        pw = pwd.getpwnam(user) if user else None
    except KeyError:
        raise InvalidInput(f"--user: no such user: {user}") from None
    try:
        gr = grp.getgrnam(group) if group else None
    except KeyError:
        raise InvalidInput(f"--group: no such group: {group}") from None
    if gr is not None:
        gid = gr.gr_gid
    else:
        assert pw is not None  # one of the two was given
        gid = pw.pw_gid
    return RunAs(user, group, pw.pw_uid if pw else None, gid, pw.pw_dir if pw else None)


def hand_over_sqlite(database: Path | None, run_as: RunAs) -> None:
    """Give the SQLite file (and a directory of its own) to the user we are becoming."""
    if database is None or run_as.uid is None:
        return
    database = database.resolve()
    ours = {database.name + suffix for suffix in ("", *SQLITE_SIDECARS)}
    for name in ours:
        path = database.parent / name
        if path.exists():
            os.chown(path, run_as.uid, run_as.gid)
    directory = database.parent
    if set(os.listdir(directory)) <= ours:
        os.chown(directory, run_as.uid, run_as.gid)


def become(run_as: RunAs) -> None:
    """Irreversibly switch group, then user (the group change needs root).

    ``HOME``, ``USER`` and ``LOGNAME`` follow the user, as with ``runuser``:
    libraries look under ``HOME`` after the switch. asyncpg does for every new
    connection (``~/.postgresql`` client certificates, ``~/.pgpass``), and
    with root's ``/root``, which the user may not enter, every connection
    opened after the switch failed with "permission denied".
    """
    os.setgroups([run_as.gid])
    os.setgid(run_as.gid)
    if run_as.uid is not None:
        os.setuid(run_as.uid)
        if run_as.home:
            os.environ["HOME"] = run_as.home
        if run_as.user:
            os.environ["USER"] = os.environ["LOGNAME"] = run_as.user


def check_sqlite_access(database: Path | None, run_as: RunAs) -> None:
    """After dropping: refuse to run on a database the new user cannot write."""
    if database is None:
        return
    directory = database.resolve().parent
    who = run_as.user or f"group {run_as.group}"
    if not os.access(database, os.R_OK | os.W_OK):
        raise InvalidInput(
            f"--user {who} cannot read and write the SQLite database {database}: "
            "give it to that user (chown) or use PostgreSQL"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidInput(
            f"--user {who} cannot write the SQLite database's directory {directory} "
            "(SQLite creates its -wal and -shm files there): move the database to a "
            "directory of its own owned by that user"
        )
