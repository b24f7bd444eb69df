"""The pure hash chain: canonical encoding and the walk that names the first break."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

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
    links = []
    prev = audit_chain.GENESIS
    for row in rows:
        links.append((prev, prev := audit_chain.event_hash(row, prev)))
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


@pytest.mark.parametrize("shared", [
    audit_chain.BatchFields(AT, 3, "acme", "cli:root", "import", "ok", None, ""),
    audit_chain.BatchFields(AT.astimezone(timezone(timedelta(hours=-3))), None, None,
                            "web:\u00e9\"\\x", "web", "denied", "::1",
                            "line\nbreak \u2028 \u00fcn\u00efcode \x00 \ud83d\ude00"),
])
def test_link_batch_hashes_what_event_hash_hashes(shared) -> None:
    """link_batch() builds each event's bytes from shared and own parts; they must not change."""
    rows = []
    for n in range(40):
        before = None if n % 3 else {"status": f"old {n}", "hidden": False}
        after = {"full_name": "", "office": "\u00e9", "phone": "", "project": "",
                 "hidden": n % 2 == 0, "status": f's{n} "quoted" \\ \u2603', "plan_bytes": n}
        action = "import.update" if n % 5 == 0 else "import.create"
        rows.append((action, f"u{n}@acme", None if n == 7 else f"u{n}", before, after))
    prev = audit_chain.GENESIS
    expected = []
    for action, target, username, before, after in rows:
        event = {"at": shared.at, "tenant_id": shared.tenant_id, "tenant": shared.tenant,
                 "actor": shared.actor, "channel": shared.channel, "action": action,
                 "target": target, "username": username, "outcome": shared.outcome,
                 "before": before, "after": after, "remote_addr": shared.remote_addr,
                 "detail": shared.detail}
        digest = audit_chain.event_hash(event, prev)
        expected.append((prev, digest))
        prev = digest
    links = audit_chain.link_batch(shared, rows, audit_chain.GENESIS)
    assert [(p, h) for p, h, _, _ in links] == expected
    # The JSON texts handed back for storing hold the same values.
    assert [(None if b is None else json.loads(b), json.loads(a)) for _, _, b, a in links] == \
        [(before, after) for _, _, _, before, after in rows]
    assert audit_chain.link_batch(shared, [], "x") == []


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
