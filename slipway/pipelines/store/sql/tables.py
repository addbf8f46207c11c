"""Tables of the pipeline store, in the tracking store's database (``Sql<Entity>`` rows).

Migration 0005 creates them; these classes describe their current shape for queries. In the
database ``pipeline_runs.run_id`` also references ``runs.run_uuid`` (ON DELETE CASCADE): that
key is left out here because the runs table belongs to another metadata, and nothing here
needs SQLAlchemy to know about it.

Steps keep ``seq``, the order in which they were first recorded: it comes from the run's
``step_count``, bumped in the transaction that inserts the step (the update takes the run
row's write lock, so concurrent inserts get distinct numbers). JSON values are text.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_AUTO_ID = BigInteger().with_variant(Integer, "sqlite")
_LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")

RUN_ID_LENGTH = 32
"""Pipeline runs are tracking runs: their ids fit ``runs.run_uuid``."""
ID_LENGTH = 64
"""Other run ids (a step's run, a cache entry's run) and schedule ids."""
NAME_LENGTH = 256
"""Task ids and names, component names, pipeline and schedule names, cache keys, digests."""
STATUS_LENGTH = 20


class PipelineBase(DeclarativeBase):
    pass


def _pipeline_run_fk(primary_key: bool = False) -> Mapped[str]:
    return mapped_column(
        String(RUN_ID_LENGTH),
        ForeignKey("pipeline_runs.run_id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


class SqlPipelineRun(PipelineBase):
    __tablename__ = "pipeline_runs"
    __table_args__ = (
        Index("ix_pipeline_runs_start", "start_time", "run_id"),
        Index("ix_pipeline_runs_name", "pipeline_name", "start_time"),
        Index("ix_pipeline_runs_experiment", "experiment_id", "start_time"),
        Index("ix_pipeline_runs_schedule", "schedule_id", "start_time"),
        Index("ix_pipeline_runs_status", "status"),
    )

    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(String(32), nullable=False)
    pipeline_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH), nullable=False)
    start_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    parameters: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)
    graph: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)
    source: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    schedule_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    user_id: Mapped[str | None] = mapped_column(String(256))
    message: Mapped[str | None] = mapped_column(Text)
    step_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class SqlPipelineStep(PipelineBase):
    __tablename__ = "pipeline_steps"
    __table_args__ = (Index("ix_pipeline_steps_seq", "pipeline_run_id", "seq"),)

    pipeline_run_id: Mapped[str] = _pipeline_run_fk(primary_key=True)
    task_id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    task_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    component: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    cache_key: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    cached_from: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    start_time: Mapped[int | None] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    inputs: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)
    outputs: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)
    details: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)
    message: Mapped[str | None] = mapped_column(Text)


class SqlCacheEntry(PipelineBase):
    """No foreign keys: an entry outlives the run that filled it."""

    __tablename__ = "pipeline_cache"
    __table_args__ = (Index("ix_pipeline_cache_component", "component"),)

    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    component: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    outputs: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    pipeline_run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), nullable=False)
    task_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SqlArtifactLink(PipelineBase):
    """``id`` orders links as they were written; ``uri_hash`` (SHA-256 hex of ``uri``) is what
    the URI index holds."""

    __tablename__ = "pipeline_artifact_links"
    __table_args__ = (
        Index("ix_pipeline_links_step", "pipeline_run_id", "task_id"),
        Index("ix_pipeline_links_uri", "uri_hash"),
        Index("ix_pipeline_links_digest", "digest"),
    )

    id: Mapped[int] = mapped_column(_AUTO_ID, primary_key=True, autoincrement=True)
    pipeline_run_id: Mapped[str] = _pipeline_run_fk()
    task_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    direction: Mapped[str] = mapped_column(String(10), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    uri: Mapped[str] = mapped_column(Text, nullable=False)
    uri_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    digest: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))


class SqlSchedule(PipelineBase):
    __tablename__ = "pipeline_schedules"
    __table_args__ = (Index("ix_pipeline_schedules_due", "paused", "next_run_time"),)

    schedule_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    cron: Mapped[str] = mapped_column(String(256), nullable=False)
    parameters: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)
    experiment_id: Mapped[str | None] = mapped_column(String(32))
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    next_run_time: Mapped[int | None] = mapped_column(BigInteger)
    last_run_time: Mapped[int | None] = mapped_column(BigInteger)
    last_run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    user_id: Mapped[str | None] = mapped_column(String(256))


pipeline_runs = cast(Table, SqlPipelineRun.__table__)
steps = cast(Table, SqlPipelineStep.__table__)
cache = cast(Table, SqlCacheEntry.__table__)
links = cast(Table, SqlArtifactLink.__table__)
schedules = cast(Table, SqlSchedule.__table__)
