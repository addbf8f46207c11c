"""A page of results with the token for the next page."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class PagedList(list[T], Generic[T]):
    """A list of results; ``token`` is the opaque page token for the next page, or None."""

    def __init__(self, items: list[T] | tuple[T, ...] = (), token: str | None = None) -> None:
        super().__init__(items)
        self.token = token
