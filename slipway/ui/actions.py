"""Handling a form post the same way on every page: POST, then redirect, then GET.

A form changes something through a store call; when it works the browser is sent back to the
page it came from (so a reload does not post twice), and when the store refuses, the page is
rendered again with the store's message next to the form and a matching 4xx status. A post
from another site is refused before the store is touched (see
:func:`~slipway.ui.render.read_form`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from slipway.exceptions import SlipwayError
from slipway.ui.render import CrossSiteForm, error_page, read_form

Rerender = Callable[[str, int], Awaitable[Response]]
"""``(message, status) -> the page again, with the message next to its form``."""


def safe_back(target: object, default: str) -> str:
    """``target`` when it is a path on this site (``/...``, not ``//host`` or ``/\\host``,
    which browsers read as another site), else ``default``."""
    text = str(target or "")
    if text.startswith("/") and not text.startswith(("//", "/\\")) and "\n" not in text:
        return text
    return default


def error_status(exc: SlipwayError) -> int:
    """The page status for a refused form: the error's own 4xx status, else 400."""
    status = exc.http_status
    return status if 400 <= status < 500 else 400


async def post_action(
    request: Request,
    work: Callable[[dict[str, str]], Any],
    back: str | Callable[[dict[str, str], Any], str],
    rerender: Rerender,
) -> Response:
    """Run ``work(form)`` in a worker thread, then redirect (303) to ``back`` (or to
    ``back(form, result)``); on a store error, ``rerender(message, status)``."""
    try:
        form = await read_form(request)
    except CrossSiteForm:
        return error_page(request, 403, "Refused", "This form was posted from another site.")
    try:
        result = await run_in_threadpool(work, form)
    except SlipwayError as exc:
        return await rerender(exc.message, error_status(exc))
    target = back(form, result) if callable(back) else back
    return RedirectResponse(target, status_code=303)


__all__ = ["Rerender", "error_status", "post_action", "safe_back"]
