"""Input examples saved with a model, in the files and format MLflow 3 uses.

An example goes into two files in the model directory:

- ``input_example.json``: the example itself. A DataFrame is written in pandas' ``split``
  orientation without the index (``{"columns": [...], "data": [[...], ...]}``; ``columns`` is
  left out for a default ``0..n-1`` header), a numpy array as nested lists, a dict of arrays as
  a dict of nested lists, anything else (dicts, lists, scalars) as JSON. With parameters, the
  file holds ``{"inputs": <example>, "params": {...}}``.
- ``serving_input_example.json``: a request body for the scoring server, indented:
  ``{"dataframe_split": ...}`` for DataFrames, ``{"inputs": ...}`` otherwise, plus
  ``"params"``; chat/completions/embeddings dicts (``messages``/``prompt``/``input`` keys) are
  written as they are.

:func:`save_input_example` returns the ``saved_input_example_info`` mapping that ``MLmodel``
records (``artifact_path``, ``type`` = ``dataframe`` | ``ndarray`` | ``json_object`` |
``sparse_matrix_csr`` | ``sparse_matrix_csc``, ``pandas_orient``, ``serving_input_path``,
``params``); :func:`load_input_example` reads an example back from that mapping, whichever
tool wrote it. Bytes are stored base64-encoded, numpy values as Python ones, datetimes as ISO
8601 strings, NaN in arrays as ``null``: all as MLflow does.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slipway.artifacts.paths import resolve_within
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.models._infer import infer_param_schema
from slipway.models._schema import ColSpec, Schema, TensorSpec
from slipway.models._types import DataType

__all__ = [
    "EXAMPLE_FILENAME",
    "SERVING_INPUT_FILENAME",
    "load_input_example",
    "load_input_example_params",
    "save_input_example",
    "split_input_example",
]

EXAMPLE_FILENAME = "input_example.json"
SERVING_INPUT_FILENAME = "serving_input_example.json"

_TYPES = ("dataframe", "ndarray", "json_object", "sparse_matrix_csc", "sparse_matrix_csr")
# Top-level keys of the chat, completions and embeddings request bodies, which the scoring
# server takes unwrapped.
_LLM_KEYS = frozenset({"messages", "prompt", "input"})


def split_input_example(example: Any) -> tuple[Any, dict[str, Any] | None]:
    """``(data, params)``: a ``(data, dict)`` pair carries inference parameters, as in MLflow.

    Raises:
        InvalidParameterValue: when a parameter value has no parameter type.
    """
    if isinstance(example, tuple) and len(example) == 2 and isinstance(example[1], dict):
        data, params = example
        infer_param_schema(params)
        return data, params or None
    return example, None


def save_input_example(model_dir: Path, example: Any) -> dict[str, Any]:
    """Write ``example`` (optionally a ``(data, params)`` pair) into ``model_dir``.

    Returns:
        the ``saved_input_example_info`` mapping for ``MLmodel``.

    Raises:
        InvalidParameterValue: when the example is of no supported kind or holds values that
            JSON cannot carry; nothing is written then.
    """
    data, params = split_input_example(example)
    info: dict[str, Any] = {"artifact_path": EXAMPLE_FILENAME}
    if params:
        info["params"] = "true"
    kind, stored, serving, extra = _encode(data)
    info["type"] = kind
    info.update(extra)
    if params:
        stored = {"inputs": stored, "params": params}
        unwrapped = isinstance(data, dict) and kind == "json_object" and _is_llm_request(data)
        serving = {**serving, **params} if unwrapped else {**serving, "params": params}
    example_json = _dumps(stored)
    serving_json = _dumps(serving, indent=2)
    info["serving_input_path"] = SERVING_INPUT_FILENAME
    model_dir = Path(model_dir)
    (model_dir / EXAMPLE_FILENAME).write_text(example_json, encoding="utf-8")
    (model_dir / SERVING_INPUT_FILENAME).write_text(serving_json, encoding="utf-8")
    return info


def _encode(data: Any) -> tuple[str, Any, dict[str, Any], dict[str, str]]:
    """``(type, stored form, serving body, extra info)`` for one example."""
    if isinstance(data, pd.DataFrame):
        split = _frame_to_split(data)
        orient = "split" if "columns" in split else "values"
        return "dataframe", split, {"dataframe_split": split}, {"pandas_orient": orient}
    if isinstance(data, dict):
        arrays = [isinstance(value, np.ndarray) for value in data.values()]
        if any(arrays) and not all(arrays):
            raise InvalidParameterValue(
                "Mixed types in dictionary are not supported as input examples. "
                "Found numpy arrays and other types."
            )
        if any(arrays):
            tensors = {name: _array_to_lists(value) for name, value in data.items()}
            return "ndarray", tensors, {"inputs": tensors}, {}
        serving = data if _is_llm_request(data) else {"inputs": data}
        return "json_object", data, serving, {}
    if isinstance(data, np.ndarray):
        lists = _array_to_lists(data)
        return "ndarray", lists, {"inputs": lists}, {}
    if isinstance(data, list):
        if _holds_array(data):
            raise InvalidParameterValue(
                "Numpy arrays in lists are not supported as input examples; pass the array "
                "itself, or a dict of arrays."
            )
        return "json_object", data, {"inputs": data}, {}
    if _is_sparse(data):
        stored = {
            "data": _array_to_lists(data.data),
            "indices": data.indices.tolist(),
            "indptr": data.indptr.tolist(),
            "shape": list(data.shape),
        }
        return f"sparse_matrix_{data.format}", stored, {"inputs": data.toarray()}, {}
    if np.isscalar(data) or isinstance(data, dt.datetime):
        return "json_object", data, {"inputs": data}, {}
    raise InvalidParameterValue(
        "An input example must be a pandas DataFrame, a numpy array, a dict of numpy arrays, "
        "a scipy CSR/CSC matrix, a dict, a list, a scalar or a datetime, "
        f"got {type(data).__name__}"
    )


def _frame_to_split(frame: pd.DataFrame) -> dict[str, Any]:
    """The split orientation without the index; missing values as ``None`` where the column
    can hold it; the header left out when it is the default ``0..n-1``."""
    split = frame.where(frame.notnull(), None).to_dict(orient="split")
    del split["index"]
    header: list[Any] = list(frame.columns)
    if header == list(range(len(header))):
        del split["columns"]
    return split


def _array_to_lists(array: np.ndarray[Any, Any]) -> Any:
    """Nested lists, with NaN in numeric arrays turned into ``None`` (JSON ``null``)."""
    if np.issubdtype(array.dtype, np.number):
        return np.where(np.isnan(array), np.array(None), array).tolist()
    return array.tolist()


def _holds_array(data: Any) -> bool:
    if isinstance(data, np.ndarray):
        return True
    if isinstance(data, list):
        return any(_holds_array(item) for item in data)
    if isinstance(data, dict):
        return any(_holds_array(item) for item in data.values())
    return False


def _is_llm_request(data: dict[Any, Any]) -> bool:
    return any(key in data for key in _LLM_KEYS)


def _is_sparse(data: object) -> bool:
    return type(data).__module__.startswith("scipy.sparse") and getattr(data, "format", None) in (
        "csr",
        "csc",
    )


class _ExampleEncoder(json.JSONEncoder):
    """Numpy, pandas, bytes and datetime values as JSON, converted the way MLflow converts
    them (so the files match byte for byte)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, np.ndarray):
            if o.dtype == object:
                return [self._plain(item) for item in o.tolist()]
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, bytes | bytearray):
            return base64.encodebytes(o).decode("ascii")
        if isinstance(o, pd.Timestamp | dt.date | dt.datetime | dt.time):
            return o.isoformat()
        return super().default(o)

    def _plain(self, item: Any) -> Any:
        try:
            return self.default(item)
        except TypeError:
            return item


