"""MLflow REST API 2.0: experiments routes (filled in by the tracking API work)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from slipway.server.context import ServerContext


def routes(ctx: ServerContext) -> list[BaseRoute]:
    return []
