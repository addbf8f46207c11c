"""``slipway pipelines``: run, resume, cancel, inspect, compile and schedule pipelines.

A pipeline is named by its file (``iris.py``, or ``iris.py:name`` when the file holds several).
``run`` shows a live tree of the steps on a terminal and a line per change otherwise, and exits
0 when the run succeeded, 1 when it failed (naming the step), 130 when Ctrl-C cancelled it, so
scripts and schedulers can tell them apart. Pipeline runs are tracking runs: RUN_ID may be a
unique prefix of one, as the tables show them.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

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
    print_error,
    print_json,
    tracking_uri_option,
)
from slipway.cli.pipelines_view import (
    EXIT_INTERRUPTED,
    SHORT_ID,
    ordered_steps,
    print_outcome,
    run_as_dict,
    run_duration,
    status_text,
    steps_table,
)
from slipway.entities.pipelines import (
    PipelineRun,
    PipelineRunStatus,
    PipelineStep,
    Schedule,
    StepStatus,
)
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.pipelines.store.base import SEARCH_PIPELINE_RUNS_MAX, AbstractPipelineStore

RUN_STATUSES = [s.value for s in PipelineRunStatus]
LOG_NAMES = {"stdout": "logs/stdout.txt", "stderr": "logs/stderr.txt"}


def pipeline_store(state: CliState) -> AbstractPipelineStore:
    from slipway.pipelines.store import get_pipeline_store

    return get_pipeline_store(state.tracking_uri)


def executor_options(func: Any) -> Any:
    """``--executor``, ``--ray-address`` and ``--working-dir``, for ``run`` and ``resume``."""
    func = click.option(
        "--working-dir",
        type=click.Path(exists=True, file_okay=False),
        metavar="DIR",
        help="With --executor ray: ship this folder to every node (without .git, virtual "
        "environments, caches and .slipway); each step runs in its node's copy.",
    )(func)
    func = click.option(
        "--ray-address",
        metavar="ADDR",
        help="The Ray cluster for --executor ray: HOST:PORT, ray://HOST:PORT, 'auto' (the "
        "cluster running here) or 'local' (default: SLIPWAY_RAY_ADDRESS, else a local Ray "
        "instance).",
    )(func)
    return click.option(
        "--executor",
        type=click.Choice(["local", "ray"], case_sensitive=False),
        default="local",
        show_default=True,
        help="Where the steps run: processes of this machine, or Ray tasks on a cluster.",
    )(func)


def params_option(func: Any) -> Any:
    return click.option(
        "--param",
        "params",
        multiple=True,
        metavar="NAME=VALUE",
        help="A pipeline parameter (repeatable); lists and dicts as JSON.",
    )(func)


@click.group(cls=SlipwayGroup)
def pipelines() -> None:
    """Run, resume, inspect, compile and schedule pipelines.

    \b
    Examples:
      slipway pipelines run iris.py --param rows=5000
      slipway pipelines run iris.py --executor ray --ray-address ray://head:10001
      slipway pipelines list --status FAILED
      slipway pipelines show 1a2b3c4d
      slipway pipelines logs 1a2b3c4d train[1] --stderr
      slipway pipelines resume 1a2b3c4d
      slipway pipelines compile iris.py --format kfp -o iris.yaml
      slipway pipelines schedule iris.py --cron "0 * * * *" --param rows=5000
    """


# -- helpers -----------------------------------------------------------------------------------


def resolve_pipeline_run(state: CliState, ref: str) -> PipelineRun:
    """The pipeline run with id (or unique id prefix) ``ref``; a step run's id says which
    pipeline run it belongs to."""
    from slipway.cli.runs import resolve_run
    from slipway.entities.registry import PIPELINE_RUN_TAG, PIPELINE_STEP_TAG

    run = resolve_run(state.client, ref)
    try:
        return pipeline_store(state).get_pipeline_run(run.info.run_id)
    except ResourceDoesNotExist:
        parent = run.data.tags.get(PIPELINE_RUN_TAG)
        if parent:
            step = run.data.tags.get(PIPELINE_STEP_TAG, "?")
            raise ResourceDoesNotExist(
                f"Run {run.info.run_id} is step {step} of pipeline run {parent}; "
                "give the pipeline run's id"
            ) from None
        raise ResourceDoesNotExist(f"Run {run.info.run_id} is not a pipeline run") from None


class _ScheduleRecorder:
    """Wraps the reporter of a scheduled run: the first update tells the schedule which run it
    started (its ``last_run_id``), so ``schedules list`` shows it while it runs."""

    def __init__(self, reporter: Any, store: AbstractPipelineStore, schedule_id: str) -> None:
        self.reporter = reporter
        self.store = store
        self.schedule_id = schedule_id
        self.recorded: str | None = None

    def update(self, run: PipelineRun, steps: list[PipelineStep]) -> None:
        if self.recorded != run.run_id:
            self.recorded = run.run_id
            # A schedule deleted since it fired: the run goes on without it.
            with contextlib.suppress(ResourceDoesNotExist):
                self.store.update_schedule(self.schedule_id, last_run_id=run.run_id)
        self.reporter.update(run, steps)


def _reporter(console: Console) -> Any:
    from slipway.pipelines.live import LineReporter, LiveView

    if console.is_terminal:
        return LiveView(console)
    return LineReporter(sys.stdout)


def _execute(state: CliState, start: Any, schedule_id: str | None = None) -> None:
    """Run ``start(on_update)`` (the executor's run or resume) under a reporter, print the
    outcome and exit with its status."""
    console = make_console()
    reporter = _reporter(console)
    on_update = reporter.update
    if schedule_id is not None:
        on_update = _ScheduleRecorder(reporter, pipeline_store(state), schedule_id).update
    try:
        with reporter:
            result = start(on_update)
            reporter.update(result.run, result.steps)  # the final status, drawn once more
    except KeyboardInterrupt:
        print_error("interrupted")
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    if schedule_id is not None:
        with contextlib.suppress(ResourceDoesNotExist):
            pipeline_store(state).update_schedule(schedule_id, last_run_id=result.run_id)
    status = print_outcome(console, result.run, result.steps)
    if status:
        raise click.exceptions.Exit(status)


# -- run, resume, cancel -----------------------------------------------------------------------


@pipelines.command("run")
@click.argument("source", metavar="FILE[:NAME]")
@params_option
@click.option("--experiment", metavar="NAME", help="Experiment to record the run in.")
@click.option("--run-name", metavar="NAME", help="Name of the pipeline's run.")
@click.option("--no-cache", is_flag=True, help="Run every step, even where cached outputs exist.")
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    metavar="N",
    help="Run at most N steps at once (default: as many as the machine holds).",
)
@click.option("--schedule-id", hidden=True, help="The schedule that started this run.")
@click.option("--experiment-id", hidden=True, help="Experiment id (schedules use it).")
@click.option("--params-json", hidden=True, help="Parameters as one JSON object.")
@executor_options
@tracking_uri_option
@pass_state
def run_command(
    state: CliState,
    source: str,
    params: tuple[str, ...],
    experiment: str | None,
    run_name: str | None,
    no_cache: bool,
    max_parallel: int | None,
    schedule_id: str | None,
    experiment_id: str | None,
    params_json: str | None,
    executor: str,
    ray_address: str | None,
    working_dir: str | None,
) -> None:
    """Run a pipeline on this machine, or on a Ray cluster.

    FILE holds the pipeline (FILE:NAME picks one of several). Shows the steps as they
    run; exits 0 when the run succeeds, 1 when it fails, 130 when interrupted (Ctrl-C
    cancels the running steps). With --executor ray each step is a Ray task asking for
    the step's cpu, memory and gpu.

    \b
    Examples:
      slipway pipelines run iris.py --param rows=5000
      slipway pipelines run flows.py:nightly --experiment nightly --no-cache
      slipway pipelines run iris.py --executor ray --ray-address auto
      slipway pipelines run flow.py --executor ray --ray-address ray://head:10001 --working-dir .
    """
    from slipway.pipelines import executor as executors
    from slipway.pipelines.executor.step import warm_up
    from slipway.pipelines.loader import absolute_source, check_params, load_pipeline, parse_params

    executor = executor.lower()
    if executor == "local":
        if ray_address is not None:
            raise InvalidParameterValue("--ray-address goes with --executor ray")
        if working_dir is not None:
            raise InvalidParameterValue("--working-dir goes with --executor ray")
        warm_up()  # the step fork server boots while the pipeline file is imported
    pipeline = load_pipeline(source)
    values: dict[str, Any] = {}
    if params_json:
        try:
            given = json.loads(params_json)
        except ValueError as exc:
            raise InvalidParameterValue(f"--params-json is not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise InvalidParameterValue("--params-json must be a JSON object")
        values.update(check_params(pipeline, given))
    values.update(parse_params(pipeline, params))
    if schedule_id is not None:
        schedule_id = pipeline_store(state).get_schedule(schedule_id).schedule_id

    def start(on_update: Any) -> Any:
        return executors.run(
            pipeline,
            values,
            experiment_name=experiment,
            experiment_id=experiment_id,
            run_name=run_name,
            cache=not no_cache,
            tracking_uri=state.tracking_uri,
            max_parallel=max_parallel,
            source=absolute_source(source),
            schedule_id=schedule_id,
            on_update=on_update,
            executor=executor,
            ray_address=ray_address,
            working_dir=working_dir,
        )

    _execute(state, start, schedule_id)


@pipelines.command("resume")
@click.argument("run_ref", metavar="RUN_ID")
@click.option(
    "--from",
    "from_step",
    metavar="STEP",
    help="Also run STEP and everything after it again, even if they succeeded.",
)
@click.option("--no-cache", is_flag=True, help="Run the steps again even where cached.")
@click.option("--max-parallel", type=click.IntRange(min=1), metavar="N")
@executor_options
@tracking_uri_option
@pass_state
def resume_command(
    state: CliState,
    run_ref: str,
    from_step: str | None,
    no_cache: bool,
    max_parallel: int | None,
    executor: str,
    ray_address: str | None,
    working_dir: str | None,
) -> None:
    """Run a failed or cancelled run again.

    What succeeded keeps its outputs; the rest runs with the pipeline file's code as it is
    now. --from STEP also runs STEP and what follows it again (even in a run that
    succeeded). --executor ray resumes it on a Ray cluster, whatever it ran on before."""
    from slipway.pipelines import executor as executors

    executor = executor.lower()
    if executor == "local" and ray_address is not None:
        raise InvalidParameterValue("--ray-address goes with --executor ray")
    if executor == "local" and working_dir is not None:
        raise InvalidParameterValue("--working-dir goes with --executor ray")
    run_id = resolve_pipeline_run(state, run_ref).run_id

    def start(on_update: Any) -> Any:
        return executors.resume(
            run_id,
            from_step=from_step,
            cache=not no_cache,
            tracking_uri=state.tracking_uri,
            max_parallel=max_parallel,
            on_update=on_update,
            executor=executor,
            ray_address=ray_address,
            working_dir=working_dir,
        )

    _execute(state, start)


@pipelines.command("cancel")
@click.argument("run_ref", metavar="RUN_ID")
@tracking_uri_option
@pass_state
def cancel_command(state: CliState, run_ref: str) -> None:
    """Stop a running pipeline run.

    Its executor (wherever it runs) cancels the running steps and marks it CANCELLED."""
    from slipway.pipelines import executor

    run_id = resolve_pipeline_run(state, run_ref).run_id
    run = executor.cancel(run_id, tracking_uri=state.tracking_uri)
    if run.status.terminal:
        click.echo(f"Pipeline run {run_id} has already ended ({run.status}).")
    else:
        click.echo(f"Cancelling pipeline run {run_id} ({run.status}).")


# -- list, show, logs --------------------------------------------------------------------------


@pipelines.command("list")
@click.option("--pipeline", "pipeline_name", metavar="NAME", help="Only runs of this pipeline.")
@click.option(
    "--status",
    type=click.Choice(RUN_STATUSES, case_sensitive=False),
    help="Only runs with this status.",
)
@click.option("--max-results", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@tracking_uri_option
@pass_state
def list_command(
    state: CliState,
    pipeline_name: str | None,
    status: str | None,
    max_results: int,
    as_json: bool,
) -> None:
    """List pipeline runs, newest first."""
    store = pipeline_store(state)
    wanted = PipelineRunStatus(status.upper()) if status else None
    found, more = collect(
        lambda n, token: store.search_pipeline_runs(
            pipeline_name=pipeline_name,
            status=wanted,
            max_results=min(n, SEARCH_PIPELINE_RUNS_MAX),
            page_token=token,
        ),
        max_results,
    )
    if as_json:
        print_json([run_as_dict(r) for r in found])
        return
    console = make_console()
    if not found:
        console.print("No pipeline runs.")
        return
    table = plain_table()
    for title in ("Run ID", "Pipeline", "Status", "Started", "Duration", "Attempt", "Message"):
        options: dict[str, Any] = {"overflow": "fold"} if title == "Message" else {"no_wrap": True}
        table.add_column(title, **options)
    from slipway.pipelines.live import one_line

    for run in found:
        table.add_row(
            cell(run.run_id[:SHORT_ID], "cyan"),
            cell(run.pipeline_name),
            status_text(run.status),
            cell(format_time(run.start_time, seconds=False)),
            cell(run_duration(run)),
            cell(run.attempt),
            cell(one_line(run.message, 120) or None),
        )
    console.print(table)
    if more:
        console.print(f"Showing the first {len(found)}; raise --max-results.", style="dim")


@pipelines.command("show")
@click.argument("run_ref", metavar="RUN_ID")
@json_option
@tracking_uri_option
@pass_state
def show_command(state: CliState, run_ref: str, as_json: bool) -> None:
    """Show a pipeline run: its parameters and a table of its steps."""
    run = resolve_pipeline_run(state, run_ref)
    steps = ordered_steps(run, pipeline_store(state).list_steps(run.run_id))
    if as_json:
        print_json(run_as_dict(run, steps))
        return
    console = make_console()
    facts = plain_table(show_header=False)
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("Run ID", cell(run.run_id)),
        ("Pipeline", cell(run.pipeline_name)),
        ("Status", status_text(run.status)),
        ("Experiment", cell(run.experiment_id)),
        ("Started", cell(format_time(run.start_time))),
        ("Duration", cell(run_duration(run))),
        ("Attempt", cell(run.attempt)),
        ("Source", cell(run.source)),
        ("Parameters", cell(json.dumps(run.parameters, sort_keys=True) if run.parameters else "")),
    ]
    if run.schedule_id:
        rows.append(("Schedule", cell(run.schedule_id)))
    if run.message:
        rows.append(("Message", cell(run.message)))
    for key, value in rows:
        facts.add_row(key, value)
    console.print(facts)
    console.print()
    console.print(steps_table(steps) if steps else "No steps recorded.")


@pipelines.command("logs")
@click.argument("run_ref", metavar="RUN_ID")
@click.argument("task_id", metavar="STEP")
@click.option("--stderr", "show_stderr", is_flag=True, help="Print stderr instead of stdout.")
@tracking_uri_option
@pass_state
def logs_command(state: CliState, run_ref: str, task_id: str, show_stderr: bool) -> None:
    """Print a step's stdout (or stderr).

    STEP is a task id such as prepare or train[2]; the output is its latest attempt's (for
    a cached step, that of the run it was cached from)."""
    import tempfile

    run = resolve_pipeline_run(state, run_ref)
    store = pipeline_store(state)
    try:
        step = store.get_step(run.run_id, task_id)
    except ResourceDoesNotExist:
        steps = ordered_steps(run, store.list_steps(run.run_id))
        known = ", ".join(s.task_id for s in steps) or "none"
        raise ResourceDoesNotExist(
            f"Pipeline run {run.run_id} has no step {task_id!r} (steps: {known})"
        ) from None
    source_run = step.run_id
    if step.status == StepStatus.CACHED and step.cached_from:
        source_run = step.cached_from
        click.echo(f"(step {task_id} was cached: output of run {source_run})", err=True)
    if source_run is None:
        raise InvalidParameterValue(f"Step {task_id} has not run ({step.status}): it has no logs")
    name = "stderr" if show_stderr else "stdout"
    client = state.client
    present = {f.path for f in client.list_artifacts(source_run, "logs")}
    if LOG_NAMES[name] not in present:
        click.echo(f"(step {task_id} wrote nothing to {name})", err=True)
        return
    with tempfile.TemporaryDirectory() as folder:
        local = client.download_artifacts(source_run, LOG_NAMES[name], folder)
        text = Path(local).read_text(errors="replace")
    click.echo(text, nl=False)


# -- compile -----------------------------------------------------------------------------------


@pipelines.command("compile")
@click.argument("source", metavar="FILE[:NAME]")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["kfp", "json"], case_sensitive=False),
    default="kfp",
    show_default=True,
    help="kfp: Kubeflow Pipelines' YAML (IR); json: Slipway's graph.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The file to write (- for stdout).",
)
def compile_command(source: str, fmt: str, output: str) -> None:
    """Compile a pipeline to Kubeflow YAML or JSON.

    kfp writes Kubeflow Pipelines' pipeline spec (IR YAML), which a Kubeflow Pipelines
    server accepts; json writes Slipway's graph of the pipeline."""
    from slipway.pipelines.loader import load_pipeline

    pipeline = load_pipeline(source)
    if fmt.lower() == "json":
        text = json.dumps(pipeline.graph.to_dict(), indent=2, sort_keys=False) + "\n"
        if output == "-":
            click.echo(text, nl=False)
            return
        Path(output).write_text(text)
    else:
        from slipway.pipelines.kfp import write_pipeline_yaml

        if output == "-":
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                target = Path(folder) / f"{pipeline.name}.yaml"
                write_pipeline_yaml(pipeline, str(target))
                click.echo(target.read_text(), nl=False)
            return
        write_pipeline_yaml(pipeline, output)
    click.echo(f"Wrote {output} ({fmt.lower()}, pipeline {pipeline.name})", err=True)


