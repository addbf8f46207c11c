"""The web UI: server-rendered pages over runs, models and pipelines, served at ``/`` by
``slipway server`` and ``slipway ui``.

Pages are HTML rendered on the server (Jinja2, autoescaped: nothing from the data is ever
markup) with a little of Slipway's own JavaScript for what must happen in the browser (the
theme switch, choosing columns, live updates). URLs are readable and shareable: every filter,
sort, column choice and chart setting is in the query string.

``routes(ctx)`` gives the pages; each page module has a ``routes(ctx)`` of its own.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from slipway.server.context import ServerContext
from slipway.ui import pages
from slipway.ui.render import STATIC_DIR

STATIC_PREFIX = "/static/ui"


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Every UI route (mount them after the API's, at the root)."""
    return [
        Mount(STATIC_PREFIX, app=StaticFiles(directory=str(STATIC_DIR)), name="ui-static"),
        *pages.routes(ctx),
    ]


__all__ = ["STATIC_PREFIX", "routes"]
