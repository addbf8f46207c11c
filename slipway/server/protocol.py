"""Reading MLflow REST requests: GET fields from the query string (repeated keys for lists),
other methods from a JSON object body, with MLflow's types and error messages.

Proto3 JSON allows int64 values as strings and doubles as ``"NaN"``/``"Infinity"``; both are
accepted. A field the endpoint does not know, a missing required field or a value of the wrong
type is a 400 ``INVALID_PARAMETER_VALUE`` naming the field. A required string that is empty
counts as missing, as in MLflow (proto2 reads an absent string as ``""``). Proto3 JSON names
(``runUuid``) are accepted for their snake_case fields. POST and PUT bodies must be sent as
``application/json``, as MLflow requires (a guard against cross-site form posts).

The second half turns entities into MLflow's JSON shapes (fields that are unset or empty lists
are left out, as protobuf's JSON printer does) and builds responses with little per-request
work.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from slipway.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    Metric,
    Param,
    Run,
    RunInfo,
    RunTag,
)
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

    __slots__ = ("data", "from_query", "prefix")

    def __init__(self, data: dict[str, Any], from_query: bool, prefix: str = "") -> None:
        self.data = data
        self.from_query = from_query
        self.prefix = prefix  # names a nested message in errors: "metrics[3]."

    @classmethod
    async def read(cls, request: Request, allowed: Iterable[str]) -> Fields:
        """Parse the request and refuse fields outside ``allowed`` (a frozenset is fastest)."""
        if request.method in _QUERY_METHODS:
            data: dict[str, Any] = {}
            for key, value in request.query_params.multi_items():
                data.setdefault(key, []).append(value)
            fields = cls(data, from_query=True)
        else:
            if request.method in _TYPED_METHODS:
                _check_content_type(request)
            body = await request.body()
            if not body.strip():
                payload: Any = {}
            else:
                try:
                    payload = json.loads(body)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise InvalidParameterValue(
                        f"Malformed JSON in the request body: {exc}"
                    ) from exc
            if isinstance(payload, str):  # old clients send the JSON object encoded twice
                with contextlib.suppress(ValueError):
                    payload = json.loads(payload)
            if not isinstance(payload, dict):
                raise InvalidParameterValue("The request body must be a JSON object")
            fields = cls(payload, from_query=False)
        names = allowed if isinstance(allowed, frozenset | set) else frozenset(allowed)
        if not names.issuperset(fields.data):
            _check_names(fields.data, names, "this endpoint")
        return fields

    def value(self, name: str) -> Any:
        """The raw value of a single-valued field (the first of a repeated query key, as in
        MLflow's server)."""
        return self._raw(name)

    def _raw(self, name: str) -> Any:
        value = self.data.get(name)
        if self.from_query and isinstance(value, list):
            return value[0] if value else None
        return value

    def has(self, name: str) -> bool:
        return self._raw(name) is not None

    def string(self, name: str, required: bool = False, default: str | None = None) -> Any:
        value = self._raw(name)
        if value is None or (required and value == ""):
            if required:
                raise missing(self.prefix + name)
            return default
        if not isinstance(value, str):
            raise invalid(self.prefix + name, value, "a string")
        return value

    def integer(self, name: str, required: bool = False, default: int | None = None) -> Any:
        value = self._raw(name)
        if value is None or (self.from_query and value == ""):
            if required:
                raise missing(self.prefix + name)
            return default
        if isinstance(value, bool):
            raise invalid(self.prefix + name, value, "an integer")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise invalid(self.prefix + name, value, "an integer") from None
        if not isinstance(value, int) or not _INT64[0] <= value <= _INT64[1]:
            raise invalid(self.prefix + name, value, "a 64-bit integer")
        return value

    def number(self, name: str, required: bool = False) -> Any:
        value = self._raw(name)
        if value is None:
            if required:
                raise missing(self.prefix + name)
            return None
        if isinstance(value, float):
            return value
        if isinstance(value, bool):
            raise invalid(self.prefix + name, value, "a number")
        if isinstance(value, str):
            if value in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[value]
            try:
                return float(value)
            except ValueError:
                raise invalid(self.prefix + name, value, "a number") from None
        if not isinstance(value, int):
            raise invalid(self.prefix + name, value, "a number")
        try:
            return float(value)
        except OverflowError:
            raise invalid(self.prefix + name, value, "a 64-bit float") from None

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(self.prefix + name, value, "true or false")

    def strings(self, name: str, required: bool = False) -> list[str]:
        value = self.data.get(name)
        if value is None or value == []:
            if required:
                raise missing(self.prefix + name)
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(self.prefix + name, value, "a list of strings")
        return value

    def objects(self, name: str) -> list[dict[str, Any]]:
        """A repeated message field: a list of JSON objects (POST bodies only)."""
        value = self.data.get(name)
        if value is None:
            return []
        if (
            self.from_query
            or not isinstance(value, list)
            or not all(isinstance(v, dict) for v in value)
        ):
            raise invalid(self.prefix + name, value, "a list of objects")
        return value

    def message(self, name: str, allowed: Iterable[str]) -> Fields:
        """A nested message field (one JSON object), unknown fields refused; empty if absent."""
        value = self.data.get(name)
        if value is None:
            value = {}
        if self.from_query or not isinstance(value, dict):
            raise invalid(self.prefix + name, value, "an object")
        return sub_fields(value, allowed, self.prefix + name)


def sub_fields(obj: dict[str, Any], allowed: Iterable[str], where: str) -> Fields:
    """The fields of a nested message (a metric inside log-batch, say), with unknown ones
    refused; errors name the field by its path (``metrics[3].key``)."""
    names = allowed if isinstance(allowed, frozenset | set) else frozenset(allowed)
    if not names.issuperset(obj):
        _check_names(obj, names, where)
    return Fields(obj, from_query=False, prefix=f"{where}.")


_QUERY_METHODS = frozenset({"GET", "HEAD"})
_TYPED_METHODS = frozenset({"POST", "PUT"})


def _check_content_type(request: Request) -> None:
    """JSON bodies must say so, as MLflow's server requires: a cross-site form or ``text/plain``
    post (which browsers send without asking) is refused."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise InvalidParameterValue("Bad Request. Content-Type header is missing.")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise InvalidParameterValue(
            "Bad Request. Content-Type must be one of ['application/json']."
        )


_CAMEL = re.compile(r"(?<!^)([A-Z])")


def _check_names(data: dict[str, Any], allowed: frozenset[str] | set[str], where: str) -> None:
    """Rename proto3 JSON names (``runUuid``) to their fields in place; refuse the rest."""
    unknown = []
    for key in [k for k in data if k not in allowed]:
        snake = _CAMEL.sub(r"_\1", key).lower()
        if snake == key or snake not in allowed:
            unknown.append(key)
        elif snake in data:
            raise InvalidParameterValue(
                f"Request specifies both '{snake}' and '{key}'; provide only one of them."
            )
        else:
            data[snake] = data.pop(key)
    if unknown:
        raise InvalidParameterValue(
            f"Unknown parameter(s) {', '.join(repr(u) for u in sorted(unknown))} in {where}; "
            f"expected some of: {', '.join(sorted(allowed))}"
        )


# -- reading common request pieces -----------------------------------------------------------

KEY_VALUE_FIELDS = frozenset({"key", "value"})


def run_id_of(fields: Fields) -> str:
    """``run_id``, or the deprecated ``run_uuid`` that older clients send instead."""
    run_id = fields.string("run_id") or fields.string("run_uuid")
    if not run_id:
        raise missing("run_id")
    return str(run_id)


def key_values(fields: Fields, name: str) -> list[tuple[str, str]]:
    """A repeated ``{key, value}`` field (tags); a missing value reads as ``""``."""
    out = []
    for i, obj in enumerate(fields.objects(name)):
        item = sub_fields(obj, KEY_VALUE_FIELDS, f"{name}[{i}]")
        out.append((item.string("key", required=True), item.string("value", default="")))
    return out


METRIC_FIELDS = frozenset(
    {"key", "value", "timestamp", "step", "model_id", "dataset_name", "dataset_digest", "run_id"}
)


def metrics_of(fields: Fields, name: str = "metrics") -> list[Metric]:
    """Log-batch metrics. MLflow 3's model and dataset links are accepted but not kept."""
    out = []
    for i, obj in enumerate(fields.objects(name)):
        item = sub_fields(obj, METRIC_FIELDS, f"{name}[{i}]")
        out.append(
            Metric(
                item.string("key", required=True),
                item.number("value", required=True),
                item.integer("timestamp", required=True),
                item.integer("step", default=0),
            )
        )
    return out


def params_of(fields: Fields, name: str = "params") -> list[Param]:
    return [Param(k, v) for k, v in key_values(fields, name)]


def tags_of(fields: Fields, name: str = "tags") -> list[RunTag]:
    return [RunTag(k, v) for k, v in key_values(fields, name)]


DATASET_INPUT_FIELDS = frozenset({"tags", "dataset"})
DATASET_FIELDS = frozenset({"name", "digest", "source_type", "source", "schema", "profile"})


def dataset_inputs_of(fields: Fields, name: str = "datasets") -> list[DatasetInput]:
    out = []
    for i, obj in enumerate(fields.objects(name)):
        item = sub_fields(obj, DATASET_INPUT_FIELDS, f"{name}[{i}]")
        ds = item.message("dataset", DATASET_FIELDS)
        dataset = Dataset(
            name=ds.string("name", required=True),
            digest=ds.string("digest", required=True),
            source_type=ds.string("source_type", default=""),
            source=ds.string("source", default=""),
            schema=ds.string("schema"),
            profile=ds.string("profile"),
        )
        tags = tuple(InputTag(k, v) for k, v in key_values(item, "tags"))
        out.append(DatasetInput(dataset, tags))
    return out


# -- responses ------------------------------------------------------------------------------

_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_EMPTY = b"{}"


def json_response(payload: Any, status_code: int = 200) -> Response:
    """``payload`` as a compact JSON response (no NaN literals: metrics spell them out)."""
    return Response(
        _encode(payload).encode(), status_code=status_code, media_type="application/json"
    )


def empty_response() -> Response:
    """The ``{}`` that MLflow answers to writes."""
    return Response(_EMPTY, media_type="application/json")


def page_json(key: str, items: list[Any], token: str | None) -> dict[str, Any]:
    """``{key: items, "next_page_token": token}`` leaving out an empty list and a None token."""
    out: dict[str, Any] = {}
    if items:
        out[key] = items
    if token:
        out["next_page_token"] = token
    return out


def _key_value_list(items: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items.items()]


def experiment_json(exp: Experiment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "experiment_id": exp.experiment_id,
        "name": exp.name,
        "artifact_location": exp.artifact_location,
        "lifecycle_stage": exp.lifecycle_stage.value,
    }
    if exp.last_update_time:
        out["last_update_time"] = exp.last_update_time
    if exp.creation_time:
        out["creation_time"] = exp.creation_time
    if exp.tags:
        out["tags"] = _key_value_list(exp.tags)
    return out


def run_info_json(info: RunInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run_id": info.run_id,
        "run_uuid": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "user_id": info.user_id,
        "status": info.status.value,
    }
    if info.start_time is not None:
        out["start_time"] = info.start_time
    if info.end_time:
        out["end_time"] = info.end_time
    if info.artifact_uri:
        out["artifact_uri"] = info.artifact_uri
    out["lifecycle_stage"] = info.lifecycle_stage.value
    return out


def dataset_input_json(item: DatasetInput) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if item.tags:
        out["tags"] = [{"key": t.key, "value": t.value} for t in item.tags]
    out["dataset"] = item.dataset.to_dict()
    return out


def run_json(run: Run) -> dict[str, Any]:
    """A run as MLflow sends it: ``info``, then ``data`` and ``inputs`` (``{}`` when empty)."""
    data: dict[str, Any] = {}
    records = run.data.metric_records
    if records:
        data["metrics"] = [m.to_dict() for m in records]
    if run.data.params:
        data["params"] = _key_value_list(run.data.params)
    if run.data.tags:
        data["tags"] = _key_value_list(run.data.tags)
    inputs: dict[str, Any] = {}
    if run.inputs.dataset_inputs:
        inputs["dataset_inputs"] = [dataset_input_json(d) for d in run.inputs.dataset_inputs]
    return {"info": run_info_json(run.info), "data": data, "inputs": inputs}
