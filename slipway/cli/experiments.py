"""``slipway experiments``: list, create, rename, delete and restore experiments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from slipway import Experiment, SlipwayClient, ViewType
from slipway.cli._output import (
    CliState,
    SlipwayGroup,
    cell,
    collect,
    format_time,
    json_option,
    make_console,
    pass_state,
    plain_table,
    print_json,
    tracking_uri_option,
)
from slipway.exceptions import ExperimentNotFound

VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}


def view_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--view",
        type=click.Choice(list(VIEWS), case_sensitive=False),
        default="active",
        show_default=True,
        help=f"Which {what} to list: active ones, deleted ones or all.",
    )


def resolve_experiment(client: SlipwayClient, ref: str) -> Experiment:
    """An experiment by name or, failing that, by id (a name wins over a same-looking id).
    Deleted experiments are found too, so that they can be restored."""
    found = client.get_experiment_by_name(ref)
    if found is not None:
        return found
    if ref.strip().isdigit():
        try:
            return client.get_experiment(ref.strip())
        except ExperimentNotFound:
            pass
    raise ExperimentNotFound(f"No experiment with name or id {ref!r}")


def _parse_tags(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        tags[key.strip()] = value
    return tags


@click.group(cls=SlipwayGroup)
def experiments() -> None:
    """List, create, rename, delete and restore experiments.

    Commands that take ID_OR_NAME accept an experiment's name or its id; a name wins
    when both match.
    """


@experiments.command("list")
@view_option("experiments")
@click.option(
    "--filter",
    "filter_string",
    metavar="FILTER",
    help="""Search filter, e.g. "name LIKE 'iris%'" or "tags.team = 'growth'".""",
)
@click.option(
    "--max-results",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="List at most this many experiments.",
)
@json_option
@tracking_uri_option
@pass_state
def list_experiments(
    state: CliState, view: str, filter_string: str | None, max_results: int, as_json: bool
) -> None:
    """List experiments, most recently created first."""
    view_type = VIEWS[view.lower()]
    found, more = collect(
        lambda n, token: state.client.search_experiments(view_type, n, filter_string, None, token),
        max_results,
    )
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    console = make_console()
    if not found:
        console.print("No experiments found.")
        return
    table = plain_table()
    table.add_column("ID", no_wrap=True, min_width=2)
    table.add_column("Name", overflow="fold")
    table.add_column("Created", no_wrap=True)
    table.add_column("Artifact location", overflow="fold")
    show_stage = view_type is not ViewType.ACTIVE_ONLY
    if show_stage:
        table.add_column("Stage", no_wrap=True)
    for exp in found:
        row = [
            cell(exp.experiment_id),
            cell(exp.name),
            cell(format_time(exp.creation_time)),
            cell(exp.artifact_location),
        ]
        if show_stage:
            row.append(cell(exp.lifecycle_stage, "dim" if exp.lifecycle_stage == "deleted" else ""))
        table.add_row(*row)
    console.print(table)
    if more:
        console.print(
            f"Showing the first {len(found)} experiments; raise --max-results to see more.",
            style="dim",
        )


@experiments.command("create")
@click.argument("name")
@click.option(
    "--artifact-location",
    metavar="L",
    help="Where the runs' artifacts go (a folder or s3://...); "
    "under the store's artifact root when omitted.",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_tags,
    help="Tag the experiment; repeat for several tags.",
)
@tracking_uri_option
@pass_state
def create_experiment(
    state: CliState, name: str, artifact_location: str | None, tags: dict[str, str]
) -> None:
    """Create experiment NAME and print its id."""
    experiment_id = state.client.create_experiment(name, artifact_location, tags or None)
    click.echo(experiment_id)


@experiments.command("rename")
@click.argument("id_or_name")
@click.argument("new_name")
@tracking_uri_option
@pass_state
def rename_experiment(state: CliState, id_or_name: str, new_name: str) -> None:
    """Rename an experiment to NEW_NAME."""
    exp = resolve_experiment(state.client, id_or_name)
    state.client.rename_experiment(exp.experiment_id, new_name)
    click.echo(f"Renamed experiment {exp.experiment_id} from {exp.name!r} to {new_name!r}.")


@experiments.command("delete")
@click.argument("id_or_name")
@tracking_uri_option
@pass_state
def delete_experiment(state: CliState, id_or_name: str) -> None:
    """Delete an experiment and its runs (they can be restored)."""
    exp = resolve_experiment(state.client, id_or_name)
    state.client.delete_experiment(exp.experiment_id)
    click.echo(
        f"Deleted experiment {exp.experiment_id} ({exp.name!r}); undo with "
        f"'slipway experiments restore {exp.experiment_id}'."
    )


@experiments.command("restore")
@click.argument("id_or_name")
@tracking_uri_option
@pass_state
def restore_experiment(state: CliState, id_or_name: str) -> None:
    """Restore a deleted experiment and the runs deleted with it."""
    exp = resolve_experiment(state.client, id_or_name)
    state.client.restore_experiment(exp.experiment_id)
    click.echo(f"Restored experiment {exp.experiment_id} ({exp.name!r}).")
