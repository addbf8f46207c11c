"""``slipway runs``: list, show, delete and restore runs."""

from __future__ import annotations

import string
import sys

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from slipway import Run, SlipwayClient, ViewType
from slipway.cli._output import (
    CliState,
    Column,
    SlipwayGroup,
    cell,
    collect,
    format_duration,
    format_time,
    json_option,
    make_console,
    pass_state,
    plain_table,
    print_json,
    render_runs,
    status_cell,
    tracking_uri_option,
)
from slipway.cli.experiments import VIEWS, resolve_experiment, view_option
from slipway.exceptions import InvalidParameterValue, RunNotFound

MIN_PREFIX = 4
COLUMN_KINDS = {name: kind for kind in ("metrics", "params", "tags") for name in (kind, kind[:-1])}


def parse_columns(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> list[Column] | None:
    """``metrics.loss,params.lr`` (repeatable) to columns; None when the option is absent."""
    if not values:
        return None
    columns: list[Column] = []
    for item in (part.strip() for value in values for part in value.split(",")):
        if not item:
            continue
        prefix, _, key = item.partition(".")
        kind = COLUMN_KINDS.get(prefix.lower())
        if kind is None or not key:
            raise click.BadParameter(f"{item!r}: use metrics.KEY, params.KEY or tags.KEY")
        columns.append((kind, key))
    return columns


def resolve_run(client: SlipwayClient, ref: str) -> Run:
    """A run by its id, or by a unique prefix of it (as ``runs list`` shows them)."""
    ref = ref.strip()
    try:
        return client.get_run(ref)
    except RunNotFound:
        prefix = ref.lower()
        if len(prefix) < MIN_PREFIX or not set(prefix) <= set(string.hexdigits.lower()):
            raise
        experiments, _ = collect(
            lambda n, token: client.search_experiments(ViewType.ALL, n, None, None, token),
            sys.maxsize,
        )
        ids = [e.experiment_id for e in experiments]
        like = f"attributes.run_id LIKE '{prefix}%'"
        found = client.search_runs(ids, like, ViewType.ALL, max_results=10)
        matches = [r for r in found if r.info.run_id.startswith(prefix)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise
        some = ", ".join(r.info.run_id for r in matches[:3])
        raise InvalidParameterValue(
            f"Run id prefix {ref!r} matches several runs ({some}, ...); give more characters"
        ) from None


@click.group(cls=SlipwayGroup)
def runs() -> None:
    """List, show, delete and restore runs.

    RUN_ID may be a full run id or a unique prefix of one (at least 4 characters), such
    as the short ids that 'slipway runs list' prints.
    """


@runs.command("list")
@click.option(
    "--experiment",
    "-e",
    "experiment_refs",
    multiple=True,
    required=True,
    metavar="NAME_OR_ID",
    help="Experiment to search; repeat for several.",
)
@click.option(
    "--filter",
    "filter_string",
    metavar="FILTER",
    help="""Search filter, e.g. "metrics.loss < 0.01 and params.lr = '0.1'".""",
)
@click.option(
    "--order-by",
    multiple=True,
    metavar="CLAUSE",
    help='Sort clause such as "metrics.loss ASC"; repeatable. Default: newest first.',
)
@click.option(
    "--max-results",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="List at most this many runs.",
)
@view_option("runs")
@click.option(
    "--columns",
    multiple=True,
    callback=parse_columns,
    metavar="COLS",
    help="Comma-separated metrics.KEY, params.KEY or tags.KEY columns to show "
    "(repeatable). Default: the most common metrics and params that fit.",
)
@json_option
@tracking_uri_option
@pass_state
def list_runs(
    state: CliState,
    experiment_refs: tuple[str, ...],
    filter_string: str | None,
    order_by: tuple[str, ...],
    max_results: int,
    view: str,
    columns: list[Column] | None,
    as_json: bool,
) -> None:
    """List the runs of one or more experiments, newest first.

    \b
    Examples:
      slipway runs list -e iris --filter "metrics.loss < 0.01" --order-by "metrics.loss ASC"
      slipway runs list -e iris --columns metrics.loss,params.lr --json
    """
    client = state.client
    experiments = {}
    for ref in experiment_refs:
        exp = resolve_experiment(client, ref)
        experiments[exp.experiment_id] = exp.name
    view_type = VIEWS[view.lower()]
    found, more = collect(
        lambda n, token: client.search_runs(
            list(experiments), filter_string, view_type, n, list(order_by), token
        ),
        max_results,
    )
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    console = make_console()
    if not found:
        console.print("No runs found.")
        return
    several = experiments if len(experiments) > 1 else None
    render_runs(console, found, columns, several, view_type is not ViewType.ACTIVE_ONLY)
    if more:
        console.print(
            f"Showing the first {len(found)} runs; raise --max-results to see more.", style="dim"
        )


@runs.command("show")
@click.argument("run_id")
@json_option
@tracking_uri_option
@pass_state
def show_run(state: CliState, run_id: str, as_json: bool) -> None:
    """Show a run: its info, params, latest metrics, tags and datasets."""
    run = resolve_run(state.client, run_id)
    if as_json:
        print_json(run.to_dict())
        return
    experiment = state.client.get_experiment(run.info.experiment_id).name
    _render_run(make_console(), run, experiment)


def _render_run(console: Console, run: Run, experiment: str) -> None:
    info = run.info
    console.print(Text(f"Run {info.run_id}", style="bold"), soft_wrap=True)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Name", cell(info.run_name))
    grid.add_row("Experiment", cell(f"{experiment} ({info.experiment_id})"))
    grid.add_row("Status", status_cell(info))
    grid.add_row("Lifecycle", cell(info.lifecycle_stage))
    grid.add_row("User", cell(info.user_id or None))
    grid.add_row("Started", cell(format_time(info.start_time)))
    grid.add_row("Ended", cell(format_time(info.end_time)))
    grid.add_row("Duration", cell(format_duration(info)))
    grid.add_row("Artifacts", cell(info.artifact_uri))
    console.print(grid)
    data = run.data
    datasets = [(i.dataset, i.context) for i in run.inputs.dataset_inputs]
    metrics = sorted(data.metric_records, key=lambda m: m.key)
    sections: list[tuple[str, list[str], list[tuple[object, ...]]]] = [
        ("Params", ["Key", "Value"], sorted(data.params.items())),
        (
            "Metrics",
            ["Key", "Value", "Step", "Logged"],
            [(m.key, m.value, m.step, format_time(m.timestamp)) for m in metrics],
        ),
        ("Tags", ["Key", "Value"], sorted(data.tags.items())),
        (
            "Datasets",
            ["Name", "Digest", "Context", "Source type", "Source"],
            [(d.name, d.digest, ctx, d.source_type, d.source) for d, ctx in datasets],
        ),
    ]
    for title, headers, rows in sections:
        console.print()
        if not rows:
            console.print(Text(f"{title}: none", style="dim"))
            continue
        table = plain_table(title=title, title_justify="left", title_style="bold")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*map(cell, row))
        console.print(table)


@runs.command("delete")
@click.argument("run_id")
@tracking_uri_option
@pass_state
def delete_run(state: CliState, run_id: str) -> None:
    """Delete a run (it can be restored)."""
    run = resolve_run(state.client, run_id)
    state.client.delete_run(run.info.run_id)
    click.echo(
        f"Deleted run {run.info.run_id} ({run.info.run_name!r}); undo with "
        f"'slipway runs restore {run.info.run_id}'."
    )


@runs.command("restore")
@click.argument("run_id")
@tracking_uri_option
@pass_state
def restore_run(state: CliState, run_id: str) -> None:
    """Restore a deleted run."""
    run = resolve_run(state.client, run_id)
    state.client.restore_run(run.info.run_id)
    click.echo(f"Restored run {run.info.run_id} ({run.info.run_name!r}).")
