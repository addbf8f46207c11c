"""Tables of the model registry, in the tracking store's database (``Sql<Entity>`` rows).

Migration 0004 creates them; these classes describe their current shape for queries. Children
of a registered model reference its name with ``ON UPDATE CASCADE``, so a rename is one
``UPDATE`` whose cascade moves versions, tags, aliases, policies, requests and deployments;
``ON DELETE CASCADE`` does the same for a delete. The audit log references nothing: it outlives
what it describes. Version numbers come from ``registered_models.last_version``, a counter
bumped inside the write transaction that creates the version, so a number is never handed out
twice, even after deletes.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_AUTO_ID = BigInteger().with_variant(Integer, "sqlite")


class RegistryBase(DeclarativeBase):
    pass


def _model_fk(primary_key: bool = False) -> Mapped[str]:
    return mapped_column(
        String(256),
        ForeignKey("registered_models.name", ondelete="CASCADE", onupdate="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


class SqlRegisteredModel(RegistryBase):
    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    creation_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_updated_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    last_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class SqlRegisteredModelTag(RegistryBase):
    __tablename__ = "registered_model_tags"

    name: Mapped[str] = _model_fk(primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class SqlModelVersion(RegistryBase):
    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_run", "run_id"),)

    name: Mapped[str] = _model_fk(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    creation_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_updated_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(256))
    current_stage: Mapped[str] = mapped_column(String(20), nullable=False)
    source: Mapped[str] = mapped_column(String(2000), nullable=False)
    storage_location: Mapped[str] = mapped_column(String(2000), nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(256))
    run_link: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    status_message: Mapped[str | None] = mapped_column(String(500))
    model_id: Mapped[str | None] = mapped_column(String(64))


class SqlModelVersionTag(RegistryBase):
    __tablename__ = "model_version_tags"
    __table_args__ = (
        ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
    )

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class SqlRegisteredModelAlias(RegistryBase):
    """An alias points at an existing version: deleting the version deletes the alias."""

    __tablename__ = "registered_model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
    )

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)


class SqlApprovalPolicy(RegistryBase):
    __tablename__ = "approval_policies"

    name: Mapped[str] = _model_fk(primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    target: Mapped[str] = mapped_column(String(255), primary_key=True)
    allow_self_approval: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(256))
    creation_time: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SqlTransitionRequest(RegistryBase):
    """``id`` orders requests as they were made; ``request_id`` is what callers see. The
    version has no foreign key: a request outlives a deleted version (and then cannot be
    approved)."""

    __tablename__ = "transition_requests"
    __table_args__ = (Index("ix_transition_requests_model", "name", "version", "status"),)

    id: Mapped[int] = mapped_column(_AUTO_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = _model_fk()
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    target_kind: Mapped[str] = mapped_column(String(10), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(256), nullable=False)
    creation_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
    archive_existing_versions: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decision_comment: Mapped[str | None] = mapped_column(Text)
    decided_time: Mapped[int | None] = mapped_column(BigInteger)


class SqlRegistryAuditEvent(RegistryBase):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "registry_audit"
    __table_args__ = (Index("ix_registry_audit_model", "name", "version", "event_id"),)

    event_id: Mapped[int] = mapped_column(_AUTO_ID, primary_key=True, autoincrement=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actor: Mapped[str] = mapped_column(String(256), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    version: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[str] = mapped_column(Text, nullable=False)


class SqlDeployment(RegistryBase):
    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_model", "name", "version"),)

    deployment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = _model_fk()
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    endpoint: Mapped[str] = mapped_column(String(2000), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    start_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[str] = mapped_column(Text, nullable=False)


registered_models = cast(Table, SqlRegisteredModel.__table__)
model_tags = cast(Table, SqlRegisteredModelTag.__table__)
versions = cast(Table, SqlModelVersion.__table__)
version_tags = cast(Table, SqlModelVersionTag.__table__)
aliases = cast(Table, SqlRegisteredModelAlias.__table__)
policies = cast(Table, SqlApprovalPolicy.__table__)
requests = cast(Table, SqlTransitionRequest.__table__)
audit = cast(Table, SqlRegistryAuditEvent.__table__)
deployments = cast(Table, SqlDeployment.__table__)
