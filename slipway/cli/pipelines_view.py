"""How ``slipway pipelines`` shows a pipeline run: its steps in graph order, durations,
status colours, the table, the JSON form, and the outcome line with the command's exit code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from slipway.cli._output import EMPTY, cell, plain_table, print_error
from slipway.entities.pipelines import PipelineRun, PipelineRunStatus, PipelineStep, StepStatus

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
SHORT_ID = 8
STEP_STYLES = {
    "SUCCEEDED": "green",
    "CACHED": "cyan",
    "FAILED": "red",
    "RUNNING": "yellow",
    "RETRYING": "yellow",
    "CANCELLED": "magenta",
    "CANCELLING": "magenta",
    "SKIPPED": "dim",
    "QUEUED": "dim",
}


def ordered_steps(run: PipelineRun, steps: Sequence[PipelineStep]) -> list[PipelineStep]:
    """``steps`` in the order of the graph's tasks, loop instances by iteration (the store
    keeps the order they were first recorded, which follows the scheduling)."""
    from slipway.pipelines.live import instance_indices

    order = {name: i for i, name in enumerate((run.graph or {}).get("tasks") or {})}
    return sorted(
        steps,
        key=lambda s: (order.get(s.task_name, len(order)), instance_indices(s.task_id), s.task_id),
    )


def run_duration(run: PipelineRun) -> str:
    from slipway.pipelines.live import format_ms

    if run.end_time is None:
        return EMPTY
    return format_ms(run.end_time - run.start_time)


def step_duration_text(step: PipelineStep) -> str:
    from slipway.pipelines.live import format_ms

    if step.start_time is None or step.end_time is None:
        return EMPTY
    return format_ms(step.end_time - step.start_time)


def status_text(status: object) -> Any:
    text = str(status)
    return cell(text, STEP_STYLES.get(text, ""))


def steps_table(steps: Sequence[PipelineStep]) -> Any:
    """Task, status, attempts, duration, cached-from and message of each step."""
    from slipway.pipelines.live import one_line

    table = plain_table()
    table.add_column("Task", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Attempts", justify="right", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("Cached from", no_wrap=True)
    table.add_column("Message", overflow="fold")
    for step in steps:
        table.add_row(
            cell(step.task_id),
            status_text(step.status),
            cell(step.attempt or EMPTY),
            cell(step_duration_text(step)),
            cell(step.cached_from[:SHORT_ID] if step.cached_from else None),
            cell(one_line(step.message, 200) or None),
        )
    return table


def run_as_dict(run: PipelineRun, steps: Sequence[PipelineStep] | None = None) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(run)
    data["status"] = str(run.status)
    data.pop("graph", None)
    if steps is not None:
        data["steps"] = [step_as_dict(s) for s in steps]
    return data


def step_as_dict(step: PipelineStep) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(step)
    data["status"] = str(step.status)
    return data


def print_outcome(console: Console, run: PipelineRun, steps: Sequence[PipelineStep]) -> int:
    """The run id, a table of its steps and the exit status the command ends with; for a
    failed run an error line naming the failed step."""
    from slipway.pipelines.live import one_line, summary_text

    console.print()
    line = Text(f"Pipeline run {run.run_id} ")
    line.append(str(run.status), style=STEP_STYLES.get(str(run.status), ""))
    line.append(f" in {run_duration(run)} ({summary_text(steps)})")
    console.print(line)
    if steps:
        console.print(steps_table(steps))
    if run.status == PipelineRunStatus.SUCCEEDED:
        return 0
    if run.status in (PipelineRunStatus.CANCELLED, PipelineRunStatus.CANCELLING):
        console.print(f"Cancelled; continue with: slipway pipelines resume {run.run_id}")
        return EXIT_INTERRUPTED
    failed = [s for s in steps if s.status == StepStatus.FAILED]
    if failed:
        step = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        reason = one_line(step.message, 400) or "no message"
        print_error(f"step {step.task_id} failed: {reason}{more}")
        console.print(
            f"See its output: slipway pipelines logs {run.run_id} {step.task_id} --stderr\n"
            f"After a fix: slipway pipelines resume {run.run_id}",
            style="dim",
            highlight=False,
        )
    else:
        print_error(f"pipeline run {run.run_id} {run.status}: {run.message or 'no message'}")
    return EXIT_FAILED