def _dumps(value: Any, indent: int | None = None) -> str:
    try:
        return json.dumps(value, cls=_ExampleEncoder, indent=indent)
    except (TypeError, ValueError) as error:
        raise InvalidParameterValue(
            f"The input example cannot be written as JSON: {error}"
        ) from None


def load_input_example(model_dir: Path, info: dict[str, Any], schema: Schema | None = None) -> Any:
    """Read back the example that ``info`` (``MLmodel``'s ``saved_input_example_info``) names.

    Returns a DataFrame, a numpy array, a dict of arrays, a scipy sparse matrix or the JSON
    value, by the example's type. Given the model's input ``schema``, columns and tensors are
    cast to their declared types (binary columns base64-decoded, datetimes parsed), as MLflow
    does.

    Raises:
        InvalidParameterValue: when ``info`` is malformed, names a path outside ``model_dir``,
            or the file is not a valid example of its type.
        ResourceDoesNotExist: when the example file is missing.
    """
    kind = info.get("type") if isinstance(info, dict) else None
    if kind not in _TYPES:
        raise InvalidParameterValue(
            f"Malformed input example info {info!r}: 'type' must be one of {list(_TYPES)}"
        )
    stored = _read_stored(model_dir, info)
    if info.get("params"):
        stored = stored["inputs"] if isinstance(stored, dict) and "inputs" in stored else stored
    try:
        if kind == "json_object":
            return stored
        if kind == "ndarray":
            return _arrays_from_json(stored, schema)
        if kind == "dataframe":
            return _frame_from_json(stored, schema)
        return _sparse_from_json(stored, kind)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise InvalidParameterValue(
            f"The input example is not a valid {kind} example: {error}"
        ) from None


