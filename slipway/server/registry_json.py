"""Registry entities as the server sends them.

MLflow's shapes (``RegisteredModel``, ``ModelVersion``) follow ``model_registry.proto`` as
MLflow's own server prints them: ``version`` is a string, ``status`` is the enum's name, tags
are ``[{"key", "value"}]``, a registered model's aliases are ``[{"alias", "version"}]`` and a
version's are plain names; fields that are unset, and empty lists, are left out, as protobuf's
JSON printer does.

Slipway's own resources (approval policies, transition requests, audit events, deployments,
lineage graphs) use the entity's field names; a field that is None is left out, everything else
(empty lists, ``false``) is sent. :mod:`slipway.registry.store.rest.convert` reads both back.
"""

from __future__ import annotations

from typing import Any

from slipway.entities.registry import (
    ApprovalPolicy,
    AuditEvent,
    Deployment,
    LineageGraph,
    ModelVersion,
    RegisteredModel,
    TransitionRequest,
)


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def model_version_json(mv: ModelVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": mv.name,
        "version": str(mv.version),
        "creation_timestamp": mv.creation_timestamp,
        "last_updated_timestamp": mv.last_updated_timestamp,
    }
    if mv.user_id is not None:
        out["user_id"] = mv.user_id
    out["current_stage"] = mv.current_stage
    if mv.description is not None:
        out["description"] = mv.description
    out["source"] = mv.source
    if mv.run_id:
        out["run_id"] = mv.run_id
    out["status"] = mv.status.value
    if mv.status_message:
        out["status_message"] = mv.status_message
    if mv.tags:
        out["tags"] = _tags(mv.tags)
    if mv.run_link is not None:
        out["run_link"] = mv.run_link
    if mv.aliases:
        out["aliases"] = list(mv.aliases)
    if mv.model_id:
        out["model_id"] = mv.model_id
    return out


def registered_model_json(rm: RegisteredModel) -> dict[str, Any]:
    out: dict[str, Any] = {"name": rm.name, "creation_timestamp": rm.creation_timestamp}
    if rm.last_updated_timestamp:
        out["last_updated_timestamp"] = rm.last_updated_timestamp
    if rm.description:
        out["description"] = rm.description
    if rm.latest_versions:
        out["latest_versions"] = [model_version_json(mv) for mv in rm.latest_versions]
    if rm.tags:
        out["tags"] = _tags(rm.tags)
    if rm.aliases:
        out["aliases"] = [{"alias": a.alias, "version": str(a.version)} for a in rm.aliases]
    return out


# -- Slipway's own resources ----------------------------------------------------------------


def _without_none(items: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in items.items() if v is not None}


def policy_json(policy: ApprovalPolicy) -> dict[str, Any]:
    return _without_none(
        {
            "name": policy.name,
            "target_kind": policy.target_kind.value,
            "target": policy.target,
            "allow_self_approval": policy.allow_self_approval,
            "created_by": policy.created_by,
            "creation_timestamp": policy.creation_timestamp,
        }
    )


def request_json(req: TransitionRequest) -> dict[str, Any]:
    return _without_none(
        {
            "request_id": req.request_id,
            "name": req.name,
            "version": str(req.version),
            "target_kind": req.target_kind.value,
            "target": req.target,
            "requested_by": req.requested_by,
            "creation_timestamp": req.creation_timestamp,
            "comment": req.comment,
            "archive_existing_versions": req.archive_existing_versions,
            "status": req.status.value,
            "decided_by": req.decided_by,
            "decision_comment": req.decision_comment,
            "decided_timestamp": req.decided_timestamp,
        }
    )


def audit_event_json(event: AuditEvent) -> dict[str, Any]:
    return _without_none(
        {
            "event_id": event.event_id,
            "timestamp": event.timestamp,
            "actor": event.actor,
            "action": event.action,
            "name": event.name,
            "version": event.version,
            "details": event.details,
        }
    )


def deployment_json(dep: Deployment) -> dict[str, Any]:
    return _without_none(
        {
            "deployment_id": dep.deployment_id,
            "name": dep.name,
            "version": str(dep.version),
            "endpoint": dep.endpoint,
            "status": dep.status.value,
            "start_time": dep.start_time,
            "end_time": dep.end_time,
            "details": dep.details,
        }
    )


def lineage_json(graph: LineageGraph) -> dict[str, Any]:
    return {
        "root": graph.root,
        "nodes": [
            {"node_id": n.node_id, "kind": n.kind, "label": n.label, "attributes": n.attributes}
            for n in graph.nodes
        ],
        "edges": [
            {"source": e.source, "target": e.target, "relation": e.relation} for e in graph.edges
        ],
    }
