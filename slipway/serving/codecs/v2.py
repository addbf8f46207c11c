"""The Open Inference Protocol (V2) REST API: typed tensors in, typed tensors out.

A request names its tensors, each with ``name``, ``shape``, ``datatype`` and ``data`` (flat in
row-major order, or nested as the shape says), optional request ``parameters`` (passed to the
model's ``predict`` as params, less the protocol's own keys) and optional requested
``outputs``. The answer is ``{"model_name", "model_version", "id", "outputs": [...]}``.

Tensor data may also travel as raw bytes after the JSON header (the ``binary_tensor_data``
extension that Triton's clients use by default): the ``Inference-Header-Content-Length``
header gives the JSON part's size, and each binary tensor its ``binary_data_size``.

Tensors meet the model's signature as follows: a column-based signature gets a DataFrame with
one column per tensor (a single tensor whose name is not a column passes as an array of rows);
a tensor-based one with names gets a dict of arrays; otherwise a single tensor passes as an
array. Predictions go back as one output per DataFrame column or dict key, or one output named
after the signature's single output (``predict`` when it has no name).
"""

from __future__ import annotations

import math
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from slipway.exceptions import BadRequest
from slipway.serving.codecs import load_json

if TYPE_CHECKING:
    from slipway.models._schema import Schema

Array = np.ndarray[Any, Any]

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("bool"),
    "UINT8": np.dtype("uint8"),
    "UINT16": np.dtype("uint16"),
    "UINT32": np.dtype("uint32"),
    "UINT64": np.dtype("uint64"),
    "INT8": np.dtype("int8"),
    "INT16": np.dtype("int16"),
    "INT32": np.dtype("int32"),
    "INT64": np.dtype("int64"),
    "FP16": np.dtype("float16"),
    "FP32": np.dtype("float32"),
    "FP64": np.dtype("float64"),
    "BYTES": np.dtype("object"),
}
"""Each datatype of the protocol and the numpy dtype it becomes (BYTES: Python strings)."""

_KINDS = {"BOOL": "b", "BYTES": "U"}  # numpy kinds JSON data may have; ints and floats below
_INT_KINDS = "iu"
_FLOAT_KINDS = "iuf"
RESERVED_PARAMETERS = frozenset(
    {
        "binary_data_output",
        "binary_data",
        "binary_data_size",
        "priority",
        "timeout",
        "sequence_id",
        "sequence_start",
        "sequence_end",
        "headers",
    }
)
"""Request parameters that belong to the protocol, not to the model."""
DEFAULT_OUTPUT = "predict"
HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ("binary_tensor_data",)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class V2Request:
    """A decoded inference request.

    Attributes:
        id: the request's ``id`` (echoed in the response), or None.
        inputs: tensor name -> array, in request order.
        parameters: the request parameters meant for the model (None when there are none).
        outputs: the requested outputs in order, or None for all of them.
        binary_output: whether outputs not requested by name go back as binary data.
    """

    id: str | None
    inputs: dict[str, Array]
    parameters: dict[str, Any] | None
    outputs: list[RequestedOutput] | None
    binary_output: bool


# -- requests ----------------------------------------------------------------------------------


def decode_request(body: bytes, header_length: str | None = None) -> V2Request:
    """Read an inference request; ``header_length`` is the ``Inference-Header-Content-Length``
    header (None when the body is JSON only).

    Raises:
        BadRequest: naming the tensor and the problem (datatype, shape, data) for bad input.
    """
    json_part, binary = _split_body(body, header_length)
    payload = load_json(json_part)
    if not isinstance(payload, dict):
        raise BadRequest('The inference request must be a JSON object with "inputs"')
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('The inference request needs "inputs": a non-empty list of tensors')
    tensors: dict[str, Array] = {}
    offset = 0
    for index, spec in enumerate(inputs):
        name, array, used = _decode_tensor(spec, index, binary, offset)
        if name in tensors:
            raise BadRequest(f"Input tensor {name!r} is given twice")
        tensors[name] = array
        offset += used
    if offset != len(binary):
        raise BadRequest(
            f"The request carries {len(binary) - offset} bytes of binary data that no input's "
            "binary_data_size accounts for"
        )
    parameters = _object(payload.get("parameters"), "parameters")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest('"id" must be a string')
    model_params = {k: v for k, v in parameters.items() if k not in RESERVED_PARAMETERS}
    binary_output = parameters.get("binary_data_output") is True
    return V2Request(
        id=request_id,
        inputs=tensors,
        parameters=model_params or None,
        outputs=_requested_outputs(payload.get("outputs"), binary_output),
        binary_output=binary_output,
    )


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        size = -1
    if not 0 <= size <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length {header_length!r} is not a size within the "
            f"{len(body)}-byte body"
        )
    return body[:size], body[size:]


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f'"{what}" must be a JSON object')
    return value


