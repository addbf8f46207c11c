"""``SqlPipelineStore``: pipeline runs, steps, cache, artifact links and schedules on the
tracking store's SQL database."""

from __future__ import annotations

from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.pipelines.store.sql.cache import SqlPipelineCache
from slipway.pipelines.store.sql.runs import SqlPipelineRuns
from slipway.pipelines.store.sql.schedules import SqlPipelineSchedules
from slipway.pipelines.store.sql.steps import SqlPipelineSteps
from slipway.tracking.store.sql.store import SqlTrackingStore


class SqlPipelineStore(
    SqlPipelineRuns,
    SqlPipelineSteps,
    SqlPipelineCache,
    SqlPipelineSchedules,
    AbstractPipelineStore,
):
    """The pipeline store in SQL (SQLite, PostgreSQL, MySQL).

    Args:
        tracking: the tracking store whose database (and engine) the pipeline tables share;
            opening it has already brought the schema, pipeline tables included, up to date.

    Each concept lives in its own module (``runs``, ``steps`` with artifact links, ``cache``,
    ``schedules``); this class only joins them. Closing it leaves the tracking store open:
    the tracking store owns the engine.
    """

    def __init__(self, tracking: SqlTrackingStore) -> None:
        super().__init__(tracking)

    def __repr__(self) -> str:
        return f"SqlPipelineStore({self.tracking!r})"


__all__ = ["SqlPipelineStore"]
