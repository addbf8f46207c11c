"""Artifact routes: listing under the tracking API, downloads, and the proxy."""

from __future__ import annotations

from starlette.routing import BaseRoute

from slipway.server.context import ServerContext


def tracking_routes(ctx: ServerContext) -> list[BaseRoute]:
    return []


def top_level_routes(ctx: ServerContext) -> list[BaseRoute]:
    return []


def proxy_routes(ctx: ServerContext) -> list[BaseRoute]:
    return []
