"""``fingerplat import users-file | passwd | json``: bring a tenant in line with a source.

The report (one summary line, then one line per rejected record with its line
number) goes to standard output, because it is what the command produces;
``--json`` prints it as one JSON document instead. Progress bars and
``--watch`` messages go to standard error. The exit status is 0 when every
record was taken and 1 when any was rejected (the others are still imported),
so ``fingerplat import users-file /etc/users || mail ...`` works.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fingerplat.adapters.sources.export import parse_json_export
from fingerplat.adapters.sources.passwd import read_passwd
from fingerplat.adapters.sources.users_file import (
    MAX_FILE_BYTES,
    file_signature,
    parse_users_file,
    read_users_file,
)
from fingerplat.domain.errors import FingerplatError, InvalidInput
from fingerplat.domain.imports import ImportRecord, ImportReport
from fingerplat.domain.model import Context
from fingerplat.domain.text import printable
from fingerplat_cli.app import AppState, handle_errors, pass_state, run
from fingerplat_cli.output import notice, print_json
from fingerplat_cli.tenants import tenant_option

if TYPE_CHECKING:
    from fingerplat.service import FingerplatService

# Below this many records a progress bar would only flicker.
PROGRESS_MIN_RECORDS = 2000

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the report as JSON.")


@click.group("import")
def command() -> None:
    """Import users and statuses from a users file, the local accounts or an export."""


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr for long input on a terminal; else nothing."""
    if total < PROGRESS_MIN_RECORDS or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(printable(label), total=total)
        yield lambda done: bar.update(task, completed=done)


def print_report(report: ImportReport, source: str, *, as_json: bool) -> None:
    if as_json:
        print_json({"source": source, **report.as_dict()})
        return
    click.echo(printable(f"{source}: {report.summary()}"))
    for rejection in sorted(report.rejected, key=lambda r: r.line):
        who = f" ({rejection.username})" if rejection.username else ""
        click.echo(printable(f"line {rejection.line}{who}: {rejection.reason}"))


async def _import(service: FingerplatService, ctx: Context, tenant: str | None,
                  records: Sequence[ImportRecord], label: str) -> ImportReport:
    with progress_bar(len(records), label) as progress:
        return await service.imports.import_records(ctx, tenant, records, progress=progress)


def _import_once(state: AppState, tenant: str | None, label: str, as_json: bool,
                 read: Callable[[], list[ImportRecord]]) -> None:
    async def use(service: FingerplatService) -> ImportReport:
        records = await asyncio.to_thread(read)
        return await _import(service, state.operator(), tenant, records, label)

    report = run(state.with_service(use))
    print_report(report, label, as_json=as_json)
    sys.exit(0 if report.ok else 1)


@command.command("users-file")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@tenant_option
@click.option("--watch", metavar="SECONDS", type=click.FloatRange(min=0.1),
              help="Keep running; re-read the file every SECONDS and import it when it changed.")
@json_option
@pass_state
@handle_errors
def users_file(state: AppState, path: Path, tenant: str | None, watch: float | None,
               as_json: bool) -> None:
    """Import PATH, lines of `user: status` (the tutorial's /etc/users).

    Blank lines and lines starting with # are ignored; `user:` alone clears the
    user's status. Users missing from the file are left alone. PATH - reads
    standard input.
    """
    if str(path) == "-":
        if watch is not None:
            raise InvalidInput("--watch needs a file, not standard input")
        def read_stdin() -> list[ImportRecord]:
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise InvalidInput(f"input is larger than {MAX_FILE_BYTES // 2**20} MiB")
            return parse_users_file(data)

        _import_once(state, tenant, "<stdin>", as_json, read_stdin)
        return
    if watch is None:
        _import_once(state, tenant, str(path), as_json, lambda: read_users_file(path))
        return
    ok = run(state.with_service(lambda s: _watch(s, state.operator(), tenant, path, watch,
                                                 as_json)))
    sys.exit(0 if ok else 1)


async def _watch(service: FingerplatService, ctx: Context, tenant: str | None, path: Path,
                 interval: float, as_json: bool) -> bool:
    """Import whenever the file's inode, size or mtime changes, until SIGINT/SIGTERM.

    Returns whether the last import took every line. A missing or unreadable
    file, or a database outage, is reported and retried at the next interval.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    notice(f"watching {path} every {interval:g} s (Ctrl-C to stop)")
    last: tuple[int, int, int] | None = None
    ok = True
    problem: str | None = None
    try:
        while not stop.is_set():
            signature = file_signature(path)
            try:
                if signature is None:
                    raise InvalidInput(f"users file {path} does not exist")
                if signature != last:
                    records = await asyncio.to_thread(read_users_file, path)
                    report = await _import(service, ctx, tenant, records, str(path))
                    print_report(report, str(path), as_json=as_json)
                    ok, last, problem = report.ok, signature, None
            except FingerplatError as error:
                if str(error) != problem:  # say it once, not every interval
                    notice(f"fingerplat: {error}; retrying every {interval:g} s")
                    problem = str(error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    notice("stopped watching")
    return ok


@command.command("passwd")
@tenant_option
@json_option
@pass_state
@handle_errors
def passwd(state: AppState, tenant: str | None, as_json: bool) -> None:
    """Import the local accounts: full name from GECOS, ~/.plan, ~/.project.

    Accounts count when their uid is at least 1000 (not nobody) and their
    shell is a login shell. Accounts with ~/.nofinger are skipped (and hidden
    if imported before). Line numbers in the report are positions in the
    password database.
    """
    _import_once(state, tenant, "passwd", as_json, read_passwd)


@command.command("json")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@tenant_option
@json_option
@pass_state
@handle_errors
def json_export(state: AppState, path: str, tenant: str | None, as_json: bool) -> None:
    """Import a `fingerplat export --format json` document (PATH or - for stdin).

    Everything the export holds is restored: profile, hidden, status and plan.
    Line numbers in the report are positions in the "users" list.
    """
    def read() -> list[ImportRecord]:
        if path == "-":
            return parse_json_export(sys.stdin.buffer.read())
        try:
            return parse_json_export(Path(path).read_bytes())
        except FileNotFoundError:
            raise InvalidInput(f"file {path} does not exist") from None

    _import_once(state, tenant, path, as_json, read)

