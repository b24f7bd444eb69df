"""A bar chart as plain SVG geometry, drawn by a template: no JavaScript, no library.

The numbers are laid out here (bar positions and heights in a fixed view box)
and the template writes the ``<svg>``; Jinja escapes every label, and each bar
carries a ``<title>`` so hovering shows its day and count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH = 600
HEIGHT = 120
GAP = 2


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # "2026-12-07: 3 changes"


@dataclass(frozen=True, slots=True)
class BarChart:
    bars: tuple[Bar, ...]
    total: int
    peak: int
    first: str
    last: str
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def summary(self) -> str:
        """What the chart says, for screen readers and as its caption."""
        changes = "change" if self.total == 1 else "changes"
        return (f"{self.total} status {changes} from {self.first} to {self.last}"
                + (f", at most {self.peak} a day" if self.total else ""))


def daily_bars(points: list[tuple[date, int]]) -> BarChart:
    """One bar per day, scaled to the busiest day (a day with changes is never invisible)."""
    if not points:
        raise ValueError("a chart needs at least one day")
    peak = max(count for _, count in points)
    step = WIDTH / len(points)
    bars = []
    for n, (day, count) in enumerate(points):
        height = 0.0 if count == 0 else max(2.0, HEIGHT * count / peak)
        noun = "change" if count == 1 else "changes"
        bars.append(Bar(x=round(n * step + GAP / 2, 2), y=round(HEIGHT - height, 2),
                        width=round(max(step - GAP, 1.0), 2), height=round(height, 2),
                        label=f"{day.isoformat()}: {count} {noun}"))
    return BarChart(bars=tuple(bars), total=sum(c for _, c in points), peak=peak,
                    first=points[0][0].isoformat(), last=points[-1][0].isoformat())