# -- schedules ---------------------------------------------------------------------------------


@pipelines.command("schedule")
@click.argument("source", metavar="FILE[:NAME]")
@click.option("--cron", required=True, metavar="EXPR", help='UTC cron, e.g. "0 * * * *".')
@click.option("--name", metavar="NAME", help="The schedule's name (default: the pipeline's).")
@params_option
@click.option("--experiment", metavar="NAME", help="Experiment the runs go to.")
@json_option
@tracking_uri_option
@pass_state
def schedule_command(
    state: CliState,
    source: str,
    cron: str,
    name: str | None,
    params: tuple[str, ...],
    experiment: str | None,
    as_json: bool,
) -> None:
    """Run the pipeline in FILE on a cron schedule (UTC).

    `slipway server` (or `slipway scheduler`) starts the runs. The file is kept by its
    absolute path and loaded again for every run, so later edits take effect.

    \b
    Examples:
      slipway pipelines schedule iris.py --cron "0 3 * * *" --param rows=5000
      slipway pipelines schedule flows.py:nightly --cron @daily --name nightly
    """
    import uuid

    from slipway.pipelines.cron import next_fire, validate_cron
    from slipway.pipelines.loader import absolute_source, load_pipeline, parse_params
    from slipway.tracking.client import now_ms
    from slipway.utils.user import current_user

    cron = validate_cron(cron)
    pipeline = load_pipeline(source)
    values = parse_params(pipeline, params, complete=True)
    experiment_id = None
    if experiment is not None:
        client = state.client
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    now = now_ms()
    schedule = pipeline_store(state).create_schedule(
        Schedule(
            schedule_id=uuid.uuid4().hex,
            name=name or pipeline.name,
            source=absolute_source(source),
            cron=cron,
            parameters=values,
            experiment_id=experiment_id,
            created_time=now,
            next_run_time=next_fire(cron, now),
            user_id=current_user(),
        )
    )
    if as_json:
        print_json(schedule_as_dict(schedule))
        return
    click.echo(
        f"Scheduled {schedule.name} ({schedule.schedule_id}): {schedule.cron} UTC, next run "
        f"{format_time(schedule.next_run_time)}. `slipway server` or `slipway scheduler` "
        "starts the runs."
    )


