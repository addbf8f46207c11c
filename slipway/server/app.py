"""``create_app(settings)``: the tracking server as an ASGI application.

Routes come from one factory per resource in :mod:`slipway.server.routers`; each takes the
:class:`ServerContext` (the store, the artifact destination, the settings), so nothing reaches
for a global. MLflow's tracking and model registry routes are served under both
``/api/2.0/mlflow`` and ``/ajax-api/2.0/mlflow``; Slipway's own (approvals, audit, deployments,
lineage, pipelines, tuning) under ``/api/2.0/slipway``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

import slipway
from slipway.server.context import ServerContext
from slipway.server.errors import EXCEPTION_HANDLERS
from slipway.server.middleware import BodyLimitMiddleware
from slipway.server.routers import (
    artifacts,
    experiments,
    logged_models,
    metrics,
    pipelines,
    registry,
    runs,
    slipway_api,
    tuning,
)
from slipway.server.settings import ServerSettings
from slipway.utils.asgi import AllowedHostsMiddleware

API_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PROXY_PREFIX = "/api/2.0/mlflow-artifacts"
STREAMING_PATHS = (ARTIFACT_PROXY_PREFIX, "/ajax-api/2.0/mlflow/upload-artifact")


async def health(_request: Request) -> Response:
    return PlainTextResponse("OK")


async def version(_request: Request) -> Response:
    return PlainTextResponse(slipway.__version__)


def tracking_routes(ctx: ServerContext) -> list[BaseRoute]:
    """The MLflow API routes, tracking and model registry (without prefix)."""
    return [
        *experiments.routes(ctx),
        *runs.routes(ctx),
        *metrics.routes(ctx),
        *artifacts.tracking_routes(ctx),
        *logged_models.routes(ctx),
        *registry.routes(ctx),
    ]


def create_app(
    settings: ServerSettings | None = None, context: ServerContext | None = None
) -> Starlette:
    """The server app for ``settings`` (or an already built ``context``)."""
    settings = settings or ServerSettings()
    ctx = context or ServerContext.from_settings(settings)
    api = tracking_routes(ctx)
    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        *[Mount(prefix, routes=api) for prefix in API_PREFIXES],
        # Before the Slipway mount, whose prefix would otherwise claim these paths.
        Mount(pipelines.PREFIX, routes=pipelines.routes(ctx)),
        Mount(tuning.PREFIX, routes=tuning.routes(ctx)),
        Mount(slipway_api.PREFIX, routes=slipway_api.routes(ctx)),
        *artifacts.top_level_routes(ctx),
    ]
    from slipway import ui  # the pages import Jinja2 only when the app is built

    ui_routes = ui.routes(ctx)
    if settings.serve_artifacts:
        routes.append(Mount(ARTIFACT_PROXY_PREFIX, routes=artifacts.proxy_routes(ctx)))
    routes.extend(ui_routes)  # last: the pages live at the root

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(AllowedHostsMiddleware, allowed=settings.allowed_hosts),
            Middleware(
                BodyLimitMiddleware,
                limit=settings.max_request_bytes,
                exempt_prefixes=STREAMING_PATHS,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.context = ctx
    return app


__all__ = ["API_PREFIXES", "JSONResponse", "create_app"]
