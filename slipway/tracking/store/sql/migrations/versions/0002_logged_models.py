"""Logged models (MLflow 3): the models, their params, tags and metric points, and the links
between runs and the models they produced or used.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


def _model_id_column(primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "model_id",
        sa.String(36),
        sa.ForeignKey("logged_models.model_id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("model_id", sa.String(36), primary_key=True),
        sa.Column(
            "experiment_id",
            sa.Integer(),
            sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("artifact_location", sa.String(2000), nullable=False),
        sa.Column("creation_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_message", sa.String(1000)),
        sa.Column("model_type", sa.String(500)),
        sa.Column("source_run_id", sa.String(32)),
        sa.Column("lifecycle_stage", sa.String(20), nullable=False),
    )
    op.create_index(
        "ix_logged_models_experiment_stage_created",
        "logged_models",
        ["experiment_id", "lifecycle_stage", "creation_timestamp"],
    )
    op.create_index("ix_logged_models_experiment_name", "logged_models", ["experiment_id", "name"])
    op.create_index("ix_logged_models_source_run", "logged_models", ["source_run_id"])
    for table in ("logged_model_params", "logged_model_tags"):
        op.create_table(
            table,
            _model_id_column(primary_key=True),
            sa.Column("key", sa.String(250), primary_key=True),
            sa.Column("value", _LONG_TEXT, nullable=False),
        )
        op.create_index(f"ix_{table}_key", table, ["key"])
    op.create_table(
        "logged_model_metrics",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        _model_id_column(),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        # "" when the point names no run or no dataset digest, so that the unique index
        # below treats a repeated point as the same point.
        sa.Column("run_uuid", sa.String(32), nullable=False),
        sa.Column("dataset_name", sa.String(500)),
        sa.Column("dataset_digest", sa.String(36), nullable=False),
    )
    op.create_index(
        "ix_logged_model_metrics_point",
        "logged_model_metrics",
        ["model_id", "key", "timestamp", "step", "run_uuid", "dataset_digest"],
        unique=True,
    )
    op.create_index("ix_logged_model_metrics_key_value", "logged_model_metrics", ["key", "value"])
    op.create_table(
        "logged_model_runs",
        sa.Column(
            "run_uuid",
            sa.String(32),
            sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
            primary_key=True,
        ),
        _model_id_column(primary_key=True),
        sa.Column("direction", sa.String(10), primary_key=True),
        sa.Column("step", sa.BigInteger(), primary_key=True),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_logged_model_runs_model", "logged_model_runs", ["model_id"])


def downgrade() -> None:
    for table in (
        "logged_model_runs",
        "logged_model_metrics",
        "logged_model_tags",
        "logged_model_params",
        "logged_models",
    ):
        op.drop_table(table)