def schedule_as_dict(schedule: Schedule) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(schedule)


@pipelines.group("schedules", cls=SlipwayGroup)
def schedules() -> None:
    """List, pause, resume and delete schedules."""


@schedules.command("list")
@json_option
@tracking_uri_option
@pass_state
def list_schedules(state: CliState, as_json: bool) -> None:
    """List schedules, by name."""
    found = pipeline_store(state).list_schedules()
    if as_json:
        print_json([schedule_as_dict(s) for s in found])
        return
    console = make_console()
    if not found:
        console.print("No schedules.")
        return
    table = plain_table()
    for title in ("Name", "ID", "Cron (UTC)", "State", "Next run", "Last run", "Source"):
        table.add_column(title, overflow="fold" if title == "Source" else "ellipsis")
    for s in found:
        table.add_row(
            cell(s.name),
            cell(s.schedule_id[:SHORT_ID], "cyan"),
            cell(s.cron),
            cell("paused", "yellow") if s.paused else cell("active", "green"),
            cell(None if s.paused else format_time(s.next_run_time, seconds=False)),
            cell(
                f"{format_time(s.last_run_time, seconds=False)} ({s.last_run_id[:SHORT_ID]})"
                if s.last_run_time and s.last_run_id
                else format_time(s.last_run_time, seconds=False)
            ),
            cell(s.source),
        )
    console.print(table)


