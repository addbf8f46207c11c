"""Metric history as chart series: the chart settings of a URL, and the points to draw.

A history can hold millions of points; a chart needs about a thousand. The store picks them
(``get_metric_history_bulk_interval`` reads evenly spread steps off its index, without loading
the rest), with steps or time on x alike; a zoom asks it for the steps in range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import Markup

from slipway.entities import MetricWithRunId
from slipway.exceptions import InvalidParameterValue
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.ui import charts

__all__ = [
    "MAX_POINTS",
    "ChartOptions",
    "RunLine",
    "load_series",
    "metric_chart",
    "number_text",
]

XAxis = Literal["step", "time", "relative"]
X_AXES: tuple[XAxis, ...] = ("step", "time", "relative")
X_LABELS = {"step": "step", "time": "time (UTC)", "relative": "seconds since the first point"}
MAX_POINTS = 1000
MAX_SMOOTHING = 0.99
_LOWEST_STEP, _HIGHEST_STEP = -(2**63), 2**63 - 1


def number_text(value: float | None) -> str:
    """A number for a URL or an input, exactly (epoch milliseconds keep every digit)."""
    if value is None:
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


def _number(params: Mapping[str, str], name: str) -> float | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameterValue(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InvalidParameterValue(f"{name} must be a finite number, got {text!r}")
    return value


@dataclass(frozen=True)
class ChartOptions:
    """What a metric chart shows, as read from (and written back to) a query string.

    Attributes:
        metric: the metric key.
        x: ``step``, ``time`` (epoch milliseconds, shown as UTC clock time) or ``relative``
            (seconds since each run's first point).
        smooth: exponential moving average weight, 0 (none) to 0.99.
        log: a log10 y axis.
        xmin, xmax: the x range shown (a zoom), in x's units; None follows the data.
    """

    metric: str
    x: XAxis = "step"
    smooth: float = 0.0
    log: bool = False
    xmin: float | None = None
    xmax: float | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str], metric: str) -> ChartOptions:
        """Settings from query parameters ``x``, ``smooth``, ``log``, ``xmin``, ``xmax``.

        Raises:
            InvalidParameterValue: naming the setting that is not understood.
        """
        x = params.get("x", "step") or "step"
        if x not in X_AXES:
            raise InvalidParameterValue(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
        smooth = _number(params, "smooth") or 0.0
        if not 0 <= smooth <= MAX_SMOOTHING:
            raise InvalidParameterValue(f"smooth must be between 0 and {MAX_SMOOTHING}")
        xmin, xmax = _number(params, "xmin"), _number(params, "xmax")
        if xmin is not None and xmax is not None and xmin >= xmax:
            raise InvalidParameterValue("xmin must be less than xmax")
        log = params.get("log", "") in ("1", "true", "on")
        return cls(metric, x, smooth, log, xmin, xmax)

    def query(self) -> dict[str, str]:
        """These settings as query parameters (defaults left out)."""
        out = {"metric": self.metric}
        if self.x != "step":
            out["x"] = self.x
        if self.smooth:
            out["smooth"] = f"{self.smooth:g}"
        if self.log:
            out["log"] = "1"
        if self.xmin is not None:
            out["xmin"] = number_text(self.xmin)
        if self.xmax is not None:
            out["xmax"] = number_text(self.xmax)
        return out


@dataclass(frozen=True)
class RunLine:
    """A run to draw: its id and the label the legend shows."""

    run_id: str
    label: str


def _in_range(x: float, options: ChartOptions) -> bool:
    return (options.xmin is None or x >= options.xmin) and (
        options.xmax is None or x <= options.xmax
    )


def _step_points(
    store: AbstractTrackingStore, runs: Sequence[RunLine], options: ChartOptions
) -> dict[str, list[tuple[float, float]]]:
    ranged = options.xmin is not None or options.xmax is not None
    start = math.floor(options.xmin) if options.xmin is not None else _LOWEST_STEP
    end = math.ceil(options.xmax) if options.xmax is not None else _HIGHEST_STEP
    found: list[MetricWithRunId] = store.get_metric_history_bulk_interval(
        [r.run_id for r in runs],
        options.metric,
        MAX_POINTS,
        start if ranged else None,
        end if ranged else None,
    )
    points: dict[str, list[tuple[float, float]]] = {r.run_id: [] for r in runs}
    for m in found:
        if _in_range(m.step, options):
            points[m.run_id].append((float(m.step), m.value))
    return points


def _time_points(
    store: AbstractTrackingStore, runs: Sequence[RunLine], options: ChartOptions
) -> dict[str, list[tuple[float, float]]]:
    """Points with time on x, read the way steps are: a sample spread over the steps (time
    grows with the step in a training loop). A zoom maps its time range onto the steps that
    bracket it in the sample, and reads a fresh sample of those steps, so no history is read
    whole however long it is."""
    sample = store.get_metric_history_bulk_interval(
        [r.run_id for r in runs], options.metric, MAX_POINTS
    )
    by_run: dict[str, list[MetricWithRunId]] = {r.run_id: [] for r in runs}
    for m in sample:
        by_run[m.run_id].append(m)
    points: dict[str, list[tuple[float, float]]] = {}
    for run_id, found in by_run.items():
        if not found:
            points[run_id] = []
            continue
        origin = min(m.timestamp for m in found)

        def x_of(m: MetricWithRunId, origin: int = origin) -> float:
            if options.x == "time":
                return float(m.timestamp)
            return (m.timestamp - origin) / 1000

        if options.xmin is not None or options.xmax is not None:
            steps = [m.step for m in found]
            low = max(
                (m.step for m in found if options.xmin is not None and x_of(m) <= options.xmin),
                default=min(steps),
            )
            high = min(
                (m.step for m in found if options.xmax is not None and x_of(m) >= options.xmax),
                default=max(steps),
            )
            if low <= high:
                found = store.get_metric_history_bulk_interval(
                    [run_id], options.metric, MAX_POINTS, low, high
                )
        ordered = sorted((x_of(m), m.value) for m in found)
        points[run_id] = [p for p in ordered if _in_range(p[0], options)]
    return points


def load_series(
    store: AbstractTrackingStore, runs: Sequence[RunLine], options: ChartOptions
) -> tuple[list[charts.Series], list[str]]:
    """One series per run (at most :data:`MAX_POINTS` points each), and notes on what was
    left out. Blocking: call it from a worker thread."""
    notes: list[str] = []
    if options.x == "step":
        by_run = _step_points(store, runs, options)
    else:
        by_run = _time_points(store, runs, options)
    series = []
    not_finite = 0
    for i, run in enumerate(runs):
        points = [p for p in by_run.get(run.run_id, []) if math.isfinite(p[1])]
        not_finite += len(by_run.get(run.run_id, [])) - len(points)
        raw: list[tuple[float, float]] = []
        if options.smooth and len(points) > 1:
            # Smooth every point read, then thin both curves: smoothing thinned points would
            # average each slice's lowest and highest values against each other.
            smoothed = charts.ema([p[1] for p in points], options.smooth)
            raw = charts.downsample(points, MAX_POINTS)
            points = [(p[0], y) for p, y in zip(points, smoothed, strict=True)]
        points = charts.downsample(points, MAX_POINTS)
        series.append(charts.Series(run.label, points, charts.color(i), raw))
    if not_finite:
        notes.append(f"{not_finite} NaN or infinite values are not drawn")
    return series, notes


def metric_chart(
    store: AbstractTrackingStore,
    runs: Sequence[RunLine],
    options: ChartOptions,
    *,
    title: str,
    standalone: bool = False,
) -> Markup:
    """The chart of ``options.metric`` for ``runs`` as SVG (blocking: use a worker thread)."""
    series, notes = load_series(store, runs, options)
    return charts.line_chart(
        series,
        title=title,
        x_label=X_LABELS[options.x],
        y_label=options.metric + (" (smoothed)" if options.smooth else ""),
        x_kind="time" if options.x == "time" else "number",
        log_y=options.log,
        x_range=(options.xmin, options.xmax),
        notes=notes,
        legend=len(runs) > 1,
        standalone=standalone,
    )
