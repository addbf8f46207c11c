"""The live view's rendering (a pure function of a snapshot) and the line reporter."""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console

from slipway.entities.pipelines import PipelineRun, PipelineRunStatus, PipelineStep, StepStatus
from slipway.pipelines import (
    Dataset,
    Input,
    Model,
    Output,
    collected,
    component,
    condition,
    parallel_for,
    pipeline,
)
from slipway.pipelines.live import (
    STATE_LOOKS,
    LineReporter,
    LiveView,
    format_ms,
    instance_indices,
    render_text,
    summary_text,
)

RUN_ID = "4f1c" * 8
T0 = 1_700_000_000_000


@component
def prepare(rows: int, data: Output[Dataset]) -> None: ...


@component(retries=2)
def train(data: Input[Dataset], lr: float, model: Output[Model]) -> float: ...


@component
def pick_best(scores: list, models: Input[list[Model]], best: Output[Model]) -> float: ...


@component
def register(model: Input[Model]) -> None: ...


@component
def score(a: int, b: int) -> int: ...


@component
def note(x: int) -> None: ...


@pipeline(name="iris")
def iris(rows: int = 1000) -> None:
    data = prepare(rows=rows)
    with parallel_for([0.01, 0.1, 1.0], parallelism=2) as lr:
        trained = train(data=data.outputs["data"], lr=lr)
    best = pick_best(scores=collected(trained.output), models=collected(trained.outputs["model"]))
    with condition(best.output > 0.9):
        register(model=best.outputs["best"])


@pipeline(name="grid")
def grid() -> None:
    with parallel_for([1, 2]) as a, parallel_for([10, 20]) as b:
        s = score(a=a, b=b)
        note(x=s.output)


def step(
    task_id: str,
    status: StepStatus,
    *,
    attempt: int = 1,
    start: int | None = None,
    end: int | None = None,
    message: str | None = None,
    cached_from: str | None = None,
) -> PipelineStep:
    return PipelineStep(
        pipeline_run_id=RUN_ID,
        task_id=task_id,
        task_name=task_id.split("[", 1)[0],
        component=task_id.split("[", 1)[0],
        status=status,
        attempt=attempt,
        run_id=None,
        cached_from=cached_from,
        start_time=start,
        end_time=end,
        message=message,
    )


def run_of(graph: object, status: PipelineRunStatus = PipelineRunStatus.RUNNING) -> PipelineRun:
    return PipelineRun(
        run_id=RUN_ID,
        experiment_id="0",
        pipeline_name="iris",
        status=status,
        start_time=T0,
        graph=graph.to_dict() if hasattr(graph, "to_dict") else {},
    )


