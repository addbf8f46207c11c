"""Helpers shared by the commands: the client, consoles, JSON, formatting and error handling.

Output goes through rich consoles made per command, so that tests (which swap ``sys.stdout``)
and pipes get plain, deterministic text: without a terminal there is no colour and the width
is ``COLUMNS`` or 120 characters.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from slipway import Run, SlipwayClient, SlipwayError
from slipway.entities import PagedList, RunInfo

T = TypeVar("T")

PIPE_WIDTH = 120
PAGE_SIZE = 1000
EMPTY = "-"


@dataclass
class CliState:
    """What the group options set up for the commands; the client opens on first use."""

    tracking_uri: str | None = None
    _client: SlipwayClient | None = None

    @property
    def client(self) -> SlipwayClient:
        if self._client is None:
            self._client = SlipwayClient(self.tracking_uri)
        return self._client


pass_state = click.make_pass_decorator(CliState, ensure=True)


def _set_tracking_uri(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(CliState).tracking_uri = value


def tracking_uri_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--tracking-uri`` on a command, overriding the one given to ``slipway`` itself."""
    return click.option(
        "--tracking-uri",
        metavar="URI",
        expose_value=False,
        is_eager=True,
        callback=_set_tracking_uri,
        help="Tracking URI for this command (overrides the global option).",
    )(func)


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of a table, and nothing else."
    )(func)


# -- consoles --------------------------------------------------------------------------------


def make_console(stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr): terminal width and colour on a terminal,
    else no colour and a fixed width."""
    stream = sys.stderr if stderr else sys.stdout
    isatty = getattr(stream, "isatty", None)
    width = None
    if not (callable(isatty) and isatty()):
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH
    return Console(stderr=stderr, width=width, highlight=False, emoji=False)


def print_error(message: str) -> None:
    """``Error: <message>`` in red on stderr, on one line."""
    make_console(stderr=True).print(
        Text(f"Error: {message}", style="bold red"), soft_wrap=True
    )


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


class SlipwayGroup(click.Group):
    """A group whose commands report a :class:`SlipwayError` as one line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SlipwayError as err:
            print_error(err.message)
            ctx.exit(1)


# -- formatting ------------------------------------------------------------------------------


def cell(value: object, style: str = "") -> Text:
    """A table cell that shows ``value`` literally (no markup, no emoji codes)."""
    return Text(EMPTY if value is None else str(value), style=style)


def format_time(ms: int | None, seconds: bool = True) -> str:
    """Local time, to the second (or the minute)."""
    if ms is None:
        return EMPTY
    local = datetime.fromtimestamp(ms / 1000).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def format_duration(info: RunInfo) -> str:
    if info.start_time is None or info.end_time is None:
        return EMPTY
    ms = max(0, info.end_time - info.start_time)
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def format_number(value: float) -> str:
    """Short enough for a table column; ``runs show`` and ``--json`` give every digit."""
    return f"{value:.6g}"


STATUS_STYLES = {
    "RUNNING": "yellow",
    "SCHEDULED": "cyan",
    "FINISHED": "green",
    "FAILED": "red",
    "KILLED": "magenta",
}


def status_cell(info: RunInfo) -> Text:
    status = str(info.status)
    return cell(status, STATUS_STYLES.get(status, ""))


# -- paging ----------------------------------------------------------------------------------


def collect(fetch: Callable[[int, str | None], PagedList[T]], limit: int) -> tuple[list[T], bool]:
    """Up to ``limit`` results of a paged search, and whether more exist beyond them."""
    items: list[T] = []
    token: str | None = None
    while len(items) < limit:
        page = fetch(min(PAGE_SIZE, limit - len(items)), token)
        items.extend(page)
        token = page.token
        if not token:
            return items, False
    return items, bool(fetch(1, token))


# -- the runs table --------------------------------------------------------------------------

Column = tuple[str, str]  # ("metrics" | "params" | "tags", key)
SHORT_ID = 8
MAX_DATA_COLUMNS = 10
PREFERRED_PARAMS = 3
NAME_BUDGET = 24
GAP = 2


