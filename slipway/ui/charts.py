"""Charts drawn on the server as SVG: metric curves (one run, or several overlaid), a scatter
of one quantity against another, and parallel coordinates.

Drawing on the server keeps chart libraries out of the browser, gives the same picture inline
in a page and as a ``.svg`` file, and means a page with charts works without JavaScript (the
page script only adds drag-to-zoom). This module writes markup by hand, so escaping is its job:
every piece of text that came from data goes through :func:`markupsafe.escape`, and numbers are
formatted here, never copied from input.

The functions are pure (points in, SVG text out); fetching the points is
:mod:`slipway.ui.history`'s job.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from markupsafe import Markup, escape

__all__ = [
    "PALETTE",
    "Dimension",
    "Series",
    "color",
    "downsample",
    "ema",
    "line_chart",
    "linear_ticks",
    "parallel_chart",
    "scatter_chart",
]

Point = tuple[float, float]
XKind = Literal["number", "time"]

# Ten hues that stay readable on both the light and the dark background.
PALETTE = (
    "#2f6fdf",
    "#d9412b",
    "#1f9d55",
    "#c98a00",
    "#8b4fd8",
    "#0e93a8",
    "#d23f8c",
    "#6b8e23",
    "#b5651d",
    "#5f6b7a",
)

WIDTH = 760
PLOT_HEIGHT = 300
MARGIN_LEFT = 70
MARGIN_RIGHT = 20
MARGIN_TOP = 30
MARGIN_BOTTOM = 46
LEGEND_ROW = 18
LEGEND_ITEM = 186
LABEL_CHARS = 26

# Only for a chart served as a file of its own: inline charts take the page's stylesheet.
_STANDALONE_STYLE = (
    "<style>"
    "text{font:11px system-ui,sans-serif;fill:#1b1f24}"
    ".axis{stroke:#5b6570}.gridline{stroke:#d8dde3}.frame{fill:none;stroke:#d8dde3}"
    "@media (prefers-color-scheme:dark){svg{background:#0f1419}text{fill:#e6edf3}"
    ".axis{stroke:#9aa5b1}.gridline,.frame{stroke:#30363d}}"
    "</style>"
)


def color(index: int) -> str:
    """The colour of the ``index``-th series (the palette repeats)."""
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    """One curve: its label (a run's name), its points sorted by x, and the unsmoothed points
    (drawn faint under the curve) when smoothing is on."""

    label: str
    points: Sequence[Point]
    color: str = PALETTE[0]
    raw: Sequence[Point] = ()
    href: str | None = None


# -- numbers ----------------------------------------------------------------------------------


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction: ``weight`` 0 leaves the values as they
    are, 0.99 smooths hard. Correcting the bias keeps the first points from being pulled
    towards zero, which an uncorrected average does while it has seen little data."""
    if weight <= 0:
        return list(values)
    out: list[float] = []
    acc = 0.0
    for n, value in enumerate(values, start=1):
        acc = acc * weight + (1 - weight) * value
        out.append(acc / (1 - weight**n))
    return out


def downsample(points: Sequence[Point], limit: int) -> list[Point]:
    """At most ``limit`` of ``points`` (sorted by x): the first, the last, and the lowest and
    highest point of each of ``(limit - 2) // 2`` equal slices in between, so spikes survive
    where taking every n-th point would drop them."""
    if len(points) <= limit:
        return list(points)
    if limit < 4:
        return [points[0], points[-1]][:limit]
    inner = points[1:-1]
    buckets = (limit - 2) // 2
    size = len(inner) / buckets
    keep: list[Point] = [points[0]]
    for b in range(buckets):
        chunk = range(int(b * size), int((b + 1) * size))
        if not chunk:
            continue
        low = min(chunk, key=lambda i: inner[i][1])
        high = max(chunk, key=lambda i: inner[i][1])
        keep.extend(inner[i] for i in sorted({low, high}))
    keep.append(points[-1])
    return keep


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def linear_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round values between ``lo`` and ``hi``, about ``count`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    step = _nice_step(hi - lo, count)
    first = math.ceil(lo / step) * step
    ticks: list[float] = []
    value = first
    while value <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten in range, or round values when the range spans less than a decade."""
    decades = [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    inside = [t for t in decades if lo <= t <= hi]
    if len(inside) >= 2:
        stride = max(1, math.ceil(len(inside) / 8))
        return inside[::stride]
    return [t for t in linear_ticks(lo, hi, 4) if t > 0]


def number_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _time_label(ms: float, span_ms: float) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    if span_ms > 2 * 86_400_000:
        return moment.strftime("%m-%d %H:%M")
    if span_ms > 600_000:
        return moment.strftime("%H:%M")
    return moment.strftime("%H:%M:%S")


class _Scale:
    """Maps a data range onto a pixel range, linearly or by log10."""

    def __init__(self, lo: float, hi: float, start: float, end: float, log: bool = False) -> None:
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        span = self.hi - self.lo
        return self.start + (v - self.lo) / span * (self.end - self.start)


def _padded(lo: float, hi: float, log: bool) -> tuple[float, float]:
    """A range with room around the data; a flat range is widened so it can be drawn."""
    if log:
        if hi <= lo:
            return lo / 2, hi * 2
        pad = (math.log10(hi) - math.log10(lo)) * 0.05
        return lo / 10**pad, hi * 10**pad
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


# -- svg pieces -------------------------------------------------------------------------------


def _f(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}"


def _text(value: object) -> str:
    return str(escape(str(value)))


def _short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


@dataclass
class _Svg:
    """An SVG document under construction."""

    title: str
    height: int
    standalone: bool
    attrs: dict[str, str] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)

    def add(self, *parts: str) -> None:
        self.parts.extend(parts)

    def finish(self, description: str) -> Markup:
        extra = "".join(f' {key}="{_text(value)}"' for key, value in self.attrs.items())
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {WIDTH} {self.height}" width="{WIDTH}" height="{self.height}" '
            f'aria-label="{_text(self.title)}"{extra}>'
            f"<title>{_text(self.title)}</title><desc>{_text(description)}</desc>"
        )
        style = _STANDALONE_STYLE if self.standalone else ""
        body = "".join(self.parts)
        return Markup(head + style + body + "</svg>")  # noqa: S704 - every data text is escaped


def _legend_height(count: int) -> int:
    per_row = max(1, (WIDTH - MARGIN_LEFT) // LEGEND_ITEM)
    return math.ceil(count / per_row) * LEGEND_ROW + 8 if count else 0


def _legend(svg: _Svg, items: Sequence[tuple[str, str, str | None]], top: float) -> None:
    """Coloured swatches with labels (full label in a tooltip), in rows under the plot."""
    per_row = max(1, (WIDTH - MARGIN_LEFT) // LEGEND_ITEM)
    svg.add('<g class="legend">')
    for i, (label, hue, note) in enumerate(items):
        x = MARGIN_LEFT + (i % per_row) * LEGEND_ITEM
        y = top + (i // per_row) * LEGEND_ROW
        text = _short(label) + (f" {note}" if note else "")
        svg.add(
            f'<g class="legend-item" data-label="{_text(label)}"><title>{_text(label)}</title>'
            f'<rect x="{_f(x)}" y="{_f(y - 8)}" width="14" height="4" fill="{hue}"/>'
            f'<text x="{_f(x + 20)}" y="{_f(y - 2)}">{_text(text)}</text></g>'
        )
    svg.add("</g>")


def _notes(svg: _Svg, notes: Sequence[str], top: float) -> None:
    for i, note in enumerate(notes):
        y = _f(top + i * 14)
        svg.add(f'<text class="chart-note" x="{MARGIN_LEFT}" y="{y}">{_text(note)}</text>')


def _frame(svg: _Svg, left: float, top: float, right: float, bottom: float) -> None:
    svg.add(
        f'<rect class="frame" x="{_f(left)}" y="{_f(top)}" width="{_f(right - left)}" '
        f'height="{_f(bottom - top)}" fill="none"/>'
    )


def _x_axis(
    svg: _Svg,
    scale: _Scale,
    ticks: Iterable[tuple[float, str]],
    top: float,
    bottom: float,
    label: str,
) -> None:
    for value, text in ticks:
        x = scale(value)
        svg.add(
            f'<line class="gridline" x1="{_f(x)}" y1="{_f(top)}" x2="{_f(x)}" y2="{_f(bottom)}"/>'
            f'<text x="{_f(x)}" y="{_f(bottom + 14)}" text-anchor="middle">{_text(text)}</text>'
        )
    svg.add(
        f'<line class="axis" x1="{_f(scale.start)}" y1="{_f(bottom)}" x2="{_f(scale.end)}" '
        f'y2="{_f(bottom)}"/>'
        f'<text class="axis-label" x="{_f((scale.start + scale.end) / 2)}" '
        f'y="{_f(bottom + 32)}" text-anchor="middle">{_text(label)}</text>'
    )


def _y_axis(
    svg: _Svg,
    scale: _Scale,
    ticks: Iterable[tuple[float, str]],
    left: float,
    right: float,
    label: str,
) -> None:
    for value, text in ticks:
        y = scale(value)
        svg.add(
            f'<line class="gridline" x1="{_f(left)}" y1="{_f(y)}" x2="{_f(right)}" y2="{_f(y)}"/>'
            f'<text x="{_f(left - 6)}" y="{_f(y + 4)}" text-anchor="end">{_text(text)}</text>'
        )
    svg.add(
        f'<line class="axis" x1="{_f(left)}" y1="{_f(scale.start)}" x2="{_f(left)}" '
        f'y2="{_f(scale.end)}"/>'
    )
    if label:
        svg.add(
            f'<text class="axis-label" x="{_f(left)}" y="{MARGIN_TOP - 10}" '
            f'text-anchor="start">{_text(label)}</text>'
        )


def _path(points: Sequence[Point], xs: _Scale, ys: _Scale) -> str:
    return "M" + "L".join(f"{_f(xs(x))} {_f(ys(y))}" for x, y in points)


def _empty(svg: _Svg, message: str, notes: Sequence[str]) -> Markup:
    bottom = MARGIN_TOP + PLOT_HEIGHT
    _frame(svg, MARGIN_LEFT, MARGIN_TOP, WIDTH - MARGIN_RIGHT, bottom)
    svg.add(
        f'<text class="chart-empty" x="{WIDTH / 2}" y="{MARGIN_TOP + PLOT_HEIGHT / 2}" '
        f'text-anchor="middle">{_text(message)}</text>'
    )
    _notes(svg, notes, bottom + 20)
    return svg.finish(message)


# -- line chart ---------------------------------------------------------------------------------


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str = "",
    x_kind: XKind = "number",
    log_y: bool = False,
    x_range: tuple[float | None, float | None] = (None, None),
    notes: Sequence[str] = (),
    legend: bool | None = None,
    standalone: bool = False,
) -> Markup:
    """Curves of ``series`` on shared axes.

    Args:
        x_kind: ``"time"`` labels x ticks as UTC clock times (x in epoch milliseconds).
        log_y: a log10 y axis; points at or below zero cannot be drawn on one and are left out,
            with a note saying how many.
        x_range: a fixed x range (a zoom); a side left None follows the data.
        notes: lines of text printed under the chart (what was left out, and why).
        legend: draw the legend (default: when there is more than one series).
    """
    notes = list(notes)
    if log_y:
        dropped = sum(1 for s in series for p in (*s.points, *s.raw) if p[1] <= 0)
        series = [
            Series(
                s.label,
                [p for p in s.points if p[1] > 0],
                s.color,
                [p for p in s.raw if p[1] > 0],
                s.href,
            )
            for s in series
        ]
        if dropped:
            notes.append(f"{dropped} points at or below zero are left out on the log scale")
    show_legend = len(series) > 1 if legend is None else legend
    legend_h = _legend_height(len(series)) if show_legend else 0
    bottom = MARGIN_TOP + PLOT_HEIGHT
    height = bottom + MARGIN_BOTTOM + legend_h + 14 * len(notes) + 6
    svg = _Svg(title, height, standalone)
    everything = [p for s in series for p in (*s.points, *s.raw)]
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    if not everything:
        return _empty(svg, "No points to draw", notes)

    x_lo = x_range[0] if x_range[0] is not None else min(p[0] for p in everything)
    x_hi = x_range[1] if x_range[1] is not None else max(p[0] for p in everything)
    if x_hi <= x_lo:
        pad = 1000.0 if x_kind == "time" else 1.0
        x_lo, x_hi = x_lo - pad, x_hi + pad
    y_lo, y_hi = _padded(min(p[1] for p in everything), max(p[1] for p in everything), log_y)
    xs = _Scale(x_lo, x_hi, left, right)
    ys = _Scale(y_lo, y_hi, bottom, MARGIN_TOP, log=log_y)
    svg.attrs.update({
        "data-zoom": "x",
        "data-plot-left": _f(left),
        "data-plot-right": _f(right),
        "data-plot-top": _f(MARGIN_TOP),
        "data-plot-bottom": _f(bottom),
        "data-x-lo": repr(x_lo),
        "data-x-hi": repr(x_hi),
    })  # fmt: skip

    x_ticks = linear_ticks(x_lo, x_hi, 7)
    x_text = (lambda v: _time_label(v, x_hi - x_lo)) if x_kind == "time" else number_label
    y_ticks = _log_ticks(y_lo, y_hi) if log_y else linear_ticks(y_lo, y_hi, 6)
    _frame(svg, left, MARGIN_TOP, right, bottom)
    _x_axis(svg, xs, [(v, x_text(v)) for v in x_ticks], MARGIN_TOP, bottom, x_label)
    _y_axis(svg, ys, [(v, number_label(v)) for v in y_ticks], left, right, y_label)

    # No clipping needed: points outside a zoom are filtered out before they get here, and
    # smoothing averages, so it never leaves the range of the data.
    svg.add('<g class="plot">')
    for s in series:
        svg.add(f'<g class="series" data-label="{_text(s.label)}"><title>{_text(s.label)}</title>')
        if len(s.raw) > 1:
            svg.add(
                f'<path class="raw" d="{_path(s.raw, xs, ys)}" fill="none" stroke="{s.color}" '
                'stroke-opacity="0.25" stroke-width="1"/>'
            )
        if len(s.points) > 1:
            svg.add(
                f'<path class="line" d="{_path(s.points, xs, ys)}" fill="none" '
                f'stroke="{s.color}" stroke-width="1.6" data-points="{len(s.points)}"/>'
            )
        elif s.points:
            x, y = s.points[0]
            svg.add(
                f'<circle class="line" cx="{_f(xs(x))}" cy="{_f(ys(y))}" r="3" '
                f'fill="{s.color}" data-points="1"/>'
            )
        svg.add("</g>")
    svg.add("</g>")
    if show_legend:
        _legend(
            svg,
            [(s.label, s.color, None if s.points else "(no points)") for s in series],
            bottom + MARGIN_BOTTOM + 4,
        )
    _notes(svg, notes, bottom + MARGIN_BOTTOM + legend_h + 12)
    counts = ", ".join(f"{s.label}: {len(s.points)} points" for s in series)
    return svg.finish(f"{y_label or title} by {x_label}. {counts}")


# -- scatter and parallel coordinates ----------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """One quantity across runs: a param, a metric. Numeric when every value present parses
    as a finite number (params are strings: ``"0.01"`` is a number, ``"adam"`` is not);
    otherwise categorical, with the distinct values spread evenly along the axis."""

    label: str
    values: Sequence[str | float | None]

    @property
    def numbers(self) -> list[float | None] | None:
        """The values as numbers, or None when the dimension is categorical."""
        out: list[float | None] = []
        for value in self.values:
            if value is None:
                out.append(None)
                continue
            try:
                number = float(value)
            except ValueError:
                return None
            out.append(number if math.isfinite(number) else None)
        return out

    @property
    def categories(self) -> list[str]:
        return sorted({str(v) for v in self.values if v is not None})

    def positions(self) -> tuple[list[float | None], list[tuple[float, str]]]:
        """Each value as a fraction 0..1 along the axis (None when absent), and the ticks."""
        numbers = self.numbers
        if numbers is not None:
            present = [n for n in numbers if n is not None]
            if not present:
                return [None] * len(numbers), []
            lo, hi = _padded(min(present), max(present), False)
            fractions = [None if n is None else (n - lo) / (hi - lo) for n in numbers]
            ticks = [((t - lo) / (hi - lo), number_label(t)) for t in linear_ticks(lo, hi, 5)]
            return fractions, ticks
        cats = self.categories
        where = {c: (i + 0.5) / len(cats) for i, c in enumerate(cats)}
        stride = max(1, math.ceil(len(cats) / 12))
        ticks = [(where[c], _short(c, 16)) for c in cats[::stride]]
        return [None if v is None else where[str(v)] for v in self.values], ticks


def scatter_chart(
    labels: Sequence[str],
    x: Dimension,
    y: Dimension,
    *,
    title: str,
    standalone: bool = False,
) -> Markup:
    """One dot per run at (x, y); runs missing either value are left out, with a note."""
    xf, x_ticks = x.positions()
    yf, y_ticks = y.positions()
    pairs = [
        (i, a, b)
        for i, (a, b) in enumerate(zip(xf, yf, strict=True))
        if a is not None and b is not None
    ]
    notes = []
    if len(pairs) < len(labels):
        notes.append(f"{len(labels) - len(pairs)} runs lack one of the two values")
    bottom = MARGIN_TOP + PLOT_HEIGHT
    legend_h = _legend_height(len(labels))
    svg = _Svg(title, bottom + MARGIN_BOTTOM + legend_h + 14 * len(notes) + 6, standalone)
    if not pairs:
        return _empty(svg, "No run has both values", notes)
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    xs = _Scale(0, 1, left, right)
    ys = _Scale(0, 1, bottom, MARGIN_TOP)
    _frame(svg, left, MARGIN_TOP, right, bottom)
    _x_axis(svg, xs, x_ticks, MARGIN_TOP, bottom, x.label)
    _y_axis(svg, ys, y_ticks, left, right, y.label)
    for i, a, b in pairs:
        tip = f"{labels[i]}: {x.label}={x.values[i]}, {y.label}={y.values[i]}"
        svg.add(
            f'<circle class="dot" cx="{_f(xs(a))}" cy="{_f(ys(b))}" r="5" fill="{color(i)}" '
            f'data-label="{_text(labels[i])}"><title>{_text(tip)}</title></circle>'
        )
    _legend(svg, [(label, color(i), None) for i, label in enumerate(labels)], bottom + 50)
    _notes(svg, notes, bottom + MARGIN_BOTTOM + legend_h + 12)
    return svg.finish(f"{y.label} against {x.label} for {len(pairs)} runs")


def parallel_chart(
    labels: Sequence[str],
    dimensions: Sequence[Dimension],
    *,
    title: str,
    standalone: bool = False,
) -> Markup:
    """Parallel coordinates: one vertical axis per dimension, one polyline per run across
    them (a run missing a value has a gap there)."""
    bottom = MARGIN_TOP + PLOT_HEIGHT
    legend_h = _legend_height(len(labels))
    svg = _Svg(title, bottom + MARGIN_BOTTOM + legend_h + 6, standalone)
    if len(dimensions) < 2:
        return _empty(svg, "Choose at least two params or metrics", [])
    left, right = MARGIN_LEFT + 30, WIDTH - MARGIN_RIGHT - 60
    gap = (right - left) / (len(dimensions) - 1)
    ys = _Scale(0, 1, bottom, MARGIN_TOP)
    placed = [d.positions() for d in dimensions]
    for k, (dim, (_fractions, ticks)) in enumerate(zip(dimensions, placed, strict=True)):
        x = left + k * gap
        svg.add(
            f'<g class="pc-axis" data-label="{_text(dim.label)}"><title>{_text(dim.label)}</title>'
            f'<line class="axis" x1="{_f(x)}" y1="{MARGIN_TOP}" x2="{_f(x)}" y2="{bottom}"/>'
            f'<text class="pc-label" x="{_f(x)}" y="{bottom + 16}" text-anchor="middle">'
            f"{_text(_short(dim.label, 18))}</text>"
        )
        for fraction, text in ticks:
            svg.add(
                f'<text x="{_f(x + 4)}" y="{_f(ys(fraction) + 4)}" text-anchor="start">'
                f"{_text(text)}</text>"
            )
        svg.add("</g>")
    for i, label in enumerate(labels):
        segments: list[list[str]] = [[]]
        for k, (fractions, _ticks) in enumerate(placed):
            value = fractions[i]
            if value is None:
                segments.append([])
            else:
                segments[-1].append(f"{_f(left + k * gap)} {_f(ys(value))}")
        d = "".join("M" + "L".join(seg) for seg in segments if seg)
        if d:
            svg.add(
                f'<path class="pc-line" d="{d}" fill="none" stroke="{color(i)}" '
                f'stroke-width="1.8" data-label="{_text(label)}"><title>{_text(label)}</title>'
                "</path>"
            )
    _legend(svg, [(label, color(i), None) for i, label in enumerate(labels)], bottom + 50)
    names = ", ".join(d.label for d in dimensions)
    return svg.finish(f"{len(labels)} runs across {names}")
