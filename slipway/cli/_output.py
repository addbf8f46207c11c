"""What the commands share: the client, consoles, JSON, formatting, errors, the runs table.

Consoles are made per command on the current ``sys.stdout``; without a terminal they print no
colour, at ``COLUMNS`` or 120 characters wide, so pipes and tests get deterministic text."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
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


# ``--tracking-uri`` on each command too, overriding the one given to ``slipway`` itself.
tracking_uri_option = click.option(
    "--tracking-uri",
    metavar="URI",
    expose_value=False,
    is_eager=True,
    callback=_set_tracking_uri,
    help="Tracking URI for this command (overrides the global one).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table, and nothing else."
)


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
    make_console(stderr=True).print(Text(f"Error: {message}", style="bold red"), soft_wrap=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


class SlipwayGroup(click.Group):
    """A group whose commands report a :class:`SlipwayError` (or a file system error, such as
    an unusable tracking folder) as one line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SlipwayError as err:
            print_error(err.message)
            raise click.exceptions.Exit(1) from None
        except OSError as err:
            if isinstance(err, BrokenPipeError):  # click handles a closed pipe itself
                raise
            print_error(f"{err.strerror}: {err.filename}" if err.filename else str(err))
            raise click.exceptions.Exit(1) from None


# -- formatting ------------------------------------------------------------------------------


def plain_table(**options: Any) -> Table:
    """A table without borders: lines that stay readable when piped or grepped."""
    return Table(box=None, header_style="bold", pad_edge=False, **options)


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
    """``850ms``, ``12.3s``, ``4m 05s``, ``2h 07m`` or ``3d 04h``; ``-`` until the run ends."""
    if info.start_time is None or info.end_time is None:
        return EMPTY
    ms = max(0, info.end_time - info.start_time)
    if ms < 60_000:
        return f"{ms}ms" if ms < 1000 else f"{ms / 1000:.1f}s"
    sec = ms // 1000
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if sec >= size:
            return f"{sec // size}{unit} {sec % size // small_size:02d}{small}"
    return f"{sec // 60}m {sec % 60:02d}s"


def format_number(value: float) -> str:
    """Short enough for a table column; ``runs show`` and ``--json`` give every digit."""
    return f"{value:.6g}"


STATUS_STYLES = {"RUNNING": "yellow", "FINISHED": "green", "FAILED": "red", "KILLED": "magenta"}


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
NO_WRAP: dict[str, Any] = {"no_wrap": True}
FOLD: dict[str, Any] = {"overflow": "fold"}
ID_COLUMN: dict[str, Any] = {"no_wrap": True, "min_width": SHORT_ID}
JUSTIFY: dict[str, dict[str, Any]] = {"metrics": {"justify": "right"}, "params": {}, "tags": {}}


class _Col:
    def __init__(self, header: str, cells: Iterable[Text], **options: Any) -> None:
        self.header, self.cells, self.options = header, list(cells), options
        self.width = max([len(header), *(c.cell_len for c in self.cells)]) + GAP


def ranked_columns(runs: Sequence[Run]) -> list[Column]:
    """Metric and param columns, most wanted first: the most common metrics (system metrics
    last) alternating with the first few params, then the rest."""

    def ranked(kind: str, counts: Counter[str]) -> list[Column]:
        keys = sorted(counts, key=lambda k: (k.startswith("system/"), -counts[k], k))
        return [(kind, k) for k in keys]

    m = ranked("metrics", Counter(k for run in runs for k in run.data.metrics))
    p = ranked("params", Counter(k for run in runs for k in run.data.params))
    n = min(len(p), PREFERRED_PARAMS)
    return [col for i in range(n) for col in m[i : i + 1] + p[i : i + 1]] + m[n:] + p[n:]


def _data_cell(run: Run, kind: str, key: str) -> Text:
    if kind == "metrics":
        value = run.data.metrics.get(key)
        return cell(None if value is None else format_number(value))
    return cell((run.data.params if kind == "params" else run.data.tags).get(key))


def render_runs(
    console: Console,
    runs: Sequence[Run],
    columns: list[Column] | None,
    experiments: dict[str, str] | None,
    show_stage: bool,
) -> None:
    """The runs as a table that fits the console: short id, name, [experiment], status,
    [stage], then as many of start time, duration and data columns as fit (but every data
    column asked for when ``columns`` is given)."""

    def make(header: str, show: Callable[[Run], object], **options: Any) -> _Col:
        values = (show(run) for run in runs)
        return _Col(header, [v if isinstance(v, Text) else cell(v) for v in values], **options)

    fixed = [
        make("Run ID", lambda r: cell(r.info.run_id[:SHORT_ID], "cyan"), **ID_COLUMN),
        make("Name", lambda r: r.info.run_name, **FOLD),
    ]
    if experiments:
        fixed.append(make("Experiment", lambda r: experiments.get(r.info.experiment_id), **FOLD))
    fixed.append(make("Status", lambda r: status_cell(r.info), **NO_WRAP))
    if show_stage:
        fixed.append(make("Stage", lambda r: r.info.lifecycle_stage, **NO_WRAP))
    optional = [
        make("Started", lambda r: format_time(r.info.start_time, seconds=False), **NO_WRAP),
        make("Duration", lambda r: format_duration(r.info), **NO_WRAP, justify="right"),
    ]
    wanted = ranked_columns(runs) if columns is None else columns
    data = [
        make(f"{k}.{key}", partial(_data_cell, kind=k, key=key), **FOLD, **JUSTIFY[k])
        for k, key in wanted
    ]
    room = console.width - sum(min(c.width, NAME_BUDGET + GAP) for c in fixed)
    shown = [] if columns is None else list(data)  # every column asked for, the rest if they fit
    room -= sum(c.width for c in shown)
    for col in optional + (data[:MAX_DATA_COLUMNS] if columns is None else []):
        if col.width <= room:
            room -= col.width
            shown.append(col)
    shown = [c for c in optional + data if c in shown]
    if columns is None:  # metrics, then params
        shown.sort(key=lambda c: c.header.startswith("params."))
    table = plain_table()
    for col in fixed + shown:
        table.add_column(col.header, **col.options)
    for i in range(len(runs)):
        table.add_row(*(col.cells[i] for col in fixed + shown))
    console.print(table)
    hidden = sum(c not in shown for c in data)
    if hidden and columns is None:
        console.print(
            f"{hidden} more metric/param column{'s' if hidden > 1 else ''} not shown; "
            "pick columns with --columns (e.g. --columns metrics.loss,params.lr).",
            style="dim",
        )
