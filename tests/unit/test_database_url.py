"""database_url: the SPEC's multi-host form for failover, and never a password shown."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from fingerplat.domain.errors import InvalidInput
from fingerplat.repository.engine import (
    asyncpg_dsn,
    check_url,
    database_hosts,
    describe_database,
    is_sqlite,
    safe_url,
)

SPEC_FORM = "postgresql+asyncpg://u:s3cret@db1,db2:5433/fp?target_session_attrs=read-write"


def test_the_spec_form_becomes_sqlalchemys_host_list_with_every_port() -> None:
    url = check_url(SPEC_FORM)
    parsed = make_url(url)
    assert parsed.query["host"] == ("db1:5432", "db2:5433")
    assert parsed.query["target_session_attrs"] == "read-write"
    assert (parsed.username, parsed.password, parsed.database) == ("u", "s3cret", "fp")
    args = parsed.get_dialect()().create_connect_args(parsed)[1]  # what asyncpg gets
    assert (args["host"], args["port"]) == (["db1", "db2"], [5432, 5433])
    assert args["target_session_attrs"] == "read-write"
    assert not is_sqlite(SPEC_FORM)


def test_sqlalchemys_own_forms_and_single_hosts_are_kept_as_written() -> None:
    for url in ("postgresql+asyncpg://u@/fp?host=a:1&host=b:2&target_session_attrs=read-write",
                "postgresql+asyncpg://u@/fp?host=a,b&port=1,2",
                "postgresql+asyncpg://u:pw@db:5433/fp", "sqlite+aiosqlite:///x.db"):
        assert check_url(url) == url


def test_every_host_reaches_the_listener_dsn_before_the_database_name() -> None:
    """asyncpg keeps only the last ?host=, so LISTEN would never find a second host."""
    dsn = asyncpg_dsn(make_url(check_url(SPEC_FORM)))
    assert dsn == "postgresql://u:s3cret@db1:5432,db2:5433/fp?target_session_attrs=read-write"
    assert asyncpg_dsn(make_url("postgresql+asyncpg://u@db/fp")) == "postgresql://u@db/fp"


def test_descriptions_list_the_hosts_and_the_target_and_never_the_password() -> None:
    assert database_hosts(SPEC_FORM) == ["db1:5432", "db2:5433"]
    assert describe_database(SPEC_FORM) == (
        "PostgreSQL u@db1:5432,db2:5433/fp (target_session_attrs=read-write)")
    assert describe_database("postgresql+asyncpg://u@/fp?host=a,b&port=1,2") == (
        "PostgreSQL u@a:1,b:2/fp")
    assert describe_database("postgresql+asyncpg://u:pw@db/fp") == "PostgreSQL u@db/fp"
    assert safe_url(SPEC_FORM) == (
        "postgresql+asyncpg://u:***@db1:5432,db2:5433/fp?target_session_attrs=read-write")


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql+asyncpg://u:s3cret@db1,[::1]/fp", "IPv6"),
    ("postgresql+asyncpg://u:s3cret@db1:x,db2/fp", "invalid port 'x'"),
    ("postgresql+asyncpg://u:s3cret@db1:70000,db2/fp", "invalid port '70000'"),
    ("postgresql+asyncpg://u:s3cret@db1,,db2/fp", "invalid host ''"),
    ("postgresql+asyncpg://u:s3cret@/fp?host=a&host=b", "All ports are required"),
    ("postgresql+asyncpg://u:s3cret@db1,db2/fp?host=c:1", "lists hosts twice"),
    ("postgresql+asyncpg://u:s3cret@db/fp?target_session_attrs=primary-ish",
     "invalid target_session_attrs 'primary-ish'"),
    ("postgresql+asyncpg://u:s3cret@db:port/fp", "invalid database URL"),
])
def test_bad_host_lists_are_refused_naming_the_problem_without_the_password(
    url: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_url(url)
    assert says in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_failover_under_way_reads_as_database_unreachable() -> None:
    """What asyncpg raises while no listed host is a primary, or the one tried is
    stopping, becomes the adapters' "temporarily unavailable", never a traceback."""
    import asyncpg

    from fingerplat.domain.errors import Unavailable
    from fingerplat.repository.uow import translate_db_error

    for error in (
        asyncpg.exceptions.TargetServerAttributeNotMatched(
            "None of the hosts match the target attribute requirement"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        ConnectionRefusedError(111, "Connect call failed"),
    ):
        mapped = translate_db_error(error)
        assert isinstance(mapped, Unavailable) and str(mapped) == "database unreachable"
    assert translate_db_error(asyncpg.exceptions.DivisionByZeroError("division by zero")) is None


def test_the_hot_read_pool_connects_to_every_listed_host():
    # A cache miss's read has a pool of its own: it must find the new primary
    # after a failover as the engine does (it once kept only one host).
    from fingerplat.repository.hot_reads import PgHotReads

    pool = PgHotReads("postgresql+asyncpg://u:pw@h1,h2:5433/db?target_session_attrs=read-write",
                      max_size=1, connect_timeout=1, command_timeout=1)
    dsn = pool._dsn
    assert dsn.startswith("postgresql://u:pw@h1:5432,h2:5433/db")
    assert "target_session_attrs=read-write" in dsn
