"""The local password database as a source: the tutorial's "standard thing".

Which accounts count as people (documented in docs/proxy-and-sources.md):
a uid of at least 1000 (``MIN_UID``, the Debian/Fedora start of ordinary
accounts), not ``nobody`` (65534), and a real login shell (not empty, not
``nologin``, ``false``, ``sync``, ``halt`` or ``shutdown``). For each:

* full name: the first comma-separated field of GECOS;
* ``~/.plan``: the plan, cut to the 16 KiB plan limit (on a character boundary);
* ``~/.project``: its first line, the project;
* ``~/.nofinger`` present: the account is skipped, not imported; if it was
  imported before, it is hidden (``hidden`` is never cleared by this source,
  so an admin's choice to hide someone is not undone every interval).

Reading files in other people's home directories as root is a classic hole:
``ln -s /etc/shadow ~/.plan`` would publish the shadow file. So a dot file is
opened with ``O_NOFOLLOW | O_NONBLOCK``, must be a regular file owned by the
account itself, and is read only up to the limit.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass

from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.rules import PLAN_MAX_BYTES, USERNAME_RE

MIN_UID = 1000
NOBODY_UID = 65534
NON_LOGIN_SHELLS = frozenset({"nologin", "false", "sync", "halt", "shutdown"})
_PROJECT_READ_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    uid: int
    gecos: str
    home: str
    shell: str


def is_person(account: Account) -> bool:
    """The rule above: an ordinary uid and a shell someone can log in with."""
    if account.uid < MIN_UID or account.uid == NOBODY_UID:
        return False
    shell = account.shell.strip()
    return bool(shell) and os.path.basename(shell) not in NON_LOGIN_SHELLS


def read_dotfile(home: str, name: str, uid: int, limit: int) -> bytes | None:
    """``home/name`` if it is a regular file owned by ``uid``; at most ``limit + 1`` bytes."""
    path = os.path.join(home, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR, errno.EACCES):
            return None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != uid:
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit + 1)
    finally:
        os.close(fd)


def cut_utf8(data: bytes, limit: int) -> str:
    """Decode (invalid bytes replaced) and cut to at most ``limit`` UTF-8 bytes."""
    text = data[:limit].decode("utf-8", errors="replace")
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text


def account_record(line: int, account: Account) -> ImportRecord | None:
    """The import record for one account.

    With ``~/.nofinger`` it only hides an existing user (and is dropped when
    the name could not be a username anyway, so it never shows up as rejected).
    """
    home = account.home or "/nonexistent"
    if os.path.lexists(os.path.join(home, ".nofinger")):
        if not USERNAME_RE.fullmatch(account.name.lower()):
            return None
        return ImportRecord(line, account.name, hidden=True, create=False)
    full_name = account.gecos.split(",", 1)[0].strip()
    try:
        plan_bytes = read_dotfile(home, ".plan", account.uid, PLAN_MAX_BYTES)
        project_bytes = read_dotfile(home, ".project", account.uid, _PROJECT_READ_BYTES)
    except OSError as error:
        return ImportRecord(line, account.name,
                            error=f"cannot read dot files in {home}: {error.strerror}")
    plan = cut_utf8(plan_bytes, PLAN_MAX_BYTES).replace("\x00", "") if plan_bytes else ""
    project = ""
    if project_bytes:
        project = project_bytes.decode("utf-8", errors="replace").splitlines()[0].strip()
        project = project[:200]
    return ImportRecord(line, account.name, full_name=full_name, project=project, plan=plan)


def local_accounts() -> list[Account]:
    return [Account(p.pw_name, p.pw_uid, p.pw_gecos, p.pw_dir, p.pw_shell)
            for p in pwd.getpwall()]


def read_passwd() -> list[ImportRecord]:
    """Records for the people in the password database.

    ``line`` is the account's position in the database (its line in
    /etc/passwd when that is the only NSS source), so a report can point at it.
    """
    records: list[ImportRecord] = []
    for number, account in enumerate(local_accounts(), start=1):
        if not is_person(account):
            continue
        record = account_record(number, account)
        if record is not None:
            records.append(record)
    return records
