"""Experiments: the list (search by name, show deleted), create, rename, delete, restore.

``GET /experiments?q=<text>&view=active|deleted|all`` lists; the forms post to
``/experiments/create``, ``/experiments/<id>/rename``, ``/experiments/<id>/delete`` and
``/experiments/<id>/restore`` and redirect back (POST/redirect/GET), or show the list again with
the error next to the form.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from slipway.entities.enums import ViewType
from slipway.exceptions import SlipwayError
from slipway.server.context import ServerContext
from slipway.ui.render import CrossSiteForm, error_page, read_form, render

VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}
MAX_EXPERIMENTS = 1000


def _name_filter(text: str) -> str | None:
    """A search grammar filter matching names that contain ``text`` (quotes escaped)."""
    text = text.strip()
    if not text:
        return None
    escaped = text.replace("\\\\", "\\\\\\\\").replace("'", "\\\\'")
    return f"name ILIKE '%{escaped}%'"


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    async def listing(request: Request, error: str | None = None, status: int = 200) -> Response:
        q = request.query_params.get("q", "")
        view = request.query_params.get("view", "active")
        found: list[Any] = []
        try:
            found = await run_in_threadpool(
                store.search_experiments,
                VIEWS.get(view, ViewType.ACTIVE_ONLY),
                MAX_EXPERIMENTS,
                _name_filter(q),
                ["name ASC"],
            )
        except SlipwayError as exc:
            error, status = exc.message, 400
        return render(
            request,
            "experiments.html",
            status=status,
            section="experiments",
            experiments=found,
            q=q,
            view=view,
            error=error,
        )

    async def list_page(request: Request) -> Response:
        return await listing(request)

    async def act(request: Request, work: Any) -> Response:
        try:
            form = await read_form(request)
        except CrossSiteForm:
            return error_page(request, 403, "Refused", "This form was posted from another site.")
        try:
            await run_in_threadpool(work, form)
        except SlipwayError as exc:
            return await listing(request, error=exc.message, status=400)
        back = str(form.get("back") or "/experiments")
        return RedirectResponse(back if back.startswith("/") else "/experiments", 303)

    async def create(request: Request) -> Response:
        return await act(request, lambda form: store.create_experiment(str(form.get("name", ""))))

    async def rename(request: Request) -> Response:
        exp_id = request.path_params["experiment_id"]
        return await act(
            request, lambda form: store.rename_experiment(exp_id, str(form.get("name", "")))
        )

    async def delete(request: Request) -> Response:
        exp_id = request.path_params["experiment_id"]
        return await act(request, lambda _form: store.delete_experiment(exp_id))

    async def restore(request: Request) -> Response:
        exp_id = request.path_params["experiment_id"]
        return await act(request, lambda _form: store.restore_experiment(exp_id))

    return [
        Route("/experiments", list_page, methods=["GET"]),
        Route("/experiments/create", create, methods=["POST"]),
        Route("/experiments/{experiment_id}/rename", rename, methods=["POST"]),
        Route("/experiments/{experiment_id}/delete", delete, methods=["POST"]),
        Route("/experiments/{experiment_id}/restore", restore, methods=["POST"]),
    ]


__all__ = ["routes"]
