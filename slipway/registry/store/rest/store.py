"""``RestRegistryStore``: the model registry of a remote server, over HTTP.

MLflow's registry (registered models, versions, tags, aliases, stages) goes through MLflow's
REST API under ``/api/2.0/mlflow`` (so the MLflow parts work against an MLflow server too);
approvals, the audit log, deployments and lineage go through Slipway's own endpoints under
``/api/2.0/slipway`` (see :mod:`slipway.server.routers.slipway_api`).

Who acts
    Every request carries ``X-Slipway-User``: the ``actor`` argument when one is given, else
    :func:`~slipway.utils.user.current_user` (percent-encoded as UTF-8). The server records it in
    the audit log and checks it against the requester when a policy forbids self-approval. When
    the transport sends HTTP Basic credentials (``SLIPWAY_TRACKING_USERNAME`` or a user in the
    URL), the server takes that user name instead, as it would from an authenticating proxy.

Errors and retries
    The server's ``{"error_code", "message"}`` comes back as the matching
    :class:`~slipway.exceptions.SlipwayError` subclass (see
    :mod:`slipway.tracking.store.rest.http`, which also retries reads on connection errors and
    5xx answers). Registry writes are never spooled: a change to the registry (an alias moved,
    a request approved) must either happen or fail where the caller sees it. Writes that are not
    safe to repeat (creates, deletes, approvals, alias and stage moves) are retried only where
    the server cannot have acted on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from slipway.entities import PagedList
from slipway.entities.registry import (
    ApprovalPolicy,
    AuditEvent,
    Deployment,
    DeploymentStatus,
    LineageGraph,
    ModelVersion,
    RegisteredModel,
    RequestStatus,
    TransitionRequest,
    TransitionTarget,
)
from slipway.registry import validation as v
from slipway.registry.store.base import (
    SEARCH_MODEL_VERSIONS_DEFAULT,
    SEARCH_REGISTERED_MODELS_DEFAULT,
    AbstractRegistryStore,
)
from slipway.registry.store.rest import convert
from slipway.tracking.store.rest.convert import parse
from slipway.tracking.store.rest.http import HttpConfig, RestTransport
from slipway.utils.user import current_user

USER_HEADER = "X-Slipway-User"
MLFLOW_API = "api/2.0/mlflow"
SLIPWAY_API = "api/2.0/slipway"


class _RootTransport(RestTransport):
    """A transport whose endpoints are paths below the server root, so that one connection
    pool serves both the MLflow and the Slipway API."""

    def url_for(self, endpoint: str) -> str:
        return f"{self.base_url}/{endpoint.lstrip('/')}"


def _text(value: object) -> str:
    """An enum member's value, or the text given in its place (the server refuses what names no
    member, with the store's own message)."""
    return str(getattr(value, "value", value))


def _version(version: object) -> str:
    """A version number as sent; one that is no integer is refused here with the store's own
    message (an empty one would otherwise read as missing on the wire)."""
    v.parse_version(version)
    return str(version)


def _pairs(tags: Sequence[tuple[str, str]]) -> list[dict[str, str]] | None:
    return [{"key": k, "value": v} for k, v in tags] or None


