"""The ``slipway`` command line: ``slipway experiments ...`` and ``slipway runs ...``."""

from __future__ import annotations

import click

import slipway
from slipway.cli._output import CliState, SlipwayGroup
from slipway.cli.experiments import experiments
from slipway.cli.models import models
from slipway.cli.models_env import predict_command as _predict  # noqa: F401 (registers)
from slipway.cli.pipelines import pipelines
from slipway.cli.runs import runs
from slipway.cli.scheduler import scheduler
from slipway.cli.serve import serve
from slipway.cli.server import server
from slipway.cli.train import train
from slipway.cli.tune import tune
from slipway.cli.ui import ui

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("slipway", cls=SlipwayGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(
    slipway.__version__, "--version", "-V", prog_name="slipway", message="%(prog)s %(version)s"
)
@click.option(
    "--tracking-uri",
    envvar="SLIPWAY_TRACKING_URI",
    show_envvar=True,
    metavar="URI",
    help="Where runs are recorded: a folder, sqlite:///path.db or "
    "postgresql://... Default: ./.slipway",
)
@click.pass_context
def cli(ctx: click.Context, tracking_uri: str | None) -> None:
    """Slipway: track machine-learning experiments and runs, and register models.

    Every command prints a table, or JSON with --json. Search filters use MLflow's
    grammar, e.g. "metrics.loss < 0.01 and params.lr = '0.1'".

    \b
    Examples:
      slipway experiments list
      slipway experiments create churn --tag team=growth
      slipway runs list --experiment iris --order-by "metrics.loss ASC"
      slipway runs show 1a2b3c4d --json
      slipway models list
      slipway models approve iris 3 --alias champion --comment ok
      slipway pipelines run examples/pipelines/iris.py --param rows=500
      slipway pipelines compile examples/pipelines/iris.py --format kfp -o iris.yaml
    """
    ctx.ensure_object(CliState).tracking_uri = tracking_uri


cli.add_command(experiments)
cli.add_command(runs)
cli.add_command(models)
cli.add_command(server)
cli.add_command(serve)
cli.add_command(pipelines)
cli.add_command(scheduler)
cli.add_command(tune)
cli.add_command(train)
cli.add_command(ui)


def main() -> None:
    """The ``slipway`` console script."""
    cli.main(prog_name="slipway")


__all__ = ["cli", "main"]
