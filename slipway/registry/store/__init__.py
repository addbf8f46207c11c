"""Which registry store a tracking URI names.

The registry lives beside the tracking data: a database URI (or folder) gives a
:class:`~slipway.registry.store.sql.SqlRegistryStore` on the same engine as the tracking store
(so a version's source can be checked against its run, and lineage can read runs), and an
``http(s)://`` URI gives a :class:`~slipway.registry.store.rest.RestRegistryStore` talking to
``slipway server``. Stores are cached per URI, like tracking stores.
"""

from __future__ import annotations

import threading

from slipway.registry.store.base import AbstractRegistryStore
from slipway.tracking import uri as uris

_stores: dict[str, AbstractRegistryStore] = {}
_lock = threading.Lock()


def get_registry_store(uri: str | None = None) -> AbstractRegistryStore:
    """The (cached) registry store for ``uri`` or for the tracking URI in effect."""
    db_uri, artifact_root = uris.resolve(uri or uris.get_tracking_uri())
    key = f"{db_uri}\n{artifact_root}"
    with _lock:
        store = _stores.get(key)
        if store is None:
            if db_uri.split("://", 1)[0].lower() in ("http", "https"):
                from slipway.registry.store.rest import RestRegistryStore

                store = _stores[key] = RestRegistryStore(db_uri)
            else:
                from slipway.registry.store.sql import SqlRegistryStore
                from slipway.tracking.store.sql import SqlTrackingStore

                tracking = uris.get_store(uri)
                assert isinstance(tracking, SqlTrackingStore)
                store = _stores[key] = SqlRegistryStore(tracking)
        return store


def clear_registry_store_cache() -> None:
    """Close and forget every cached registry store (tests use this)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


__all__ = ["AbstractRegistryStore", "clear_registry_store_cache", "get_registry_store"]
