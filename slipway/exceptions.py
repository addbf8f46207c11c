"""Slipway's one exception tree, carrying MLflow's error codes and their HTTP statuses.

::

    SlipwayError                      (error_code, http_status; INTERNAL_ERROR by default)
    ├── InvalidParameterValue         INVALID_PARAMETER_VALUE   400
    │   └── InvalidFilter             INVALID_PARAMETER_VALUE   400  (search grammar)
    ├── BadRequest                    BAD_REQUEST               400
    ├── ResourceAlreadyExists         RESOURCE_ALREADY_EXISTS   400  (MLflow uses 400, not 409)
    ├── ResourceDoesNotExist          RESOURCE_DOES_NOT_EXIST   404
    │   ├── ExperimentNotFound
    │   └── RunNotFound
    ├── PermissionDenied              PERMISSION_DENIED         403
    ├── ResourceConflict              RESOURCE_CONFLICT         409
    ├── InvalidState                  INVALID_STATE             500
    ├── TemporarilyUnavailable        TEMPORARILY_UNAVAILABLE   503
    └── NotImplementedFeature         NOT_IMPLEMENTED           501

Every error can be built from a code name with :meth:`SlipwayError.from_code`, which is how
errors that arrive over HTTP come back as the right class.
"""

from __future__ import annotations

from typing import Any, ClassVar

ERROR_CODE_TO_HTTP_STATUS: dict[str, int] = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_STATE": 500,
    "INTERNAL_ERROR": 500,
    "DATA_LOSS": 500,
    "CUSTOMER_UNAUTHORIZED": 401,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "NOT_FOUND": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "ABORTED": 409,
    "RESOURCE_CONFLICT": 409,
    "ALREADY_EXISTS": 409,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


class SlipwayError(Exception):
    """Base of every error Slipway raises on purpose.

    Args:
        message: what went wrong, written for a person.
        error_code: one of MLflow's error code names; the class default when omitted.
        **details: extra fields that travel with the error (for example over HTTP).
    """

    error_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, error_code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code  # type: ignore[misc]
        self.details = details

    @property
    def http_status(self) -> int:
        return ERROR_CODE_TO_HTTP_STATUS.get(self.error_code, 500)

    def to_dict(self) -> dict[str, Any]:
        """The MLflow error body: ``{"error_code": ..., "message": ...}``."""
        return {"error_code": self.error_code, "message": self.message, **self.details}

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"

    @classmethod
    def from_code(cls, error_code: str, message: str, **details: Any) -> SlipwayError:
        """The most specific class for ``error_code`` (a plain SlipwayError for unknown codes)."""
        for klass in _BY_CODE:
            if klass.error_code == error_code:
                return klass(message, **details)
        return SlipwayError(message, error_code=error_code, **details)


class InvalidParameterValue(SlipwayError):
    error_code = "INVALID_PARAMETER_VALUE"


class InvalidFilter(InvalidParameterValue):
    """A search filter or order_by clause that does not parse."""


class BadRequest(SlipwayError):
    error_code = "BAD_REQUEST"


class ResourceAlreadyExists(SlipwayError):
    error_code = "RESOURCE_ALREADY_EXISTS"


class ResourceDoesNotExist(SlipwayError):
    error_code = "RESOURCE_DOES_NOT_EXIST"


class ExperimentNotFound(ResourceDoesNotExist):
    pass


class RunNotFound(ResourceDoesNotExist):
    pass


class PermissionDenied(SlipwayError):
    error_code = "PERMISSION_DENIED"


class ResourceConflict(SlipwayError):
    error_code = "RESOURCE_CONFLICT"


class InvalidState(SlipwayError):
    error_code = "INVALID_STATE"


class TemporarilyUnavailable(SlipwayError):
    error_code = "TEMPORARILY_UNAVAILABLE"


class NotImplementedFeature(SlipwayError):
    error_code = "NOT_IMPLEMENTED"


# Order matters for from_code: the first class whose code matches wins, so base classes that
# own a code come before their specialisations.
_BY_CODE: tuple[type[SlipwayError], ...] = (
    InvalidParameterValue,
    BadRequest,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    PermissionDenied,
    ResourceConflict,
    InvalidState,
    TemporarilyUnavailable,
    NotImplementedFeature,
)

__all__ = [
    "ERROR_CODE_TO_HTTP_STATUS",
    "BadRequest",
    "ExperimentNotFound",
    "InvalidFilter",
    "InvalidParameterValue",
    "InvalidState",
    "NotImplementedFeature",
    "PermissionDenied",
    "ResourceAlreadyExists",
    "ResourceConflict",
    "ResourceDoesNotExist",
    "RunNotFound",
    "SlipwayError",
    "TemporarilyUnavailable",
]