class RestRegistryStore(AbstractRegistryStore):
    """Registered models, versions, approvals, audit, deployments and lineage kept by a server.

    Args:
        server_url: ``http(s)://host[:port][/prefix]`` of ``slipway server``.
        config: transport settings; from the environment (see
            :mod:`slipway.tracking.store.rest.http`) when omitted.
    """

    def __init__(self, server_url: str, config: HttpConfig | None = None) -> None:
        self.transport = _RootTransport(server_url, config)
        self.server_url = self.transport.base_url

    def __repr__(self) -> str:
        return f"RestRegistryStore({self.server_url!r})"

    def close(self) -> None:
        self.transport.close()

    # -- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        endpoint: str,
        fields: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
        idempotent: bool = True,
        api: str = MLFLOW_API,
    ) -> dict[str, Any]:
        user = quote(actor or current_user(), safe="")
        return self.transport.call(
            method,
            f"{api}/{endpoint}",
            fields,
            idempotent=idempotent,
            extra_headers={USER_HEADER: user},
        )

    def _slipway(
        self,
        method: str,
        endpoint: str,
        fields: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        return self._call(
            method, endpoint, fields, actor=actor, idempotent=idempotent, api=SLIPWAY_API
        )

    @staticmethod
    def _model(data: dict[str, Any]) -> RegisteredModel:
        return parse(lambda d: convert.registered_model(d["registered_model"]), data, "model")

    @staticmethod
    def _version(data: dict[str, Any]) -> ModelVersion:
        return parse(lambda d: convert.model_version(d["model_version"]), data, "model version")

    @staticmethod
    def _request(data: dict[str, Any]) -> TransitionRequest:
        return parse(lambda d: convert.transition_request(d["request"]), data, "request")

    @staticmethod
    def _deployment(data: dict[str, Any]) -> Deployment:
        return parse(lambda d: convert.deployment(d["deployment"]), data, "deployment")

    # -- registered models ------------------------------------------------------------------

    def create_registered_model(
        self,
        name: str,
        tags: Sequence[tuple[str, str]] = (),
        description: str | None = None,
        actor: str | None = None,
    ) -> RegisteredModel:
        body = {"name": name, "tags": _pairs(tags), "description": description}
        data = self._call("POST", "registered-models/create", body, actor=actor, idempotent=False)
        return self._model(data)

    def rename_registered_model(
        self, name: str, new_name: str, actor: str | None = None
    ) -> RegisteredModel:
        body = {"name": name, "new_name": new_name}
        data = self._call("POST", "registered-models/rename", body, actor=actor, idempotent=False)
        return self._model(data)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        body = {"name": name, "description": description}
        return self._model(self._call("PATCH", "registered-models/update", body))

    def delete_registered_model(self, name: str, actor: str | None = None) -> None:
        self._call(
            "DELETE", "registered-models/delete", {"name": name}, actor=actor, idempotent=False
        )

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self._model(self._call("GET", "registered-models/get", {"name": name}))

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_REGISTERED_MODELS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        fields = {
            "filter": filter_string or None,
            "max_results": max_results,
            "order_by": list(order_by or []),
            "page_token": page_token or None,
        }
        data = self._call("GET", "registered-models/search", fields)
        return parse(
            lambda d: PagedList(
                [convert.registered_model(m) for m in d.get("registered_models") or []],
                d.get("next_page_token") or None,
            ),
            data,
            "model search",
        )

    def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        body = {"name": name, "stages": list(stages or []) or None}
        data = self._call("POST", "registered-models/get-latest-versions", body)
        return parse(
            lambda d: [convert.model_version(v) for v in d.get("model_versions") or []],
            data,
            "latest versions",
        )

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        v.validate_tag(key, value)
        body = {"name": name, "key": key, "value": value}
        self._call("POST", "registered-models/set-tag", body)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        body = {"name": name, "key": key}
        self._call("DELETE", "registered-models/delete-tag", body, idempotent=False)

    def set_registered_model_alias(
        self, name: str, alias: str, version: str, actor: str | None = None
    ) -> None:
        v.validate_settable_alias(alias)
        body = {"name": name, "alias": alias, "version": _version(version)}
        self._call("POST", "registered-models/alias", body, actor=actor, idempotent=False)

    def delete_registered_model_alias(
        self, name: str, alias: str, actor: str | None = None
    ) -> None:
        body = {"name": name, "alias": v.validate_alias(alias)}
        self._call("DELETE", "registered-models/alias", body, actor=actor, idempotent=False)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        fields = {"name": name, "alias": v.validate_alias(alias)}
        data = self._call("GET", "registered-models/alias", fields)
        return self._version(data)

    # -- model versions ---------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        run_link: str | None = None,
        description: str | None = None,
        model_id: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        body = {
            "name": name,
            "source": source,
            "run_id": run_id,
            "tags": _pairs(tags),
            "run_link": run_link,
            "description": description,
            "model_id": model_id,
        }
        data = self._call("POST", "model-versions/create", body, actor=actor, idempotent=False)
        return self._version(data)

    def update_model_version(
        self, name: str, version: str, description: str | None
    ) -> ModelVersion:
        body = {"name": name, "version": _version(version), "description": description}
        return self._version(self._call("PATCH", "model-versions/update", body))

    def transition_model_version_stage(
        self,
        name: str,
        version: str,
        stage: str,
        archive_existing_versions: bool = False,
        actor: str | None = None,
    ) -> ModelVersion:
        body = {
            "name": name,
            "version": _version(version),
            "stage": stage,
            "archive_existing_versions": archive_existing_versions,
        }
        data = self._call(
            "POST", "model-versions/transition-stage", body, actor=actor, idempotent=False
        )
        return self._version(data)

    def delete_model_version(self, name: str, version: str, actor: str | None = None) -> None:
        body = {"name": name, "version": _version(version)}
        self._call("DELETE", "model-versions/delete", body, actor=actor, idempotent=False)

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        fields = {"name": name, "version": _version(version)}
        return self._version(self._call("GET", "model-versions/get", fields))

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        fields = {"name": name, "version": _version(version)}
        data = self._call("GET", "model-versions/get-download-uri", fields)
        return parse(lambda d: str(d["artifact_uri"]), data, "download URI")

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_MODEL_VERSIONS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        fields = {
            "filter": filter_string or None,
            "max_results": max_results,
            "order_by": list(order_by or []),
            "page_token": page_token or None,
        }
        data = self._call("GET", "model-versions/search", fields)
        return parse(
            lambda d: PagedList(
                [convert.model_version(v) for v in d.get("model_versions") or []],
                d.get("next_page_token") or None,
            ),
            data,
            "version search",
        )

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        v.validate_tag(key, value)
        body = {"name": name, "version": _version(version), "key": key, "value": value}
        self._call("POST", "model-versions/set-tag", body)

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        body = {"name": name, "version": _version(version), "key": key}
        self._call("DELETE", "model-versions/delete-tag", body, idempotent=False)

    # -- approvals --------------------------------------------------------------------------

    def set_approval_policy(
        self,
        name: str,
        target_kind: TransitionTarget,
        target: str,
        allow_self_approval: bool = False,
        actor: str | None = None,
    ) -> ApprovalPolicy:
        body = {
            "name": name,
            "target_kind": _text(target_kind),
            "target": target,
            "allow_self_approval": allow_self_approval,
        }
        data = self._slipway("POST", "registry/policies", body, actor=actor)
        return parse(lambda d: convert.policy(d["policy"]), data, "policy")

    def delete_approval_policy(
        self, name: str, target_kind: TransitionTarget, target: str, actor: str | None = None
    ) -> None:
        body = {"name": name, "target_kind": _text(target_kind), "target": target}
        self._slipway("DELETE", "registry/policies", body, actor=actor, idempotent=False)

    def list_approval_policies(self, name: str) -> list[ApprovalPolicy]:
        data = self._slipway("GET", "registry/policies", {"name": name})
        return parse(lambda d: [convert.policy(x) for x in d.get("policies") or []], data, "list")

    def request_transition(
        self,
        name: str,
        version: str,
        target_kind: TransitionTarget,
        target: str,
        comment: str | None = None,
        archive_existing_versions: bool = False,
        actor: str | None = None,
    ) -> TransitionRequest:
        body = {
            "name": name,
            "version": _version(version),
            "target_kind": _text(target_kind),
            "target": target,
            "comment": comment,
            "archive_existing_versions": archive_existing_versions,
        }
        data = self._slipway(
            "POST", "registry/requests/create", body, actor=actor, idempotent=False
        )
        return self._request(data)

    def decide_transition_request(
        self,
        request_id: str,
        approve: bool,
        comment: str | None = None,
        actor: str | None = None,
    ) -> TransitionRequest:
        endpoint = "registry/requests/approve" if approve else "registry/requests/reject"
        body = {"request_id": request_id, "comment": comment}
        return self._request(self._slipway("POST", endpoint, body, actor=actor, idempotent=False))

    def cancel_transition_request(
        self, request_id: str, actor: str | None = None
    ) -> TransitionRequest:
        body = {"request_id": request_id}
        return self._request(
            self._slipway("POST", "registry/requests/cancel", body, actor=actor, idempotent=False)
        )

    def get_transition_request(self, request_id: str) -> TransitionRequest:
        data = self._slipway("GET", "registry/requests/get", {"request_id": request_id})
        return self._request(data)

    def list_transition_requests(
        self,
        name: str | None = None,
        version: str | None = None,
        status: RequestStatus | None = None,
    ) -> list[TransitionRequest]:
        fields = {
            "name": name,
            "version": None if version is None else str(version),
            "status": None if status is None else _text(status),
        }
        data = self._slipway("GET", "registry/requests/list", fields)
        return parse(
            lambda d: [convert.transition_request(r) for r in d.get("requests") or []],
            data,
            "requests",
        )

    def list_audit_events(
        self, name: str | None = None, version: str | None = None, max_results: int = 1000
    ) -> list[AuditEvent]:
        fields = {
            "name": name,
            "version": None if version is None else str(version),
            "max_results": max_results,
        }
        data = self._slipway("GET", "registry/audit", fields)
        return parse(
            lambda d: [convert.audit_event(e) for e in d.get("events") or []], data, "audit log"
        )

    # -- deployments ------------------------------------------------------------------------

    def record_deployment(
        self,
        name: str,
        version: str,
        endpoint: str,
        details: dict[str, object] | None = None,
        actor: str | None = None,
    ) -> Deployment:
        body = {
            "name": name,
            "version": _version(version),
            "endpoint": endpoint,
            "details": details,
        }
        return self._deployment(
            self._slipway(
                "POST", "registry/deployments/create", body, actor=actor, idempotent=False
            )
        )

    def end_deployment(
        self, deployment_id: str, status: DeploymentStatus = DeploymentStatus.STOPPED
    ) -> Deployment:
        body = {"deployment_id": deployment_id, "status": _text(status)}
        return self._deployment(
            self._slipway("POST", "registry/deployments/end", body, idempotent=False)
        )

    def list_deployments(
        self, name: str | None = None, version: str | None = None, running_only: bool = False
    ) -> list[Deployment]:
        fields = {
            "name": name,
            "version": None if version is None else str(version),
            "running_only": running_only or None,
        }
        data = self._slipway("GET", "registry/deployments/list", fields)
        return parse(
            lambda d: [convert.deployment(x) for x in d.get("deployments") or []],
            data,
            "deployments",
        )

    # -- lineage ----------------------------------------------------------------------------

    def get_model_version_lineage(self, name: str, version: str) -> LineageGraph:
        data = self._slipway("GET", "lineage", {"name": name, "version": _version(version)})
        return parse(lambda d: convert.lineage(d["lineage"]), data, "lineage")

    def get_dataset_lineage(self, dataset_name: str, digest: str | None = None) -> LineageGraph:
        fields = {"dataset_name": dataset_name, "dataset_digest": digest}
        data = self._slipway("GET", "lineage", fields)
        return parse(lambda d: convert.lineage(d["lineage"]), data, "lineage")


__all__ = ["RestRegistryStore"]
