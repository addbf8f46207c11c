"""The model registry: registered models, their versions, tags, aliases and stages, and what
Slipway adds to MLflow's registry: approval policies and requests, an audit log, deployments,
and the lineage graph that ties a version to the data and runs behind it and the places it
serves from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

STAGES = ("None", "Staging", "Production", "Archived")
"""MLflow's legacy stages, in their canonical spelling."""

RESERVED_ALIASES = ("latest",)
"""Alias names a user cannot set; ``v<digits>`` is reserved too (it names a version)."""


def canonical_stage(stage: str) -> str | None:
    """The canonical spelling of ``stage`` (case-insensitive), or None if it is not a stage."""
    for known in STAGES:
        if stage.lower() == known.lower():
            return known
    return None


class ModelVersionStatus(enum.StrEnum):
    PENDING_REGISTRATION = "PENDING_REGISTRATION"
    FAILED_REGISTRATION = "FAILED_REGISTRATION"
    READY = "READY"


@dataclass(slots=True)
class RegisteredModelAlias:
    alias: str
    version: str


@dataclass(slots=True)
class ModelVersion:
    name: str
    version: str
    creation_timestamp: int
    last_updated_timestamp: int
    source: str
    run_id: str | None = None
    run_link: str | None = None
    description: str | None = None
    user_id: str | None = None
    current_stage: str = "None"
    status: ModelVersionStatus = ModelVersionStatus.READY
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    model_id: str | None = None


@dataclass(slots=True)
class RegisteredModel:
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None = None
    latest_versions: list[ModelVersion] = field(default_factory=list)
    """The newest version in each stage (what MLflow's ``latest_versions`` lists)."""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[RegisteredModelAlias] = field(default_factory=list)


# -- approvals ------------------------------------------------------------------------------


class TransitionTarget(enum.StrEnum):
    """What a transition moves: an alias onto a version, or a version into a stage."""

    ALIAS = "alias"
    STAGE = "stage"


class RequestStatus(enum.StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


@dataclass(slots=True)
class ApprovalPolicy:
    """Moving ``target`` (an alias name or a canonical stage) of model ``name`` needs an
    approved request. ``allow_self_approval`` lets the requester approve their own request."""

    name: str
    target_kind: TransitionTarget
    target: str
    allow_self_approval: bool = False
    created_by: str | None = None
    creation_timestamp: int = 0


@dataclass(slots=True)
class TransitionRequest:
    request_id: str
    name: str
    version: str
    target_kind: TransitionTarget
    target: str
    requested_by: str
    creation_timestamp: int
    comment: str | None = None
    archive_existing_versions: bool = False
    status: RequestStatus = RequestStatus.PENDING
    decided_by: str | None = None
    decision_comment: str | None = None
    decided_timestamp: int | None = None


@dataclass(slots=True)
class AuditEvent:
    """One entry of the registry's append-only audit log.

    ``action`` is one of ``create_model``, ``rename_model``, ``delete_model``,
    ``create_version``, ``delete_version``, ``set_alias``, ``delete_alias``,
    ``transition_stage``, ``set_policy``, ``delete_policy``, ``request_transition``,
    ``approve``, ``reject``, ``cancel``, ``deploy``, ``undeploy``; ``details`` holds what
    the action was about (the alias, stage, request id, comment, ...).
    """

    event_id: int
    timestamp: int
    actor: str
    action: str
    name: str
    version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


# -- deployments and lineage ----------------------------------------------------------------


class DeploymentStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


@dataclass(slots=True)
class Deployment:
    """A place a model version serves from (recorded by ``slipway serve`` and friends)."""

    deployment_id: str
    name: str
    version: str
    endpoint: str
    status: DeploymentStatus
    start_time: int
    end_time: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


PIPELINE_RUN_TAG = "slipway.pipeline.run_id"
"""Tag on a step's run naming the pipeline run it belongs to (lineage reads it)."""
PIPELINE_STEP_TAG = "slipway.pipeline.step"
"""Tag on a step's run naming the pipeline step it executed."""


@dataclass(slots=True)
class LineageNode:
    """``kind`` is one of ``model_version``, ``run``, ``dataset``, ``pipeline_run``,
    ``pipeline_step`` and ``deployment``; ``node_id`` is unique within a graph
    (``model_version:iris/3``, ``run:<id>``, ``dataset:<name>@<digest>``, ...)."""

    node_id: str
    kind: str
    label: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LineageEdge:
    """``source`` produced or feeds ``target``; ``relation`` says how (``produced``,
    ``input_to``, ``step_of``, ``deployed_as``)."""

    source: str
    target: str
    relation: str


@dataclass(slots=True)
class LineageGraph:
    root: str
    nodes: list[LineageNode] = field(default_factory=list)
    edges: list[LineageEdge] = field(default_factory=list)

    def node(self, node_id: str) -> LineageNode | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def of_kind(self, kind: str) -> list[LineageNode]:
        return [n for n in self.nodes if n.kind == kind]