def load_input_example_params(model_dir: Path, info: dict[str, Any]) -> dict[str, Any] | None:
    """The parameters saved with the example, or None when it was saved without any."""
    if not isinstance(info, dict) or not info.get("params"):
        return None
    stored = _read_stored(model_dir, info)
    params = stored.get("params") if isinstance(stored, dict) else None
    if not isinstance(params, dict):
        raise InvalidParameterValue("The input example file holds no 'params' mapping")
    return params


def _read_stored(model_dir: Path, info: dict[str, Any]) -> Any:
    relative = info.get("artifact_path")
    if not isinstance(relative, str) or not relative:
        raise InvalidParameterValue(
            f"Malformed input example info {info!r}: 'artifact_path' must be a relative path"
        )
    path = resolve_within(Path(model_dir), relative)
    if not path.is_file():
        raise ResourceDoesNotExist(f"Input example file {relative!r} not found in the model")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidParameterValue(f"Cannot read input example {relative!r}: {error}") from None


def _arrays_from_json(stored: Any, schema: Schema | None) -> Any:
    specs = _tensor_dtypes(schema)
    if isinstance(stored, dict):
        return {name: np.array(value, dtype=specs.get(name)) for name, value in stored.items()}
    dtype = specs.get(None) if len(specs) != 1 else next(iter(specs.values()))
    return np.array(stored, dtype=dtype)


def _tensor_dtypes(schema: Schema | None) -> dict[str | None, Any]:
    if schema is None or not schema.is_tensor_spec():
        return {}
    return {spec.name: spec.dtype for spec in schema if isinstance(spec, TensorSpec)}


def _frame_from_json(stored: Any, schema: Schema | None) -> pd.DataFrame:
    if not isinstance(stored, dict) or "data" not in stored:
        raise ValueError("expected a mapping with 'data' (and optionally 'columns')")
    frame = pd.DataFrame(data=stored["data"], columns=stored.get("columns"))
    if schema is None or schema.is_tensor_spec():
        return frame
    labels = list(frame.columns) if not schema.has_input_names() else None
    for position, spec in enumerate(schema):
        label = (
            spec.name if labels is None else labels[position] if position < len(labels) else None
        )
        if isinstance(spec, ColSpec) and label in frame.columns:
            frame[label] = _cast_column(frame[label], spec)
    return frame


def _cast_column(column: pd.Series[Any], spec: ColSpec) -> pd.Series[Any]:
    if spec.type is DataType.binary:
        return column.map(
            lambda x: base64.decodebytes(x.encode("ascii")) if isinstance(x, str) else x
        )
    if spec.type is DataType.datetime:
        return pd.to_datetime(column)
    if isinstance(spec.type, DataType) and spec.type is not DataType.string:
        return column.astype(spec.type.to_numpy())
    return column


def _sparse_from_json(stored: Any, kind: str) -> Any:
    sparse: Any = importlib.import_module("scipy.sparse")  # only sparse examples need scipy
    matrix = sparse.csc_matrix if kind == "sparse_matrix_csc" else sparse.csr_matrix
    parts = (stored["data"], stored["indices"], stored["indptr"])
    return matrix(parts, shape=tuple(stored["shape"]))
