"""The model registry on SQLAlchemy (SQLite, PostgreSQL, MySQL), sharing the tracking
store's database."""

from slipway.registry.store.sql.store import SqlRegistryStore

__all__ = ["SqlRegistryStore"]
