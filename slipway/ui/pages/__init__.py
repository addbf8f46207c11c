"""The UI's pages, one module per area; ``routes(ctx)`` collects them."""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Route

from slipway.server.context import ServerContext
from slipway.ui.pages import (
    approvals,
    compare,
    experiments,
    models,
    pipelines,
    run,
    run_artifacts,
    runs,
)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    async def home(_request: object) -> RedirectResponse:
        return RedirectResponse("/experiments", status_code=302)

    return [
        Route("/", home, methods=["GET"]),
        *experiments.routes(ctx),
        *runs.routes(ctx),
        *run.routes(ctx),
        *run_artifacts.routes(ctx),
        *compare.routes(ctx),
        *models.routes(ctx),
        *approvals.routes(ctx),
        *pipelines.routes(ctx),
    ]


__all__ = ["routes"]