def lines_of(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_every_state_is_shown_with_symbol_label_and_detail() -> None:
    steps = [
        step("prepare", StepStatus.SUCCEEDED, start=T0, end=T0 + 1_200),
        step("train[0]", StepStatus.CACHED, attempt=0, cached_from="abcdef0123456789"),
        step("train[1]", StepStatus.RUNNING, attempt=2, start=T0 + 2_000),
        step("train[2]", StepStatus.RETRYING, attempt=1, message="attempt 1 failed: OSError"),
        step("train[3]", StepStatus.RETRYING, attempt=1),
        step(
            "pick_best",
            StepStatus.FAILED,
            start=T0,
            end=T0 + 500,
            message="Traceback (most recent call last):\n  ...\nValueError: no scores",
        ),
        step("register", StepStatus.SKIPPED, attempt=0, message="condition was false"),
    ]
    text = render_text(run_of(iris.graph), steps, now_ms=T0 + 8_000)
    lines = lines_of(text)
    assert lines[0] == f"Pipeline iris  run {RUN_ID}  RUNNING  8.0s"
    assert "✓ prepare    succeeded  1.2s" in text
    assert "◆ train[0]   cached  from run abcdef01" in text
    assert "▶ train[1]   running  6.0s (attempt 2/3)" in text
    assert "↻ train[2]   retrying  attempt 1 failed: OSError" in text
    assert "↻ train[3]   retrying  after attempt 1/3" in text
    assert "✗ pick_best  failed  500ms: ValueError: no scores" in text
    assert "- register   skipped  condition was false" in text
    assert lines[-1] == (
        "7 steps: 1 succeeded, 1 cached, 1 running, 2 retrying, 1 failed, 1 skipped"
    )


def test_queued_and_cancelled_and_the_run_message() -> None:
    steps = [
        step("prepare", StepStatus.CANCELLED, start=T0, end=T0 + 50, message="cancelled"),
        step("train[0]", StepStatus.QUEUED, attempt=0),
    ]
    run = run_of(iris.graph, PipelineRunStatus.CANCELLED)
    run.end_time = T0 + 3_000
    run.message = "cancelled by Ctrl-C"
    text = render_text(run, steps, now_ms=T0 + 60_000)
    assert f"run {RUN_ID}  CANCELLED  3.0s" in text  # the end time, not the clock
    assert "■ prepare    cancelled\n" in text  # the message would only repeat the state
    assert "○ train[0]   queued" in text
    assert "· pick_best  not run" in text  # a task that never got a step, after the end
    assert lines_of(text)[-1] == "cancelled by Ctrl-C"
    run.message = "cancelled"
    assert lines_of(render_text(run, steps, now_ms=T0))[-1] == "2 steps: 1 queued, 1 cancelled"


def test_every_state_has_a_distinct_symbol_and_label() -> None:
    assert set(STATE_LOOKS) == set(StepStatus)
    assert len({look.symbol for look in STATE_LOOKS.values()}) == len(StepStatus)
    assert {look.label for look in STATE_LOOKS.values()} == {s.value.lower() for s in StepStatus}


def test_loop_instances_are_grouped_under_their_loop_in_graph_order() -> None:
    steps = [
        step("prepare", StepStatus.SUCCEEDED, start=T0, end=T0 + 10),
        step("train[2]", StepStatus.RUNNING, start=T0),
        step("train[0]", StepStatus.SUCCEEDED, start=T0, end=T0 + 10),
        step("train[1]", StepStatus.SUCCEEDED, start=T0, end=T0 + 10),
        step("pick_best", StepStatus.QUEUED, attempt=0),
    ]
    lines = lines_of(render_text(run_of(iris.graph), steps, now_ms=T0 + 100))
    assert lines[1:8] == [
        "├── ✓ prepare    succeeded  10ms",
        "├── parallel_for for-loop-1 over 3 items  2/3 done",
        "│   ├── ✓ train[0]   succeeded  10ms",
        "│   ├── ✓ train[1]   succeeded  10ms",
        "│   └── ▶ train[2]   running  100ms",
        "├── ○ pick_best  queued",
        "└── if output Output of task pick_best > 0.9",
    ]
    assert lines[8] == "    └── · register   waiting"


def test_nested_loops_get_one_node_per_outer_iteration() -> None:
    steps = [
        step(f"{name}[{a}][{b}]", StepStatus.SUCCEEDED, start=T0, end=T0 + 1)
        for a in range(2)
        for b in range(2)
        for name in ("score", "note")
    ]
    run = run_of(grid.graph)
    lines = lines_of(render_text(run, steps, now_ms=T0))
    assert lines[1] == "└── parallel_for for-loop-1 over 2 items  8/8 done"
    assert lines[2] == "    ├── [0]  4/4 done"
    assert lines[3] == "    │   └── parallel_for for-loop-2 over 2 items  4/4 done"
    assert lines[4:8] == [
        "    │       ├── [0]  2/2 done",
        "    │       │   ├── ✓ score[0][0]  succeeded  1ms",
        "    │       │   └── ✓ note[0][0]   succeeded  1ms",
        "    │       └── [1]  2/2 done",
    ]
    assert lines[10] == "    └── [1]  4/4 done"
    assert sum("score[" in line for line in lines) == 4


def test_without_a_graph_the_steps_are_listed_flat() -> None:
    steps = [
        step("a", StepStatus.SUCCEEDED, start=T0, end=T0 + 2_000),
        step("b[0]", StepStatus.QUEUED, attempt=0),
    ]
    lines = lines_of(render_text(run_of(None), steps, now_ms=T0))
    assert lines[1:3] == ["├── ✓ a     succeeded  2.0s", "└── ○ b[0]  queued"]
    assert render_text(run_of(None), [], now_ms=T0).splitlines()[-1] == "no steps yet"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "-"),
        (0, "0ms"),
        (999, "999ms"),
        (12_345, "12.3s"),
        (245_000, "4m 05s"),
        (7_620_000, "2h 07m"),
    ],
)
def test_format_ms(value: int | None, expected: str) -> None:
    assert format_ms(value) == expected


