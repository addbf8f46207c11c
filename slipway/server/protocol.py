"""Reading MLflow REST requests: GET fields from the query string (repeated keys for lists),
other methods from a JSON object body, with MLflow's types and error messages.

Proto3 JSON allows int64 values as strings and doubles as ``"NaN"``/``"Infinity"``; both are
accepted. A field the endpoint does not know, a missing required field or a value of the wrong
type is a 400 ``INVALID_PARAMETER_VALUE`` naming the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from slipway.exceptions import InvalidParameterValue

_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INT64 = (-(2**63), 2**63 - 1)


def missing(name: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Missing value for required parameter '{name}'. See the API docs for more "
        "information about request parameters."
    )


def invalid(name: str, value: Any, expected: str) -> InvalidParameterValue:
    shown = json.dumps(value) if not isinstance(value, str) else value
    return InvalidParameterValue(
        f"Invalid value {shown} for parameter '{name}' supplied: expected {expected}. See the "
        "API docs for more information about request parameters."
    )


class Fields:
    """The fields of one request, typed on access.

    Args:
        data: a JSON object (POST/PATCH/DELETE) or the query string as ``{key: [values]}``.
        from_query: whether values came from the query string (all strings, lists repeated).
    """

    def __init__(self, data: dict[str, Any], from_query: bool) -> None:
        self.data = data
        self.from_query = from_query

    @classmethod
    async def read(cls, request: Request, allowed: Iterable[str]) -> Fields:
        """Parse the request and refuse fields outside ``allowed``."""
        if request.method == "GET":
            data: dict[str, Any] = {}
            for key, value in request.query_params.multi_items():
                data.setdefault(key, []).append(value)
            fields = cls(data, from_query=True)
        else:
            body = await request.body()
            if not body.strip():
                payload: Any = {}
            else:
                try:
                    payload = json.loads(body)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise InvalidParameterValue(f"Malformed JSON in the request body: {exc}") \
                        from exc
            if not isinstance(payload, dict):
                raise InvalidParameterValue("The request body must be a JSON object")
            fields = cls(payload, from_query=False)
        unknown = sorted(set(fields.data) - set(allowed))
        if unknown:
            raise InvalidParameterValue(
                f"Unknown parameter(s) {', '.join(repr(u) for u in unknown)} for this "
                f"endpoint; expected some of: {', '.join(sorted(allowed))}"
            )
        return fields

    def _raw(self, name: str) -> Any:
        value = self.data.get(name)
        if self.from_query and isinstance(value, list):
            return value[-1] if value else None
        return value

    def has(self, name: str) -> bool:
        return self._raw(name) is not None

    def string(self, name: str, required: bool = False, default: str | None = None) -> Any:
        value = self._raw(name)
        if value is None:
            if required:
                raise missing(name)
            return default
        if not isinstance(value, str):
            raise invalid(name, value, "a string")
        return value

    def integer(self, name: str, required: bool = False, default: int | None = None) -> Any:
        value = self._raw(name)
        if value is None or (self.from_query and value == ""):
            if required:
                raise missing(name)
            return default
        if isinstance(value, bool):
            raise invalid(name, value, "an integer")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise invalid(name, value, "an integer") from None
        if not isinstance(value, int) or not _INT64[0] <= value <= _INT64[1]:
            raise invalid(name, value, "a 64-bit integer")
        return value

    def number(self, name: str, required: bool = False) -> Any:
        value = self._raw(name)
        if value is None:
            if required:
                raise missing(name)
            return None
        if isinstance(value, bool):
            raise invalid(name, value, "a number")
        if isinstance(value, str):
            if value in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[value]
            try:
                return float(value)
            except ValueError:
                raise invalid(name, value, "a number") from None
        if not isinstance(value, int | float):
            raise invalid(name, value, "a number")
        return float(value)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(name, value, "true or false")

    def strings(self, name: str, required: bool = False) -> list[str]:
        value = self.data.get(name)
        if value is None or value == []:
            if required:
                raise missing(name)
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(name, value, "a list of strings")
        return value

    def objects(self, name: str) -> list[dict[str, Any]]:
        """A repeated message field: a list of JSON objects (POST bodies only)."""
        value = self.data.get(name)
        if value is None:
            return []
        if self.from_query or not isinstance(value, list) or not all(
            isinstance(v, dict) for v in value
        ):
            raise invalid(name, value, "a list of objects")
        return value


def sub_fields(obj: dict[str, Any], allowed: Iterable[str], where: str) -> Fields:
    """The fields of a nested message (a metric inside log-batch, say), with unknown ones
    refused."""
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise InvalidParameterValue(
            f"Unknown field(s) {', '.join(repr(u) for u in unknown)} in {where}"
        )
    return Fields(obj, from_query=False)
