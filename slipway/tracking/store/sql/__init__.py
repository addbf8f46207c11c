"""The SQL tracking store (SQLite, PostgreSQL, MySQL)."""

from slipway.tracking.store.sql.store import SqlTrackingStore

__all__ = ["SqlTrackingStore"]
