"""Fixtures of the pipeline store tests: a pipeline store and the tracking store it sits beside
(pipeline runs are tracking runs), once per backend in ``PIPELINE_BACKENDS``.

Adding a backend is one more name in ``PIPELINE_BACKENDS`` and a branch in ``tracking_store``
and ``pipeline_store``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import empty_postgres

from slipway.entities.pipelines import PipelineRun, PipelineRunStatus
from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.pipelines.store.rest import RestPipelineStore
from slipway.pipelines.store.sql import SqlPipelineStore
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.rest import RestTrackingStore
from slipway.tracking.store.rest.http import HttpConfig
from slipway.tracking.store.sql import SqlTrackingStore

PIPELINE_BACKENDS = ["sqlite", "postgresql", "rest"]


@pytest.fixture(params=PIPELINE_BACKENDS)
def pipeline_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tracking_store(
    pipeline_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[AbstractTrackingStore]:
    """The tracking store beside the pipeline store, on an empty database. For ``rest`` it is
    the RestTrackingStore of a live server (one per session) running a fresh app for this
    test."""
    if pipeline_backend == "rest":
        yield request.getfixturevalue("rest_store")
        return
    if pipeline_backend == "sqlite":
        uri = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        uri = empty_postgres(request.getfixturevalue("postgres_database"))
    store = SqlTrackingStore(uri, str(tmp_path / "artifacts"))
    yield store
    store.close()


@pytest.fixture
def pipeline_store(
    pipeline_backend: str, tracking_store: AbstractTrackingStore
) -> Iterator[AbstractPipelineStore]:
    """An empty pipeline store, once per backend in ``PIPELINE_BACKENDS``."""
    store: AbstractPipelineStore
    if pipeline_backend == "rest":
        assert isinstance(tracking_store, RestTrackingStore)
        store = RestPipelineStore(
            tracking_store.server_url, HttpConfig(max_retries=1, backoff_factor=0.01, timeout=30)
        )
    else:
        assert isinstance(tracking_store, SqlTrackingStore)
        store = SqlPipelineStore(tracking_store)
    yield store
    store.close()


MakeRun = Callable[..., PipelineRun]


@pytest.fixture
def make_run(
    tracking_store: AbstractTrackingStore, pipeline_store: AbstractPipelineStore
) -> MakeRun:
    """Create a tracking run and record a pipeline run on it; keyword arguments override the
    pipeline run's fields."""

    def make(**fields: Any) -> PipelineRun:
        run_id = tracking_store.create_run("0", run_name="pipeline").info.run_id
        values: dict[str, Any] = {
            "run_id": run_id,
            "experiment_id": "0",
            "pipeline_name": "train",
            "status": PipelineRunStatus.RUNNING,
            "start_time": 1_000,
        }
        values.update(fields)
        return pipeline_store.create_pipeline_run(PipelineRun(**values))

    return make
