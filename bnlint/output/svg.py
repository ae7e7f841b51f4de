"""Line charts as inline SVG, for the HTML report: no plotting library, no script, no network.

A chart is a list of :class:`Series` drawn on one set of axes, linear or logarithmic in y.
Points whose value is missing, not finite, or (on a log axis) not positive break the line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 440, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 28, 42
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    dashed: bool = False


def _usable(y: float | None, log: bool) -> bool:
    return y is not None and math.isfinite(y) and (y > 0 or not log)


def _ticks(low: float, high: float, log: bool) -> list[float]:
    """Axis ticks: powers of ten on a log axis (every k-th when there are many), else about
    five round values."""
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        step = max(1, math.ceil((last - first) / 6))
        return [10.0 ** e for e in range(first, last + 1, step)]
    if high == low:
        return [low]
    raw = (high - low) / 5
    unit = 10 ** math.floor(math.log10(raw))
    step = next(m * unit for m in (1, 2, 5, 10) if m * unit >= raw)
    return [k * step for k in range(math.ceil(low / step), math.floor(high / step) + 1)]


def _label(value: float) -> str:
    return f"{value:.0e}".replace("e+0", "e").replace("e-0", "e-") \
        if abs(value) >= 1e4 or 0 < abs(value) < 1e-2 else f"{value:g}"


def line_chart(title: str, series: Sequence[Series], *, log_y: bool = False,
               x_label: str = "", y_label: str = "") -> str:
    """An SVG line chart of ``series`` (one colour each, dashed where asked)."""
    points = [(x, y) for s in series for x, y in zip(s.xs, s.ys) if _usable(y, log_y)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
             f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="title">'
             f'{escape(title)}</text>']
    if not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
                     'no values to draw</text></svg>')
        return "".join(parts)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    ticks = _ticks(min(ys), max(ys), log_y)
    y0, y1 = min(ticks[0], min(ys)), max(ticks[-1], max(ys))
    y1 = y1 if y1 > y0 else y0 + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        f = (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) if log_y \
            else (y - y0) / (y1 - y0)
        return TOP + (1 - f) * plot_h

    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
                 'class="frame"/>')
    for t in ticks:
        if y0 <= t <= y1:
            parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(t):.1f}" '
                         f'y2="{sy(t):.1f}" class="grid"/><text x="{LEFT - 4}" '
                         f'y="{sy(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    for t in _ticks(x0, x1, False):
        if x0 <= t <= x1 and float(t).is_integer():
            parts.append(f'<text x="{sx(t):.1f}" y="{TOP + plot_h + 14}" '
                         f'text-anchor="middle">{_label(t)}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
                 f'{escape(x_label)}</text><text x="12" y="{TOP + plot_h / 2}" '
                 f'text-anchor="middle" transform="rotate(-90 12 {TOP + plot_h / 2})">'
                 f'{escape(y_label)}</text>')
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        runs: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(s.xs, s.ys):
            if _usable(y, log_y):
                runs[-1].append((sx(x), sy(y)))
            elif runs[-1]:
                runs.append([])
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                             f'stroke-width="1.8"{dash}/>')
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{colour}"/>'
                         for x, y in run)
        parts.append(f'<rect x="{LEFT + 8}" y="{TOP + 8 + 15 * i}" width="12" height="3" '
                     f'fill="{colour}"/><text x="{LEFT + 24}" y="{TOP + 12 + 15 * i}">'
                     f'{escape(s.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
