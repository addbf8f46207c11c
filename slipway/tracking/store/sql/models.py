"""ORM rows of the tracking schema (``Sql<Entity>``). The schema itself is created and changed
only by the Alembic migrations next to this file; these classes describe its current shape."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


class Base(DeclarativeBase):
    pass


class SqlExperiment(Base):
    __tablename__ = "experiments"

    experiment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(500), unique=True, nullable=False)
    artifact_location: Mapped[str] = mapped_column(String(2000), nullable=False)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    creation_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_update_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    deleted_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SqlExperimentTag(Base):
    __tablename__ = "experiment_tags"

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class SqlRun(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_experiment_stage_start", "experiment_id", "lifecycle_stage", "start_time"),
    )

    run_uuid: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(250), nullable=False)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id"), nullable=False
    )
    user_id: Mapped[str] = mapped_column(String(256), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    start_time: Mapped[int | None] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    artifact_uri: Mapped[str] = mapped_column(String(2000), nullable=False)
    deleted_time: Mapped[int | None] = mapped_column(BigInteger)


class SqlParam(Base):
    __tablename__ = "params"
    __table_args__ = (Index("ix_params_key", "key"),)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(6000), nullable=False)


class SqlTag(Base):
    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_key", "key"),)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(8000), nullable=False)


class SqlMetric(Base):
    """Every logged point. NaN is stored as ``value = 0, is_nan = true`` because SQLite turns a
    NaN into NULL."""

    __tablename__ = "metrics"
    __table_args__ = (
        Index(
            "ix_metrics_history", "run_uuid", "key", "step", "timestamp", "id", "value", "is_nan"
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(250), nullable=False)
    value: Mapped[float] = mapped_column(Float(precision=53), nullable=False)
    is_nan: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    step: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class SqlLatestMetric(Base):
    """The latest point per (run, key): greatest (step, timestamp, value), as MLflow defines it."""

    __tablename__ = "latest_metrics"
    __table_args__ = (Index("ix_latest_metrics_key_value", "key", "value"),)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Float(precision=53), nullable=False)
    is_nan: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    step: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SqlDataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        Index("ix_datasets_experiment_name_digest", "experiment_id", "name", "digest", unique=True),
    )

    dataset_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    digest: Mapped[str] = mapped_column(String(36), nullable=False)
    source_type: Mapped[str] = mapped_column(String(36), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    schema: Mapped[str | None] = mapped_column(Text)
    profile: Mapped[str | None] = mapped_column(Text)


class SqlDatasetInput(Base):
    __tablename__ = "dataset_inputs"
    __table_args__ = (Index("ix_dataset_inputs_dataset", "dataset_uuid"),)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    dataset_uuid: Mapped[str] = mapped_column(
        ForeignKey("datasets.dataset_uuid", ondelete="CASCADE"), primary_key=True
    )


class SqlInputTag(Base):
    __tablename__ = "input_tags"

    run_uuid: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(500), nullable=False)


class SqlLoggedModel(Base):
    __tablename__ = "logged_models"
    __table_args__ = (
        Index(
            "ix_logged_models_experiment_stage_created",
            "experiment_id",
            "lifecycle_stage",
            "creation_timestamp",
        ),
        Index("ix_logged_models_experiment_name", "experiment_id", "name"),
        Index("ix_logged_models_source_run", "source_run_id"),
    )

    model_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    artifact_location: Mapped[str] = mapped_column(String(2000), nullable=False)
    creation_timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_updated_timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    status_message: Mapped[str | None] = mapped_column(String(1000))
    model_type: Mapped[str | None] = mapped_column(String(500))
    source_run_id: Mapped[str | None] = mapped_column(String(32))
    lifecycle_stage: Mapped[str] = mapped_column(String(20), nullable=False, default="active")


class SqlLoggedModelParam(Base):
    __tablename__ = "logged_model_params"
    __table_args__ = (Index("ix_logged_model_params_key", "key"),)

    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)


class SqlLoggedModelTag(Base):
    __tablename__ = "logged_model_tags"
    __table_args__ = (Index("ix_logged_model_tags_key", "key"),)

    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(_LONG_TEXT, nullable=False)


class SqlLoggedModelMetric(Base):
    """Every metric point recorded for a model. NaN is stored as ``value = 0, is_nan = true``;
    ``run_uuid`` and ``dataset_digest`` are ``""`` when absent, so that the unique index keeps
    a repeated point once."""

    __tablename__ = "logged_model_metrics"
    __table_args__ = (
        Index(
            "ix_logged_model_metrics_point",
            "model_id",
            "key",
            "timestamp",
            "step",
            "run_uuid",
            "dataset_digest",
            unique=True,
        ),
        Index("ix_logged_model_metrics_key_value", "key", "value"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(250), nullable=False)
    value: Mapped[float] = mapped_column(Float(precision=53), nullable=False)
    is_nan: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    step: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    run_uuid: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    dataset_name: Mapped[str | None] = mapped_column(String(500))
    dataset_digest: Mapped[str] = mapped_column(String(36), nullable=False, default="")


class SqlLoggedModelRun(Base):
    """A run's link to a model it produced (``direction = "output"``, at a step) or used
    (``"input"``, step 0); ``timestamp`` (ms) orders the links as they were recorded."""

    __tablename__ = "logged_model_runs"
    __table_args__ = (Index("ix_logged_model_runs_model", "model_id"),)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    direction: Mapped[str] = mapped_column(String(10), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
