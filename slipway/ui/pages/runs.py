"""The runs table: the runs of one experiment or several, filtered with MLflow's search
grammar, sorted by any column, with the param, metric and tag columns a reader picks, a page
at a time, and checkboxes to pick runs for the compare page.

``GET /experiments/<id>/runs`` and ``GET /runs?experiments=1&experiments=2``. Everything the
table shows is in the query string, so a URL is a view to share:

============  =================================================================================
key           meaning
============  =================================================================================
filter        a search filter (``metrics.loss < 0.1 and params.opt = 'adam'``)
order_by      one clause (``metrics.loss DESC``); ``duration ASC|DESC`` orders the shown page
cols          repeated: ``params.lr``, ``metrics.loss``, ``tags.team``; a lone empty ``cols=``
              shows none (without ``cols``, a few of the page's params and metrics are shown)
view          ``active`` (default), ``deleted`` or ``all``
max_results   runs per page, 1 to 1000 (default 100)
page_token    the store's token for this page; ``back`` repeats the tokens of the pages
              before it (a stack, so "Previous" needs no server state)
============  =================================================================================

The store is asked for one page of runs; the column chooser lists the keys of that page only,
so the page stays fast with 10,000 runs and 1,000 metric keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.entities import Experiment, PagedList, Run, ViewType
from slipway.exceptions import (
    InvalidFilter,
    InvalidParameterValue,
    ResourceDoesNotExist,
    SlipwayError,
)
from slipway.server.context import ServerContext
from slipway.tracking import search
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.sql import SqlTrackingStore
from slipway.ui.links import Linker
from slipway.ui.render import error_page, render

__all__ = ["Column", "Sort", "column_clause", "parse_columns", "routes"]

VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_EXPERIMENTS = 100
DEFAULT_COLUMNS = 3  # params, and metrics, shown when the URL picks none
DURATION = "duration"

ColumnKind = Literal["params", "metrics", "tags"]
_KINDS: dict[str, ColumnKind] = {"params": "params", "metrics": "metrics", "tags": "tags"}
_SEARCH_KIND = {"params": "param", "metrics": "metric", "tags": "tag"}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][\w./\-:]*")

# Fixed columns: label -> the order_by key the store understands.
ATTRIBUTE_COLUMNS = (
    ("Name", "attributes.run_name"),
    ("Status", "attributes.status"),
    ("Started", "attributes.start_time"),
    ("Duration", DURATION),
    ("User", "attributes.user_id"),
)
_DEFAULT_ORDER = ("attributes.start_time", False)  # the store's own order when none is given


def _quoted(key: str) -> str:
    """A key as the search grammar reads it: bare when it can be, else double-quoted."""
    if _PLAIN_KEY.fullmatch(key):
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Column:
    """A param, metric or tag column."""

    kind: ColumnKind
    key: str

    @property
    def id(self) -> str:
        """The value of ``cols`` that picks this column."""
        return f"{self.kind}.{self.key}"

    @property
    def order_key(self) -> str:
        return column_clause(self.kind, self.key)


def column_clause(kind: str, key: str) -> str:
    """The order_by (or filter) key for a param, metric or tag: ``metrics.loss``,
    ``params."learning rate"``."""
    return f"{kind}.{_quoted(key)}"


def parse_columns(values: Sequence[str]) -> list[Column]:
    """``cols`` values as columns, in order, repeats and unknown kinds dropped."""
    seen: dict[str, Column] = {}
    for value in values:
        kind, dot, key = value.partition(".")
        if dot and key and kind in _KINDS and value not in seen:
            seen[value] = Column(_KINDS[kind], key)
    return list(seen.values())


@dataclass(frozen=True)
class Sort:
    """What the table is ordered by: a canonical key (``attributes.start_time``,
    ``metrics.loss`` as :func:`column_clause` writes it, or ``duration``) and the direction."""

    key: str
    ascending: bool

    @classmethod
    def parse(cls, text: str) -> Sort | None:
        """An order_by clause; None for none.

        Raises:
            InvalidFilter: when the store would not understand the clause either.
        """
        text = text.strip()
        if not text:
            return None
        head, _, direction = text.rpartition(" ")
        if text.lower() == DURATION:
            return cls(DURATION, True)
        if head.strip().lower() == DURATION:
            if direction.upper() not in ("ASC", "DESC"):
                raise InvalidFilter(f"Invalid order_by clause {text!r}: expected ASC or DESC")
            return cls(DURATION, direction.upper() == "ASC")
        (order,) = search.parse_order_by([text])
        if order.kind == "attribute":
            return cls(f"attributes.{order.key}", order.ascending)
        plural = {"param": "params", "metric": "metrics", "tag": "tags"}[order.kind]
        return cls(column_clause(plural, order.key), order.ascending)

    def clause(self) -> str:
        return f"{self.key} {'ASC' if self.ascending else 'DESC'}"


@dataclass
class Row:
    """One run as the table shows it, worked out before rendering (a run's ``metrics`` dict
    is rebuilt on every access, which a template would do once per cell)."""

    run: Run
    duration_ms: int | None
    cells: list[Any]
    experiment: Experiment | None = None


@dataclass
class Keys:
    """The param, metric and tag keys of the shown page, sorted."""

    params: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def _keys(runs: Sequence[Run]) -> Keys:
    params: set[str] = set()
    metrics: set[str] = set()
    tags: set[str] = set()
    for run in runs:
        params.update(run.data.params)
        metrics.update(m.key for m in run.data.metric_records)
        tags.update(run.data.tags)
    return Keys(sorted(params), sorted(metrics), sorted(tags))


def _default_columns(keys: Keys) -> list[Column]:
    return [Column("params", k) for k in keys.params[:DEFAULT_COLUMNS]] + [
        Column("metrics", k) for k in keys.metrics[:DEFAULT_COLUMNS]
    ]


def _duration(run: Run) -> int | None:
    start, end = run.info.start_time, run.info.end_time
    return end - start if start is not None and end is not None else None


def _rows(runs: Sequence[Run], columns: Sequence[Column]) -> list[Row]:
    rows = []
    wanted = {c.key for c in columns if c.kind == "metrics"}
    for run in runs:
        metrics = {m.key: m.value for m in run.data.metric_records if m.key in wanted}
        sources: dict[str, dict[str, Any]] = {
            "params": run.data.params,
            "metrics": metrics,
            "tags": run.data.tags,
        }
        cells = [sources[c.kind].get(c.key) for c in columns]
        rows.append(Row(run, _duration(run), cells))
    return rows


def _sort_by_duration(rows: list[Row], ascending: bool) -> list[Row]:
    """Runs without an end (still running) go last either way."""
    known = [r for r in rows if r.duration_ms is not None]
    unknown = [r for r in rows if r.duration_ms is None]
    known.sort(key=lambda r: r.duration_ms or 0, reverse=not ascending)
    return known + unknown


def _page_size(text: str) -> int:
    if not text:
        return PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise InvalidParameterValue(f"max_results must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


@dataclass
class Table:
    """Everything the template needs."""

    experiments: list[Experiment]
    rows: list[Row] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    keys: Keys = field(default_factory=Keys)
    next_token: str | None = None
    sort: Sort | None = None
    error: str | None = None


def _experiments(store: AbstractTrackingStore, ids: Sequence[str]) -> list[Experiment]:
    return [store.get_experiment(i) for i in ids]


def _search(store: AbstractTrackingStore, request: Request, experiments: list[Experiment]) -> Table:
    """One page of runs and what the table shows of them (blocking)."""
    params = request.query_params
    table = Table(experiments)
    try:
        table.sort = Sort.parse(params.get("order_by", ""))
        size = _page_size(params.get("max_results", ""))
        view = params.get("view", "active")
        if view not in VIEWS:
            raise InvalidParameterValue(f"view must be active, deleted or all, got {view!r}")
        order = [table.sort.clause()] if table.sort and table.sort.key != DURATION else None
        chosen = params.getlist("cols")
        columns = parse_columns(chosen) if chosen else None
        page, metric_keys = _search_page(
            store,
            [e.experiment_id for e in experiments],
            params.get("filter") or None,
            VIEWS[view],
            size,
            order,
            params.get("page_token") or None,
            columns,
        )
    except SlipwayError as exc:
        table.error = exc.message
        return table
    table.keys = _keys(page)
    table.keys.metrics = metric_keys
    table.columns = columns if columns is not None else _default_columns(table.keys)
    table.rows = _rows(page, table.columns)
    if table.sort is not None and table.sort.key == DURATION:
        table.rows = _sort_by_duration(table.rows, table.sort.ascending)
    if len(experiments) > 1:
        by_id = {e.experiment_id: e for e in experiments}
        for row in table.rows:
            row.experiment = by_id.get(row.run.info.experiment_id)
    table.next_token = page.token
    return table


def _search_page(
    store: AbstractTrackingStore,
    experiment_ids: list[str],
    filter_string: str | None,
    view: ViewType,
    size: int,
    order: list[str] | None,
    page_token: str | None,
    columns: list[Column] | None,
) -> tuple[PagedList[Run], list[str]]:
    """One page of runs, holding only the latest metrics the table shows, and every metric key
    the page's runs have (a SQL store fetches just those; another store is searched plainly)."""

    def pick(metric_keys: list[str]) -> set[str]:
        if columns is not None:
            return {c.key for c in columns if c.kind == "metrics"}
        return set(metric_keys[:DEFAULT_COLUMNS])

    if isinstance(store, SqlTrackingStore):
        return store.search_runs_for_table(
            experiment_ids, filter_string, view, size, order, page_token, pick
        )
    page = store.search_runs(experiment_ids, filter_string, view, size, order, page_token)
    return page, _keys(page).metrics