def _requested_outputs(value: Any, binary_default: bool) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequest('"outputs" must be a list of {"name": ...} objects')
    requested = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest('Each requested output must be an object with a string "name"')
        params = _object(item.get("parameters"), f"parameters of output {item['name']!r}")
        binary = params.get("binary_data", binary_default)
        requested.append(RequestedOutput(item["name"], binary is True))
    return requested


def _decode_tensor(spec: Any, index: int, binary: bytes, offset: int) -> tuple[str, Array, int]:
    """``(name, array, binary bytes used)`` of the request's ``index``-th input tensor."""
    if not isinstance(spec, dict):
        raise BadRequest(f"Input {index} must be an object with name, shape, datatype and data")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"Input {index} needs a non-empty string 'name'")
    label = f"Input tensor {name!r}"
    shape = _shape(spec.get("shape"), label)
    datatype = spec.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequest(
            f"{label} has datatype {datatype!r}; the protocol's datatypes are "
            f"{', '.join(DATATYPES)}"
        )
    params = _object(spec.get("parameters"), f"parameters of {label}")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"{label}: binary_data_size must be a non-negative integer")
        if offset + size > len(binary):
            raise BadRequest(f"{label}: binary_data_size {size} runs past the end of the body")
        chunk = binary[offset : offset + size]
        return name, _from_binary(chunk, datatype, shape, label), size
    if "data" not in spec:
        raise BadRequest(f"{label} has no 'data'")
    return name, _from_json(spec["data"], datatype, shape, label), 0


def _shape(value: Any, label: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise BadRequest(f"{label} needs 'shape': a list of non-negative integers, got {value!r}")
    return tuple(value)


def _fit_shape(array: Array, shape: tuple[int, ...], label: str) -> Array:
    expected = math.prod(shape)
    if array.size != expected:
        raise BadRequest(
            f"{label} has shape {list(shape)} ({expected} elements) but {array.size} data elements"
        )
    return array.reshape(shape)


def _from_json(data: Any, datatype: str, shape: tuple[int, ...], label: str) -> Array:
    dtype = DATATYPES[datatype]
    if not isinstance(data, list):
        data = [data]
    try:
        raw = np.asarray(data, dtype=object if datatype == "BYTES" else None)
    except ValueError:
        raise BadRequest(f"{label}: 'data' is a ragged nested list") from None
    if raw.size == 0:
        return _fit_shape(np.empty(0, dtype=dtype), shape, label)
    if datatype == "BYTES":
        flat = raw.reshape(-1)
        if not all(isinstance(item, str) for item in flat):
            raise BadRequest(f"{label} is BYTES, so its data must be strings")
        return _fit_shape(flat, shape, label)
    allowed = _KINDS.get(datatype) or (_FLOAT_KINDS if datatype.startswith("FP") else _INT_KINDS)
    if dtype.kind in _INT_KINDS and raw.dtype.kind not in allowed:
        raw = _big_ints(data, raw)
    if raw.dtype.kind not in allowed:
        found = {"U": "strings", "O": "nulls or mixed values", "f": "fractional numbers"}
        raise BadRequest(
            f"{label} is {datatype}, but its data holds {found.get(raw.dtype.kind, raw.dtype.name)}"
        )
    if dtype.kind in _INT_KINDS:
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise BadRequest(f"{label}: a value is out of the range of {datatype}")
    return _fit_shape(raw.astype(dtype), shape, label)


def _big_ints(data: Any, raw: Array) -> Array:
    """Integers beyond int64 (UINT64 data) that numpy read as floats or objects, as uint64;
    ``raw`` itself when the data holds anything else."""
    try:
        exact = np.asarray(data, dtype=object).reshape(-1)
    except ValueError:
        return raw
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64 for v in exact):
        return raw
    return exact.astype(np.uint64)


