"""Audit changes in words: the same text in the CLI and the admin UI."""

from __future__ import annotations

from fingerplat.domain.changes import describe_changes, describe_value


def test_a_status_change_reads_before_arrow_after():
    assert describe_changes({"status": "away"}, {"status": "giving a talk"}) == (
        "status: away → giving a talk")


def test_values_are_words_not_python_reprs():
    text = describe_changes(
        {"hidden": False, "domains": [], "office": "", "list_users": True},
        {"hidden": True, "domains": ["acme.example", "acme.test"], "office": "B12",
         "list_users": True},
    )
    assert text == ("domains: none → acme.example, acme.test; hidden: no → yes; "
                    "office: (empty) → B12")
    assert "False" not in text and "[" not in text and "'" not in text


def test_a_creation_leaves_out_empty_fields_and_a_removal_says_what_was_there():
    assert describe_changes(None, {"full_name": "Bob", "office": "", "phone": None,
                                   "hidden": False}) == "full_name: Bob"
    assert describe_changes({"status": "away"}, None) == "status was away"
    assert describe_changes({"status": None}, {"status": "back"}) == "status: — → back"


def test_long_values_are_cut_with_an_ellipsis():
    value = describe_value("x" * 300)
    assert len(value) == 80 and value.endswith("…")


def test_stored_times_read_like_every_other_time():
    assert describe_changes(None, {"expires_at": "2027-01-06T16:55:21.951817+00:00"}) == (
        "expires_at: 2027-01-06 16:55 UTC")
    assert describe_value("2026-12-07") == "2026-12-07"  # a date is left as it is
