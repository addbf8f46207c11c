"""Which tuning store a tracking URI names.

Studies live beside the tracking data: a database URI (or folder) gives a
:class:`~slipway.tuning.store.sql.SqlTuningStore` on the same engine as the tracking store
(a study is a tracking run with its trials as child runs), and an ``http(s)://`` URI gives a
:class:`~slipway.tuning.store.rest.RestTuningStore` talking to ``slipway server``. Stores are
cached per URI, like tracking stores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.tracking.store.beside import StoresBeside
from slipway.tuning.store.base import AbstractTuningStore, StudyRecord

if TYPE_CHECKING:
    from slipway.tracking.store.sql import SqlTrackingStore


def _rest(url: str) -> AbstractTuningStore:
    from slipway.tuning.store.rest import RestTuningStore

    return RestTuningStore(url)


def _sql(tracking: SqlTrackingStore) -> AbstractTuningStore:
    from slipway.tuning.store.sql import SqlTuningStore

    return SqlTuningStore(tracking)


_STORES: StoresBeside[AbstractTuningStore] = StoresBeside(_rest, _sql)


def get_tuning_store(uri: str | None = None) -> AbstractTuningStore:
    """The (cached) tuning store for ``uri`` or for the tracking URI in effect."""
    return _STORES.get(uri)


def clear_tuning_store_cache() -> None:
    """Close and forget every cached tuning store (tests use this)."""
    _STORES.clear()


__all__ = ["AbstractTuningStore", "StudyRecord", "clear_tuning_store_cache", "get_tuning_store"]
