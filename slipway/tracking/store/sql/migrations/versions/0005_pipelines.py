"""Pipelines: pipeline runs, their steps, the step cache, artifact links and schedules.

A pipeline run *is* a tracking run: its row references ``runs.run_uuid`` with ON DELETE
CASCADE, and steps and artifact links hang off the pipeline run the same way, so deleting the
tracking run for good removes everything recorded about it. The cache and schedules reference
nothing: a cache entry outlives the run that filled it, a schedule outlives its runs.

Artifact URIs can be longer than an index entry may be on some databases, so links are
indexed by a SHA-256 of the URI (``uri_hash``) and the query compares the URI too.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


def _pipeline_run_fk(primary_key: bool) -> sa.Column[str]:
    return sa.Column(
        "pipeline_run_id",
        sa.String(32),
        sa.ForeignKey("pipeline_runs.run_id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_uuid", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("pipeline_name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger()),
        sa.Column("parameters", _LONG_TEXT, nullable=False),
        sa.Column("graph", _LONG_TEXT, nullable=False),
        sa.Column("source", sa.Text()),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.String(64)),
        sa.Column("user_id", sa.String(256)),
        sa.Column("message", sa.Text()),
        sa.Column("step_count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_pipeline_runs_start", "pipeline_runs", ["start_time", "run_id"])
    op.create_index("ix_pipeline_runs_name", "pipeline_runs", ["pipeline_name", "start_time"])
    op.create_index("ix_pipeline_runs_experiment", "pipeline_runs", ["experiment_id", "start_time"])
    op.create_index("ix_pipeline_runs_schedule", "pipeline_runs", ["schedule_id", "start_time"])
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status"])
    op.create_table(
        "pipeline_steps",
        _pipeline_run_fk(primary_key=True),
        sa.Column("task_id", sa.String(256), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("task_name", sa.String(256), nullable=False),
        sa.Column("component", sa.String(256), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("cache_key", sa.String(256)),
        sa.Column("cached_from", sa.String(64)),
        sa.Column("start_time", sa.BigInteger()),
        sa.Column("end_time", sa.BigInteger()),
        sa.Column("inputs", _LONG_TEXT, nullable=False),
        sa.Column("outputs", _LONG_TEXT, nullable=False),
        sa.Column("details", _LONG_TEXT, nullable=False),
        sa.Column("message", sa.Text()),
    )
    op.create_index("ix_pipeline_steps_seq", "pipeline_steps", ["pipeline_run_id", "seq"])
    op.create_table(
        "pipeline_cache",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("component", sa.String(256), nullable=False),
        sa.Column("outputs", _LONG_TEXT, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("pipeline_run_id", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(256), nullable=False),
        sa.Column("created_time", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_pipeline_cache_component", "pipeline_cache", ["component"])
    op.create_table(
        "pipeline_artifact_links",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        _pipeline_run_fk(primary_key=False),
        sa.Column("task_id", sa.String(256), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("uri_hash", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(256)),
        sa.Column("run_id", sa.String(64)),
    )
    op.create_index(
        "ix_pipeline_links_step", "pipeline_artifact_links", ["pipeline_run_id", "task_id"]
    )
    op.create_index("ix_pipeline_links_uri", "pipeline_artifact_links", ["uri_hash"])
    op.create_index("ix_pipeline_links_digest", "pipeline_artifact_links", ["digest"])
    op.create_table(
        "pipeline_schedules",
        sa.Column("schedule_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("cron", sa.String(256), nullable=False),
        sa.Column("parameters", _LONG_TEXT, nullable=False),
        sa.Column("experiment_id", sa.String(32)),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_time", sa.BigInteger(), nullable=False),
        sa.Column("next_run_time", sa.BigInteger()),
        sa.Column("last_run_time", sa.BigInteger()),
        sa.Column("last_run_id", sa.String(64)),
        sa.Column("user_id", sa.String(256)),
    )
    op.create_index("ix_pipeline_schedules_due", "pipeline_schedules", ["paused", "next_run_time"])
