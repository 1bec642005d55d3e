"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, nothing to vendor.

Every chart sits next to a table holding the same numbers, so the page reads without the picture
(and without scripts); the SVG carries a <title> for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 24, 10, 24
COLOURS = ("#2563eb", "#059669", "#d97706", "#dc2626", "#7c3aed")


def compact(value) -> str:
    """1234567 → 1.23M: axis labels and bar labels."""
    if value is None:
        return "–"
    v = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            return f"{v / limit:.3g}{suffix}"
    if v and abs(v) < 1:
        return f"{v:.3g}"
    return f"{v:.4g}" if v != int(v) else str(int(v))


def _nice_max(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × a power of ten that is at least v: a round top for the y axis."""
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= v * (1 - 1e-12):
            return step * exp
    return 10 * exp


def _tick_label(t, hourly: bool) -> str:
    if isinstance(t, datetime):
        return t.strftime("%H:%M") if hourly else t.strftime("%m-%d")
    if isinstance(t, date):
        return t.strftime("%m-%d")
    return str(t)


def line_chart(xs: Sequence, series: Sequence[tuple[str, Sequence]], *, title: str, hourly: bool = False,
               area: bool = True, y_max=None, css_id: str = "") -> SafeString:
    """A line (or area) chart of one or more series sharing the x values `xs`."""
    n = len(xs)
    values = [float(v or 0) for _name, vs in series for v in vs]
    top = _nice_max(max([float(y_max or 0), *values, 0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v) -> float:
        return TOP + plot_h - plot_h * float(v or 0) / top

    parts = [
        f'<svg class="chart" {f"id={css_id!r} " if css_id else ""}viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet"><title>{escape(title)}</title>',
    ]
    for frac in (0, 0.5, 1):
        yy = TOP + plot_h - plot_h * frac
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" class="axis">'
                     f'{escape(compact(top * frac))}</text>')
    if n:
        every = max(1, n // 8)
        for i in range(0, n, every):
            anchor = "end" if i == n - 1 and n > 1 else "middle"
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" class="axis">'
                         f'{escape(_tick_label(xs[i], hourly))}</text>')
    for k, (name, vs) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs))
        if area and len(series) == 1 and n > 1:
            parts.append(f'<polygon points="{x(0):.1f},{y(0):.1f} {points} {x(n - 1):.1f},{y(0):.1f}" '
                         f'fill="{colour}" fill-opacity="0.15"/>')
        if n == 1:
            parts.append(f'<circle cx="{x(0):.1f}" cy="{y(vs[0]):.1f}" r="3" fill="{colour}"/>')
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
                     f'<title>{escape(name)}</title></polyline>')
    if len(series) > 1:
        for k, (name, _vs) in enumerate(series):
            xx = LEFT + 8 + k * 150
            parts.append(f'<rect x="{xx}" y="{TOP}" width="10" height="10" fill="{COLOURS[k % len(COLOURS)]}"/>'
                         f'<text x="{xx + 14}" y="{TOP + 9}" class="legend">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart(rows: Sequence[tuple[str, float | int | Decimal]], *, title: str, unit: str = "") -> SafeString:
    """Horizontal bars, largest first as given."""
    rows = list(rows)[:15]
    bar_h, gap, label_w = 18, 6, 220
    height = max(1, len(rows)) * (bar_h + gap) + 4
    top = max([float(v or 0) for _l, v in rows] + [0]) or 1.0
    plot_w = WIDTH - label_w - 80
    parts = [f'<svg class="chart bars" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value) in enumerate(rows):
        yy = i * (bar_h + gap) + 2
        w = plot_w * float(value or 0) / top
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{yy + 13}" text-anchor="end" class="axis">{escape(short)}</text>'
                     f'<rect x="{label_w}" y="{yy}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{COLOURS[0]}">'
                     f'<title>{escape(label)}: {escape(compact(value))}{escape(unit)}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{yy + 13}" class="axis">'
                     f'{escape(compact(value))}{escape(unit)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def burn_down_chart(days: Sequence[tuple[date, Decimal]], *, limit: Decimal, period_days: int,
                    title: str) -> SafeString:
    """Remaining budget day by day against the straight line that would spend it exactly by the reset."""
    remaining, left = [], Decimal(limit)
    for _d, used in days:
        left -= used
        remaining.append(max(left, Decimal(0)))
    xs = [d for d, _u in days]
    ideal = [float(limit) * (1 - (i + 1) / period_days) for i in range(len(days))]
    return line_chart(xs, [("remaining", remaining), ("even pace", ideal)], title=title, area=False,
                      y_max=float(limit))
