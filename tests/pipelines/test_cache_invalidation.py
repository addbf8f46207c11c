"""The cache follows the data: changing one byte of an input dataset re-runs exactly the steps
downstream of it, and nothing else."""

from __future__ import annotations

from pathlib import Path

from slipway.entities.pipelines import PipelineRunStatus, StepStatus
from slipway.pipelines import (
    Dataset,
    Input,
    Model,
    Output,
    PipelineResult,
    component,
    importer,
    pipeline,
    run,
)


@component
def clean(raw: Input[Dataset], data: Output[Dataset]) -> int:
    rows = [line for line in Path(raw.path).read_text().splitlines() if line.strip()]
    with open(data.path, "w") as fh:
        fh.write("\n".join(rows))
    return len(rows)


@component
def fit(data: Input[Dataset], model: Output[Model]) -> int:
    text = Path(data.path).read_text()
    with open(model.path, "w") as fh:
        fh.write(str(len(text)))
    return len(text)


@component
def describe(data: Input[Dataset]) -> int:
    return len(open(data.path).read())


@component
def constant(x: int) -> int:
    return x * 2


def make(first: Path, second: Path):  # type: ignore[no-untyped-def]
    @pipeline(name="two-sources")
    def two_sources() -> None:
        raw = importer(uri=str(first))
        cleaned = clean(raw=raw.output)
        fit(data=cleaned.outputs["data"])
        describe(data=importer(uri=str(second)).output)
        constant(x=3)

    return two_sources


def statuses(result: PipelineResult) -> dict[str, StepStatus]:
    assert result.status == PipelineRunStatus.SUCCEEDED, result.run.message
    return {s.task_id: s.status for s in result.steps}


def test_one_changed_byte_reruns_exactly_its_downstream(tracking_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("a,1\nb,2\n")
    second.write_text("x\ny\n")
    p = make(first, second)

    one = statuses(run(p))
    assert set(one.values()) == {StepStatus.SUCCEEDED}

    two = statuses(run(p))
    importers = {"importer-dataset", "importer-dataset-2"}
    assert {k for k, v in two.items() if v == StepStatus.SUCCEEDED} == importers
    assert {k for k, v in two.items() if v == StepStatus.CACHED} == {
        "clean",
        "fit",
        "describe",
        "constant",
    }

    first.write_text("a,1\nb,3\n")  # one byte
    three = run(p)
    after_change = statuses(three)
    assert {k for k, v in after_change.items() if v == StepStatus.SUCCEEDED} == importers | {
        "clean",
        "fit",
    }
    assert {k for k, v in after_change.items() if v == StepStatus.CACHED} == {
        "describe",
        "constant",
    }
    digests = {
        s.task_id: s.outputs["artifacts"]["artifact"]["digest"]
        for s in three.steps
        if s.task_id in importers
    }
    assert all(d.startswith("sha256:") for d in digests.values())


def test_no_cache_runs_everything(tracking_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("a\n")
    second.write_text("b\n")
    p = make(first, second)
    run(p)
    again = statuses(run(p, cache=False))
    assert set(again.values()) == {StepStatus.SUCCEEDED}


def test_missing_import_fails_clearly(tracking_dir: Path, tmp_path: Path) -> None:
    p = make(tmp_path / "absent.csv", tmp_path / "absent2.csv")
    result = run(p)
    assert result.status == PipelineRunStatus.FAILED
    failed = result.step("importer-dataset")
    assert failed.status == StepStatus.FAILED
    assert failed.message
    assert "absent.csv" in failed.message
    assert result.step("clean").status == StepStatus.SKIPPED
    assert result.step("constant").status == StepStatus.SUCCEEDED
