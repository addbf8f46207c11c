"""Runs side by side: a metric's curves overlaid, the params that differ, a scatter of any
param or metric against another, and parallel coordinates.

``GET /compare?runs=<id>&runs=<id>`` with the settings in the query string: the chart's
(``metric``, ``x``, ``smooth``, ``log``, ``xmin``, ``xmax``), ``diff=1`` to list only the
params that differ, ``sx``/``sy`` for the scatter's axes and ``pc`` (repeated) for the
parallel coordinates' axes, each a key such as ``params.lr`` or ``metrics.loss``.
``GET /compare/chart.svg`` serves the overlay as an SVG file.

Up to 100 runs: the store draws their curves in one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from slipway.entities import Run
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist, SlipwayError
from slipway.server.context import ServerContext
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.ui import charts
from slipway.ui.history import X_AXES, ChartOptions, RunLine, metric_chart, number_text
from slipway.ui.links import Linker
from slipway.ui.pages.run import SVG_HEADERS, failure_page, run_label
from slipway.ui.render import error_page, render

__all__ = ["MAX_RUNS", "Comparison", "dimension", "load_comparison", "routes"]

MAX_RUNS = 100
DEFAULT_PC_PARAMS = 4


@dataclass
class Comparison:
    """What the compare page shows."""

    runs: list[Run]
    labels: list[str]
    metric_keys: list[str]
    param_rows: list[tuple[str, list[str | None], bool]]
    metric_rows: list[tuple[str, list[float | None]]]
    choices: list[str]
    options: ChartOptions | None = None
    chart: Markup | None = None
    chart_error: str | None = None
    sx: str = ""
    sy: str = ""
    scatter: Markup | None = None
    pc: list[str] = field(default_factory=list)
    parallel: Markup | None = None
    status: int = 200


def _runs_text(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _unique_labels(runs: Sequence[Run]) -> list[str]:
    """Run names for legends, made unique (two runs called "train" are told apart by id)."""
    names = [run_label(r) for r in runs]
    return [
        f"{name} ({r.info.run_id[:6]})" if names.count(name) > 1 else name
        for name, r in zip(names, runs, strict=True)
    ]


def _param_rows(runs: Sequence[Run]) -> list[tuple[str, list[str | None], bool]]:
    keys = sorted({k for r in runs for k in r.data.params})
    rows = []
    for key in keys:
        values = [r.data.params.get(key) for r in runs]
        rows.append((key, values, len(set(values)) > 1))
    return rows


def dimension(runs: Sequence[Run], choice: str) -> charts.Dimension:
    """``params.<key>`` or ``metrics.<key>`` across ``runs`` (latest metric values)."""
    kind, _, key = choice.partition(".")
    if kind == "params":
        return charts.Dimension(choice, [r.data.params.get(key) for r in runs])
    values: list[str | float | None] = []
    for run in runs:
        found = [m.value for m in run.data.metric_records if m.key == key]
        values.append(found[0] if found else None)
    return charts.Dimension(choice, values)


def _default_axes(
    rows: Sequence[tuple[str, list[str | None], bool]], metric: str | None
) -> tuple[str, str, list[str]]:
    """The scatter's and parallel coordinates' axes when the URL names none: the params that
    differ (else any), against the chart's metric."""
    differing = [f"params.{key}" for key, _values, differs in rows if differs]
    params = differing or [f"params.{key}" for key, _values, _d in rows]
    y = f"metrics.{metric}" if metric else (params[1] if len(params) > 1 else "")
    x = params[0] if params else ""
    return x, y, [*params[:DEFAULT_PC_PARAMS], *([y] if y.startswith("metrics.") else [])]


