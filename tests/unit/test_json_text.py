"""The reused JSON encoder writes exactly what ``json.dumps`` writes with the same options.

The audit chain hashes this text byte for byte, so a difference would make
stored chains look tampered with; these tests fail loudly if the standard
library's C encoder constructor goes away or changes behaviour.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fingerplat.domain import json_text

scalars = (st.none() | st.booleans() | st.integers() | st.text()
           | st.floats(allow_nan=False, allow_infinity=False))
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)

CANONICAL = {"ensure_ascii": True, "sort_keys": True, "separators": (",", ":"),
             "allow_nan": False}


def test_the_standard_librarys_c_encoder_is_the_one_in_use() -> None:
    # If CPython drops or renames it, this fails instead of imports silently slowing down.
    from json.encoder import c_make_encoder  # type: ignore[attr-defined]

    assert c_make_encoder is not None
    assert json_text.c_make_encoder is c_make_encoder


@given(trees)
def test_canonical_options_write_what_json_dumps_writes(value: object) -> None:
    assert json_text.reusable_encoder(**CANONICAL)(value) == json.dumps(value, **CANONICAL)


@given(trees)
def test_default_options_write_what_json_dumps_writes(value: object) -> None:
    assert json_text.reusable_encoder()(value) == json.dumps(value)


@given(st.text())
def test_a_string_is_quoted_and_escaped_as_json_dumps_does(text: str) -> None:
    assert json_text.string(text) == json.dumps(text)


def test_nan_is_refused_where_json_dumps_refuses_it() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        json_text.reusable_encoder(**CANONICAL)({"x": math.nan})


def test_an_unknown_type_goes_to_default() -> None:
    def refuse(value: object) -> object:
        raise TypeError(f"no {type(value).__name__}")

    encode = json_text.reusable_encoder(default=refuse)
    with pytest.raises(TypeError, match="no set"):
        encode({"x": {1}})
    assert json_text.reusable_encoder(default=sorted)({"x": {2, 1}}) == '{"x": [1, 2]}'
