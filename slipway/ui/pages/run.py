"""One run: its info, params, latest metrics, tags (editable), note, datasets, and a chart of
any of its metrics.

=======  ==================================  ===============================================
method   path                                what it does
=======  ==================================  ===============================================
GET      ``/runs/<id>``                      the page; chart settings in the query string
                                             (``metric``, ``x``, ``smooth``, ``log``, ``xmin``,
                                             ``xmax``: see ``ChartOptions``)
GET      ``/runs/<id>/chart.svg``            the same chart as an SVG file of its own
POST     ``/runs/<id>/tags``                 set a tag (``key``, ``value``)
POST     ``/runs/<id>/tags/delete``          delete a tag (``key``)
POST     ``/runs/<id>/note``                 set the note (``note``; empty removes it)
=======  ==================================  ===============================================

The note is the ``mlflow.note.content`` tag, where MLflow keeps a run's description, so notes
written here show in MLflow and the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from slipway.entities import Experiment, Run, RunTag, ViewType
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist, SlipwayError
from slipway.server.context import ServerContext
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.ui.history import X_AXES, ChartOptions, RunLine, metric_chart, number_text
from slipway.ui.links import Linker
from slipway.ui.render import CrossSiteForm, error_page, read_form, render

__all__ = ["NOTE_TAG", "PARENT_TAG", "SVG_HEADERS", "failure_page", "routes"]

NOTE_TAG = "mlflow.note.content"
PARENT_TAG = "mlflow.parentRunId"
SYSTEM_PREFIX = "mlflow."
SOURCE_TAGS = (
    ("Source", "mlflow.source.name"),
    ("Source type", "mlflow.source.type"),
    ("Git commit", "mlflow.source.git.commit"),
    ("Git branch", "mlflow.source.git.branch"),
    ("Git repository", "mlflow.source.git.repoURL"),
)
MAX_CHILDREN = 100

# A chart served as a file: SVG is a document that could hold script, so the browser is told
# to run none and to take the type as given.
SVG_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Cache-Control": "no-cache",
}


def failure_page(request: Request, exc: SlipwayError) -> Response:
    """The error page for ``exc``: 404 for what does not exist, its own status otherwise."""
    if isinstance(exc, ResourceDoesNotExist):
        return error_page(request, 404, "Not found", exc.message)
    status = exc.http_status if 400 <= exc.http_status < 600 else 400
    return error_page(request, status, "Cannot show this", exc.message)


def run_label(run: Run) -> str:
    """A run's name, or the start of its id when it has none."""
    return run.info.run_name or run.info.run_id[:8]


@dataclass
class RunView:
    """Everything the run page shows, read in one worker thread."""

    run: Run
    experiment: Experiment | None
    metrics: list[Any]
    user_tags: list[tuple[str, str]]
    system_tags: list[tuple[str, str]]
    sources: list[tuple[str, str]]
    parent: tuple[str, str] | None = None
    children: list[Run] = field(default_factory=list)
    options: ChartOptions | None = None
    chart: Markup | None = None
    chart_error: str | None = None
    status: int = 200


def _parent(store: AbstractTrackingStore, run: Run) -> tuple[str, str] | None:
    parent_id = run.data.tags.get(PARENT_TAG)
    if not parent_id:
        return None
    try:
        return parent_id, run_label(store.get_run(parent_id))
    except SlipwayError:
        return parent_id, parent_id[:8]


def _children(store: AbstractTrackingStore, run: Run) -> list[Run]:
    escaped = run.info.run_id.replace("\\", "\\\\").replace("'", "\\'")
    try:
        return list(
            store.search_runs(
                [run.info.experiment_id],
                f"tags.`{PARENT_TAG}` = '{escaped}'",
                ViewType.ACTIVE_ONLY,
                MAX_CHILDREN,
            )
        )
    except SlipwayError:
        return []


def chart_options(params: Mapping[str, str], metrics: list[str]) -> ChartOptions | None:
    """The chart settings of a URL; the metric defaults to ``loss`` when the run has one,
    else its first. None when the run has no metrics.

    Raises:
        InvalidParameterValue: for a setting that is not understood.
    """
    if not metrics:
        return None
    default = "loss" if "loss" in metrics else metrics[0]
    return ChartOptions.parse(params, params.get("metric") or default)


