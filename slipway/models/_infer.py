"""Schemas inferred from example data, following MLflow's rules so that both tools infer the
same signature from the same data.

- ``pandas.DataFrame`` / ``Series``: one column spec per column, typed from the dtype (object
  columns from their values); a column holding ``None``/NaN is optional.
- ``numpy.ndarray``: one unnamed tensor, first dimension free (``-1``).
- ``dict`` of arrays: named tensors. Any other ``dict``: one named column per key (lists become
  ``Array`` columns, dicts ``Object`` columns, ``None`` an optional ``any`` column).
- ``list`` of dicts: records; one column per key, optional where a record lacks it or holds
  ``None``. Any other ``list``: one unnamed column typed by its items.
- a scalar or string: one unnamed column of that type.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import numpy as np
import pandas as pd

from slipway.exceptions import InvalidParameterValue
from slipway.models._schema import ColSpec, ColumnName, ParamSchema, ParamSpec, Schema, TensorSpec
from slipway.models._types import (
    AnyType,
    Array,
    ColumnType,
    DataType,
    Object,
    Property,
    is_missing,
    merge_types,
)

__all__ = ["infer_param_schema", "infer_schema"]

_log = logging.getLogger(__name__)

_MULTIPLE_TYPES = (
    "Expected all values in the list to be of the same type; declare a signature with "
    "Array(AnyType()) by hand for lists that mix types"
)


def infer_schema(data: Any) -> Schema:
    """The schema MLflow would infer for ``data``.

    Raises:
        InvalidParameterValue: when ``data`` is of no supported kind, or its values cannot be
            given one type (a list mixing numbers and strings, a ``uint64`` column, ...).
    """
    if isinstance(data, list) and not data:
        return Schema([ColSpec(DataType.string)])  # MLflow's choice, kept for compatibility
    schema = _infer(data)
    if not schema.is_tensor_spec() and any(
        t in (DataType.integer, DataType.long) for t in schema.input_types()
    ):
        _log.info(
            "The inferred schema has integer columns. Integer columns cannot hold missing "
            "values; if the data may have them, declare those columns as double instead."
        )
    return schema


def _infer(data: Any) -> Schema:
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return _infer_records(data)
    if isinstance(data, dict):
        if all(isinstance(value, np.ndarray) for value in data.values()):
            return Schema([_tensor_spec(array, name) for name, array in data.items()])
        if not all(isinstance(key, str) for key in data):
            raise InvalidParameterValue("The dictionary keys are not all strings.")
        return Schema([ColSpec(_value_type(v), name, _all_present(v)) for name, v in data.items()])
    if isinstance(data, pd.Series):
        name = _column_name(data.name)
        return Schema([ColSpec(_pandas_column_type(data), name, _all_present(data))])
    if isinstance(data, pd.DataFrame):
        return Schema(
            [
                ColSpec(_pandas_column_type(data[c]), _column_name(c), _all_present(data[c]))
                for c in data.columns
            ]
        )
    if isinstance(data, np.ndarray) or _is_sparse(data):
        return Schema([_tensor_spec(data)])
    if isinstance(data, list):
        return Schema([ColSpec(_item_type(_list_type(data)))])
    return Schema([ColSpec(_value_type(data))])


def _column_name(label: object) -> ColumnName | None:
    """A pandas label as a schema name: strings and integers as they are (MLflow writes a
    ``pd.DataFrame(array)``'s integer labels as JSON integers), anything else as text."""
    if label is None or isinstance(label, str):
        return label
    if isinstance(label, int | np.integer) and not isinstance(label, bool | np.bool_):
        return int(label)
    return str(label)


def _infer_records(records: list[dict[str, Any]]) -> Schema:
    columns: dict[str, list[Any]] = {}
    for record in records:
        for key, value in record.items():
            columns.setdefault(key, []).append(value)
    return Schema(
        [
            ColSpec(
                _item_type(_list_type(values)),
                name,
                all(record.get(name) is not None for record in records),
            )
            for name, values in columns.items()
        ]
    )


def _item_type(array: ColumnType | None) -> ColumnType:
    """The item type of a list's inferred ``Array``: the column type of a list of values."""
    if isinstance(array, Array):
        return array.dtype
    raise InvalidParameterValue("Cannot infer a type from an empty array")


def _tensor_spec(data: Any, name: str | None = None) -> TensorSpec:
    """A tensor spec with the first dimension free; sparse matrices are typed by their data."""
    dtype = data.data.dtype if _is_sparse(data) else data.dtype
    if not data.shape:
        raise InvalidParameterValue("Cannot infer a tensor spec for a 0-dimensional array")
    return TensorSpec(dtype, (-1, *data.shape[1:]), name)


def _is_sparse(data: object) -> bool:
    """A scipy CSR/CSC matrix, recognised without importing scipy."""
    return type(data).__module__.startswith("scipy.sparse") and getattr(data, "format", None) in (
        "csr",
        "csc",
    )


def _all_present(values: Any) -> bool:
    if isinstance(values, list | pd.Series):
        return not any(is_missing(v) for v in values)
    return not is_missing(values)


def _value_type(value: Any) -> ColumnType:
    """The type of one value: ``None`` and empty containers are ``any``."""
    if is_missing(value) or (isinstance(value, list | dict) and not value):
        return AnyType()
    if isinstance(value, dict):
        properties = []
        for key, item in value.items():
            item_type = _value_type_or_none(item)
            if item_type is None:
                raise InvalidParameterValue("Dictionary value must not be an empty numpy array.")
            properties.append(Property(str(key), item_type, not isinstance(item_type, AnyType)))
        return Object(properties)
    if isinstance(value, list | np.ndarray):
        array = _list_type(value)
        if array is None:
            raise InvalidParameterValue(f"Numpy array must include at least one item: {value!r}")
        return array
    return _scalar_type(value)


def _value_type_or_none(value: Any) -> ColumnType | None:
    """As :func:`_value_type`, but ``None`` for an empty numpy array (type undetermined)."""
    if isinstance(value, np.ndarray) and value.size == 0:
        return _list_type(value)
    return _value_type(value)


def _list_type(values: Sequence[Any] | np.ndarray) -> Array | None:
    """``Array`` of the items' merged type; ``None`` when no item says anything."""
    result: ColumnType | None = None
    for item in values:
        item_type = _value_type_or_none(item)
        if item_type is None:
            continue
        if result is None:
            result = item_type
        elif isinstance(result, DataType):
            if not isinstance(item_type, AnyType) and item_type != result:
                raise InvalidParameterValue(_MULTIPLE_TYPES)
        else:
            try:
                result = merge_types(result, item_type)
            except InvalidParameterValue:
                raise InvalidParameterValue(_MULTIPLE_TYPES) from None
    return None if result is None else Array(result)


def _scalar_type(value: Any) -> DataType:
    if isinstance(value, bool | np.bool_):
        return DataType.boolean
    if isinstance(value, int):
        return DataType.long
    if isinstance(value, float):
        return DataType.double
    if isinstance(value, str):
        return DataType.string
    if isinstance(value, bytes | bytearray):
        return DataType.binary
    if isinstance(value, dt.date | np.datetime64):
        return DataType.datetime
    if isinstance(value, np.generic):
        return numpy_data_type(value.dtype)
    raise InvalidParameterValue(f"Data {value!r} is not one of the supported DataType")


def numpy_data_type(dtype: Any) -> DataType:
    """The :class:`DataType` for a numpy (or pandas extension) dtype, as MLflow maps them."""
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return DataType.boolean
    if kind in "iu" and (size < 4 or (kind == "i" and size == 4)):
        return DataType.integer
    if kind in "iu" and (size < 8 or (kind == "i" and size == 8)):
        return DataType.long
    if kind == "f" and size <= 8:
        return DataType.float if size <= 4 else DataType.double
    types = {"U": DataType.string, "S": DataType.binary, "M": DataType.datetime}
    if kind in types:
        return types[kind]
    raise InvalidParameterValue(f"Unsupported numpy data type '{dtype}', kind '{kind}'")


def _pandas_column_type(column: pd.Series[Any]) -> ColumnType:
    if column.dtype.kind == "O":
        column = column.infer_objects()
    if column.dtype.kind != "O":
        return numpy_data_type(column.dtype)
    try:
        return _item_type(_list_type(column.to_list()))
    except InvalidParameterValue:
        if pd.api.types.is_string_dtype(column):
            return DataType.string  # MLflow's fallback for object columns of mixed strings
        raise


def infer_param_schema(params: dict[str, Any]) -> ParamSchema:
    """The parameter schema for example params: each value's type becomes its spec's type and
    the value its default; lists become 1-D (``shape=(-1,)``) parameters.

    Raises:
        InvalidParameterValue: listing every parameter whose value has no parameter type.
    """
    if not isinstance(params, dict):
        raise InvalidParameterValue(
            f"Expected parameters to be a dict, got {type(params).__name__}"
        )
    specs, invalid = [], []
    for name, value in params.items():
        try:
            dtype, shape = _param_type_and_shape(value)
            specs.append(ParamSpec(str(name), dtype, deepcopy(value), shape))
        except InvalidParameterValue as error:
            invalid.append(f"{name!r}: {error.message}")
    if invalid:
        raise InvalidParameterValue(f"Failed to infer schema for parameters: {invalid}")
    return ParamSchema(specs)


def _param_type_and_shape(value: Any) -> tuple[DataType | Object, tuple[int, ...] | None]:
    if isinstance(value, list | np.ndarray):
        if not all(not isinstance(v, list | np.ndarray) for v in value) or (
            isinstance(value, np.ndarray) and value.ndim != 1
        ):
            raise InvalidParameterValue("Expected parameters to be 1D array or scalar")
        # An empty list passes this test too, so it becomes a datetime list: MLflow's rule.
        if all(_is_datetime(v) for v in value):
            return DataType.datetime, (-1,)
        return numpy_data_type(np.asarray(value).dtype), (-1,)
    if _is_datetime(value):
        return DataType.datetime, None
    if np.isscalar(value):
        return numpy_data_type(np.asarray(value).dtype), None
    if isinstance(value, dict):
        object_type = _value_type(value)
        if isinstance(object_type, Object):
            return object_type, None
    raise InvalidParameterValue(
        f"Expected parameters to be 1D array or scalar, got {type(value).__name__}"
    )


def _is_datetime(value: Any) -> bool:
    return isinstance(value, dt.date | np.datetime64)
