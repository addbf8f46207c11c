"""A run's artifacts: browse folders, preview files, download.

=======  ==================================  ================================================
method   path                                what it does
=======  ==================================  ================================================
GET      ``/runs/<id>/artifacts?path=``      a folder's entries (a model folder also shows its
                                             flavors and signature), or a file's preview
GET      ``/runs/<id>/artifact?path=``       a file's bytes: images inline, all else attached
=======  ==================================  ================================================

The files are reached the way the tracking API reaches them
(:func:`~slipway.server.routers.artifacts.served_repository`): through the server's own
artifact stores only, so a run whose artifact URI points elsewhere on the server's disk is
refused here as it is there. Every path passes through
:func:`~slipway.artifacts.paths.safe_relative_path` first; a bad one is a 400 page.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.artifacts.base import ArtifactRepository, FileInfo
from slipway.artifacts.paths import safe_relative_path
from slipway.entities import Run
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist, SlipwayError
from slipway.server.context import ServerContext
from slipway.server.routers.artifacts import served_repository
from slipway.ui import artifacts as previews
from slipway.ui.pages.run import failure_page, run_label
from slipway.ui.render import render

__all__ = ["LIST_PAGE", "routes"]

LIST_PAGE = 500


@dataclass
class Listing:
    """What the artifacts page shows: a folder's entries (and its model, if it is one), or
    one file's preview."""

    run: Run
    path: str
    entries: list[FileInfo] | None = None
    next_token: str | None = None
    model: previews.ModelSummary | None = None
    preview: previews.Preview | None = None


def _repository(ctx: ServerContext, run: Run) -> ArtifactRepository:
    return served_repository(ctx, run.info.artifact_uri, f"run {run.info.run_id}")


def load_listing(ctx: ServerContext, run_id: str, path: str, token: str | None) -> Listing:
    """The folder or file at ``path`` of the run's artifacts (blocking).

    Raises:
        ResourceDoesNotExist: for no such run, or nothing at ``path``.
        InvalidParameterValue: for a bad path or page token.
    """
    run = ctx.store.get_run(run_id)
    repo = _repository(ctx, run)
    listing = Listing(run, path)
    page = repo.list_artifacts(path or None, max_results=LIST_PAGE, page_token=token)
    if page or not path or token:
        listing.entries = list(page)
        listing.next_token = page.token
        if previews.has_model(page, path):
            listing.model = previews.read_model_summary(repo, path)
        return listing
    try:
        listing.preview = previews.read_preview(repo, path)
    except ResourceDoesNotExist:
        raise ResourceDoesNotExist(f"This run has no artifact at {path!r}") from None
    return listing


def routes(ctx: ServerContext) -> list[BaseRoute]:
    async def browse(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        token = request.query_params.get("page_token") or None
        try:
            path = safe_relative_path(request.query_params.get("path", ""))
            listing = await run_in_threadpool(load_listing, ctx, run_id, path, token)
        except SlipwayError as exc:
            return failure_page(request, exc)
        return render(
            request,
            "artifacts.html",
            section="experiments",
            listing=listing,
            run=listing.run,
            label=run_label(listing.run),
            crumbs=previews.breadcrumbs(listing.path),
            basename=posixpath.basename,
            size_text=previews.size_text,
        )

    async def raw(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            path = safe_relative_path(request.query_params.get("path", ""))
            if not path:
                raise InvalidParameterValue("Invalid path: a file path is required")
            run = await run_in_threadpool(ctx.store.get_run, run_id)
            repo = await run_in_threadpool(_repository, ctx, run)
            return await previews.raw_response(repo, path)
        except SlipwayError as exc:
            return failure_page(request, exc)

    return [
        Route("/runs/{run_id}/artifacts", browse, methods=["GET"]),
        Route("/runs/{run_id}/artifact", raw, methods=["GET"]),
    ]
