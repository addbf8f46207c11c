"""Which pipeline store a tracking URI names.

Pipelines live beside the tracking data: a database URI (or folder) gives a
:class:`~slipway.pipelines.store.sql.SqlPipelineStore` on the same engine as the tracking store
(a pipeline run is a tracking run, and its row references the run's), and an ``http(s)://``
URI gives a :class:`~slipway.pipelines.store.rest.RestPipelineStore` talking to
``slipway server``. Stores are cached per URI, like tracking and registry stores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.tracking.store.beside import StoresBeside

if TYPE_CHECKING:
    from slipway.tracking.store.sql import SqlTrackingStore


def _rest(url: str) -> AbstractPipelineStore:
    from slipway.pipelines.store.rest import RestPipelineStore

    return RestPipelineStore(url)


def _sql(tracking: SqlTrackingStore) -> AbstractPipelineStore:
    from slipway.pipelines.store.sql import SqlPipelineStore

    return SqlPipelineStore(tracking)


_STORES: StoresBeside[AbstractPipelineStore] = StoresBeside(_rest, _sql)


def get_pipeline_store(uri: str | None = None) -> AbstractPipelineStore:
    """The (cached) pipeline store for ``uri`` or for the tracking URI in effect."""
    return _STORES.get(uri)


def clear_pipeline_store_cache() -> None:
    """Close and forget every cached pipeline store (tests use this)."""
    _STORES.clear()


__all__ = ["AbstractPipelineStore", "clear_pipeline_store_cache", "get_pipeline_store"]
