"""``RegistryClient``: the model registry for one tracking URI, in the words a user thinks in.

It wraps an :class:`~slipway.registry.store.base.AbstractRegistryStore` (SQL in embedded mode,
REST against ``slipway server``) and adds what belongs on the client side: registering a
``runs:/`` URI, addressing a version by alias or stage, and finding the pending request that an
approval is about.
"""

from __future__ import annotations

import contextlib
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
    TransitionTarget,
    canonical_stage,
)
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from slipway.registry.store import get_registry_store
from slipway.registry.store.base import (
    SEARCH_MODEL_VERSIONS_DEFAULT,
    SEARCH_REGISTERED_MODELS_DEFAULT,
    AbstractRegistryStore,
)
from slipway.registry.uris import parse_models_uri, parse_runs_uri, resolve_version, version_ref
from slipway.tracking import uri as uris


def _target(alias: str | None, stage: str | None) -> tuple[TransitionTarget, str]:
    if (alias is None) == (stage is None):
        raise InvalidParameterValue("Name exactly one of alias= or stage=")
    if alias is not None:
        return TransitionTarget.ALIAS, alias
    assert stage is not None
    canonical = canonical_stage(stage)
    if canonical is None:
        raise InvalidParameterValue(
            f"Invalid stage {stage!r}: use one of None, Staging, Production, Archived"
        )
    return TransitionTarget.STAGE, canonical


