"""What only the SQL backend has: the schema's cascades, the statements an upsert costs, and
``get_pipeline_store`` choosing and caching stores by URI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, text

from slipway.entities.pipelines import CacheEntry, PipelineStep, StepStatus
from slipway.exceptions import ResourceDoesNotExist
from slipway.pipelines.store import clear_pipeline_store_cache, get_pipeline_store
from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.pipelines.store.rest import RestPipelineStore
from slipway.pipelines.store.sql import SqlPipelineStore
from slipway.tracking import uri as uris
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.sql import SqlTrackingStore

from .conftest import MakeRun

SQL = pytest.mark.parametrize("pipeline_backend", ["sqlite", "postgresql"])
TABLES = {
    "pipeline_runs",
    "pipeline_steps",
    "pipeline_cache",
    "pipeline_artifact_links",
    "pipeline_schedules",
}


def _step(run_id: str, task_id: str, uri: str, status: StepStatus) -> PipelineStep:
    return PipelineStep(
        run_id,
        task_id,
        "t",
        "comp",
        status,
        outputs={"artifacts": {"out": {"uri": uri, "digest": "sha256:1"}}},
    )


@SQL
def test_the_migration_creates_the_tables(tracking_store: AbstractTrackingStore) -> None:
    assert isinstance(tracking_store, SqlTrackingStore)
    assert set(inspect(tracking_store.engine).get_table_names()) >= TABLES


@SQL
def test_deleting_the_tracking_run_removes_the_pipeline_run(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore, tracking_store: AbstractTrackingStore
) -> None:
    assert isinstance(tracking_store, SqlTrackingStore)
    gone, kept = make_run(), make_run()
    for run in (gone, kept):
        pipeline_store.upsert_step(_step(run.run_id, "a", f"s3://{run.run_id}", StepStatus.QUEUED))
    entry = CacheEntry("k", "comp", {"x": 1}, "r", gone.run_id, "a", 1)
    pipeline_store.put_cache_entry(entry)
    with tracking_store.engine.begin() as conn:
        conn.execute(text("DELETE FROM runs WHERE run_uuid = :r"), {"r": gone.run_id})
    with pytest.raises(ResourceDoesNotExist):
        pipeline_store.get_pipeline_run(gone.run_id)
    assert pipeline_store.list_artifact_links(pipeline_run_id=gone.run_id) == []
    with tracking_store.engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM pipeline_steps WHERE pipeline_run_id = :r"),
            {"r": gone.run_id},
        ).scalar()
    assert left == 0
    # The other run is untouched, and the cache outlives the run that filled it.
    assert len(pipeline_store.list_steps(kept.run_id)) == 1
    assert len(pipeline_store.list_artifact_links(pipeline_run_id=kept.run_id)) == 1
    assert pipeline_store.get_cache_entry("k") == entry


@pytest.fixture
def statements(tracking_store: AbstractTrackingStore) -> Iterator[list[str]]:
    """Every SQL statement the engine runs while the test does."""
    assert isinstance(tracking_store, SqlTrackingStore)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(tracking_store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(tracking_store.engine, "before_cursor_execute", record)


@SQL
def test_upsert_step_stays_cheap(
    make_run: MakeRun, pipeline_store: AbstractPipelineStore, statements: list[str]
) -> None:
    """The executor upserts each step several times: a replacement is three statements
    (update, delete links, insert links), a first insert five."""
    run = make_run()
    statements.clear()
    pipeline_store.upsert_step(_step(run.run_id, "a", "s3://x", StepStatus.QUEUED))
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == [
        "UPDATE",
        "UPDATE",
        "SELECT",
        "INSERT",
        "INSERT",
    ]
    statements.clear()
    pipeline_store.upsert_step(_step(run.run_id, "a", "s3://y", StepStatus.RUNNING))
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == [
        "UPDATE",
        "DELETE",
        "INSERT",
    ]


def test_get_pipeline_store_by_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPWAY_ARTIFACT_ROOT", raising=False)
    folder = str(tmp_path / "tracking")
    try:
        sql = get_pipeline_store(folder)
        assert isinstance(sql, SqlPipelineStore)
        assert get_pipeline_store(folder) is sql
        assert sql.tracking is uris.get_store(folder)
        rest = get_pipeline_store("http://127.0.0.1:1/prefix/")
        assert isinstance(rest, RestPipelineStore)
        assert rest.server_url == "http://127.0.0.1:1/prefix"
        assert get_pipeline_store("http://127.0.0.1:1/prefix") is rest
        clear_pipeline_store_cache()
        again = get_pipeline_store(folder)
        assert again is not sql
        assert isinstance(again, SqlPipelineStore)
    finally:
        clear_pipeline_store_cache()
        uris.clear_store_cache()
