"""Approvals: pending transition requests of every model with Approve and Reject, the decided
ones below, and the registry's audit trail.

``GET /approvals?model=<name>&version=<v>`` narrows everything to one model (and version).
``POST /approvals/<request_id>/decide`` with ``decision=approve|reject`` and an optional
``comment`` decides a request as the request's user
(:func:`~slipway.server.actor.request_actor`); approving moves the alias or stage in the same
transaction (the store does it). The store's refusals (self-approval where the policy forbids
it, a request decided meanwhile) are shown next to the list.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.entities.registry import AuditEvent, RequestStatus, TransitionRequest
from slipway.exceptions import InvalidParameterValue, SlipwayError
from slipway.registry.store.base import AbstractRegistryStore
from slipway.server.actor import request_actor
from slipway.server.context import ServerContext
from slipway.ui.actions import error_status, post_action, safe_back
from slipway.ui.lineage_view import version_href
from slipway.ui.render import render

PENDING_SHOWN = 100
"""Pending requests drawn at once (each has its forms); narrowing to a model shows the rest."""
DECIDED_SHOWN = 50
AUDIT_EVENTS = 100


@dataclass
class ApprovalsPage:
    pending: list[TransitionRequest]
    decided: list[TransitionRequest]
    audit: list[AuditEvent]
    pending_total: int = 0


def load(store: AbstractRegistryStore, model: str | None, version: str | None) -> ApprovalsPage:
    if version is not None and model is None:
        raise InvalidParameterValue("Name the model of the version")
    every = store.list_transition_requests(model, version, None)
    pending = [r for r in every if r.status == RequestStatus.PENDING]
    decided = [r for r in every if r.status != RequestStatus.PENDING][:DECIDED_SHOWN]
    audit = list(reversed(store.list_audit_events(model, version, AUDIT_EVENTS)))
    return ApprovalsPage(pending[:PENDING_SHOWN], decided, audit, len(pending))


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.registry_store

    async def page(request: Request, error: str | None = None, status: int = 200) -> Response:
        model = request.query_params.get("model", "").strip() or None
        version = request.query_params.get("version", "").strip() or None
        loaded = ApprovalsPage([], [], [])
        try:
            loaded = await run_in_threadpool(load, store, model, version)
        except SlipwayError as exc:
            error, status = exc.message, error_status(exc)
        return render(
            request,
            "approvals.html",
            status=status,
            section="approvals",
            page=loaded,
            model=model or "",
            version=version or "",
            error=error,
            version_href=version_href,
        )

    async def page_get(request: Request) -> Response:
        return await page(request)

    async def decide(request: Request) -> Response:
        request_id = request.path_params["request_id"]

        def work(form: dict[str, str]) -> TransitionRequest:
            decision = form.get("decision", "")
            if decision not in ("approve", "reject"):
                raise InvalidParameterValue("Choose Approve or Reject")
            comment = form.get("comment", "").strip() or None
            return store.decide_transition_request(
                request_id, decision == "approve", comment, request_actor(request)
            )

        async def again(message: str, status: int) -> Response:
            return await page(request, message, status)

        return await post_action(
            request, work, lambda form, _done: safe_back(form.get("back"), "/approvals"), again
        )

    return [
        Route("/approvals", page_get, methods=["GET"]),
        Route("/approvals/{request_id}/decide", decide, methods=["POST"]),
    ]


__all__ = ["load", "routes"]
