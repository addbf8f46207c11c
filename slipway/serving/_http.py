"""HTTP plumbing of the model server: reading a body within its limits, and error bodies in
each protocol's shape (MLflow's ``{"error_code", "message"}``, the Open Inference Protocol's
``{"error": ...}``)."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from slipway.exceptions import SlipwayError

Shape = Literal["mlflow", "oip"]


class PayloadTooLarge(SlipwayError):
    """A request body over the server's ``max_request_bytes``: HTTP 413."""

    error_code = "RESOURCE_EXHAUSTED"

    @property
    def http_status(self) -> int:
        return 413


class RequestTimeout(SlipwayError):
    """A client that did not send its whole body in time: HTTP 408."""

    error_code = "DEADLINE_EXCEEDED"

    @property
    def http_status(self) -> int:
        return 408


def too_large_message(size: int | None, limit: int) -> str:
    what = f"of {size} bytes " if size is not None else ""
    return (
        f"Request body {what}is over the limit of {limit} bytes; send fewer rows per "
        "request or start the server with a larger --max-request-bytes"
    )


def declared_length(request: Request) -> int | None:
    """The ``Content-Length`` the client declared, or None."""
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole request body, refused as soon as it passes ``limit`` bytes (declared or
    actually sent).

    Raises:
        PayloadTooLarge: over the limit (413).
        RequestTimeout: when the client stalls for ``timeout_s`` before the body is complete.
    """
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(too_large_message(declared, limit))
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(too_large_message(None, limit))
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {timeout_s:g} s ({size} bytes received)"
        ) from None
    except ClientDisconnect:
        raise RequestTimeout("The client disconnected before sending the whole body") from None
    return b"".join(chunks)


def error_response(shape: Shape, status: int, error_code: str, message: str) -> Response:
    """An error in the protocol's shape."""
    body = (
        {"error_code": error_code, "message": message} if shape == "mlflow" else {"error": message}
    )
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def slipway_error_response(shape: Shape, error: SlipwayError) -> Response:
    return error_response(shape, error.http_status, error.error_code, error.message)


__all__ = [
    "PayloadTooLarge",
    "RequestTimeout",
    "error_response",
    "read_body",
    "slipway_error_response",
]
