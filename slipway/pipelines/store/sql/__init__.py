"""The pipeline store on SQLAlchemy (SQLite, PostgreSQL, MySQL), sharing the tracking store's
database."""

from slipway.pipelines.store.sql.store import SqlPipelineStore

__all__ = ["SqlPipelineStore"]
