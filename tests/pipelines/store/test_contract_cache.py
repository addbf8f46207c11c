"""The step cache on every backend: get, put (insert or replace), max age, delete."""

from __future__ import annotations

import dataclasses
import time

import pytest

from slipway.entities.pipelines import CacheEntry
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines.store.base import AbstractPipelineStore


def now_ms() -> int:
    return int(time.time() * 1000)


def entry(key: str, component: str = "train", created: int | None = None) -> CacheEntry:
    return CacheEntry(
        key=key,
        component=component,
        outputs={
            "parameters": {"score": 0.25, "label": "ü", "none": None, "list": [1.5, [None]]},
            "artifacts": {"model": {"uri": "s3://b/m", "digest": "sha256:00", "metadata": {}}},
        },
        run_id="r" * 32,
        pipeline_run_id="p" * 32,
        task_id="train[1]",
        created_time=now_ms() if created is None else created,
    )


def test_put_get_and_replace(pipeline_store: AbstractPipelineStore) -> None:
    assert pipeline_store.get_cache_entry("k1") is None
    first = entry("k1")
    pipeline_store.put_cache_entry(first)
    assert pipeline_store.get_cache_entry("k1") == first
    replaced = dataclasses.replace(
        first, outputs={"parameters": {"score": 1.0}}, run_id="s" * 32, task_id="train[2]"
    )
    pipeline_store.put_cache_entry(replaced)
    assert pipeline_store.get_cache_entry("k1") == replaced
    assert pipeline_store.get_cache_entry("k2") is None


def test_max_age(pipeline_store: AbstractPipelineStore) -> None:
    hour = 3_600_000
    pipeline_store.put_cache_entry(entry("old", created=now_ms() - 2 * hour))
    pipeline_store.put_cache_entry(entry("new"))
    assert pipeline_store.get_cache_entry("old", max_age_ms=hour) is None
    assert pipeline_store.get_cache_entry("old", max_age_ms=3 * hour) is not None
    assert pipeline_store.get_cache_entry("old") is not None
    assert pipeline_store.get_cache_entry("new", max_age_ms=hour) is not None
    with pytest.raises(InvalidParameterValue, match="max_age_ms"):
        pipeline_store.get_cache_entry("new", max_age_ms=-1)


def test_delete_by_component(pipeline_store: AbstractPipelineStore) -> None:
    for i in range(3):
        pipeline_store.put_cache_entry(entry(f"t{i}", component="train"))
    for i in range(2):
        pipeline_store.put_cache_entry(entry(f"p{i}", component="prep"))
    assert pipeline_store.delete_cache_entries("train") == 3
    assert pipeline_store.get_cache_entry("t0") is None
    assert pipeline_store.get_cache_entry("p0") is not None
    assert pipeline_store.delete_cache_entries("train") == 0
    assert pipeline_store.delete_cache_entries("nope") == 0
    pipeline_store.put_cache_entry(entry("t9", component="train"))
    assert pipeline_store.delete_cache_entries() == 3
    assert pipeline_store.get_cache_entry("p1") is None


def test_bad_entries(pipeline_store: AbstractPipelineStore) -> None:
    good = entry("k")
    for change in (
        {"key": ""},
        {"key": "k" * 300},
        {"component": ""},
        {"outputs": {"x": float("nan")}},
        {"created_time": -5},
    ):
        with pytest.raises(InvalidParameterValue):
            pipeline_store.put_cache_entry(dataclasses.replace(good, **change))  # type: ignore[arg-type]
    assert pipeline_store.get_cache_entry("k") is None
    with pytest.raises(InvalidParameterValue):
        pipeline_store.get_cache_entry("")
