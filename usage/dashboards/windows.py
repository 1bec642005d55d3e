"""The time window of a dashboard: a preset (24 h, 7/30/90 days) or a date range, and its granularity.

Windows of whole UTC days read the daily rollups; hour-grained windows (24 h, or `interval=hour` over at
most 14 days) read the hourly ones. Either way the number of rollup rows read is bounded by the window,
never by the number of raw usage rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

PRESETS = {"24h": None, "7d": 7, "30d": 30, "90d": 90}
DEFAULT_PRESET = "7d"
MAX_DAYS = 366
MAX_HOURLY_DAYS = 14


class WindowError(ValueError):
    """A window the query string asks for that cannot be served; the message names the parameter."""


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    interval: str  # "hour" | "day"
    preset: str  # "24h" | "7d" | … | "" for a custom date range

    @property
    def hourly(self) -> bool:
        return self.interval == "hour"

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        """The last day shown (inclusive), for the date pickers."""
        return (self.end - timedelta(microseconds=1)).date()

    @property
    def label(self) -> str:
        if self.preset == "24h":
            return "last 24 hours"
        if self.preset:
            return f"last {PRESETS[self.preset]} days (UTC)"
        if self.first_day == self.last_day:
            return f"{self.first_day:%Y-%m-%d} (UTC)"
        return f"{self.first_day:%Y-%m-%d} to {self.last_day:%Y-%m-%d} (UTC)"

    def buckets(self) -> list[datetime]:
        """Every bucket start in the window, so that quiet hours or days show as zero."""
        step = timedelta(hours=1) if self.hourly else timedelta(days=1)
        out, t = [], self.start
        while t < self.end:
            out.append(t)
            t += step
        return out

    def query(self) -> dict[str, str]:
        """The query-string parameters that reproduce this window."""
        if self.preset:
            params = {"range": self.preset}
        else:
            params = {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()}
        if self.hourly and self.preset != "24h":
            params["interval"] = "hour"
        return params


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise WindowError(f"{name}: expected a date as YYYY-MM-DD, got {value[:40]!r}") from None


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def parse_window(params, *, now: datetime | None = None) -> Window:
    """The window a dashboard's query string asks for (`range`, or `from` + `to`, and `interval`)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = now.date()
    preset = params.get("range") or ""
    start_text, end_text = params.get("from") or "", params.get("to") or ""
    if start_text or end_text:
        first = _day(start_text, "from") if start_text else today
        last = _day(end_text, "to") if end_text else today
        if last < first:
            raise WindowError("to: must be on or after from")
        if (last - first).days >= MAX_DAYS:
            raise WindowError(f"to: a range covers at most {MAX_DAYS} days")
        start, end, preset = _midnight(first), _midnight(last) + timedelta(days=1), ""
    else:
        preset = preset or DEFAULT_PRESET
        if preset not in PRESETS:
            raise WindowError(f"range: expected one of {', '.join(PRESETS)}, got {preset[:20]!r}")
        if preset == "24h":
            end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            return Window(end - timedelta(hours=24), end, "hour", preset)
        end = _midnight(today) + timedelta(days=1)
        start = end - timedelta(days=PRESETS[preset])
    interval = params.get("interval") or ("hour" if end - start <= timedelta(days=2) else "day")
    if interval not in ("hour", "day"):
        raise WindowError(f"interval: expected hour or day, got {interval[:20]!r}")
    if interval == "hour" and end - start > timedelta(days=MAX_HOURLY_DAYS):
        raise WindowError(f"interval: hourly detail covers at most {MAX_HOURLY_DAYS} days; pick day")
    return Window(start, end, interval, preset)
