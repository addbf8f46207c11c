"""Pure ASGI middleware: the request-body size limit, and the Host allow-list (shared with the
model server, in :mod:`slipway.utils.asgi`)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipway.utils.asgi import send_json


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    await send_json(send, status, {"error_code": code, "message": message})


class BodyLimitMiddleware:
    """Refuse (413) request bodies over ``limit`` bytes, except on the streaming paths given."""

    def __init__(self, app: ASGIApp, limit: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _send_error(
                    send,
                    413,
                    "RESOURCE_EXHAUSTED",
                    f"Request body of {int(value)} bytes is over the limit of {self.limit} bytes",
                )
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Handled by the app's error handler, inside the request, as a 413.
                    raise HTTPException(
                        413, f"Request body is over the limit of {self.limit} bytes"
                    )
            return message

        await self.app(scope, limited, send)
