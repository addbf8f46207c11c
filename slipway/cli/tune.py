"""``slipway tune``: run, resume, show and export hyperparameter studies.

A study comes from a Katib-style spec (``--spec tune.yaml``: an Experiment manifest or its
``spec``) whose trials run a command, in worker processes of this machine or, with ``--on ray``,
in Ray actors holding the trial template's resource requests. It is named by the manifest's
``metadata.name``, else the file's name, and running the same spec again resumes the study of
that name. ``--emit katib`` writes the Katib Experiment for the spec instead of running it.

While a study runs, a terminal shows a progress bar (trials done, the best so far); without
one, a line per trial. Then a table of the trials and the best one. Exit status: 0 when the
study ran to its end, 1 on an error or when ``maxFailedTrialCount`` stopped it, 130 on Ctrl-C
(run the same command again to resume).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from slipway.cli._output import (
    EMPTY,
    CliState,
    cell,
    format_number,
    json_option,
    make_console,
    pass_state,
    plain_table,
    print_json,
    tracking_uri_option,
)
from slipway.exceptions import InvalidParameterValue

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
STATE_STYLES = {"COMPLETE": "green", "PRUNED": "cyan", "FAIL": "red", "RUNNING": "yellow"}
PARAMS_WIDTH = 60


def _value(value: float | None) -> str:
    return EMPTY if value is None else format_number(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return EMPTY
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def _params(params: dict[str, Any]) -> str:
    text = ", ".join(
        f"{k}={format_number(v) if isinstance(v, float) else v}" for k, v in params.items()
    )
    return text if len(text) <= PARAMS_WIDTH else text[: PARAMS_WIDTH - 3] + "..."


def study_json(study: Any) -> dict[str, Any]:
    best = study.best_trial
    return {
        "name": study.name,
        "run_id": study.run_id,
        "experiment_id": study.experiment_id,
        "direction": study.direction,
        "metric": study.metric,
        "stop_reason": study.stop_reason,
        "counts": study.counts(),
        "best_trial": dataclasses.asdict(best) if best else None,
        "trials": [dataclasses.asdict(t) for t in study.trials],
    }


def render_study(console: Console, study: Any) -> None:
    """The trials as a table, then the best one."""
    table = plain_table()
    for column in ("TRIAL", "STATE", study.metric.upper(), "PARAMS", "DURATION", "RUN"):
        table.add_column(column, justify="right" if column in ("TRIAL", "DURATION") else "left")
    for trial in study.trials:
        table.add_row(
            cell(trial.number),
            cell(trial.state, STATE_STYLES.get(trial.state, "")),
            cell(_value(trial.value)),
            cell(_params(trial.params)),
            cell(_duration(trial.duration)),
            cell((trial.run_id or EMPTY)[:8]),
        )
    console.print(table)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(study.counts().items()))
    console.print(f"Study {study.name}: {counts or 'no trials'} (run {study.run_id})")
    best = study.best_trial
    if best is None:
        console.print("No trial completed.")
        return
    params = ", ".join(f"{k}={v}" for k, v in best.params.items())
    console.print(
        f"Best trial {best.number}: {study.metric}={_value(best.value)} ({params})", soft_wrap=True
    )


class _ProgressView:
    """A progress bar on a terminal; a line per finished trial otherwise."""

    def __init__(self, console: Console, metric: str, quiet: bool) -> None:
        self.console = console
        self.metric = metric
        self.quiet = quiet
        self.bar: Progress | None = None
        self.task: Any = None
        if console.is_terminal and not quiet:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[best]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> _ProgressView:
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task("trials", total=None, best="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, progress: Any) -> None:
        best = (
            f"best {self.metric}={_value(progress.best_value)} (trial {progress.best_number})"
            if progress.best_value is not None
            else ""
        )
        if self.bar is not None:
            self.bar.update(self.task, completed=progress.done, total=progress.total, best=best)
            return
        last = progress.last
        if last is None or self.quiet:
            return
        total = progress.total if progress.total is not None else "?"
        line = f"[{progress.done}/{total}] trial {last.number} {last.state}"
        if last.value is not None:
            line += f" {self.metric}={_value(last.value)}"
        if last.error:
            line += f": {last.error}"
        self.console.print(line + (f"; {best}" if best else ""), soft_wrap=True, highlight=False)


@click.command("tune")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A Katib-style spec (YAML): an Experiment manifest or its spec.",
)
@click.option("--resume", "resume", metavar="STUDY", help="Resume the study STUDY.")
@click.option("--name", metavar="NAME", help="The study's name (default: from the spec).")
@click.option("--n-trials", type=click.IntRange(min=1), help="Trials in the study in all.")
@click.option("--parallelism", type=click.IntRange(min=1), help="Trials at a time.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option("--experiment", metavar="NAME", help="The experiment of the study's runs.")
@click.option(
    "--on",
    "on",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where trials run: worker processes here, or Ray actors on a cluster.",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    help="With --on ray: the cluster (host:port, ray://host:port, auto; default: "
    "SLIPWAY_RAY_ADDRESS or RAY_ADDRESS, else a local Ray).",
)
@click.option(
    "--working-dir",
    type=click.Path(exists=True, file_okay=False),
    metavar="DIR",
    help="With --on ray: ship this folder to every node (without .git, virtual environments, "
    "caches and .slipway); trial commands run in the node's copy.",
)
@click.option(
    "--emit",
    type=click.Choice(["katib"]),
    help="Write the spec as a Katib Experiment instead of running it.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="With --emit."
)
@click.option("--image", default=None, metavar="IMAGE", help="With --emit: the trial image.")
@click.option("--namespace", default=None, metavar="NS", help="With --emit: the namespace.")
@click.option("--show", metavar="STUDY", help="Show a study's trials without running it.")
@click.option("--list", "list_studies", is_flag=True, help="List the studies.")
@json_option
@tracking_uri_option
@pass_state
def tune(
    state: CliState,
    spec_path: Path | None,
    resume: str | None,
    name: str | None,
    n_trials: int | None,
    parallelism: int | None,
    timeout: float | None,
    experiment: str | None,
    on: str,
    ray_address: str | None,
    working_dir: str | None,
    emit: str | None,
    output: Path | None,
    image: str | None,
    namespace: str | None,
    show: str | None,
    list_studies: bool,
    as_json: bool,
) -> None:
    """Tune hyperparameters: run a study whose trials run a command, in parallel, each a
    child run of the study's run; resume it by running it again.

    \b
    Examples:
      slipway tune --spec tune.yaml
      slipway tune --spec tune.yaml --on ray --ray-address 10.0.0.5:6379
      slipway tune --spec tune.yaml --on ray --ray-address ray://head:10001 --working-dir .
      slipway tune --spec tune.yaml --emit katib -o experiment.yaml
      slipway tune --resume my-study
      slipway tune --show my-study
    """
    if list_studies:
        _list(state, as_json)
        return
    if show:
        _show(state, show, as_json)
        return
    if emit:
        _emit(spec_path, name, n_trials, parallelism, output, image, namespace)
        return
    if ray_address and on != "ray":
        raise InvalidParameterValue("--ray-address goes with --on ray")
    if working_dir and on != "ray":
        raise InvalidParameterValue("--working-dir goes with --on ray")
    _run(
        state,
        spec_path,
        resume,
        name,
        n_trials,
        parallelism,
        timeout,
        experiment,
        as_json,
        on,
        ray_address,
        working_dir,
    )


def _load(spec_path: Path | None, resume: str | None, state: CliState) -> Any:
    from slipway.tuning.katib import load_spec_file
    from slipway.tuning.spec import TuneSpec
    from slipway.tuning.store import get_tuning_store

    if spec_path is not None:
        return load_spec_file(spec_path)
    if resume is None:
        raise InvalidParameterValue("Give --spec FILE (or --resume STUDY, --show or --list)")
    record = get_tuning_store(state.tracking_uri).get_study(resume)
    return TuneSpec.from_json(record.spec)


def _override(spec: Any, **changes: Any) -> Any:
    return dataclasses.replace(spec, **{k: v for k, v in changes.items() if v is not None})


def _run(
    state: CliState,
    spec_path: Path | None,
    resume: str | None,
    name: str | None,
    n_trials: int | None,
    parallelism: int | None,
    timeout: float | None,
    experiment: str | None,
    as_json: bool,
    on: str = "local",
    ray_address: str | None = None,
    working_dir: str | None = None,
) -> None:
    from slipway.tuning.coordinator import run_study

    spec = _load(spec_path, resume, state)
    spec = _override(
        spec, name=resume or name, n_trials=n_trials, parallelism=parallelism, timeout=timeout
    )
    if spec.command is None:
        raise InvalidParameterValue(
            "The study has no trial command: give trialTemplate or trialCommand in the spec "
            "(a Python objective runs with slipway.tuning.tune)"
        )
    console = make_console()
    err = make_console(stderr=True)
    for note in spec.notes:
        err.print(f"Note: {note}", highlight=False, soft_wrap=True)
    study = None
    view = _ProgressView(err if as_json else console, spec.metric, as_json)
    with view, contextlib.suppress(KeyboardInterrupt):
        study = run_study(
            spec,
            tracking_uri=state.tracking_uri,
            experiment_name=experiment,
            on_progress=view,
            resume_only=resume is not None,
            on=on,
            ray_address=ray_address,
            working_dir=working_dir,
        )
    if study is None:
        from slipway.tuning.coordinator import load_study

        study = load_study(spec.name, state.tracking_uri)
        study.stop_reason = "interrupted"
    if as_json:
        print_json(study_json(study))
    else:
        render_study(console, study)
        if study.stop_reason == "interrupted":
            err.print(f"Interrupted: run the same command again to resume study {study.name}.")
    if study.stop_reason == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    if study.stop_reason == "max_failed_trials":
        err.print("The study stopped: it reached its maximum of failed trials.", style="red")
        sys.exit(EXIT_FAILED)


def _show(state: CliState, name: str, as_json: bool) -> None:
    from slipway.tuning.coordinator import load_study

    study = load_study(name, state.tracking_uri)
    if as_json:
        print_json(study_json(study))
    else:
        render_study(make_console(), study)


def _list(state: CliState, as_json: bool) -> None:
    from slipway.tuning.store import get_tuning_store

    records = get_tuning_store(state.tracking_uri).list_studies()
    if as_json:
        print_json(
            [
                {"name": r.name, "run_id": r.run_id, "experiment_id": r.experiment_id}
                for r in records
            ]
        )
        return
    table = plain_table()
    for column in ("NAME", "RUN", "EXPERIMENT", "RUNNING"):
        table.add_column(column)
    for r in records:
        table.add_row(
            cell(r.name), cell(r.run_id[:8]), cell(r.experiment_id), cell(r.lease_owner or EMPTY)
        )
    make_console().print(table)


def _emit(
    spec_path: Path | None,
    name: str | None,
    n_trials: int | None,
    parallelism: int | None,
    output: Path | None,
    image: str | None,
    namespace: str | None,
) -> None:
    import yaml

    from slipway.tuning.katib import DEFAULT_IMAGE, load_spec_file, to_katib

    if spec_path is None:
        raise InvalidParameterValue("--emit katib needs --spec FILE")
    spec = _override(
        load_spec_file(spec_path), name=name, n_trials=n_trials, parallelism=parallelism
    )
    manifest = to_katib(spec, image=image or DEFAULT_IMAGE, namespace=namespace)
    text = yaml.safe_dump(manifest, sort_keys=False)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    make_console(stderr=True).print(f"Wrote {output}", highlight=False)


__all__ = ["tune"]
