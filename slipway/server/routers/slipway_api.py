"""Slipway's own registry resources: approvals, the audit log, deployments and lineage.

Mounted under ``/api/2.0/slipway``, in the style of MLflow's API: ``GET`` fields come from the
query string, other methods send a JSON object (``Content-Type: application/json``); unknown
fields, missing required fields and wrong types are 400 ``INVALID_PARAMETER_VALUE``; errors
are ``{"error_code", "message"}`` with MLflow's codes.

Fields marked ``*`` are required; the answer follows the arrow.

Approval policies
    ``POST /registry/policies`` name*, target_kind*, target*, allow_self_approval
    -> ``{"policy"}``; ``GET /registry/policies`` name* -> ``{"policies"}``;
    ``DELETE /registry/policies`` name*, target_kind*, target* -> ``{}``.
Transition requests
    ``POST /registry/requests/create`` name*, version*, target_kind*, target*, comment,
    archive_existing_versions -> ``{"request"}``; ``POST /registry/requests/approve`` and
    ``/registry/requests/reject`` request_id*, comment -> ``{"request"}``;
    ``POST /registry/requests/cancel`` request_id* -> ``{"request"}``;
    ``GET /registry/requests/get`` request_id* -> ``{"request"}``;
    ``GET /registry/requests/list`` name, version, status -> ``{"requests"}`` (newest first).
Audit log
    ``GET /registry/audit`` name, version, max_results (default 1000) -> ``{"events"}``
    (oldest first).
Deployments
    ``POST /registry/deployments/create`` name*, version*, endpoint*, details (an object)
    -> ``{"deployment"}``; ``POST /registry/deployments/end`` deployment_id*, status
    (``STOPPED``, the default, or ``FAILED``) -> ``{"deployment"}``;
    ``GET /registry/deployments/list`` name, version, running_only -> ``{"deployments"}``.
Lineage
    ``GET /lineage`` name + version, name + alias, uri, or dataset_name (+ dataset_digest)
    -> ``{"lineage": {"root", "nodes", "edges"}}``.

``target_kind`` is ``alias`` or ``stage``; a request's ``status`` is ``PENDING``, ``APPROVED``,
``REJECTED`` or ``CANCELLED``. Lineage takes one way of naming its root: a model version
(``name`` with ``version`` or ``alias``, or ``uri`` as ``models:/name/3``,
``models:/name@alias``, ``models:/name/latest`` or ``models:/name/<stage>``), or a dataset
(``dataset_name``, optionally ``dataset_digest``) for the reverse graph. The entities' JSON is
described in :mod:`slipway.server.registry_json`. Every change names its actor
(:func:`~slipway.server.actor.request_actor`): the audit log records it, and approving one's own
request is refused unless the policy allows it.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.entities.registry import (
    DeploymentStatus,
    LineageGraph,
    RequestStatus,
    TransitionTarget,
)
from slipway.exceptions import InvalidParameterValue
from slipway.registry import uris
from slipway.registry.store.base import AbstractRegistryStore
from slipway.server import protocol as p
from slipway.server import registry_json as j
from slipway.server.actor import request_actor
from slipway.server.context import ServerContext
from slipway.server.routers.registry import version_of

PREFIX = "/api/2.0/slipway"

SET_POLICY = frozenset({"name", "target_kind", "target", "allow_self_approval"})
LIST_POLICIES = frozenset({"name"})
DELETE_POLICY = frozenset({"name", "target_kind", "target"})
CREATE_REQUEST = frozenset(
    {"name", "version", "target_kind", "target", "comment", "archive_existing_versions"}
)
DECIDE = frozenset({"request_id", "comment"})
BY_REQUEST = frozenset({"request_id"})
LIST_REQUESTS = frozenset({"name", "version", "status"})
AUDIT = frozenset({"name", "version", "max_results"})
CREATE_DEPLOYMENT = frozenset({"name", "version", "endpoint", "details"})
END_DEPLOYMENT = frozenset({"deployment_id", "status"})
LIST_DEPLOYMENTS = frozenset({"name", "version", "running_only"})
LINEAGE = frozenset({"name", "version", "alias", "uri", "dataset_name", "dataset_digest"})

AUDIT_DEFAULT = 1000
AUDIT_MAX = 100_000

E = TypeVar("E", bound=enum.Enum)


def enum_of(fields: p.Fields, name: str, kind: type[E], required: bool = False) -> E | None:
    """A field naming a member of ``kind`` by value, in any case. Text that names no member is
    handed on as it is: the store refuses it, with the same message in every backend."""
    raw = fields.string(name, required=required)
    if not raw:
        return None
    for member in kind:
        if str(member.value).lower() == raw.lower():
            return member
    return cast(E, raw)


def target_of(fields: p.Fields) -> tuple[TransitionTarget, str]:
    kind = enum_of(fields, "target_kind", TransitionTarget, required=True)
    assert kind is not None
    return kind, fields.string("target", required=True)


def _details(fields: p.Fields) -> dict[str, Any] | None:
    value = fields.value("details")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise p.invalid("details", value, "an object")
    return value


def _optional_version(fields: p.Fields) -> str | None:
    return version_of(fields) if fields.has("version") else None


# -- lineage roots --------------------------------------------------------------------------


def resolve_version(
    store: AbstractRegistryStore, name: str, version: str | None, alias: str | None
) -> tuple[str, str]:
    """``(name, version number)`` for a version named by number, alias, ``latest`` or stage."""
    if alias is not None:
        return name, store.get_model_version_by_alias(name, alias).version
    assert version is not None
    if version.isdigit():
        return name, version
    return name, uris.resolve_version(store, name, *uris.version_ref(version)).version


def lineage_of(store: AbstractRegistryStore, fields: p.Fields) -> LineageGraph:
    """The lineage graph of the root the request names (see the module notes)."""
    uri = fields.string("uri")
    name = fields.string("name")
    dataset = fields.string("dataset_name")
    if sum((bool(uri), bool(name), bool(dataset))) != 1:
        raise InvalidParameterValue(
            "Name the lineage root in exactly one way: name with version or alias, uri "
            "(models:/<name>/<version> or models:/<name>@<alias>), or dataset_name"
        )
    if dataset:
        return store.get_dataset_lineage(dataset, fields.string("dataset_digest") or None)
    if uri:
        found = uris.resolve_version(store, *uris.parse_models_uri(uri))
        return store.get_model_version_lineage(found.name, found.version)
    version, alias = _optional_version(fields), fields.string("alias") or None
    if (version is None) == (alias is None):
        raise InvalidParameterValue("With 'name', give exactly one of 'version' or 'alias'")
    name, number = resolve_version(store, name, version, alias)
    return store.get_model_version_lineage(name, number)


# -- routes ---------------------------------------------------------------------------------


def policy_routes(store: AbstractRegistryStore) -> list[BaseRoute]:
    async def set_policy(request: Request) -> Response:
        f = await p.Fields.read(request, SET_POLICY)
        name = f.string("name", required=True)
        kind, target = target_of(f)
        allow_self = f.boolean("allow_self_approval")
        actor = request_actor(request)
        policy = await run_in_threadpool(
            store.set_approval_policy, name, kind, target, allow_self, actor
        )
        return p.json_response({"policy": j.policy_json(policy)})

    async def list_policies(request: Request) -> Response:
        f = await p.Fields.read(request, LIST_POLICIES)
        policies = await run_in_threadpool(
            store.list_approval_policies, f.string("name", required=True)
        )
        return p.json_response({"policies": [j.policy_json(x) for x in policies]})

    async def delete_policy(request: Request) -> Response:
        f = await p.Fields.read(request, DELETE_POLICY)
        name = f.string("name", required=True)
        kind, target = target_of(f)
        actor = request_actor(request)
        await run_in_threadpool(store.delete_approval_policy, name, kind, target, actor)
        return p.empty_response()

    return [
        Route("/registry/policies", set_policy, methods=["POST"]),
        Route("/registry/policies", list_policies, methods=["GET"]),
        Route("/registry/policies", delete_policy, methods=["DELETE"]),
    ]


def request_routes(store: AbstractRegistryStore) -> list[BaseRoute]:
    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, CREATE_REQUEST)
        name = f.string("name", required=True)
        version = version_of(f)
        kind, target = target_of(f)
        created = await run_in_threadpool(
            store.request_transition,
            name,
            version,
            kind,
            target,
            f.string("comment"),
            f.boolean("archive_existing_versions"),
            request_actor(request),
        )
        return p.json_response({"request": j.request_json(created)})

    def decide(approve: bool) -> Any:
        async def handler(request: Request) -> Response:
            f = await p.Fields.read(request, DECIDE)
            request_id = f.string("request_id", required=True)
            comment = f.string("comment")
            actor = request_actor(request)
            decided = await run_in_threadpool(
                store.decide_transition_request, request_id, approve, comment, actor
            )
            return p.json_response({"request": j.request_json(decided)})

        return handler

    async def cancel(request: Request) -> Response:
        f = await p.Fields.read(request, BY_REQUEST)
        request_id = f.string("request_id", required=True)
        actor = request_actor(request)
        cancelled = await run_in_threadpool(store.cancel_transition_request, request_id, actor)
        return p.json_response({"request": j.request_json(cancelled)})

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, BY_REQUEST)
        found = await run_in_threadpool(
            store.get_transition_request, f.string("request_id", required=True)
        )
        return p.json_response({"request": j.request_json(found)})

    async def list_requests(request: Request) -> Response:
        f = await p.Fields.read(request, LIST_REQUESTS)
        found = await run_in_threadpool(
            store.list_transition_requests,
            f.string("name") or None,
            _optional_version(f),
            enum_of(f, "status", RequestStatus),
        )
        return p.json_response({"requests": [j.request_json(r) for r in found]})

    return [
        Route("/registry/requests/create", create, methods=["POST"]),
        Route("/registry/requests/approve", decide(True), methods=["POST"]),
        Route("/registry/requests/reject", decide(False), methods=["POST"]),
        Route("/registry/requests/cancel", cancel, methods=["POST"]),
        Route("/registry/requests/get", get, methods=["GET"]),
        Route("/registry/requests/list", list_requests, methods=["GET"]),
    ]


def audit_and_deployment_routes(store: AbstractRegistryStore) -> list[BaseRoute]:
    async def audit(request: Request) -> Response:
        f = await p.Fields.read(request, AUDIT)
        max_results: int = f.integer("max_results", default=AUDIT_DEFAULT)
        if not 1 <= max_results <= AUDIT_MAX:
            raise p.invalid("max_results", max_results, f"between 1 and {AUDIT_MAX}")
        events = await run_in_threadpool(
            store.list_audit_events, f.string("name") or None, _optional_version(f), max_results
        )
        return p.json_response({"events": [j.audit_event_json(e) for e in events]})

    async def create_deployment(request: Request) -> Response:
        f = await p.Fields.read(request, CREATE_DEPLOYMENT)
        name = f.string("name", required=True)
        version = version_of(f)
        endpoint = f.string("endpoint", required=True)
        deployment = await run_in_threadpool(
            store.record_deployment, name, version, endpoint, _details(f), request_actor(request)
        )
        return p.json_response({"deployment": j.deployment_json(deployment)})

    async def end_deployment(request: Request) -> Response:
        f = await p.Fields.read(request, END_DEPLOYMENT)
        deployment_id = f.string("deployment_id", required=True)
        status = enum_of(f, "status", DeploymentStatus) or DeploymentStatus.STOPPED
        ended = await run_in_threadpool(store.end_deployment, deployment_id, status)
        return p.json_response({"deployment": j.deployment_json(ended)})

    async def list_deployments(request: Request) -> Response:
        f = await p.Fields.read(request, LIST_DEPLOYMENTS)
        found = await run_in_threadpool(
            store.list_deployments,
            f.string("name") or None,
            _optional_version(f),
            f.boolean("running_only"),
        )
        return p.json_response({"deployments": [j.deployment_json(d) for d in found]})

    return [
        Route("/registry/audit", audit, methods=["GET"]),
        Route("/registry/deployments/create", create_deployment, methods=["POST"]),
        Route("/registry/deployments/end", end_deployment, methods=["POST"]),
        Route("/registry/deployments/list", list_deployments, methods=["GET"]),
    ]


def lineage_routes(store: AbstractRegistryStore) -> list[BaseRoute]:
    async def lineage(request: Request) -> Response:
        f = await p.Fields.read(request, LINEAGE)
        found = await run_in_threadpool(lineage_of, store, f)
        return p.json_response({"lineage": j.lineage_json(found)})

    return [Route("/lineage", lineage, methods=["GET"])]


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Every route of this module, to mount under :data:`PREFIX`."""
    store = ctx.registry_store
    return [
        *policy_routes(store),
        *request_routes(store),
        *audit_and_deployment_routes(store),
        *lineage_routes(store),
    ]
