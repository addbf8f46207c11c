"""The tuning store on SQLAlchemy, sharing the tracking store's database."""

from slipway.tuning.store.sql.store import SqlTuningStore

__all__ = ["SqlTuningStore"]
