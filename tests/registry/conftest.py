"""Fixtures of the registry tests: a registry store, and the tracking store it sits beside
(runs for sources and lineage), once per backend in ``REGISTRY_BACKENDS``.

Adding a backend (the REST store against a live server) is one more name in
``REGISTRY_BACKENDS`` and a branch in ``tracking_store`` and ``registry_store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import empty_postgres

from slipway.entities import Dataset, DatasetInput, InputTag, Run, RunTag
from slipway.registry.store.base import AbstractRegistryStore
from slipway.registry.store.rest import RestRegistryStore
from slipway.registry.store.sql import SqlRegistryStore
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.rest import RestTrackingStore
from slipway.tracking.store.rest.http import HttpConfig
from slipway.tracking.store.sql import SqlTrackingStore

REGISTRY_BACKENDS = ["sqlite", "postgresql", "rest"]


@pytest.fixture(params=REGISTRY_BACKENDS)
def registry_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tracking_store(
    registry_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[AbstractTrackingStore]:
    """The tracking store beside the registry, on an empty database. For ``rest`` it is the
    RestTrackingStore of a live server (one per session) running a fresh app for this test."""
    if registry_backend == "rest":
        yield request.getfixturevalue("rest_store")
        return
    if registry_backend == "sqlite":
        uri = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        uri = empty_postgres(request.getfixturevalue("postgres_database"))
    store = SqlTrackingStore(uri, str(tmp_path / "artifacts"))
    yield store
    store.close()


@pytest.fixture
def registry_store(
    registry_backend: str, tracking_store: AbstractTrackingStore
) -> Iterator[AbstractRegistryStore]:
    """An empty registry store, once per backend in ``REGISTRY_BACKENDS``."""
    store: AbstractRegistryStore
    if registry_backend == "rest":
        assert isinstance(tracking_store, RestTrackingStore)
        store = RestRegistryStore(
            tracking_store.server_url, HttpConfig(max_retries=1, backoff_factor=0.01, timeout=30)
        )
    else:
        assert isinstance(tracking_store, SqlTrackingStore)
        store = SqlRegistryStore(tracking_store)
    yield store
    store.close()


@pytest.fixture
def run(tracking_store: AbstractTrackingStore) -> Run:
    """A run in the default experiment, with a local artifact directory."""
    return tracking_store.create_run("0", run_name="trainer")


def model_source(run: Run, path: str = "model") -> str:
    """A source inside ``run``'s artifact directory."""
    return f"{run.info.artifact_uri}/{path}"


def make_run_with_dataset(
    tracking: AbstractTrackingStore,
    name: str,
    digest: str,
    context: str = "train",
    tags: dict[str, str] | None = None,
) -> Run:
    """A run that logged dataset ``name@digest`` as an input."""
    created = tracking.create_run(
        "0", tags=[RunTag(k, v) for k, v in (tags or {}).items()], run_name=f"run-{name}"
    )
    dataset = Dataset(name, digest, "local", f'{{"uri": "/data/{name}"}}')
    tracking.log_inputs(
        created.info.run_id,
        [DatasetInput(dataset, (InputTag(DatasetInput.CONTEXT_TAG, context),))],
    )
    return tracking.get_run(created.info.run_id)
