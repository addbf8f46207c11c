"""Registered models: the list, one model with its versions, and one version with its lineage.

``GET /models?q=<text>&page_token=<token>`` lists models whose name contains the text (a page
at a time); ``GET /models/<name>?page_token=`` shows its versions (newest first), tags,
aliases, approval policies, pending requests and audit trail; ``GET
/models/<name>/versions/<v>`` shows a version, its lineage graph (drawn on the server from the
registry's lineage) and its requests and audit trail. ``POST
/models/<name>/versions/<v>/request`` asks for an alias or stage to move to the version (the
request then waits on ``/approvals``); the actor is the request's user
(:func:`~slipway.server.actor.request_actor`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.entities.registry import (
    ApprovalPolicy,
    AuditEvent,
    LineageGraph,
    ModelVersion,
    RegisteredModel,
    RequestStatus,
    TransitionRequest,
    TransitionTarget,
)
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist, SlipwayError
from slipway.registry.store.base import AbstractRegistryStore
from slipway.server.actor import request_actor
from slipway.server.context import ServerContext
from slipway.ui import dag
from slipway.ui.actions import error_status, post_action
from slipway.ui.lineage_view import lineage_nodes, version_href
from slipway.ui.render import error_page, render

MODELS_PAGE = 50
VERSIONS_PAGE = 100
AUDIT_EVENTS = 100


def quoted(value: str) -> str:
    """``value`` as a string literal of the registry's search grammar."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def name_filter(text: str) -> str | None:
    """Names containing ``text`` (case-insensitive); None for no filter."""
    text = text.strip()
    return f"name ILIKE {quoted('%' + text + '%')}" if text else None


def model_href(name: str) -> str:
    return f"/models/{quote(name, safe='')}"


@dataclass
class ModelPage:
    model: RegisteredModel
    versions: list[ModelVersion]
    next_token: str | None
    pending: list[TransitionRequest]
    policies: list[ApprovalPolicy]
    audit: list[AuditEvent]


@dataclass
class VersionPage:
    version: ModelVersion
    lineage: LineageGraph | None
    lineage_error: str | None
    requests: list[TransitionRequest]
    policies: list[ApprovalPolicy]
    audit: list[AuditEvent]
    aliases: dict[str, str] = field(default_factory=dict)


def load_model(store: AbstractRegistryStore, name: str, page_token: str | None) -> ModelPage:
    model = store.get_registered_model(name)
    versions = store.search_model_versions(
        f"name = {quoted(model.name)}", VERSIONS_PAGE, ["version_number DESC"], page_token
    )
    return ModelPage(
        model,
        list(versions),
        versions.token,
        store.list_transition_requests(model.name, None, RequestStatus.PENDING),
        store.list_approval_policies(model.name),
        list(reversed(store.list_audit_events(model.name, None, AUDIT_EVENTS))),
    )


def load_version(store: AbstractRegistryStore, name: str, version: str) -> VersionPage:
    mv = store.get_model_version(name, version)
    lineage: LineageGraph | None = None
    problem: str | None = None
    try:
        lineage = store.get_model_version_lineage(mv.name, mv.version)
    except SlipwayError as exc:  # the version page is still worth showing without it
        problem = exc.message
    model = store.get_registered_model(mv.name)
    return VersionPage(
        mv,
        lineage,
        problem,
        store.list_transition_requests(mv.name, mv.version, None),
        store.list_approval_policies(mv.name),
        list(reversed(store.list_audit_events(mv.name, mv.version, AUDIT_EVENTS))),
        {a.alias: a.version for a in model.aliases},
    )


def not_found(request: Request, exc: SlipwayError) -> Response:
    if isinstance(exc, ResourceDoesNotExist | InvalidParameterValue):
        return error_page(request, 404, "Not found", exc.message)
    return error_page(request, error_status(exc), "Cannot show this page", exc.message)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.registry_store

    async def models_list(request: Request) -> Response:
        q = request.query_params.get("q", "")
        token = request.query_params.get("page_token") or None
        found: list[RegisteredModel] = []
        next_token: str | None = None
        error: str | None = None
        status = 200
        try:
            page = await run_in_threadpool(
                store.search_registered_models, name_filter(q), MODELS_PAGE, ["name ASC"], token
            )
            found, next_token = list(page), page.token
        except SlipwayError as exc:
            error, status = exc.message, error_status(exc)
        return render(
            request,
            "models.html",
            status=status,
            section="models",
            models=found,
            q=q,
            next_token=next_token,
            paged=token is not None,
            error=error,
            model_href=model_href,
            version_href=version_href,
        )

    async def model_page(request: Request) -> Response:
        name = request.path_params["name"]
        token = request.query_params.get("page_token") or None
        try:
            loaded = await run_in_threadpool(load_model, store, name, token)
        except SlipwayError as exc:
            return not_found(request, exc)
        return render(
            request,
            "models_model.html",
            section="models",
            page=loaded,
            paged=token is not None,
            model_href=model_href,
            version_href=version_href,
        )

    async def version_page(
        request: Request, error: str | None = None, status: int = 200
    ) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]
        try:
            loaded = await run_in_threadpool(load_version, store, name, version)
        except SlipwayError as exc:
            return not_found(request, exc)
        layout = None
        if loaded.lineage is not None:
            layout = dag.layout(*lineage_nodes(loaded.lineage))
        return render(
            request,
            "models_version.html",
            status=status,
            section="models",
            page=loaded,
            mv=loaded.version,
            layout=layout,
            error=error,
            model_href=model_href,
            version_href=version_href,
        )

    async def version_get(request: Request) -> Response:
        return await version_page(request)

    async def request_move(request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]

        def work(form: dict[str, str]) -> TransitionRequest:
            kind_text = form.get("target_kind", "alias").strip().lower()
            if kind_text not in ("alias", "stage"):
                raise InvalidParameterValue("Choose to move an alias or a stage")
            return store.request_transition(
                name,
                version,
                TransitionTarget(kind_text),
                form.get("target", "").strip(),
                form.get("comment", "").strip() or None,
                form.get("archive_existing_versions") == "on",
                request_actor(request),
            )

        async def again(message: str, status: int) -> Response:
            return await version_page(request, message, status)

        return await post_action(request, work, version_href(name, version), again)

    return [
        Route("/models", models_list, methods=["GET"]),
        Route("/models/{name}", model_page, methods=["GET"]),
        Route("/models/{name}/versions/{version}", version_get, methods=["GET"]),
        Route("/models/{name}/versions/{version}/request", request_move, methods=["POST"]),
    ]


__all__ = ["load_model", "load_version", "model_href", "name_filter", "quoted", "routes"]
