"""KServe's V1 protocol: ``POST /v1/models/<name>:predict`` with ``{"instances": [...]}``,
answered with ``{"predictions": [...]}``, one prediction per instance.

Instances are rows: objects (a record per row: a DataFrame, or a dict of arrays for a model
with named tensor inputs) or lists (a row of values: columns in the signature's order for a
column-based model, else an array). An optional ``parameters`` object is passed to the model's
``predict`` as params.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slipway.exceptions import BadRequest
from slipway.models.predict import jsonable
from slipway.serving.codecs import load_json

if TYPE_CHECKING:
    from slipway.models._schema import Schema

KEYS = ("instances", "parameters")


@dataclass(frozen=True)
class V1Request:
    """A decoded ``:predict`` request: the model input and its params."""

    data: Any
    params: dict[str, Any] | None


def decode_request(body: bytes, schema: Schema | None) -> V1Request:
    """Read a ``:predict`` body for a model whose input signature is ``schema``.

    Raises:
        BadRequest: for a body that is not ``{"instances": [...]}``, no instances, rows of
            mixed kinds, or ragged rows.
    """
    payload = load_json(body)
    if not isinstance(payload, dict) or "instances" not in payload:
        raise BadRequest('The request body must be a JSON object {"instances": [...]}')
    unknown = sorted(set(payload) - set(KEYS))
    if unknown:
        raise BadRequest(
            f"Unknown key(s) {', '.join(map(repr, unknown))}; a V1 request has "
            f"{' and '.join(map(repr, KEYS))}"
        )
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise BadRequest('"instances" must be a list of rows')
    if not instances:
        raise BadRequest("The request holds no rows: send at least one instance")
    params = payload.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadRequest('"parameters" must be a JSON object')
    return V1Request(to_model_input(instances, schema), params or None)


def to_model_input(instances: list[Any], schema: Schema | None) -> Any:
    """The model input for a list of rows (see the module docstring)."""
    import pandas as pd

    records = [isinstance(row, dict) for row in instances]
    tensor_schema = schema is not None and schema.is_tensor_spec()
    if all(records):
        if tensor_schema:
            keys = list(instances[0])
            if any(list(row) != keys for row in instances):
                raise BadRequest("Every instance must have the same keys, in the same order")
            return {key: _array([row[key] for row in instances], key) for key in keys}
        return pd.DataFrame.from_records(instances)
    if any(records):
        raise BadRequest("Instances must be all objects or all lists/values, not a mix")
    if schema is not None and not tensor_schema and schema.has_input_names():
        names = [str(n) for n in schema.input_names()]
        if all(isinstance(row, list) and len(row) == len(names) for row in instances):
            return pd.DataFrame(instances, columns=names)
    return _array(instances, None)


def _array(values: list[Any], name: str | None) -> Any:
    import numpy as np

    try:
        return np.asarray(values)
    except ValueError:
        where = f" of {name!r}" if name else ""
        raise BadRequest(f"The instances{where} are ragged: rows of different lengths") from None


def encode_response(predictions: Any) -> bytes:
    """``{"predictions": [...]}``."""
    return json.dumps({"predictions": jsonable(predictions)}, allow_nan=False).encode()


__all__ = ["V1Request", "decode_request", "encode_response", "to_model_input"]