def _from_binary(chunk: bytes, datatype: str, shape: tuple[int, ...], label: str) -> Array:
    if datatype == "BYTES":
        items: list[str] = []
        position = 0
        while position < len(chunk):
            if position + 4 > len(chunk):
                raise BadRequest(f"{label}: truncated BYTES element length")
            (length,) = struct.unpack_from("<I", chunk, position)
            start, position = position + 4, position + 4 + length
            if position > len(chunk):
                raise BadRequest(f"{label}: a BYTES element runs past its binary data")
            items.append(chunk[start:position].decode("utf-8", errors="replace"))
        return _fit_shape(np.asarray(items, dtype=object), shape, label)
    dtype = DATATYPES[datatype].newbyteorder("<")
    if len(chunk) % dtype.itemsize:
        raise BadRequest(f"{label}: {len(chunk)} bytes is not a whole number of {datatype}")
    return _fit_shape(
        np.frombuffer(chunk, dtype=dtype).astype(dtype.newbyteorder("=")), shape, label
    )


# -- tensors to model input --------------------------------------------------------------------


def to_model_input(inputs: Mapping[str, Array], schema: Schema | None) -> Any:
    """The model input for ``inputs`` as the model's input ``schema`` expects it (see the
    module docstring).

    Raises:
        BadRequest: for tensors that cannot be put together (different row counts, several
            tensors for a model that takes one).
    """
    arrays = dict(inputs)
    if schema is not None and schema.is_tensor_spec():
        return _tensor_input(arrays, schema)
    names = (
        {str(n) for n in schema.input_names()}
        if schema is not None and schema.has_input_names()
        else set()
    )
    if len(arrays) == 1:
        name, array = next(iter(arrays.items()))
        if name not in names and (schema is not None or array.ndim != 1):
            return array
    return _frame(arrays)


def _tensor_input(arrays: dict[str, Array], schema: Schema) -> Any:
    if not schema.has_input_names():
        if len(arrays) != 1:
            raise BadRequest(f"The model takes one unnamed tensor; the request has {len(arrays)}")
        return next(iter(arrays.values()))
    if len(arrays) == 1 and len(schema.inputs) == 1:
        return {str(schema.input_names()[0]): next(iter(arrays.values()))}
    return arrays


def _frame(arrays: dict[str, Array]) -> Any:
    import pandas as pd

    rows = {int(a.shape[0]) if a.ndim else 1 for a in arrays.values()}
    if len(rows) > 1:
        raise BadRequest(
            "The input tensors have different first dimensions "
            f"({', '.join(f'{n}: {a.shape[0] if a.ndim else 1}' for n, a in arrays.items())}), "
            "so they cannot be columns of one table"
        )
    return pd.DataFrame({name: _column(array) for name, array in arrays.items()})


def _column(array: Array) -> Any:
    if array.ndim == 0:
        return array.reshape(1)
    if array.ndim == 1:
        return array
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    return list(array)  # one array per row, for array-typed columns


# -- predictions to output tensors -------------------------------------------------------------


@dataclass(frozen=True)
class OutputTensor:
    name: str
    array: Array
    datatype: str


def to_outputs(predictions: Any, schema: Schema | None) -> list[OutputTensor]:
    """One output tensor per DataFrame column or dict key, or a single one named after the
    model's single named output (``predict`` otherwise)."""
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        items = [(str(c), _column_array(predictions[c])) for c in predictions.columns]
    elif isinstance(predictions, Mapping):
        items = [(str(k), _as_array(v)) for k, v in predictions.items()]
    elif isinstance(predictions, pd.Series):
        name = predictions.name if predictions.name is not None else _default_name(schema)
        items = [(str(name), _column_array(predictions))]
    else:
        items = [(_default_name(schema), _as_array(predictions))]
    return [OutputTensor(name, *_typed(array)) for name, array in items]


def _default_name(schema: Schema | None) -> str:
    if schema is not None and len(schema.inputs) == 1 and schema.inputs[0].name is not None:
        return str(schema.inputs[0].name)
    return DEFAULT_OUTPUT


def _as_array(value: Any) -> Array:
    array = np.asarray(value)
    if array.dtype.kind == "O" and array.size:
        try:
            inferred = np.asarray(array.tolist())
        except ValueError:
            return array
        if inferred.dtype.kind in "biuf":
            return inferred
    return array


def _column_array(series: Any) -> Array:
    values: Array = series.to_numpy()
    if (
        values.dtype.kind == "O"
        and len(values)
        and all(isinstance(v, list | tuple | np.ndarray) for v in values)
    ):
        try:
            return np.asarray([np.asarray(v) for v in values])
        except ValueError:
            return values
    return _as_array(values)