def test_instance_indices_and_summary() -> None:
    assert instance_indices("train") == ()
    assert instance_indices("etl.clean[3]") == (3,)
    assert instance_indices("inner[0][12]") == (0, 12)
    assert summary_text([]) == "0 steps"
    assert (
        summary_text([step("a", StepStatus.FAILED), step("b", StepStatus.SUCCEEDED)])
        == "2 steps: 1 succeeded, 1 failed"
    )


def test_line_reporter_prints_each_change_once() -> None:
    out = io.StringIO()
    reporter = LineReporter(out, clock=lambda: 0.0)
    run = run_of(iris.graph)
    with reporter:
        reporter.update(run, [step("prepare", StepStatus.QUEUED, attempt=0)])
        reporter.update(run, [step("prepare", StepStatus.QUEUED, attempt=0)])
        reporter.update(run, [step("prepare", StepStatus.RUNNING, start=T0)])
        reporter.update(run, [step("prepare", StepStatus.RETRYING, message="x\nValueError: flaky")])
        reporter.update(run, [step("prepare", StepStatus.RUNNING, attempt=2, start=T0)])
        done = step("prepare", StepStatus.SUCCEEDED, attempt=2, start=T0, end=T0 + 1_500)
        cached = step("train[0]", StepStatus.CACHED, attempt=0, cached_from="c0ffee")
        failed = step("train[1]", StepStatus.FAILED, message="Traceback\nKeyError: 'lr'")
        reporter.update(run, [done, cached, failed])
        finished = run_of(iris.graph, PipelineRunStatus.FAILED)
        reporter.update(finished, [done, cached, failed])
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        f"pipeline iris run {RUN_ID}",
        "prepare QUEUED",
        "prepare RUNNING (attempt 1)",
        "prepare RETRYING (attempt 1)",
        "prepare RUNNING (attempt 2)",
        "prepare SUCCEEDED in 1.5s",
        "train[0] CACHED (from run c0ffee)",
        "train[1] FAILED: KeyError: 'lr'",
        "pipeline iris FAILED",
    ]


def test_live_view_draws_the_latest_snapshot_and_takes_updates_from_threads() -> None:
    console = Console(record=True, width=100, color_system=None, file=io.StringIO())
    run = run_of(iris.graph)
    with LiveView(console, refresh_per_second=20) as view:
        workers = [
            threading.Thread(
                target=view.update,
                args=(run, [step("prepare", StepStatus.RUNNING, start=T0)]),
            )
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        finished = run_of(iris.graph, PipelineRunStatus.SUCCEEDED)
        finished.end_time = T0 + 4_000
        view.update(finished, [step("prepare", StepStatus.SUCCEEDED, start=T0, end=T0 + 900)])
    text = console.export_text()
    assert f"run {RUN_ID}  SUCCEEDED  4.0s" in text
    assert "✓ prepare    succeeded  900ms" in text