def load_comparison(
    store: AbstractTrackingStore, run_ids: Sequence[str], params: Mapping[str, str], pc: list[str]
) -> Comparison:
    """Everything the compare page shows (blocking).

    Raises:
        ResourceDoesNotExist: naming a run that does not exist.
    """
    runs = [store.get_run(run_id) for run_id in run_ids]
    labels = _unique_labels(runs)
    metric_keys = sorted({m.key for r in runs for m in r.data.metric_records})
    param_rows = _param_rows(runs)
    latest = [{m.key: m.value for m in r.data.metric_records} for r in runs]
    view = Comparison(
        runs=runs,
        labels=labels,
        metric_keys=metric_keys,
        param_rows=param_rows,
        metric_rows=[(key, [values.get(key) for values in latest]) for key in metric_keys],
        choices=[f"params.{key}" for key, _v, _d in param_rows]
        + [f"metrics.{key}" for key in metric_keys],
    )
    if metric_keys:
        default = "loss" if "loss" in metric_keys else metric_keys[0]
        try:
            view.options = ChartOptions.parse(params, params.get("metric") or default)
        except InvalidParameterValue as exc:
            view.chart_error, view.status = exc.message, 400
            view.options = ChartOptions(default)
        if view.options.metric not in metric_keys:
            view.chart_error = f"None of these runs has a metric {view.options.metric!r}"
        elif view.chart_error is None:
            view.chart = metric_chart(
                store,
                [RunLine(r.info.run_id, label) for r, label in zip(runs, labels, strict=True)],
                view.options,
                title=f"{view.options.metric} of {_runs_text(len(runs))}",
            )
    metric = view.options.metric if view.options else None
    sx, sy, default_pc = _default_axes(param_rows, metric)
    view.sx = params.get("sx") or sx
    view.sy = params.get("sy") or sy
    view.pc = [c for c in pc if c in view.choices] if pc else default_pc
    if view.sx in view.choices and view.sy in view.choices:
        view.scatter = charts.scatter_chart(
            labels,
            dimension(runs, view.sx),
            dimension(runs, view.sy),
            title=f"{view.sy} against {view.sx}",
        )
    view.parallel = charts.parallel_chart(
        labels, [dimension(runs, c) for c in view.pc], title="Parallel coordinates"
    )
    return view


def _run_ids(request: Request) -> list[str]:
    """The ``runs`` of the URL, in order, repeats dropped.

    Raises:
        InvalidParameterValue: for none, or more than :data:`MAX_RUNS`.
    """
    ids = list(dict.fromkeys(v.strip() for v in request.query_params.getlist("runs") if v.strip()))
    if not ids:
        raise InvalidParameterValue("Pick at least one run to compare.")
    if len(ids) > MAX_RUNS:
        raise InvalidParameterValue(f"At most {MAX_RUNS} runs can be compared at once.")
    return ids


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    async def page(request: Request) -> Response:
        try:
            ids = _run_ids(request)
        except InvalidParameterValue as exc:
            return error_page(request, 400, "Nothing to compare", exc.message)
        params = dict(request.query_params)
        pc = request.query_params.getlist("pc")
        try:
            view = await run_in_threadpool(load_comparison, store, ids, params, pc)
        except SlipwayError as exc:
            return failure_page(request, exc)
        link = Linker(request)
        diff_only = params.get("diff") == "1"
        return render(
            request,
            "compare.html",
            status=view.status,
            section="experiments",
            view=view,
            link=link,
            hidden=link.hidden,
            x_axes=X_AXES,
            number_text=number_text,
            color=charts.color,
            diff_only=diff_only,
            shown_params=[row for row in view.param_rows if row[2] or not diff_only],
            chart_query=view.options.query() if view.options else {},
        )

    async def chart_svg(request: Request) -> Response:
        try:
            ids = _run_ids(request)
            params = dict(request.query_params)
            metric = params.get("metric", "")
            if not metric:
                raise InvalidParameterValue("metric is required")
            options = ChartOptions.parse(params, metric)
            runs = await run_in_threadpool(lambda: [store.get_run(i) for i in ids])
            labels = _unique_labels(runs)
            svg = await run_in_threadpool(
                lambda: metric_chart(
                    store,
                    [RunLine(r.info.run_id, lb) for r, lb in zip(runs, labels, strict=True)],
                    options,
                    title=f"{metric} of {_runs_text(len(runs))}",
                    standalone=True,
                )
            )
        except SlipwayError as exc:
            status = 404 if isinstance(exc, ResourceDoesNotExist) else 400
            return PlainTextResponse(exc.message, status_code=status)
        return Response(str(svg), media_type="image/svg+xml", headers=SVG_HEADERS)

    return [
        Route("/compare", page, methods=["GET"]),
        Route("/compare/chart.svg", chart_svg, methods=["GET"]),
    ]
