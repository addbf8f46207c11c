"""Pure ASGI middleware: the Host allow-list and the request-body size limit."""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AllowedHostsMiddleware:
    """Refuse (403) requests whose Host header is not allowed: a guard against DNS rebinding.

    Entries are ``host`` (any port) or ``host:port``; ``*`` allows every host."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed}
        self.any = "*" in self.allowed

    def _ok(self, host: str) -> bool:
        host = host.lower()
        if host in self.allowed:
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.any:
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if not self._ok(host):
            await _send_error(
                send,
                403,
                "PERMISSION_DENIED",
                f"Host {host!r} is not allowed; start the server with --allowed-hosts to accept it",
            )
            return
        await self.app(scope, receive, send)


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
