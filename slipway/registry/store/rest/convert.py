"""The server's registry JSON back into entities.

MLflow's shapes are proto3 JSON: int64 fields may come as numbers or strings, enums by name,
and unset fields or empty lists may be missing; Slipway's own resources leave out fields that
are None. A shape error raises :class:`~slipway.tracking.store.rest.convert.MalformedResponse`
through :func:`~slipway.tracking.store.rest.convert.parse`, never a bare ``KeyError``.
"""

from __future__ import annotations

from typing import Any

from slipway.entities.registry import (
    ApprovalPolicy,
    AuditEvent,
    Deployment,
    DeploymentStatus,
    LineageEdge,
    LineageGraph,
    LineageNode,
    ModelVersion,
    ModelVersionStatus,
    RegisteredModel,
    RegisteredModelAlias,
    RequestStatus,
    TransitionRequest,
    TransitionTarget,
)


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _tags(items: Any) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items or []}


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def model_version(d: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        name=d["name"],
        version=str(d["version"]),
        creation_timestamp=_int(d.get("creation_timestamp")),
        last_updated_timestamp=_int(d.get("last_updated_timestamp")),
        source=d.get("source", ""),
        run_id=d.get("run_id") or None,
        run_link=d.get("run_link"),
        description=d.get("description"),
        user_id=d.get("user_id"),
        current_stage=d.get("current_stage") or "None",
        status=ModelVersionStatus(d.get("status") or "READY"),
        status_message=d.get("status_message"),
        tags=_tags(d.get("tags")),
        aliases=[str(a) for a in d.get("aliases") or []],
        model_id=d.get("model_id") or None,
    )


def registered_model(d: dict[str, Any]) -> RegisteredModel:
    return RegisteredModel(
        name=d["name"],
        creation_timestamp=_int(d.get("creation_timestamp")),
        last_updated_timestamp=_int(d.get("last_updated_timestamp")),
        description=d.get("description"),
        latest_versions=[model_version(v) for v in d.get("latest_versions") or []],
        tags=_tags(d.get("tags")),
        aliases=[
            RegisteredModelAlias(str(a["alias"]), str(a["version"])) for a in d.get("aliases") or []
        ],
    )


def policy(d: dict[str, Any]) -> ApprovalPolicy:
    return ApprovalPolicy(
        name=d["name"],
        target_kind=TransitionTarget(d["target_kind"]),
        target=d["target"],
        allow_self_approval=bool(d.get("allow_self_approval", False)),
        created_by=d.get("created_by"),
        creation_timestamp=_int(d.get("creation_timestamp")),
    )


def transition_request(d: dict[str, Any]) -> TransitionRequest:
    return TransitionRequest(
        request_id=str(d["request_id"]),
        name=d["name"],
        version=str(d["version"]),
        target_kind=TransitionTarget(d["target_kind"]),
        target=d["target"],
        requested_by=d["requested_by"],
        creation_timestamp=_int(d.get("creation_timestamp")),
        comment=d.get("comment"),
        archive_existing_versions=bool(d.get("archive_existing_versions", False)),
        status=RequestStatus(d.get("status") or "PENDING"),
        decided_by=d.get("decided_by"),
        decision_comment=d.get("decision_comment"),
        decided_timestamp=_optional_int(d.get("decided_timestamp")),
    )


def audit_event(d: dict[str, Any]) -> AuditEvent:
    version = d.get("version")
    return AuditEvent(
        event_id=_int(d["event_id"]),
        timestamp=_int(d.get("timestamp")),
        actor=d["actor"],
        action=d["action"],
        name=d["name"],
        version=None if version is None else str(version),
        details=_object(d.get("details")),
    )


def deployment(d: dict[str, Any]) -> Deployment:
    return Deployment(
        deployment_id=str(d["deployment_id"]),
        name=d["name"],
        version=str(d["version"]),
        endpoint=d["endpoint"],
        status=DeploymentStatus(d["status"]),
        start_time=_int(d.get("start_time")),
        end_time=_optional_int(d.get("end_time")),
        details=_object(d.get("details")),
    )


def lineage(d: dict[str, Any]) -> LineageGraph:
    return LineageGraph(
        root=d["root"],
        nodes=[
            LineageNode(n["node_id"], n["kind"], n.get("label", ""), _object(n.get("attributes")))
            for n in d.get("nodes") or []
        ],
        edges=[LineageEdge(e["source"], e["target"], e["relation"]) for e in d.get("edges") or []],
    )
