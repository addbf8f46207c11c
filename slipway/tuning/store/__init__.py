"""Which tuning store a tracking URI names.

Studies live beside the tracking data: a database URI (or folder) gives a
:class:`~slipway.tuning.store.sql.SqlTuningStore` on the same engine as the tracking store
(a study is a tracking run with its trials as child runs), and an ``http(s)://`` URI gives a
:class:`~slipway.tuning.store.rest.RestTuningStore` talking to ``slipway server``. Stores are
cached per URI, like tracking stores.
"""

from __future__ import annotations

import threading

from slipway.tracking import uri as uris
from slipway.tuning.store.base import AbstractTuningStore, StudyRecord

_stores: dict[str, AbstractTuningStore] = {}
_lock = threading.Lock()


def get_tuning_store(uri: str | None = None) -> AbstractTuningStore:
    """The (cached) tuning store for ``uri`` or for the tracking URI in effect."""
    db_uri, artifact_root = uris.resolve(uri or uris.get_tracking_uri())
    key = f"{db_uri}\n{artifact_root}"
    with _lock:
        store = _stores.get(key)
        if store is None:
            if db_uri.split("://", 1)[0].lower() in ("http", "https"):
                from slipway.tuning.store.rest import RestTuningStore

                store = _stores[key] = RestTuningStore(db_uri)
            else:
                from slipway.tracking.store.sql import SqlTrackingStore
                from slipway.tuning.store.sql import SqlTuningStore

                tracking = uris.get_store(uri)
                assert isinstance(tracking, SqlTrackingStore)
                store = _stores[key] = SqlTuningStore(tracking)
        return store


def clear_tuning_store_cache() -> None:
    """Close and forget every cached tuning store (tests use this)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


__all__ = ["AbstractTuningStore", "StudyRecord", "clear_tuning_store_cache", "get_tuning_store"]
