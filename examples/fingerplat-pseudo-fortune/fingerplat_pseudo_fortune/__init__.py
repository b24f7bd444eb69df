"""``finger fortune``: an example fingerplat pseudo-user kind.

fingerplat finds this object through the entry point in pyproject.toml and
calls ``answer(query)`` for every lookup of a pseudo-user of kind
``fortune``. It may be a plain or an ``async`` function; it returns text or
lines. It gets no database handle: only the read-only query.
"""

from __future__ import annotations

from typing import Any

SAYINGS = (
    "The finger protocol was specified in 1977; your status is still news.",
    "A plan is a promise you make to whoever fingers you.",
    "Idle hands finger others.",
    "Whoever fingers the fingerer is fingered in turn.",
    "No plan survives first contact with a finger client.",
)


class Fortune:
    """The kind: a saying a day, the same on every node for a given day."""

    description = "a saying, a different one each day"
    cache_seconds = 60.0  # fingerplat may keep an answer this long

    def answer(self, query: Any) -> list[str]:
        saying = SAYINGS[query.now.toordinal() % len(SAYINGS)]
        lines = [f"Fortune for {query.tenant_name}:", f"  {saying}"]
        if query.verbose:
            lines.append(f"  (asked of {query.name}@{query.tenant_slug} at "
                         f"{query.now:%Y-%m-%d %H:%M} UTC)")
        return lines


fortune = Fortune()
