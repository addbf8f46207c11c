"""ASGI pieces the tracking server and the model server share: JSON error answers and the
Host allow-list (a guard against DNS rebinding). Pure ASGI, so they cost one function call per
request; this module needs Starlette (the ``server`` extra) only for its type names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

ErrorBody = Callable[[str, str, str], Any]
"""``(path, error_code, message) -> JSON body`` of an error answer."""


def mlflow_error_body(_path: str, code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "message": message}


async def send_json(send: Send, status: int, payload: Any) -> None:
    """One complete JSON response."""
    raw = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


class AllowedHostsMiddleware:
    """Refuse (403) requests whose Host header is not allowed.

    Entries are ``host`` (any port) or ``host:port``; ``*`` allows every host. ``error_body``
    shapes the refusal (MLflow's ``{"error_code", "message"}`` by default)."""

    def __init__(
        self, app: ASGIApp, allowed: Iterable[str], error_body: ErrorBody = mlflow_error_body
    ) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed}
        self.any = "*" in self.allowed
        self.error_body = error_body

    def allows(self, host: str) -> bool:
        host = host.lower()
        if host in self.allowed:
            return True
        name = host if host.endswith("]") else host.rsplit(":", 1)[0]
        return name in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.any:
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if not self.allows(host):
            message = (
                f"Host {host!r} is not allowed; start the server with --allowed-hosts to accept it"
            )
            body = self.error_body(scope["path"], "PERMISSION_DENIED", message)
            await send_json(send, 403, body)
            return
        await self.app(scope, receive, send)
