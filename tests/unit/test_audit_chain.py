"""The pure hash chain: canonical encoding and the walk that names the first break."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fingerplat.domain import audit_chain
from fingerplat.domain.audit_chain import ChainHead, StoredEvent, verify_chain

AT = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC)


def fields(n: int) -> dict:
    return {"at": AT + timedelta(seconds=n), "tenant_id": 3, "tenant": "acme",
            "actor": "cli:root", "channel": "cli", "action": "status.set",
            "target": f"u{n}@acme", "username": f"u{n}", "outcome": "ok",
            "before": {"status": None}, "after": {"status": f"s{n}", "a": [1, "é"]},
            "remote_addr": None, "detail": ""}


def chain(n: int) -> tuple[list[StoredEvent], ChainHead]:
    rows = [fields(i) for i in range(n)]
    links = audit_chain.link(rows, audit_chain.GENESIS)
    events = [StoredEvent(10 + i * 2, row, p, h) for i, (row, (p, h)) in
              enumerate(zip(rows, links, strict=True))]
    return events, ChainHead(events[-1].id, events[-1].hash or "")


def test_encoding_is_stable_across_representations() -> None:
    a = fields(1)
    b = {**a, "at": a["at"].astimezone(timezone(timedelta(hours=5))),
         "after": dict(reversed(list(a["after"].items())))}
    assert audit_chain.event_hash(a, "x") == audit_chain.event_hash(b, "x")
    assert audit_chain.event_hash(a, "x") != audit_chain.event_hash(a, "y")
    assert audit_chain.event_hash(a, "x") != audit_chain.event_hash({**a, "actor": "y"}, "x")
    assert audit_chain.chain_key(None) == "platform" and audit_chain.chain_key(7) == "tenant:7"


def test_link_of_a_batch_hashes_what_event_hash_hashes() -> None:
    """link() encodes the fields an import batch shares once; the bytes must not change."""
    shared_at = AT
    rows = []
    for n in range(40):
        row = fields(n)
        if n % 3:  # the same objects, as an import batch hands them over
            row["at"], row["tenant"], row["actor"] = shared_at, "acme", "cli:root"
        if n % 7 == 0:
            row.update(tenant_id=None, tenant=None, before=None, remote_addr="::1",
                       detail="line\nbreak \u2028 ünïcode \x00")
        if n % 5 == 0:
            row["at"] = AT.astimezone(timezone(timedelta(hours=-3)))
            row["action"] = "import.update"
        rows.append(row)
    prev = audit_chain.GENESIS
    expected = []
    for row in rows:
        digest = audit_chain.event_hash(row, prev)
        expected.append((prev, digest))
        prev = digest
    assert audit_chain.link(rows, audit_chain.GENESIS) == expected


def test_intact_chain() -> None:
    events, head = chain(5)
    report = verify_chain("tenant:3", events, head)
    assert report.problem is None and report.events == 5 and report.head_hash == head.last_hash
    assert verify_chain("tenant:3", [], None).problem is None


def test_each_kind_of_tampering_is_named() -> None:
    events, head = chain(5)
    altered = list(events)
    altered[2] = StoredEvent(events[2].id, {**events[2].fields, "actor": "x"},
                             events[2].prev_hash, events[2].hash)
    problem = verify_chain("c", altered, head).problem
    assert problem is not None and (problem.event_id, problem.kind) == (events[2].id, "altered")

    removed = events[:2] + events[3:]
    problem = verify_chain("c", removed, head).problem
    assert problem is not None and (problem.event_id, problem.kind) == (events[3].id, "removed")

    forged = StoredEvent(events[1].id + 1, fields(99), "0" * 64, "f" * 64)
    problem = verify_chain("c", [*events[:2], forged, *events[2:]], head).problem
    assert problem is not None and (problem.event_id, problem.kind) == (forged.id, "inserted")

    problem = verify_chain("c", events[:-1], head).problem
    assert problem is not None and (problem.event_id, problem.kind) == (events[-1].id, "removed")

    problem = verify_chain("c", events, None).problem
    assert problem is not None and problem.kind == "removed"