@dataclass(eq=False)
class _Col:
    header: str
    cells: list[Text]
    options: dict[str, Any]

    @property
    def width(self) -> int:
        return max(len(self.header), *(c.cell_len for c in self.cells))


def ranked_columns(runs: Sequence[Run]) -> list[Column]:
    """Metric and param columns, most wanted first: the most common metrics (system metrics
    last) alternating with the first few params, then the rest."""
    metrics = Counter(k for run in runs for k in run.data.metrics)
    params = Counter(k for run in runs for k in run.data.params)

    def ranked(kind: str, counts: Counter[str]) -> list[Column]:
        keys = sorted(counts, key=lambda k: (k.startswith("system/"), -counts[k], k))
        return [(kind, k) for k in keys]

    m, p = ranked("metrics", metrics), ranked("params", params)
    n = min(len(p), PREFERRED_PARAMS)
    pairs = [col for i in range(n) for col in m[i : i + 1] + p[i : i + 1]]
    return pairs + m[n:] + p[n:]


def _data_cell(run: Run, column: Column) -> Text:
    kind, key = column
    if kind == "metrics":
        value = run.data.metrics.get(key)
        return cell(None if value is None else format_number(value))
    return cell((run.data.params if kind == "params" else run.data.tags).get(key))


def render_runs(console: Console, runs: Sequence[Run], columns: list[Column] | None,
                experiments: dict[str, str] | None, show_stage: bool) -> None:
    """The runs as a table that fits the console: short id, name, [experiment], status,
    [stage], then as many of start time, duration and data columns as fit (all the data
    columns asked for when ``columns`` is given)."""
    infos = [run.info for run in runs]
    fixed = [_Col("Run ID", [cell(i.run_id[:SHORT_ID], "cyan") for i in infos],
                  {"no_wrap": True, "min_width": SHORT_ID}),
             _Col("Name", [cell(i.run_name) for i in infos], {"overflow": "fold"})]
    if experiments:
        fixed.append(_Col("Experiment", [cell(experiments.get(i.experiment_id)) for i in infos],
                          {"overflow": "fold"}))
    fixed.append(_Col("Status", [status_cell(i) for i in infos], {"no_wrap": True}))
    if show_stage:
        fixed.append(_Col("Stage", [cell(i.lifecycle_stage) for i in infos], {"no_wrap": True}))
    optional = [
        _Col("Started", [cell(format_time(i.start_time, seconds=False)) for i in infos],
             {"no_wrap": True}),
        _Col("Duration", [cell(format_duration(i)) for i in infos],
             {"no_wrap": True, "justify": "right"}),
    ]
    wanted = columns if columns is not None else ranked_columns(runs)
    data = [_Col(f"{kind}.{key}", [_data_cell(run, (kind, key)) for run in runs],
                 {"overflow": "fold", "justify": "right" if kind == "metrics" else "left"})
            for kind, key in wanted]
    room = console.width - sum(min(c.width, NAME_BUDGET) + GAP for c in fixed)
    if columns is None:
        candidates, forced = optional + data[:MAX_DATA_COLUMNS], []
    else:  # the columns asked for come first, then start time and duration if they fit
        candidates, forced = optional, data
        room -= sum(c.width + GAP for c in data)
    shown = list(forced)
    for col in candidates:
        if col.width + GAP <= room:
            room -= col.width + GAP
            shown.append(col)
    shown = [c for c in optional + data if c in shown]
    if columns is None:  # metrics, then params
        shown.sort(key=lambda c: c.header.startswith("params."))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in fixed + shown:
        table.add_column(col.header, **col.options)
    for i in range(len(runs)):
        table.add_row(*(col.cells[i] for col in fixed + shown))
    console.print(table)
    hidden = len(data) - sum(col in data for col in shown)
    if hidden and columns is None:
        console.print(f"{hidden} more metric/param column{'s' if hidden > 1 else ''} not "
                      "shown; pick columns with --columns (e.g. --columns "
                      "metrics.loss,params.lr).", style="dim")
