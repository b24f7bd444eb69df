"""The status-changes chart's geometry (drawn as SVG by a template)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from fingerplat.adapters.web.admin.charts import HEIGHT, WIDTH, daily_bars


def _days(*counts: int) -> list[tuple[date, int]]:
    start = date(2026, 12, 1)
    return [(start + timedelta(days=n), c) for n, c in enumerate(counts)]


def test_the_busiest_day_fills_the_height_and_an_empty_day_has_no_bar():
    chart = daily_bars(_days(0, 4, 1, 2))
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0 and heights[1] == HEIGHT
    assert heights[2] == HEIGHT / 4 and heights[3] == HEIGHT / 2
    assert all(bar.y + bar.height == HEIGHT for bar in chart.bars)  # standing on the axis
    assert chart.bars[-1].x + chart.bars[-1].width <= WIDTH
    assert chart.bars[1].label == "2026-12-02: 4 changes"
    assert chart.bars[2].label == "2026-12-03: 1 change"
    assert chart.summary == "7 status changes from 2026-12-01 to 2026-12-04, at most 4 a day"


def test_a_quiet_tenant_says_so_and_a_small_day_stays_visible():
    quiet = daily_bars(_days(0, 0, 0))
    assert quiet.summary == "0 status changes from 2026-12-01 to 2026-12-03"
    assert all(bar.height == 0 for bar in quiet.bars)
    busy = daily_bars(_days(1000, 1))
    assert busy.bars[1].height >= 2  # one change among a thousand is still seen
    with pytest.raises(ValueError):
        daily_bars([])
