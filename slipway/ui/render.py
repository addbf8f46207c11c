"""Rendering pages: one Jinja2 environment (autoescaping on), the filters the templates share,
and the error page."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

import slipway

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def format_time(ms: int | None) -> str:
    """Milliseconds since the epoch as ``2026-11-28 03:14:07`` (UTC); ``-`` for None."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(start: int | None, end: int | None) -> str:
    """``1.2s``, ``3m 04s``, ``2h 05m``; ``-`` when unknown."""
    if start is None or end is None:
        return "-"
    seconds = max(end - start, 0) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"


def format_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def query(request: Request, **changes: Any) -> str:
    """The current URL's query string with ``changes`` applied (None removes a key)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def to_json(value: Any) -> Markup:
    """``value`` as JSON safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(value, default=str)
    safe = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(safe)  # noqa: S704 - every character that could end the element is escaped


class CrossSiteForm(Exception):
    """A form posted from another site (refused: the UI's forms change data)."""


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form post (the only kind the UI sends; the last value of a
    repeated field wins). A post whose ``Origin`` (or ``Sec-Fetch-Site``) says it came from
    another site raises :class:`CrossSiteForm`: without it, any page a user visits could
    approve a model on their behalf."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin != "null" and urlsplit(origin).netloc != host:
        raise CrossSiteForm(origin)
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CrossSiteForm(request.headers.get("referer", ""))
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(["html", "svg", "xml"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=format_time,
        number=format_number,
        tojson_safe=to_json,
    )
    env.globals.update(duration=format_duration, version=slipway.__version__, query=query)
    return env


ENV = _environment()


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page ``template`` rendered with ``context`` (and ``request``)."""
    page = ENV.get_template(template)
    return HTMLResponse(page.render(request=request, **context), status_code=status)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    """A page saying what went wrong (a run that does not exist, a bad filter, ...)."""
    return render(request, "error.html", status=status, title=title, message=message)


__all__ = [
    "ENV",
    "STATIC_DIR",
    "CrossSiteForm",
    "error_page",
    "format_duration",
    "format_number",
    "format_time",
    "query",
    "read_form",
    "render",
    "to_json",
]
