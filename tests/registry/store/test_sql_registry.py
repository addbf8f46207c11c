"""What is particular to the SQL registry store: its tables come with the tracking schema,
the store is found from a tracking URI, and processes racing on one SQLite file never get
the same version number."""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from slipway.registry.store import clear_registry_store_cache, get_registry_store
from slipway.registry.store.sql import SqlRegistryStore
from slipway.tracking import uri as uris
from slipway.tracking.store.sql import SqlTrackingStore

REGISTRY_TABLES = {
    "registered_models",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "registered_model_aliases",
    "approval_policies",
    "transition_requests",
    "registry_audit",
    "deployments",
}
PROCESSES, PER_PROCESS = 3, 5


@pytest.mark.parametrize("db_uri", ["sqlite", "postgresql"], indirect=True)
def test_schema_has_the_registry_tables(db_uri: str, tmp_path: Path) -> None:
    tracking = SqlTrackingStore(db_uri, str(tmp_path / "artifacts"))
    try:
        assert set(inspect(tracking.engine).get_table_names()) >= REGISTRY_TABLES
    finally:
        tracking.close()


def test_found_from_a_tracking_uri(tmp_path: Path) -> None:
    uri = str(tmp_path / "tracking")
    try:
        store = get_registry_store(uri)
        assert isinstance(store, SqlRegistryStore)
        assert get_registry_store(uri) is store
        store.create_registered_model("iris")
        tracking = uris.get_store(uri)
        run = tracking.create_run("0")
        version = store.create_model_version(
            "iris", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        assert version.version == "1"
    finally:
        clear_registry_store_cache()
        uris.clear_store_cache()


def _create_versions(uri: str, root: str, go: Any, results: Any) -> None:
    """Runs in a spawned process: creates versions of ``iris`` once told to go."""
    try:
        tracking = SqlTrackingStore(uri, root)
        store = SqlRegistryStore(tracking)
        results.put(("ready", None))
        go.wait()
        numbers = [
            store.create_model_version("iris", "s3://b/m").version for _ in range(PER_PROCESS)
        ]
        tracking.close()
        results.put(("done", numbers))
    except BaseException as exc:  # reported to the parent
        results.put(("error", repr(exc)))


def test_processes_never_share_a_number(tmp_path: Path) -> None:
    uri, root = f"sqlite:///{tmp_path / 'race.db'}", str(tmp_path / "artifacts")
    tracking = SqlTrackingStore(uri, root)
    SqlRegistryStore(tracking).create_registered_model("iris")
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_create_versions, args=(uri, root, go, results))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    numbers: list[str] = []
    try:
        outcomes = []
        while len(outcomes) < 2 * PROCESSES:
            kind, payload = results.get(timeout=120)
            outcomes.append(kind)
            assert kind != "error", payload
            if kind == "done":
                numbers += payload
            if outcomes.count("ready") == PROCESSES and kind == "ready":
                go.set()
    except queue.Empty as exc:
        raise AssertionError("the writer processes did not finish") from exc
    finally:
        for worker in workers:
            worker.join(timeout=30)
        tracking.close()
    assert sorted(int(n) for n in numbers) == list(range(1, PROCESSES * PER_PROCESS + 1))
