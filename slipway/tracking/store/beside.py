"""Stores that live beside the tracking data (the registry, pipelines, tuning), one per
tracking URI.

A database URI (or folder) gives the domain's SQL store on the tracking store's own engine,
so its tables sit in the same database as the runs they reference; an ``http(s)://`` URI gives
its REST store talking to ``slipway server``. Each domain keeps one :class:`StoresBeside`,
which caches a store per URI as tracking stores are cached.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from slipway.tracking import uri as uris

if TYPE_CHECKING:
    from slipway.tracking.store.sql import SqlTrackingStore


class Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


class StoresBeside(Generic[S]):
    """The cached stores of one domain: ``rest(url)`` builds one for a server,
    ``sql(tracking_store)`` one on a database (both import their module when called)."""

    def __init__(self, rest: Callable[[str], S], sql: Callable[[SqlTrackingStore], S]) -> None:
        self._rest = rest
        self._sql = sql
        self._stores: dict[str, S] = {}
        self._lock = threading.Lock()

    def get(self, uri: str | None = None) -> S:
        """The (cached) store for ``uri`` or for the tracking URI in effect."""
        db_uri, artifact_root = uris.resolve(uri or uris.get_tracking_uri())
        key = f"{db_uri}\n{artifact_root}"
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                if db_uri.split("://", 1)[0].lower() in ("http", "https"):
                    store = self._rest(db_uri)
                else:
                    from slipway.tracking.store.sql import SqlTrackingStore

                    tracking = uris.get_store(uri)
                    assert isinstance(tracking, SqlTrackingStore)
                    store = self._sql(tracking)
                self._stores[key] = store
            return store

    def clear(self) -> None:
        """Close and forget every cached store (tests use this)."""
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()


__all__ = ["StoresBeside"]