def load_run_view(store: AbstractTrackingStore, run_id: str, params: Mapping[str, str]) -> RunView:
    """The run page's data (blocking).

    Raises:
        ResourceDoesNotExist: when there is no such run.
    """
    run = store.get_run(run_id)
    try:
        experiment: Experiment | None = store.get_experiment(run.info.experiment_id)
    except SlipwayError:
        experiment = None
    tags = sorted(run.data.tags.items())
    view = RunView(
        run=run,
        experiment=experiment,
        metrics=sorted(run.data.metric_records, key=lambda m: m.key),
        user_tags=[(k, v) for k, v in tags if not k.startswith(SYSTEM_PREFIX)],
        system_tags=[(k, v) for k, v in tags if k.startswith(SYSTEM_PREFIX)],
        sources=[(label, run.data.tags[k]) for label, k in SOURCE_TAGS if run.data.tags.get(k)],
        parent=_parent(store, run),
        children=_children(store, run),
    )
    keys = [m.key for m in view.metrics]
    try:
        view.options = chart_options(params, keys)
    except InvalidParameterValue as exc:
        view.chart_error, view.status = exc.message, 400
        view.options = ChartOptions("loss" if "loss" in keys else keys[0])
        return view
    if view.options is not None:
        if view.options.metric not in keys:
            view.chart_error = f"This run has no metric {view.options.metric!r}"
        else:
            view.chart = metric_chart(
                store,
                [RunLine(run.info.run_id, run_label(run))],
                view.options,
                title=f"{view.options.metric} of {run_label(run)}",
            )
    return view


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    async def page(request: Request, form_error: str | None = None) -> Response:
        run_id = request.path_params["run_id"]
        params = dict(request.query_params)
        try:
            view = await run_in_threadpool(load_run_view, store, run_id, params)
        except SlipwayError as exc:
            return failure_page(request, exc)
        link = Linker(request)
        return render(
            request,
            "run.html",
            status=400 if form_error else view.status,
            section="experiments",
            view=view,
            run=view.run,
            label=run_label(view.run),
            note=view.run.data.tags.get(NOTE_TAG, ""),
            form_error=form_error,
            link=link,
            x_axes=X_AXES,
            number_text=number_text,
            chart_query=view.options.query() if view.options else {},
            metric_link=lambda key: link(metric=key, xmin=None, xmax=None) + "#chart",
        )

    async def show(request: Request) -> Response:
        return await page(request)

    async def chart_svg(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        params = dict(request.query_params)
        metric = params.get("metric", "")
        if not metric:
            return PlainTextResponse("metric is required", status_code=400)
        try:
            options = ChartOptions.parse(params, metric)
            run = await run_in_threadpool(store.get_run, run_id)
            svg = await run_in_threadpool(
                lambda: metric_chart(
                    store,
                    [RunLine(run.info.run_id, run_label(run))],
                    options,
                    title=f"{metric} of {run_label(run)}",
                    standalone=True,
                )
            )
        except SlipwayError as exc:
            status = 404 if isinstance(exc, ResourceDoesNotExist) else 400
            return PlainTextResponse(exc.message, status_code=status)
        return Response(str(svg), media_type="image/svg+xml", headers=SVG_HEADERS)

    async def act(
        request: Request, work: Callable[[str, dict[str, str]], None], anchor: str
    ) -> Response:
        run_id = request.path_params["run_id"]
        try:
            form = await read_form(request)
        except CrossSiteForm:
            return error_page(request, 403, "Refused", "This form was posted from another site.")
        try:
            await run_in_threadpool(work, run_id, form)
        except ResourceDoesNotExist as exc:
            if "tag" not in exc.message.lower():
                return failure_page(request, exc)
            return await page(request, form_error=exc.message)
        except SlipwayError as exc:
            return await page(request, form_error=exc.message)
        return RedirectResponse(f"/runs/{quote(run_id, safe='')}#{anchor}", status_code=303)

    def set_tag(run_id: str, form: dict[str, str]) -> None:
        key = form.get("key", "").strip()
        if not key:
            raise InvalidParameterValue("A tag needs a key")
        store.set_tag(run_id, RunTag(key, form.get("value", "")))

    def delete_tag(run_id: str, form: dict[str, str]) -> None:
        store.delete_tag(run_id, form.get("key", ""))

    def set_note(run_id: str, form: dict[str, str]) -> None:
        note = form.get("note", "").replace("\r\n", "\n")
        if note.strip():
            store.set_tag(run_id, RunTag(NOTE_TAG, note))
        elif NOTE_TAG in store.get_run(run_id).data.tags:
            store.delete_tag(run_id, NOTE_TAG)

    async def post_tag(request: Request) -> Response:
        return await act(request, set_tag, "tags")

    async def post_delete_tag(request: Request) -> Response:
        return await act(request, delete_tag, "tags")

    async def post_note(request: Request) -> Response:
        return await act(request, set_note, "note")

    return [
        Route("/runs/{run_id}", show, methods=["GET"]),
        Route("/runs/{run_id}/chart.svg", chart_svg, methods=["GET"]),
        Route("/runs/{run_id}/tags", post_tag, methods=["POST"]),
        Route("/runs/{run_id}/tags/delete", post_delete_tag, methods=["POST"]),
        Route("/runs/{run_id}/note", post_note, methods=["POST"]),
    ]
