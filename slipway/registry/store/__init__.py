"""Which registry store a tracking URI names.

The registry lives beside the tracking data: a database URI (or folder) gives a
:class:`~slipway.registry.store.sql.SqlRegistryStore` on the same engine as the tracking store
(so a version's source can be checked against its run, and lineage can read runs), and an
``http(s)://`` URI gives a :class:`~slipway.registry.store.rest.RestRegistryStore` talking to
``slipway server``. Stores are cached per URI, like tracking stores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.registry.store.base import AbstractRegistryStore
from slipway.tracking.store.beside import StoresBeside

if TYPE_CHECKING:
    from slipway.tracking.store.sql import SqlTrackingStore


def _rest(url: str) -> AbstractRegistryStore:
    from slipway.registry.store.rest import RestRegistryStore

    return RestRegistryStore(url)


def _sql(tracking: SqlTrackingStore) -> AbstractRegistryStore:
    from slipway.registry.store.sql import SqlRegistryStore

    return SqlRegistryStore(tracking)


_STORES: StoresBeside[AbstractRegistryStore] = StoresBeside(_rest, _sql)


def get_registry_store(uri: str | None = None) -> AbstractRegistryStore:
    """The (cached) registry store for ``uri`` or for the tracking URI in effect."""
    return _STORES.get(uri)


def clear_registry_store_cache() -> None:
    """Close and forget every cached registry store (tests use this)."""
    _STORES.clear()


__all__ = ["AbstractRegistryStore", "clear_registry_store_cache", "get_registry_store"]
