"""Dashboard time windows: presets, date ranges, granularity and the errors they answer."""

from datetime import UTC, datetime

import pytest

from usage.dashboards.windows import WindowError, parse_window

NOW = datetime(2026, 11, 23, 14, 35, tzinfo=UTC)

pytestmark = pytest.mark.smoke


def test_last_24_hours_is_hourly_and_includes_the_current_hour():
    w = parse_window({"range": "24h"}, now=NOW)
    assert (w.start, w.end, w.interval) == (datetime(2026, 11, 22, 15, tzinfo=UTC),
                                            datetime(2026, 11, 23, 15, tzinfo=UTC), "hour")
    assert len(w.buckets()) == 24


@pytest.mark.parametrize("preset,days", [("7d", 7), ("30d", 30), ("90d", 90)])
def test_day_presets_end_with_today(preset, days):
    w = parse_window({"range": preset}, now=NOW)
    assert w.interval == "day" and w.last_day.isoformat() == "2026-11-23"
    assert len(w.buckets()) == days


def test_date_range_is_inclusive_and_short_ranges_are_hourly():
    w = parse_window({"from": "2026-11-01", "to": "2026-11-01"}, now=NOW)
    assert (w.interval, len(w.buckets()), w.label) == ("hour", 24, "2026-11-01 (UTC)")
    w = parse_window({"from": "2026-11-01", "to": "2026-11-10"}, now=NOW)
    assert (w.interval, len(w.buckets())) == ("day", 10)
    assert parse_window(w.query(), now=NOW) == w


@pytest.mark.parametrize("params,message", [
    ({"range": "5y"}, "range:"),
    ({"from": "yesterday"}, "from:"),
    ({"from": "2026-11-10", "to": "2026-11-01"}, "to: must be on or after"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "at most 366 days"),
    ({"range": "90d", "interval": "hour"}, "hourly detail covers at most"),
    ({"range": "7d", "interval": "minute"}, "interval:"),
])
def test_bad_windows_name_the_parameter(params, message):
    with pytest.raises(WindowError, match=message):
        parse_window(params, now=NOW)