def _schedule(store: AbstractPipelineStore, ref: str) -> Schedule:
    """By id, name or a unique id prefix (as ``schedules list`` shows it)."""
    try:
        return store.get_schedule(ref)
    except ResourceDoesNotExist:
        matches = [s for s in store.list_schedules() if s.schedule_id.startswith(ref.lower())]
        if len(matches) == 1 and len(ref) >= 4:
            return matches[0]
        raise ResourceDoesNotExist(f"No schedule with name or id {ref!r}") from None


@schedules.command("pause")
@click.argument("ref", metavar="NAME_OR_ID")
@tracking_uri_option
@pass_state
def pause_schedule(state: CliState, ref: str) -> None:
    """Stop starting runs on a schedule (until it is resumed)."""
    store = pipeline_store(state)
    schedule = _schedule(store, ref)
    store.update_schedule(schedule.schedule_id, paused=True)
    click.echo(f"Paused schedule {schedule.name}.")


@schedules.command("resume")
@click.argument("ref", metavar="NAME_OR_ID")
@tracking_uri_option
@pass_state
def resume_schedule(state: CliState, ref: str) -> None:
    """Start runs on a paused schedule again.

    Runs start from its next fire time on; the fires missed while paused are not made up."""
    from slipway.pipelines.cron import next_fire
    from slipway.tracking.client import now_ms

    store = pipeline_store(state)
    schedule = _schedule(store, ref)
    following = next_fire(schedule.cron, now_ms())
    store.update_schedule(schedule.schedule_id, paused=False, next_run_time=following)
    click.echo(f"Resumed schedule {schedule.name}; next run {format_time(following)}.")


@schedules.command("delete")
@click.argument("ref", metavar="NAME_OR_ID")
@tracking_uri_option
@pass_state
def delete_schedule(state: CliState, ref: str) -> None:
    """Delete a schedule (the runs it started stay)."""
    store = pipeline_store(state)
    schedule = _schedule(store, ref)
    store.delete_schedule(schedule.schedule_id)
    click.echo(f"Deleted schedule {schedule.name}.")


__all__ = ["pipelines", "resolve_pipeline_run"]
