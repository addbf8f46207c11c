"""Every graph shape against every behaviour of its ``target`` task, run by the real local
executor (one process per step) on a real SQLite store.

Shapes: linear, diamond, fan-out/fan-in, nested pipeline, conditional, exit handler (see
``_shapes.py``). Behaviours: success, retry then success, failure, timeout, cache hit, resume.
What each behaviour must lead to is written once, in terms of the graph: the target's
instances, what is downstream of them, and what is independent of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import _shapes
from slipway.entities.pipelines import PipelineRunStatus, StepStatus
from slipway.pipelines import PipelineResult, resume, run
from slipway.pipelines.dsl import Pipeline
from slipway.pipelines.executor.runtime import split_task_id

BEHAVIOURS = ["success", "retry", "failure", "timeout", "cache", "resume"]
MODE = {
    "success": "ok",
    "retry": "flaky",
    "failure": "fail",
    "timeout": "slow",
    "cache": "ok",
    "resume": "fixable",
}


def _target_name(p: Pipeline) -> str:
    (name,) = [t for t in p.graph.tasks if t.split(".")[-1] == "work"]
    return name


def _by_status(result: PipelineResult, names: set[str]) -> dict[str, set[StepStatus]]:
    out: dict[str, set[StepStatus]] = {}
    for step in result.steps:
        if step.task_name in names:
            out.setdefault(step.task_name, set()).add(step.status)
    return out


def _check_ok(result: PipelineResult, p: Pipeline, target_status: StepStatus) -> None:
    assert result.status == PipelineRunStatus.SUCCEEDED, [
        (s.task_id, s.status, s.message) for s in result.steps
    ]
    target = _target_name(p)
    targets = [s for s in result.steps if s.task_name == target]
    assert targets
    assert {s.status for s in targets} == {target_status}
    for step in result.steps:
        assert step.status in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.SKIPPED)
        if step.status == StepStatus.SKIPPED:  # only the else branch of the conditional shape
            assert step.message is not None
            assert "condition" in step.message


def _check_failed(result: PipelineResult, p: Pipeline, message: str) -> None:
    graph = p.graph
    target = _target_name(p)
    below = graph.downstream({target}) - {target}
    exit_tasks = {t for t in graph.tasks if graph.exit_handler_of(t)}
    below -= exit_tasks
    above = _upstream_closure(p, target)
    assert result.status == PipelineRunStatus.FAILED
    assert result.run.message
    assert target in result.run.message
    statuses = _by_status(result, set(graph.tasks))
    assert statuses[target] == {StepStatus.FAILED}
    for step in result.steps:
        if step.task_name == target:
            assert step.message
            assert message in step.message
    for name in below:
        assert statuses.get(name, {StepStatus.SKIPPED}) == {StepStatus.SKIPPED}, name
    for name in above:
        assert statuses[name] == {StepStatus.SUCCEEDED}, name
    for name in exit_tasks:
        (step,) = [s for s in result.steps if s.task_name == name]
        assert step.status == StepStatus.SUCCEEDED
        assert step.outputs["parameters"]["Output"] == "FAILED"


def _upstream_closure(p: Pipeline, task: str) -> set[str]:
    graph = p.graph
    seen: set[str] = set()
    stack = list(graph.upstream(task))
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(graph.upstream(name))
    return seen


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("shape", list(_shapes.SHAPES))
def test_shape_behaviour(shape: str, behaviour: str, tracking_dir: Path, tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    p = _shapes.SHAPES[shape](MODE[behaviour], marker)
    target = _target_name(p)
    use_cache = behaviour == "cache"
    first = run(p, cache=use_cache)

    if behaviour == "success":
        _check_ok(first, p, StepStatus.SUCCEEDED)
        for step in first.steps:
            if step.task_name == target:
                assert step.attempt == 1
                assert step.outputs["parameters"]["Output"] % 10 == 0
    elif behaviour == "retry":
        _check_ok(first, p, StepStatus.SUCCEEDED)
        for step in first.steps:
            if step.task_name == target:
                assert step.attempt == 2
                attempts = step.details["attempts"]
                assert [a["ok"] for a in attempts] == [False, True]
                assert attempts[0]["run_id"] != attempts[1]["run_id"]
    elif behaviour == "failure":
        _check_failed(first, p, "RuntimeError: boom")
    elif behaviour == "timeout":
        _check_failed(first, p, "timed out")
    elif behaviour == "cache":
        _check_ok(first, p, StepStatus.SUCCEEDED)
        second = run(p, cache=True)
        _check_ok(second, p, StepStatus.CACHED)
        ran = {s.task_id: s for s in first.steps if s.status == StepStatus.SUCCEEDED}
        for step in second.steps:
            if step.status == StepStatus.SKIPPED:
                continue
            assert step.status == StepStatus.CACHED, step.task_id
            assert step.cached_from == ran[step.task_id].run_id
            assert step.outputs == ran[step.task_id].outputs
    else:  # resume
        _check_failed(first, p, "not fixed yet")
        redo = p.graph.downstream({target})
        kept = {
            s.task_id: s.run_id
            for s in first.steps
            if s.status == StepStatus.SUCCEEDED and s.task_name not in redo
        }
        Path(marker).touch()
        second = resume(first.run_id, p)
        assert second.run_id == first.run_id
        assert second.run.attempt == 2
        _check_ok(second, p, StepStatus.SUCCEEDED)
        for step in second.steps:
            if step.task_id in kept:
                assert step.run_id == kept[step.task_id], f"{step.task_id} ran again"
        rerun = {s.task_id for s in second.steps if s.task_id not in kept}
        assert {split_task_id(t)[0] for t in rerun} >= {target}
