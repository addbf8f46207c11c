"""The model registry: registered models, versions, their tags and aliases, approval policies
and transition requests, the audit log and deployments.

Children of a registered model reference its name with ON UPDATE CASCADE (a rename is one
UPDATE) and ON DELETE CASCADE; the audit log references nothing, so it outlives what it
records.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _model_name(primary_key: bool) -> sa.Column[str]:
    return sa.Column(
        "name",
        sa.String(256),
        sa.ForeignKey("registered_models.name", ondelete="CASCADE", onupdate="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def _version_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
        onupdate="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_time", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("last_version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "registered_model_tags",
        _model_name(primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "model_versions",
        _model_name(primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_time", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("user_id", sa.String(256)),
        sa.Column("current_stage", sa.String(20), nullable=False),
        sa.Column("source", sa.String(2000), nullable=False),
        sa.Column("storage_location", sa.String(2000), nullable=False),
        sa.Column("run_id", sa.String(256)),
        sa.Column("run_link", sa.String(2000)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_message", sa.String(500)),
        sa.Column("model_id", sa.String(64)),
    )
    op.create_index("ix_model_versions_run", "model_versions", ["run_id"])
    op.create_table(
        "model_version_tags",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        _version_fk(),
    )
    op.create_table(
        "registered_model_aliases",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("alias", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        _version_fk(),
    )
    op.create_table(
        "approval_policies",
        _model_name(primary_key=True),
        sa.Column("target_kind", sa.String(10), primary_key=True),
        sa.Column("target", sa.String(255), primary_key=True),
        sa.Column("allow_self_approval", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(256)),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "transition_requests",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False, unique=True),
        _model_name(primary_key=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("target_kind", sa.String(10), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("archive_existing_versions", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(256)),
        sa.Column("decision_comment", sa.Text()),
        sa.Column("decided_time", sa.BigInteger()),
    )
    op.create_index(
        "ix_transition_requests_model", "transition_requests", ["name", "version", "status"]
    )
    op.create_table(
        "registry_audit",
        sa.Column("event_id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer()),
        sa.Column("details", sa.Text(), nullable=False),
    )
    op.create_index("ix_registry_audit_model", "registry_audit", ["name", "version", "event_id"])
    op.create_table(
        "deployments",
        sa.Column("deployment_id", sa.String(32), primary_key=True),
        _model_name(primary_key=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger()),
        sa.Column("details", sa.Text(), nullable=False),
    )
    op.create_index("ix_deployments_model", "deployments", ["name", "version"])