def _typed(array: Array) -> tuple[Array, str]:
    for name, dtype in DATATYPES.items():
        if name != "BYTES" and array.dtype == dtype:
            return array, name
    if array.dtype.kind == "f":  # float128 and other widths
        return array.astype(np.float64), "FP64"
    return array.astype(object), "BYTES"


def select_outputs(
    outputs: Sequence[OutputTensor], requested: Sequence[RequestedOutput] | None
) -> list[OutputTensor]:
    """The requested outputs, in the order requested (all of them when None).

    Raises:
        BadRequest: naming a requested output that the model does not give.
    """
    if requested is None:
        return list(outputs)
    by_name = {o.name: o for o in outputs}
    unknown = [r.name for r in requested if r.name not in by_name]
    if unknown:
        raise BadRequest(
            f"Unknown output(s) requested: {', '.join(map(repr, unknown))}; the model gives "
            f"{', '.join(map(repr, by_name))}"
        )
    return [by_name[r.name] for r in requested]


def encode_response(
    model_name: str,
    model_version: str | None,
    request: V2Request,
    outputs: Sequence[OutputTensor],
) -> tuple[bytes, int | None]:
    """``(body, JSON header length)``: the length is None for a JSON-only body, else the
    value of the response's ``Inference-Header-Content-Length``."""
    import json

    wanted = {r.name: r.binary for r in request.outputs or ()}
    tensors: list[dict[str, Any]] = []
    buffers: list[bytes] = []
    for output in outputs:
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.array.shape),
        }
        if wanted.get(output.name, request.binary_output):
            raw = _to_binary(output)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            buffers.append(raw)
        else:
            tensor["data"] = _flat_json(output)
        tensors.append(tensor)
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version or "",
        "id": request.id if request.id is not None else uuid.uuid4().hex,
        "outputs": tensors,
    }
    header = json.dumps(response, allow_nan=False).encode()
    if not buffers:
        return header, None
    return header + b"".join(buffers), len(header)


def _flat_json(output: OutputTensor) -> list[Any]:
    flat = output.array.reshape(-1)
    if output.datatype == "BYTES":
        return [_text(item) for item in flat]
    values: list[Any] = flat.tolist()
    if output.datatype.startswith("FP") and not np.isfinite(flat).all():
        return [v if math.isfinite(v) else None for v in values]
    return values


def _text(item: Any) -> str:
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    if isinstance(item, np.datetime64):
        return str(np.datetime_as_string(item))
    return item if isinstance(item, str) else str(item)


def _to_binary(output: OutputTensor) -> bytes:
    flat = output.array.reshape(-1)
    if output.datatype != "BYTES":
        return flat.astype(flat.dtype.newbyteorder("<")).tobytes()
    parts = []
    for item in flat:
        raw = item if isinstance(item, bytes) else _text(item).encode()
        parts.append(struct.pack("<I", len(raw)) + raw)
    return b"".join(parts)


# -- metadata ----------------------------------------------------------------------------------


def tensor_metadata(schema: Schema | None, default_name: str) -> list[dict[str, Any]]:
    """``[{"name", "datatype", "shape"}]`` for a signature's inputs or outputs."""
    from slipway.models._schema import TensorSpec
    from slipway.models._types import DataType

    if schema is None:
        return []
    described = []
    for index, spec in enumerate(schema.inputs):
        name = (
            str(spec.name)
            if spec.name is not None
            else (default_name if len(schema.inputs) == 1 else f"{default_name}-{index}")
        )
        if isinstance(spec, TensorSpec):
            _, datatype = _typed(np.empty(0, dtype=spec.dtype))
            shape = list(spec.shape)
        elif isinstance(spec.type, DataType) and spec.type.to_numpy().kind in "biuf":
            datatype, shape = _typed(np.empty(0, spec.type.to_numpy()))[1], [-1]
        else:  # strings, bytes, dates and nested types travel as BYTES
            datatype, shape = "BYTES", [-1]
        described.append({"name": name, "datatype": datatype, "shape": shape})
    return described


__all__ = [
    "DATATYPES",
    "DEFAULT_OUTPUT",
    "EXTENSIONS",
    "HEADER_LENGTH",
    "OutputTensor",
    "RequestedOutput",
    "V2Request",
    "decode_request",
    "encode_response",
    "select_outputs",
    "tensor_metadata",
    "to_model_input",
    "to_outputs",
]
