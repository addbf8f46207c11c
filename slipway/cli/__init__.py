"""The ``slipway`` command line: ``slipway experiments ...`` and ``slipway runs ...``."""

from __future__ import annotations

import importlib

import click

import slipway
from slipway.cli._output import CliState, SlipwayGroup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

COMMANDS = {
    "experiments": "slipway.cli.experiments",
    "runs": "slipway.cli.runs",
    "models": "slipway.cli.models_env",  # the models group, with the commands it adds
    "server": "slipway.cli.server",
    "serve": "slipway.cli.serve",
    "pipelines": "slipway.cli.pipelines",
    "scheduler": "slipway.cli.scheduler",
    "tune": "slipway.cli.tune",
    "train": "slipway.cli.train",
    "ui": "slipway.cli.ui",
}
"""Each command's module (which defines it under its own name), imported when the command is
used or listed: ``slipway train`` does not pay for importing the other commands."""


class LazySlipwayGroup(SlipwayGroup):
    """The top-level group, loading its commands from :data:`COMMANDS` on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module = importlib.import_module(COMMANDS[cmd_name])
            self.add_command(getattr(module, cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group("slipway", cls=LazySlipwayGroup, context_settings=CONTEXT_SETTINGS)
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


def main() -> None:
    """The ``slipway`` console script."""
    cli.main(prog_name="slipway")


__all__ = ["cli", "main"]
