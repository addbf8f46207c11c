"""Links that keep a page's settings: the current query string with some keys changed.

The shared ``query`` template global keeps one value per key; the runs and compare pages
repeat keys (``cols=...&cols=...``, ``runs=a&runs=b``), so they build their links here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlencode

from starlette.requests import Request

__all__ = ["Linker", "url"]

Change = str | Sequence[str] | None


def url(path: str, items: Iterable[tuple[str, str]]) -> str:
    """``path`` with ``items`` as its query string (none: the bare path)."""
    query = urlencode(list(items))
    return f"{path}?{query}" if query else path


class Linker:
    """``link(order_by="metrics.loss DESC", page_token=None)``: the current URL with
    ``order_by`` set, ``page_token`` removed, everything else kept. A sequence value repeats
    the key; None removes it. ``path`` switches to another page with the same settings."""

    def __init__(self, request: Request) -> None:
        self.path = request.url.path
        self.items = list(request.query_params.multi_items())

    def __call__(self, path: str | None = None, **changes: Change) -> str:
        kept = [(key, value) for key, value in self.items if key not in changes]
        for key, value in changes.items():
            if value is None:
                continue
            if isinstance(value, str):
                kept.append((key, value))
            else:
                kept.extend((key, str(v)) for v in value)
        return url(path or self.path, kept)

    def hidden(self, *drop: str) -> list[tuple[str, str]]:
        """The current settings, less ``drop``, for hidden inputs of a GET form that changes
        the others."""
        return [(key, value) for key, value in self.items if key not in drop]
