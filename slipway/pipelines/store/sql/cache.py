"""The step cache: outputs of successful steps by cache key (get, put as insert-or-replace,
delete by component)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, select

from slipway.entities.pipelines import CacheEntry
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines.store.sql import base as b
from slipway.pipelines.store.sql import tables as t
from slipway.tracking.store.sql.upsert import upsert

_COLUMNS = ("component", "outputs", "run_id", "pipeline_run_id", "task_id", "created_time")


def cache_entry_of(row: Mapping[Any, Any]) -> CacheEntry:
    return CacheEntry(
        key=row["key"],
        component=row["component"],
        outputs=b.load_json(row["outputs"]),
        run_id=row["run_id"],
        pipeline_run_id=row["pipeline_run_id"],
        task_id=row["task_id"],
        created_time=row["created_time"],
    )


def _values(entry: CacheEntry) -> dict[str, Any]:
    if not isinstance(entry, CacheEntry):
        raise InvalidParameterValue(f"Expected a CacheEntry, got {type(entry).__name__}")
    return {
        "key": b.text(entry.key, "key", t.NAME_LENGTH),
        "component": b.text(entry.component, "component", t.NAME_LENGTH),
        "outputs": b.dump_json(entry.outputs, "outputs"),
        "run_id": b.text(entry.run_id, "run_id", t.ID_LENGTH),
        "pipeline_run_id": b.text(entry.pipeline_run_id, "pipeline_run_id", t.RUN_ID_LENGTH),
        "task_id": b.text(entry.task_id, "task_id", t.NAME_LENGTH),
        "created_time": b.integer(entry.created_time, "created_time"),
    }


class SqlPipelineCache(b.SqlPipelineBase):
    def get_cache_entry(self, key: str, max_age_ms: int | None = None) -> CacheEntry | None:
        b.identifier(key, "cache key")
        query = select(t.cache).where(t.cache.c.key == key)
        if max_age_ms is not None:
            oldest = b.now_ms() - b.integer(max_age_ms, "max_age_ms")
            query = query.where(t.cache.c.created_time >= oldest)
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else cache_entry_of(row._mapping)

    def put_cache_entry(self, entry: CacheEntry) -> None:
        values = _values(entry)

        def work(conn: Connection) -> None:
            upsert(conn, t.cache, [values], keys=["key"], update=_COLUMNS)

        self._write(work)

    def delete_cache_entries(self, component: str | None = None) -> int:
        query = delete(t.cache)
        if component is not None:
            query = query.where(t.cache.c.component == b.identifier(component, "component"))

        def work(conn: Connection) -> int:
            return int(conn.execute(query).rowcount)

        return self._write(work)
