"""Steps and artifact links on every backend: upsert (replace, order, links), get, list, and
the link queries."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from slipway.entities.pipelines import ArtifactLink, PipelineStep, StepStatus
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.pipelines.store.base import AbstractPipelineStore

from .conftest import MakeRun

DIGEST = "sha256:" + "ab" * 32


def ref(uri: str, digest: str | None = DIGEST, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"uri": uri, "type": "Dataset", "metadata": {"rows": 3}, **extra}
    if digest is not None:
        out["digest"] = digest
    return out


def step(pipeline_run_id: str, task_id: str, **fields: Any) -> PipelineStep:
    values: dict[str, Any] = {
        "pipeline_run_id": pipeline_run_id,
        "task_id": task_id,
        "task_name": task_id.split("[", 1)[0],
        "component": "comp",
        "status": StepStatus.QUEUED,
    }
    values.update(fields)
    return PipelineStep(**values)


def test_upsert_inserts_and_replaces(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore
) -> None:
    run = make_run()
    first = step(run.run_id, "train[2]", task_name="train")
    assert pipeline_store.upsert_step(first) == first
    assert pipeline_store.get_step(run.run_id, "train[2]") == first

    done = dataclasses.replace(
        first,
        status=StepStatus.SUCCEEDED,
        attempt=2,
        run_id="c" * 32,
        cache_key="key-1",
        start_time=10,
        end_time=20,
        inputs={"parameters": {"lr": 0.5, "name": "日本", "none": None}, "artifacts": {}},
        outputs={"parameters": {"score": 0.93, "list": [1, [2, None]]}, "artifacts": {}},
        message="ok",
        details={"pid": 123, "host": "h", "attempts": [{"n": 1, "error": "boom"}, {"n": 2}]},
    )
    returned = pipeline_store.upsert_step(done)
    assert returned == done
    assert returned.status is StepStatus.SUCCEEDED
    assert pipeline_store.get_step(run.run_id, "train[2]") == done
    assert pipeline_store.list_steps(run.run_id) == [done]

    # Replacing with None fields clears them: the step is replaced, not merged.
    bare = step(run.run_id, "train[2]", task_name="train", status=StepStatus.RETRYING)
    pipeline_store.upsert_step(bare)
    assert pipeline_store.get_step(run.run_id, "train[2]") == bare


def test_list_keeps_first_recorded_order(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore
) -> None:
    run, other = make_run(), make_run()
    names = ["zeta", "alpha", "mid[1]", "mid[0]", "beta"]
    for name in names:
        pipeline_store.upsert_step(step(run.run_id, name))
    pipeline_store.upsert_step(step(other.run_id, "alpha"))
    # Updates do not move a step.
    pipeline_store.upsert_step(step(run.run_id, "zeta", status=StepStatus.RUNNING))
    pipeline_store.upsert_step(step(run.run_id, "alpha", status=StepStatus.CACHED))
    listed = pipeline_store.list_steps(run.run_id)
    assert [s.task_id for s in listed] == names
    assert [s.status for s in listed[:2]] == [StepStatus.RUNNING, StepStatus.CACHED]
    assert [s.task_id for s in pipeline_store.list_steps(other.run_id)] == ["alpha"]
    empty = make_run()
    assert pipeline_store.list_steps(empty.run_id) == []


def test_unknown_runs_and_steps(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    run = make_run()
    missing = "0" * 32
    with pytest.raises(ResourceDoesNotExist, match="Pipeline run"):
        pipeline_store.upsert_step(step(missing, "a"))
    with pytest.raises(ResourceDoesNotExist, match="Pipeline run"):
        pipeline_store.get_step(missing, "a")
    with pytest.raises(ResourceDoesNotExist, match="Step 'a'"):
        pipeline_store.get_step(run.run_id, "a")
    with pytest.raises(ResourceDoesNotExist, match="Pipeline run"):
        pipeline_store.list_steps(missing)


def test_upsert_refuses_bad_values(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore
) -> None:
    run = make_run()
    good = step(run.run_id, "a")
    bad_values: list[dict[str, Any]] = [
        {"status": "DONE"},
        {"status": "CANCELLING"},  # a run status, not a step status
        {"task_id": ""},
        {"task_id": "t" * 300},
        {"attempt": -1},
        {"outputs": {"parameters": {"x": float("inf")}}},
        {"outputs": {"artifacts": {"m": ref("s3://b/m", digest="d" * 300)}}},
    ]
    for change in bad_values:
        with pytest.raises(InvalidParameterValue):
            pipeline_store.upsert_step(dataclasses.replace(good, **change))
    assert pipeline_store.list_steps(run.run_id) == []


def test_links_follow_the_refs(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    run = make_run()
    data = ref("s3://bucket/data.csv")
    long_uri = "file:///tmp/" + "ä/" * 1000 + "model.pkl"
    producer = step(
        run.run_id,
        "prep",
        run_id="a" * 32,
        outputs={"parameters": {"n": 3}, "artifacts": {"data": data, "noise": "not a ref"}},
    )
    consumer = step(
        run.run_id,
        "train[0]",
        task_name="train",
        run_id="b" * 32,
        inputs={
            "parameters": {},
            "artifacts": {"data": data, "parts": [ref("s3://p/0", None), ref("s3://p/1")]},
        },
        outputs={"artifacts": {"model": ref(long_uri, "sha256:model")}},
    )
    pipeline_store.upsert_step(producer)
    pipeline_store.upsert_step(consumer)

    def key(link: ArtifactLink) -> tuple[str, str, str, str]:
        return (link.task_id, link.direction, link.name, link.uri)

    by_uri = pipeline_store.list_artifact_links(uri="s3://bucket/data.csv")
    assert sorted(by_uri, key=key) == [
        ArtifactLink(
            run.run_id, "prep", "output", "data", "s3://bucket/data.csv", DIGEST, "a" * 32
        ),
        ArtifactLink(
            run.run_id, "train[0]", "input", "data", "s3://bucket/data.csv", DIGEST, "b" * 32
        ),
    ]
    everything = pipeline_store.list_artifact_links(pipeline_run_id=run.run_id)
    assert sorted(key(x) for x in everything) == [
        ("prep", "output", "data", "s3://bucket/data.csv"),
        ("train[0]", "input", "data", "s3://bucket/data.csv"),
        ("train[0]", "input", "parts", "s3://p/0"),
        ("train[0]", "input", "parts", "s3://p/1"),
        ("train[0]", "output", "model", long_uri),
    ]
    parts = [x for x in everything if x.name == "parts"]
    assert sorted((x.uri, x.digest) for x in parts) == [("s3://p/0", None), ("s3://p/1", DIGEST)]
    assert [x.uri for x in pipeline_store.list_artifact_links(digest="sha256:model")] == [long_uri]
    assert len(pipeline_store.list_artifact_links(uri=long_uri)) == 1
    assert {key(x) for x in pipeline_store.list_artifact_links(digest=DIGEST)} == {
        ("prep", "output", "data", "s3://bucket/data.csv"),
        ("train[0]", "input", "data", "s3://bucket/data.csv"),
        ("train[0]", "input", "parts", "s3://p/1"),
    }
    # Filters combine.
    both = pipeline_store.list_artifact_links(
        pipeline_run_id=run.run_id, uri="s3://bucket/data.csv", digest=DIGEST
    )
    assert len(both) == 2
    assert pipeline_store.list_artifact_links(pipeline_run_id="0" * 32, digest=DIGEST) == []
    assert pipeline_store.list_artifact_links(uri="s3://bucket/other") == []


def test_upsert_replaces_links(make_run: MakeRun, pipeline_store: AbstractPipelineStore) -> None:
    run = make_run()
    first = step(run.run_id, "t", outputs={"artifacts": {"m": ref("s3://v1")}})
    pipeline_store.upsert_step(first)
    assert [x.uri for x in pipeline_store.list_artifact_links(pipeline_run_id=run.run_id)] == [
        "s3://v1"
    ]
    second = dataclasses.replace(first, outputs={"artifacts": {"m": ref("s3://v2")}})
    pipeline_store.upsert_step(second)
    assert pipeline_store.list_artifact_links(uri="s3://v1") == []
    assert [x.uri for x in pipeline_store.list_artifact_links(pipeline_run_id=run.run_id)] == [
        "s3://v2"
    ]
    pipeline_store.upsert_step(dataclasses.replace(first, outputs={}))
    assert pipeline_store.list_artifact_links(pipeline_run_id=run.run_id) == []


def test_links_need_a_filter(pipeline_store: AbstractPipelineStore) -> None:
    with pytest.raises(InvalidParameterValue, match="at least one"):
        pipeline_store.list_artifact_links()


def test_concurrent_upserts_into_one_run(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore
) -> None:
    """Writers racing to record steps of one run (new and the same steps) all succeed, and
    every step is listed once."""
    run = make_run()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(5):
                pipeline_store.upsert_step(step(run.run_id, f"own{n}[{i}]"))
                pipeline_store.upsert_step(step(run.run_id, f"shared[{i}]", attempt=n))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    listed = [s.task_id for s in pipeline_store.list_steps(run.run_id)]
    expected = {f"own{n}[{i}]" for n in range(4) for i in range(5)} | {
        f"shared[{i}]" for i in range(5)
    }
    assert sorted(listed) == sorted(expected)
    # Each writer's own steps keep the order it recorded them in.
    for n in range(4):
        mine = [t for t in listed if t.startswith(f"own{n}[")]
        assert mine == [f"own{n}[{i}]" for i in range(5)]