class RegistryClient:
    """Registered models, versions, aliases, stages, approvals, deployments and lineage.

    Args:
        tracking_uri: where the registry lives (the tracking URI in effect when omitted): a
            folder, a database URI, or the ``http(s)://`` address of ``slipway server``.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri or uris.get_tracking_uri()
        self.store: AbstractRegistryStore = get_registry_store(self.tracking_uri)

    # -- registered models ------------------------------------------------------------------

    def create_registered_model(
        self, name: str, tags: dict[str, str] | None = None, description: str | None = None
    ) -> RegisteredModel:
        return self.store.create_registered_model(name, _pairs(tags), description)

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self.store.get_registered_model(name)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        return self.store.rename_registered_model(name, new_name)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        return self.store.update_registered_model(name, description)

    def delete_registered_model(self, name: str) -> None:
        self.store.delete_registered_model(name)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_REGISTERED_MODELS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        return self.store.search_registered_models(filter_string, max_results, order_by, page_token)

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self.store.set_registered_model_tag(name, key, str(value))

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.store.delete_registered_model_tag(name, key)

    # -- versions ---------------------------------------------------------------------------

    def register_model(
        self,
        model_uri: str,
        name: str,
        tags: dict[str, str] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register the model at ``model_uri`` (``runs:/<run>/<path>``, an artifact URI, or
        ``models:/...`` to copy a version) as a new version of ``name``, creating the
        registered model when it does not exist yet."""
        source, run_id = self._source_of(model_uri)
        with contextlib.suppress(ResourceAlreadyExists):  # usual: the model exists already
            self.store.create_registered_model(name)
        return self.store.create_model_version(
            name, source, run_id=run_id, tags=_pairs(tags), description=description
        )

    def _source_of(self, model_uri: str) -> tuple[str, str | None]:
        model_uri = model_uri.strip()
        if model_uri.startswith("runs:"):
            from slipway.artifacts.paths import join_uri, safe_relative_path
            from slipway.tracking.uri import get_store

            run_id, path = parse_runs_uri(model_uri)
            run = get_store(self.tracking_uri).get_run(run_id)
            rel = safe_relative_path(path)
            root = run.info.artifact_uri
            return (join_uri(root, rel) if rel else root), run.info.run_id
        if model_uri.startswith("models:"):
            name, kind, ref = parse_models_uri(model_uri)
            if kind == "model_id":
                return model_uri, None  # the store resolves a logged model itself
            resolved = resolve_version(self.store, name, kind, ref)
            return f"models:/{resolved.name}/{resolved.version}", resolved.run_id
        return model_uri, None

    def get_model_version(
        self, name: str, version: str | int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """A version by number, by ``latest`` or a stage name, or by alias."""
        if alias is not None:
            return self.store.get_model_version_by_alias(name, alias)
        if version is None:
            raise InvalidParameterValue("Name a version or an alias")
        text = str(version)
        if text.isdigit() or not text.strip():
            return self.store.get_model_version(name, text)  # the store's messages for bad ones
        return resolve_version(self.store, name, *version_ref(text))

    def get_model_version_by_uri(self, model_uri: str) -> ModelVersion:
        """The version a ``models:/`` URI names now."""
        return resolve_version(self.store, *parse_models_uri(model_uri))

    def update_model_version(
        self, name: str, version: str | int, description: str | None
    ) -> ModelVersion:
        return self.store.update_model_version(name, str(version), description)

    def delete_model_version(self, name: str, version: str | int) -> None:
        self.store.delete_model_version(name, str(version))

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_MODEL_VERSIONS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        return self.store.search_model_versions(filter_string, max_results, order_by, page_token)

    def set_model_version_tag(self, name: str, version: str | int, key: str, value: str) -> None:
        self.store.set_model_version_tag(name, str(version), key, str(value))

    def delete_model_version_tag(self, name: str, version: str | int, key: str) -> None:
        self.store.delete_model_version_tag(name, str(version), key)

    def get_download_uri(self, name: str, version: str | int) -> str:
        return self.store.get_model_version_download_uri(name, str(version))

    # -- aliases and stages -----------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` at ``version``; refused when a policy protects the alias (ask with
        :meth:`request_transition` instead)."""
        self.store.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        self.store.delete_registered_model_alias(name, alias)

    def transition_stage(
        self,
        name: str,
        version: str | int,
        stage: str,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        return self.store.transition_model_version_stage(
            name, str(version), stage, archive_existing_versions
        )

    def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        return self.store.get_latest_versions(name, stages)

    # -- approvals --------------------------------------------------------------------------

    def require_approval(
        self,
        name: str,
        alias: str | None = None,
        stage: str | None = None,
        allow_self_approval: bool = False,
    ) -> ApprovalPolicy:
        """From now on, moving ``alias`` (or into ``stage``) of ``name`` needs an approved
        request."""
        kind, target = _target(alias, stage)
        return self.store.set_approval_policy(name, kind, target, allow_self_approval)

    def remove_approval_requirement(
        self, name: str, alias: str | None = None, stage: str | None = None
    ) -> None:
        kind, target = _target(alias, stage)
        self.store.delete_approval_policy(name, kind, target)

    def approval_policies(self, name: str) -> list[ApprovalPolicy]:
        return self.store.list_approval_policies(name)

    def request_transition(
        self,
        name: str,
        version: str | int,
        alias: str | None = None,
        stage: str | None = None,
        comment: str | None = None,
        archive_existing_versions: bool = False,
    ) -> TransitionRequest:
        """Ask for ``alias`` to move to ``version`` (or for ``version`` to enter ``stage``)."""
        kind, target = _target(alias, stage)
        return self.store.request_transition(
            name, str(version), kind, target, comment, archive_existing_versions
        )

    def find_request(
        self,
        name: str,
        version: str | int,
        alias: str | None = None,
        stage: str | None = None,
    ) -> TransitionRequest:
        """The pending request to move ``alias`` / ``stage`` of ``name`` to ``version``."""
        kind, target = _target(alias, stage)
        pending = [
            r
            for r in self.store.list_transition_requests(name, str(version), RequestStatus.PENDING)
            if r.target_kind == kind and r.target == target
        ]
        if not pending:
            raise ResourceDoesNotExist(
                f"No pending request to move {kind} {target!r} of model {name!r} to version "
                f"{version}"
            )
        return pending[0]

    def approve(
        self,
        request_id: str | None = None,
        *,
        name: str | None = None,
        version: str | int | None = None,
        alias: str | None = None,
        stage: str | None = None,
        comment: str | None = None,
    ) -> TransitionRequest:
        """Approve a request (by id, or by model, version and target): the alias or stage
        moves."""
        rid = request_id or self._request_id(name, version, alias, stage)
        return self.store.decide_transition_request(rid, True, comment)

    def reject(
        self,
        request_id: str | None = None,
        *,
        name: str | None = None,
        version: str | int | None = None,
        alias: str | None = None,
        stage: str | None = None,
        comment: str | None = None,
    ) -> TransitionRequest:
        rid = request_id or self._request_id(name, version, alias, stage)
        return self.store.decide_transition_request(rid, False, comment)

    def cancel_request(self, request_id: str) -> TransitionRequest:
        return self.store.cancel_transition_request(request_id)

    def _request_id(
        self, name: str | None, version: str | int | None, alias: str | None, stage: str | None
    ) -> str:
        if name is None or version is None:
            raise InvalidParameterValue("Name a request id, or a model, a version and a target")
        return self.find_request(name, version, alias, stage).request_id

    def list_requests(
        self,
        name: str | None = None,
        version: str | int | None = None,
        status: RequestStatus | str | None = None,
    ) -> list[TransitionRequest]:
        wanted = RequestStatus(str(status).upper()) if status is not None else None
        return self.store.list_transition_requests(
            name, str(version) if version is not None else None, wanted
        )

    def audit_log(
        self, name: str | None = None, version: str | int | None = None, max_results: int = 1000
    ) -> list[AuditEvent]:
        return self.store.list_audit_events(
            name, str(version) if version is not None else None, max_results
        )

    # -- deployments and lineage ------------------------------------------------------------

    def deployments(
        self, name: str | None = None, version: str | int | None = None, running_only: bool = False
    ) -> list[Deployment]:
        return self.store.list_deployments(
            name, str(version) if version is not None else None, running_only
        )

    def lineage(
        self,
        model_uri: str | None = None,
        *,
        dataset: str | None = None,
        digest: str | None = None,
    ) -> LineageGraph:
        """The lineage of a model version (``models:/name/3``, ``models:/name@alias``), or,
        with ``dataset=``, the runs and versions that came from a dataset."""
        if (model_uri is None) == (dataset is None):
            raise InvalidParameterValue("Give a models:/ URI or dataset=, not both")
        if dataset is not None:
            return self.store.get_dataset_lineage(dataset, digest)
        assert model_uri is not None
        mv = self.get_model_version_by_uri(model_uri)
        return self.store.get_model_version_lineage(mv.name, mv.version)


def _pairs(tags: dict[str, str] | None) -> list[tuple[str, str]]:
    return [(k, str(val)) for k, val in (tags or {}).items()]
