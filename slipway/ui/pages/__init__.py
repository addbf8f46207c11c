"""The UI's pages, one module per area; ``routes(ctx)`` collects them."""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Route

from slipway.server.context import ServerContext
from slipway.ui.pages import experiments


def routes(ctx: ServerContext) -> list[BaseRoute]:
    async def home(_request: object) -> RedirectResponse:
        return RedirectResponse("/experiments", status_code=302)

    return [
        Route("/", home, methods=["GET"]),
        *experiments.routes(ctx),
    ]


__all__ = ["routes"]
