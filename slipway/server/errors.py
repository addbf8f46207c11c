"""The one place where errors become MLflow's JSON error body with the right status."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from slipway.exceptions import SlipwayError

log = logging.getLogger("slipway.server")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    403: "PERMISSION_DENIED",
    404: "ENDPOINT_NOT_FOUND",
    405: "BAD_REQUEST",
    413: "RESOURCE_EXHAUSTED",
    415: "BAD_REQUEST",
}


def error_response(status: int, error_code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": error_code, "message": message}, status_code=status)


async def slipway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SlipwayError)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(
        exc.status_code, "INTERNAL_ERROR" if exc.status_code >= 500 else "BAD_REQUEST"
    )
    return error_response(exc.status_code, code, str(exc.detail))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        500,
        "INTERNAL_ERROR",
        f"Internal server error ({exc.__class__.__name__}); see the server log",
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SlipwayError: slipway_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
