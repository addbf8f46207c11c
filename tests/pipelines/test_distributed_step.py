"""A distributed component: ``@component(workers=2)`` runs the step under the training
launcher (gloo on CPU), tracked under the step's run, with rank 0's result as the output."""

from __future__ import annotations

from pathlib import Path

import pytest

import slipway
from slipway.entities.pipelines import StepStatus
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import Model, Output, component, pipeline, run


@component(workers=2, backend="gloo")
def all_reduce_sum(value: float, model: Output[Model]) -> float:
    import torch
    import torch.distributed as dist

    import slipway
    from slipway import training

    training.init_process_group()
    tensor = torch.tensor([value * (training.rank() + 1)])
    dist.all_reduce(tensor)
    slipway.log_metric("reduced", float(tensor.item()))
    if training.is_main():
        Path(model.path).write_text(f"world={training.world_size()}")
    dist.destroy_process_group()
    return float(tensor.item())


@pipeline(name="distributed")
def distributed(value: float = 1.5) -> None:
    all_reduce_sum(value=value)


@pytest.mark.slow
def test_a_two_worker_step_is_tracked_under_the_step_run(tracking_dir: Path) -> None:
    result = run(distributed, cache=False)
    assert result.succeeded, result.run.message
    step = result.step("all_reduce_sum")
    assert step.status == StepStatus.SUCCEEDED
    assert step.outputs["parameters"]["Output"] == pytest.approx(4.5)  # 1.5 + 3.0
    model_uri = step.outputs["artifacts"]["model"]["uri"]
    assert Path(model_uri.removeprefix("file://")).read_text() == "world=2"
    client = slipway.SlipwayClient()
    step_run = client.get_run(step.run_id or "")
    jobs = client.search_runs(
        [step_run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{step.run_id}'",
    )
    assert len(jobs) == 1
    job = jobs[0]
    assert job.info.status == "FINISHED"
    assert job.data.params["nproc"] == "2"
    assert job.data.metrics["reduced"] == pytest.approx(4.5)


def test_more_workers_than_the_machine_holds_is_refused(tracking_dir: Path) -> None:
    @component(workers=4096 // 4)
    def wide() -> None:
        pass

    @pipeline(name="too-wide")
    def too_wide() -> None:
        wide()

    with pytest.raises(InvalidParameterValue, match="asks for 1024 CPUs"):
        run(too_wide)


def test_bad_worker_options_are_refused_at_import() -> None:
    with pytest.raises(InvalidParameterValue, match="workers must be an int"):
        component(workers=0)(lambda: None)
    with pytest.raises(InvalidParameterValue, match="backend must be"):
        component(backend="mpi")(lambda: None)