def _page(request: Request, store: AbstractTrackingStore, ids: list[str]) -> Response | Table:
    """The table for experiments ``ids``, or the error page (blocking)."""
    try:
        experiments = _experiments(store, ids)
    except ResourceDoesNotExist as exc:
        return error_page(request, 404, "No such experiment", exc.message)
    except SlipwayError as exc:
        return error_page(request, 400, "Bad experiment id", exc.message)
    return _search(store, request, experiments)


def _aria_sort(sort: Sort | None, key: str) -> str | None:
    current = (sort.key, sort.ascending) if sort else _DEFAULT_ORDER
    if current[0] != key:
        return None
    return "ascending" if current[1] else "descending"


def _next_order(sort: Sort | None, key: str) -> str:
    """Clicking a header: ascending first, then descending (start time: newest first)."""
    current = (sort.key, sort.ascending) if sort else _DEFAULT_ORDER
    if current[0] == key:
        return f"{key} {'DESC' if current[1] else 'ASC'}"
    return f"{key} {'DESC' if key == _DEFAULT_ORDER[0] else 'ASC'}"


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    async def show(request: Request, ids: list[str]) -> Response:
        if not ids:
            return error_page(
                request, 400, "No experiments chosen", "Pick one or more experiments first."
            )
        if len(ids) > MAX_EXPERIMENTS:
            return error_page(
                request,
                400,
                "Too many experiments",
                f"At most {MAX_EXPERIMENTS} experiments can be shown together.",
            )
        result = await run_in_threadpool(_page, request, store, ids)
        if isinstance(result, Response):
            return result
        table = result
        link = Linker(request)
        paging = ("page_token", "back")
        back = request.query_params.getlist("back")
        current = request.query_params.get("page_token", "")
        return render(
            request,
            "runs.html",
            status=400 if table.error else 200,
            section="experiments",
            table=table,
            link=link,
            hidden=link.hidden,
            filter=request.query_params.get("filter", ""),
            view=request.query_params.get("view", "active"),
            chosen={c.id for c in table.columns},
            choices=_choices(table),
            compare_metric=_compare_metric(table),
            attribute_columns=ATTRIBUTE_COLUMNS,
            aria_sort=lambda key: _aria_sort(table.sort, key),
            sort_link=lambda key: link(
                order_by=_next_order(table.sort, key), **dict.fromkeys(paging)
            ),
            next_link=(
                link(page_token=table.next_token, back=[*back, current])
                if table.next_token
                else None
            ),
            prev_link=(link(page_token=back[-1] or None, back=back[:-1]) if back else None),
            first_row=len(back) * _safe_size(request) + 1,
            duration_note=table.sort is not None and table.sort.key == DURATION,
        )

    async def experiment_runs(request: Request) -> Response:
        return await show(request, [request.path_params["experiment_id"]])

    async def many(request: Request) -> Response:
        ids = list(dict.fromkeys(v for v in request.query_params.getlist("experiments") if v))
        return await show(request, ids)

    return [
        Route("/experiments/{experiment_id}/runs", experiment_runs, methods=["GET"]),
        Route("/runs", many, methods=["GET"]),
    ]


def _compare_metric(table: Table) -> str | None:
    """The metric the compare page opens on: the one the table is sorted by, else the first
    metric column."""
    metrics = [c for c in table.columns if c.kind == "metrics"]
    for column in metrics:
        if table.sort is not None and table.sort.key == column.order_key:
            return column.key
    return metrics[0].key if metrics else None


def _choices(table: Table) -> dict[str, list[str]]:
    """The chooser's keys by kind: the page's keys and the chosen columns' (a chosen key the
    page lacks stays listed, so it can be unticked)."""
    found = {"params": table.keys.params, "metrics": table.keys.metrics, "tags": table.keys.tags}
    return {
        kind: sorted({*keys, *(c.key for c in table.columns if c.kind == kind)})
        for kind, keys in found.items()
    }


def _safe_size(request: Request) -> int:
    try:
        return _page_size(request.query_params.get("max_results", ""))
    except InvalidParameterValue:
        return PAGE_SIZE
