"""The model registry: registered models, versions, aliases, stages, approvals and lineage.

Every function works on the registry of the tracking URI in effect (see
:func:`slipway.set_tracking_uri`): the embedded database, or ``slipway server`` over HTTP. For
another URI, use :class:`RegistryClient` directly.

::

    slipway.registry.register_model("runs:/<run>/model", "iris")
    slipway.registry.set_alias("iris", "challenger", 2)
    slipway.registry.require_approval("iris", alias="champion")
    slipway.registry.request_transition("iris", 2, alias="champion", comment="beats v1")
    slipway.registry.approve(name="iris", version=2, alias="champion", comment="ok")
    slipway.registry.lineage("models:/iris@champion")
"""

from __future__ import annotations

from collections.abc import Sequence

from slipway.entities import PagedList
from slipway.entities.registry import (
    ApprovalPolicy,
    AuditEvent,
    Deployment,
    LineageGraph,
    ModelVersion,
    RegisteredModel,
    RequestStatus,
    TransitionRequest,
)
from slipway.registry.client import RegistryClient
from slipway.registry.uris import parse_models_uri


def _client() -> RegistryClient:
    return RegistryClient()


def create_registered_model(
    name: str, tags: dict[str, str] | None = None, description: str | None = None
) -> RegisteredModel:
    return _client().create_registered_model(name, tags, description)


def get_registered_model(name: str) -> RegisteredModel:
    return _client().get_registered_model(name)


def search_registered_models(
    filter_string: str | None = None,
    max_results: int = 100,
    order_by: Sequence[str] | None = None,
    page_token: str | None = None,
) -> PagedList[RegisteredModel]:
    return _client().search_registered_models(filter_string, max_results, order_by, page_token)


def register_model(
    model_uri: str, name: str, tags: dict[str, str] | None = None, description: str | None = None
) -> ModelVersion:
    """Register ``runs:/<run>/<path>`` (or any model URI) as a new version of ``name``."""
    return _client().register_model(model_uri, name, tags, description)


def get_model_version(
    name: str, version: str | int | None = None, alias: str | None = None
) -> ModelVersion:
    return _client().get_model_version(name, version, alias)


def search_model_versions(
    filter_string: str | None = None,
    max_results: int = 200_000,
    order_by: Sequence[str] | None = None,
    page_token: str | None = None,
) -> PagedList[ModelVersion]:
    return _client().search_model_versions(filter_string, max_results, order_by, page_token)


def set_alias(name: str, alias: str, version: str | int) -> None:
    _client().set_alias(name, alias, version)


def delete_alias(name: str, alias: str) -> None:
    _client().delete_alias(name, alias)


def transition_stage(
    name: str, version: str | int, stage: str, archive_existing_versions: bool = False
) -> ModelVersion:
    return _client().transition_stage(name, version, stage, archive_existing_versions)


def require_approval(
    name: str, alias: str | None = None, stage: str | None = None, allow_self_approval: bool = False
) -> ApprovalPolicy:
    return _client().require_approval(name, alias, stage, allow_self_approval)


def request_transition(
    name: str,
    version: str | int,
    alias: str | None = None,
    stage: str | None = None,
    comment: str | None = None,
    archive_existing_versions: bool = False,
) -> TransitionRequest:
    return _client().request_transition(
        name, version, alias, stage, comment, archive_existing_versions
    )


def approve(
    request_id: str | None = None,
    *,
    name: str | None = None,
    version: str | int | None = None,
    alias: str | None = None,
    stage: str | None = None,
    comment: str | None = None,
) -> TransitionRequest:
    return _client().approve(
        request_id, name=name, version=version, alias=alias, stage=stage, comment=comment
    )


def reject(
    request_id: str | None = None,
    *,
    name: str | None = None,
    version: str | int | None = None,
    alias: str | None = None,
    stage: str | None = None,
    comment: str | None = None,
) -> TransitionRequest:
    return _client().reject(
        request_id, name=name, version=version, alias=alias, stage=stage, comment=comment
    )


def list_requests(
    name: str | None = None,
    version: str | int | None = None,
    status: RequestStatus | str | None = None,
) -> list[TransitionRequest]:
    return _client().list_requests(name, version, status)


def audit_log(
    name: str | None = None, version: str | int | None = None, max_results: int = 1000
) -> list[AuditEvent]:
    return _client().audit_log(name, version, max_results)


def deployments(
    name: str | None = None, version: str | int | None = None, running_only: bool = False
) -> list[Deployment]:
    return _client().deployments(name, version, running_only)


def lineage(
    model_uri: str | None = None, *, dataset: str | None = None, digest: str | None = None
) -> LineageGraph:
    """version -> run -> datasets -> pipeline step -> deployments (or, with ``dataset=``, the
    reverse)."""
    return _client().lineage(model_uri, dataset=dataset, digest=digest)


__all__ = [
    "RegistryClient",
    "approve",
    "audit_log",
    "create_registered_model",
    "delete_alias",
    "deployments",
    "get_model_version",
    "get_registered_model",
    "lineage",
    "list_requests",
    "parse_models_uri",
    "register_model",
    "reject",
    "request_transition",
    "require_approval",
    "search_model_versions",
    "search_registered_models",
    "set_alias",
    "transition_stage",
]
