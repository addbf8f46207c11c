"""Pure ASGI middleware of the model server: the Host allow-list, and the life cycle of the
served models (loaded before the server accepts connections, closed after the last request).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from slipway.exceptions import SlipwayError
from slipway.serving._http import Shape
from slipway.utils.asgi import AllowedHostsMiddleware, mlflow_error_body, send_json

_log = logging.getLogger("slipway.serving")


def error_shape(path: str) -> Shape:
    """``oip`` for the V1/V2 protocol paths (``{"error": ...}``), else ``mlflow``."""
    return "oip" if path.startswith(("/v1/", "/v2/")) or path == "/v2" else "mlflow"


def error_body(path: str, code: str, message: str) -> dict[str, str]:
    """The body of an error answer in the shape of the protocol that ``path`` belongs to."""
    return (
        {"error": message} if error_shape(path) == "oip" else mlflow_error_body(path, code, message)
    )


async def send_error(send: Send, path: str, status: int, code: str, message: str) -> None:
    """An error response in the shape of the protocol that ``path`` belongs to."""
    await send_json(send, status, error_body(path, code, message))


class LifespanMiddleware:
    """Answers the server's lifespan events: ``startup`` awaits ``on_startup`` (loading the
    models) and ``shutdown`` awaits ``on_shutdown``.

    A model that does not load fails the startup with its message alone (no traceback), so
    the server stops with one clear line in its log."""

    def __init__(
        self,
        app: ASGIApp,
        on_startup: Callable[[], Awaitable[None]],
        on_shutdown: Callable[[], Awaitable[None]],
    ) -> None:
        self.app = app
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                failure = await self._run(self.on_startup, "start")
                if failure is None:
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.startup.failed", "message": failure})
                    return
            elif message["type"] == "lifespan.shutdown":
                failure = await self._run(self.on_shutdown, "stop")
                if failure is None:
                    await send({"type": "lifespan.shutdown.complete"})
                else:
                    await send({"type": "lifespan.shutdown.failed", "message": failure})
                return

    @staticmethod
    async def _run(step: Callable[[], Awaitable[None]], what: str) -> str | None:
        try:
            await step()
        except SlipwayError as exc:
            return f"Cannot {what} the model server: {exc.message}"
        except Exception as exc:
            _log.exception("Cannot %s the model server", what)
            return f"Cannot {what} the model server: {type(exc).__name__}: {exc}"
        return None


__all__ = [
    "AllowedHostsMiddleware",
    "LifespanMiddleware",
    "error_body",
    "error_shape",
    "send_error",
]
