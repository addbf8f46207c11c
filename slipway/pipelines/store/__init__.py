"""Which pipeline store a tracking URI names.

Pipelines live beside the tracking data: a database URI (or folder) gives a
:class:`~slipway.pipelines.store.sql.SqlPipelineStore` on the same engine as the tracking store
(a pipeline run is a tracking run, and its row references the run's), and an ``http(s)://``
URI gives a :class:`~slipway.pipelines.store.rest.RestPipelineStore` talking to
``slipway server``. Stores are cached per URI, like tracking and registry stores.
"""

from __future__ import annotations

import threading

from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.tracking import uri as uris

_stores: dict[str, AbstractPipelineStore] = {}
_lock = threading.Lock()


def get_pipeline_store(uri: str | None = None) -> AbstractPipelineStore:
    """The (cached) pipeline store for ``uri`` or for the tracking URI in effect."""
    db_uri, artifact_root = uris.resolve(uri or uris.get_tracking_uri())
    key = f"{db_uri}\n{artifact_root}"
    with _lock:
        store = _stores.get(key)
        if store is None:
            if db_uri.split("://", 1)[0].lower() in ("http", "https"):
                from slipway.pipelines.store.rest import RestPipelineStore

                store = _stores[key] = RestPipelineStore(db_uri)
            else:
                from slipway.pipelines.store.sql import SqlPipelineStore
                from slipway.tracking.store.sql import SqlTrackingStore

                tracking = uris.get_store(uri)
                assert isinstance(tracking, SqlTrackingStore)
                store = _stores[key] = SqlPipelineStore(tracking)
        return store


def clear_pipeline_store_cache() -> None:
    """Close and forget every cached pipeline store (tests use this)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


__all__ = ["AbstractPipelineStore", "clear_pipeline_store_cache", "get_pipeline_store"]
