"""``slipway scheduler``: start the runs of due schedules, in the foreground.

``slipway server`` runs the same scheduler beside the server; this command is for a store
that no server serves (a folder or database used directly), or for a scheduler on a machine
of its own. Several may run over one store: each due fire is claimed by exactly one.
"""

from __future__ import annotations

import logging

import click

from slipway.cli._output import CliState, pass_state, tracking_uri_option


@click.command("scheduler")
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="How often to look for due schedules.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False),
    help="Where each run's output goes. Default: <store folder>/scheduler-logs, or a "
    "temporary folder for a database or server.",
)
@tracking_uri_option
@pass_state
def scheduler(state: CliState, poll_seconds: float, log_dir: str | None) -> None:
    """Start the pipeline runs of due schedules until Ctrl-C.

    Runs are separate processes: stopping the scheduler leaves them running.

    \b
    Examples:
      slipway scheduler
      slipway --tracking-uri postgresql://db/ml scheduler --poll-seconds 30
    """
    from slipway.pipelines.scheduler import Scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    runner = Scheduler(state.tracking_uri, poll_seconds, log_dir=log_dir)
    click.echo(
        f"Scheduler on {runner.tracking_uri}, polling every {poll_seconds:g}s; run logs in "
        f"{runner.log_dir}. Ctrl+C stops it."
    )
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        runner.stop()
        click.echo("Scheduler stopped.")


__all__ = ["scheduler"]
