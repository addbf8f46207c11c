"""The model registry store interface, enforced with :class:`abc.ABC`.

MLflow's registry (registered models, versions, tags, aliases, legacy stages) plus Slipway's
approvals, audit log, deployments and lineage. ``actor`` arguments name who acts (recorded in
the audit log; compared with the requester when a policy forbids self-approval); None means
the current user of the process. This module imports neither SQLAlchemy nor any HTTP library.

Rules every backend keeps:

* version numbers count up per model and are never reused, even after deletes;
* ``latest`` and ``v<digits>`` are reserved alias names;
* setting an alias, or transitioning a stage, that an :class:`ApprovalPolicy` protects is
  ``PERMISSION_DENIED`` unless it comes from approving a request;
* a model version's ``source`` must not escape its run's artifact root (see
  :mod:`slipway.registry.sources`), whatever its tags say.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

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

SEARCH_REGISTERED_MODELS_DEFAULT = 100
SEARCH_REGISTERED_MODELS_MAX = 1000
SEARCH_MODEL_VERSIONS_DEFAULT = 200_000
SEARCH_MODEL_VERSIONS_MAX = 200_000


class AbstractRegistryStore(abc.ABC):
    """Registered models, model versions, approvals, audit, deployments and lineage."""

    # -- registered models ------------------------------------------------------------------

    @abc.abstractmethod
    def create_registered_model(
        self,
        name: str,
        tags: Sequence[tuple[str, str]] = (),
        description: str | None = None,
        actor: str | None = None,
    ) -> RegisteredModel:
        """RESOURCE_ALREADY_EXISTS if the name is taken."""

    @abc.abstractmethod
    def rename_registered_model(
        self, name: str, new_name: str, actor: str | None = None
    ) -> RegisteredModel:
        """Rename the model; its versions, aliases, tags, policies and requests follow."""

    @abc.abstractmethod
    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel: ...

    @abc.abstractmethod
    def delete_registered_model(self, name: str, actor: str | None = None) -> None:
        """Delete the model with its versions, tags and aliases (the audit log stays)."""

    @abc.abstractmethod
    def get_registered_model(self, name: str) -> RegisteredModel:
        """RESOURCE_DOES_NOT_EXIST if there is none."""

    @abc.abstractmethod
    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_REGISTERED_MODELS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        """MLflow's filter grammar: ``name`` with ``=``, ``!=``, ``LIKE``, ``ILIKE``;
        ``tags.<key>`` with the same. Order by ``name``, ``creation_timestamp``,
        ``last_updated_timestamp`` (``timestamp`` is an alias), ASC or DESC."""

    @abc.abstractmethod
    def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        """The newest version in each of ``stages`` (every stage when None or empty)."""

    @abc.abstractmethod
    def set_registered_model_tag(self, name: str, key: str, value: str) -> None: ...

    @abc.abstractmethod
    def delete_registered_model_tag(self, name: str, key: str) -> None: ...

    @abc.abstractmethod
    def set_registered_model_alias(
        self, name: str, alias: str, version: str, actor: str | None = None
    ) -> None:
        """Point ``alias`` at ``version`` (moving it if it exists). PERMISSION_DENIED when a
        policy protects the alias; INVALID_PARAMETER_VALUE for reserved or invalid names."""

    @abc.abstractmethod
    def delete_registered_model_alias(
        self, name: str, alias: str, actor: str | None = None
    ) -> None: ...

    @abc.abstractmethod
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion: ...

    # -- model versions ---------------------------------------------------------------------

    @abc.abstractmethod
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
        """A new READY version numbered one past the highest ever used for ``name``. The source
        is validated (see the module docstring)."""

    @abc.abstractmethod
    def update_model_version(
        self, name: str, version: str, description: str | None
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def transition_model_version_stage(
        self,
        name: str,
        version: str,
        stage: str,
        archive_existing_versions: bool = False,
        actor: str | None = None,
    ) -> ModelVersion:
        """Move the version to ``stage`` (case-insensitive); with ``archive_existing_versions``
        the other versions in that stage (Staging/Production only) go to Archived.
        PERMISSION_DENIED when a policy protects the stage."""

    @abc.abstractmethod
    def delete_model_version(self, name: str, version: str, actor: str | None = None) -> None:
        """Delete the version and the aliases that point at it."""

    @abc.abstractmethod
    def get_model_version(self, name: str, version: str) -> ModelVersion:
        """INVALID_PARAMETER_VALUE "Parameter 'version' must be an integer" for a non-number,
        RESOURCE_DOES_NOT_EXIST for an unknown model or version."""

    @abc.abstractmethod
    def get_model_version_download_uri(self, name: str, version: str) -> str: ...

    @abc.abstractmethod
    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_MODEL_VERSIONS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        """Filters on ``name``, ``version_number``, ``run_id`` (``=``, ``!=``, ``IN``),
        ``source_path``, ``tags.<key>``; order by ``name``, ``version_number``,
        ``creation_timestamp``, ``last_updated_timestamp``."""

    @abc.abstractmethod
    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None: ...

    @abc.abstractmethod
    def delete_model_version_tag(self, name: str, version: str, key: str) -> None: ...

    # -- approvals --------------------------------------------------------------------------

    @abc.abstractmethod
    def set_approval_policy(
        self,
        name: str,
        target_kind: TransitionTarget,
        target: str,
        allow_self_approval: bool = False,
        actor: str | None = None,
    ) -> ApprovalPolicy:
        """Require approval to move ``target`` of model ``name`` (replaces an existing policy
        for the same target)."""

    @abc.abstractmethod
    def delete_approval_policy(
        self, name: str, target_kind: TransitionTarget, target: str, actor: str | None = None
    ) -> None: ...

    @abc.abstractmethod
    def list_approval_policies(self, name: str) -> list[ApprovalPolicy]: ...

    @abc.abstractmethod
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
        """A PENDING request to move ``target`` to ``version``. Without a policy on the target
        the request is still recorded (and can be approved like any other)."""

    @abc.abstractmethod
    def decide_transition_request(
        self,
        request_id: str,
        approve: bool,
        comment: str | None = None,
        actor: str | None = None,
    ) -> TransitionRequest:
        """Approve (which moves the alias or stage, in the same transaction) or reject a PENDING
        request. RESOURCE_CONFLICT if it was already decided; PERMISSION_DENIED if the actor
        requested it and the policy forbids self-approval."""

    @abc.abstractmethod
    def cancel_transition_request(
        self, request_id: str, actor: str | None = None
    ) -> TransitionRequest:
        """The requester withdraws a PENDING request."""

    @abc.abstractmethod
    def get_transition_request(self, request_id: str) -> TransitionRequest: ...

    @abc.abstractmethod
    def list_transition_requests(
        self,
        name: str | None = None,
        version: str | None = None,
        status: RequestStatus | None = None,
    ) -> list[TransitionRequest]:
        """Newest first."""

    @abc.abstractmethod
    def list_audit_events(
        self, name: str | None = None, version: str | None = None, max_results: int = 1000
    ) -> list[AuditEvent]:
        """Oldest first: the newest ``max_results`` events (of model ``name``, of its
        ``version``), in the order they happened."""

    # -- deployments ------------------------------------------------------------------------

    @abc.abstractmethod
    def record_deployment(
        self,
        name: str,
        version: str,
        endpoint: str,
        details: dict[str, object] | None = None,
        actor: str | None = None,
    ) -> Deployment:
        """A RUNNING deployment of the version at ``endpoint``."""

    @abc.abstractmethod
    def end_deployment(
        self, deployment_id: str, status: DeploymentStatus = DeploymentStatus.STOPPED
    ) -> Deployment: ...

    @abc.abstractmethod
    def list_deployments(
        self, name: str | None = None, version: str | None = None, running_only: bool = False
    ) -> list[Deployment]: ...

    # -- lineage ----------------------------------------------------------------------------

    @abc.abstractmethod
    def get_model_version_lineage(self, name: str, version: str) -> LineageGraph:
        """version -> source run -> its input datasets -> the pipeline run and step of the run
        (from its tags) -> deployments of the version."""

    @abc.abstractmethod
    def get_dataset_lineage(self, dataset_name: str, digest: str | None = None) -> LineageGraph:
        """The reverse: runs that used the dataset and the model versions that came from them."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections (nothing to do by default)."""
