"""JSON text encoded many times with the same options, without rebuilding the encoder.

``json.dumps`` (and ``JSONEncoder.encode``) build a new C encoder on every
call, which is most of their cost for one small value: about 4.7 against
2.4 µs for an audit ``before``/``after`` dict on this machine (bench/README.md,
"Imports"), and an import encodes two per changed user. The C encoder
constructor, ``json.encoder.c_make_encoder``, is the one the standard library
itself calls; it is not documented, so it is used here and nowhere else, with
a fallback to ``json.dumps`` where it is missing (not CPython), and
tests/unit/test_json_text.py fails loudly if it goes away or writes different
text than ``json.dumps`` with the same options.

orjson is not used: the audit chain's hashes cover this text byte for byte
(ASCII escapes, ``1e+16`` float form, refusal of NaN), which orjson writes
differently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

try:
    from json.encoder import (  # type: ignore[attr-defined]
        c_make_encoder,
        encode_basestring,
        encode_basestring_ascii,
    )
except ImportError:  # pragma: no cover - CPython has all three
    c_make_encoder = None

Default = Callable[[Any], Any]


def reusable_encoder(*, ensure_ascii: bool = True, sort_keys: bool = False,
                     separators: tuple[str, str] = (", ", ": "), allow_nan: bool = True,
                     default: Default | None = None) -> Callable[[Any], str]:
    """``lambda value: json.dumps(value, **options)``, with the encoder built once.

    No check for circular structures (``check_circular=False``): the values
    are trees the service built, and a cycle would recurse until
    ``RecursionError`` instead of raising ``ValueError``.
    """
    item_separator, key_separator = separators
    if c_make_encoder is None:  # pragma: no cover
        return lambda value: json.dumps(value, ensure_ascii=ensure_ascii, sort_keys=sort_keys,
                                        separators=separators, allow_nan=allow_nan,
                                        check_circular=False, default=default)
    base = json.JSONEncoder(ensure_ascii=ensure_ascii, sort_keys=sort_keys,
                            separators=separators, allow_nan=allow_nan, default=default)
    encode = c_make_encoder(
        None, base.default, encode_basestring_ascii if ensure_ascii else encode_basestring,
        None, key_separator, item_separator, sort_keys, False, allow_nan)
    return lambda value: "".join(encode(value, 0))


def string(text: str) -> str:
    """One string as ``json.dumps(text)`` writes it (ASCII escapes, quoted)."""
    return encode_basestring_ascii(text)  # type: ignore[no-any-return]
