"""Checking data and parameters against a model's signature before ``predict`` sees them.

:func:`enforce_signature` runs both halves: :func:`enforce_schema` for the data and
:func:`enforce_params` for the parameters. What they do follows MLflow's pyfunc, with a few
deliberate differences noted below.

Column-based schemas
    The data becomes a pandas DataFrame: a dict of scalars is one row, a dict of lists is
    columns, a list of dicts is records, and positional data (a numpy array, a list of rows or
    values, an unnamed Series) gets the schema's column names when it has exactly as many
    columns as the schema. A required column that is missing is an error naming it; extra
    columns are dropped, with a log warning. Each column keeps its values if its dtype already
    matches, or is cast when the cast loses nothing: any integer into ``long``/``double``
    (MLflow refuses ``int64`` into ``double``; numpy, and users, call it safe), ``int32`` into
    ``long``, ``float32`` into ``double``. Anything else (floats into integers, ``double`` into
    ``float``, NaN in an integer column, booleans into numbers) is refused naming the column and
    both types. Array, Object and Map columns are checked value by value, never converted;
    ``any`` columns are not checked.

Tensor-based schemas
    Shapes must match (``-1`` dimensions are free); numpy arrays' dtypes must match or cast
    safely. Python lists carry no width, and DataFrame columns only the 64-bit width pandas gives
    every number by default, so their values are checked instead of their dtype: floats fill a
    ``float32`` tensor and ints an ``int32`` one when every value fits, where a ``float64``
    numpy array would be refused. (MLflow casts DataFrame columns without any check.)

Parameters
    Unknown parameters are dropped with a log warning, missing ones get their defaults, and a
    value of the wrong type is an error naming the parameter.

Every failure is an :class:`~slipway.exceptions.InvalidParameterValue`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import numpy as np
import pandas as pd

from slipway.exceptions import InvalidParameterValue
from slipway.models._schema import (
    ColSpec,
    ColumnName,
    ParamSchema,
    Schema,
    TensorSpec,
    coerce_param_value,
)
from slipway.models._types import AnyType, DataType, check_value
from slipway.models.signature import ModelSignature

__all__ = ["enforce_params", "enforce_schema", "enforce_signature"]

_log = logging.getLogger(__name__)


def enforce_signature(
    data: Any, signature: ModelSignature | None, params: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any] | None]:
    """``(data, params)`` checked against ``signature`` and safely converted.

    A model without a signature takes its data as it is, and no parameters (any given are
    dropped with a warning, as MLflow does).

    Raises:
        InvalidParameterValue: when the data or the parameters do not fit the signature.
    """
    if signature is None:
        return data, enforce_params(params, None)
    return enforce_schema(data, signature.inputs), enforce_params(params, signature.params)


def enforce_schema(data: Any, schema: Schema | None) -> Any:
    """``data`` checked against ``schema``: a DataFrame for column-based schemas, an array (or a
    dict of named arrays) for tensor-based ones; ``data`` itself when ``schema`` is None.

    Raises:
        InvalidParameterValue: naming the missing inputs, or the column or tensor that does not
            fit and why.
    """
    if schema is None or _is_catch_all(schema):
        return data
    try:
        if schema.is_tensor_spec():
            return _enforce_tensors(data, schema)
        return _enforce_columns(data, schema)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
        # The checks above mean to catch every bad input; this is the backstop that keeps a
        # surprise from pandas or numpy from reaching the caller as a bare exception.
        raise InvalidParameterValue(f"Input does not fit the model signature: {error}") from None


def enforce_params(
    params: dict[str, Any] | None, schema: ParamSchema | None
) -> dict[str, Any] | None:
    """``params`` checked against ``schema``, unknown ones dropped and defaults filled in.

    Raises:
        InvalidParameterValue: when ``params`` is not a dict, or listing each parameter whose
            value does not fit its spec.
    """
    if schema is None:
        if params:
            _log.warning(
                "The model's signature defines no parameters; ignoring the params given: %s",
                list(params) if isinstance(params, dict) else type(params).__name__,
            )
            return {}
        return params
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParameterValue(
            f"Parameters must be a dictionary. Got type '{type(params).__name__}'."
        )
    given = {str(key): value for key, value in params.items()}
    known = {spec.name for spec in schema}
    if unknown := [key for key in given if key not in known]:
        _log.warning(
            "Unrecognized params %s are ignored for inference. Supported params are: %s.",
            unknown,
            sorted(known),
        )
    enforced: dict[str, Any] = {}
    invalid: list[str] = []
    for spec in schema:
        if spec.name not in given:
            enforced[spec.name] = deepcopy(spec.default)
            continue
        try:
            enforced[spec.name] = coerce_param_value(
                spec.name, given[spec.name], spec.dtype, spec.shape
            )
        except InvalidParameterValue as error:
            invalid.append(error.message)
    if invalid:
        raise InvalidParameterValue(f"Invalid parameters found: {'; '.join(invalid)}")
    return enforced


def _is_catch_all(schema: Schema) -> bool:
    """The ``[{"type": "any"}]`` schema that inference falls back to accepts anything as is."""
    spec = schema.inputs[0]
    return (
        len(schema) == 1
        and spec.name is None
        and isinstance(spec, ColSpec)
        and isinstance(spec.type, AnyType)
    )


# -- column-based schemas ----------------------------------------------------------------------


def _enforce_columns(data: Any, schema: Schema) -> pd.DataFrame:
    frame = _as_frame(data, schema)
    if frame.columns.has_duplicates:
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InvalidParameterValue(f"Input has duplicate columns: {duplicated}")
    if schema.has_input_names():
        return _enforce_named_columns(frame, schema)
    return _enforce_positional_columns(frame, schema)


def _as_frame(data: Any, schema: Schema) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series) and data.name is not None:
        return data.to_frame()
    frame = _to_frame(data, schema)
    if _is_positional(data) and schema.has_input_names() and frame.shape[1] == len(schema):
        frame.columns = pd.Index(schema.input_names())
    return frame


def _to_frame(data: Any, schema: Schema) -> pd.DataFrame:
    if data is None:
        raise InvalidParameterValue("The model needs input data, got None")
    try:
        if isinstance(data, pd.Series):
            return data.to_frame()
        if isinstance(data, dict):
            return _dict_to_frame(data, schema)
        if isinstance(data, np.ndarray):
            if data.ndim > 2:
                raise InvalidParameterValue(
                    f"A {data.ndim}-D array cannot be read as columns; this model's signature "
                    "is column-based"
                )
            return pd.DataFrame(data if data.ndim else [data.item()])
        if isinstance(data, list):
            return pd.DataFrame(data)
        if np.isscalar(data) or isinstance(data, pd.Timestamp):
            return pd.DataFrame([data])
    except ValueError as error:
        raise InvalidParameterValue(
            f"This model has a column-based signature, and the input could not be read as a "
            f"DataFrame: {error}"
        ) from None
    raise InvalidParameterValue(
        f"Expected a DataFrame, or data convertible to one (dict, list, numpy array, scalar), "
        f"got {type(data).__name__}"
    )


def _dict_to_frame(data: dict[Any, Any], schema: Schema) -> pd.DataFrame:
    """One row when the values are scalars (or the schema has nested columns), else columns."""
    nested = any(not isinstance(spec.type, DataType) for spec in schema)
    if nested or all(_is_scalar(v) or _is_str_list(v) for v in data.values()):
        return pd.DataFrame([data])
    return pd.DataFrame(
        {k: v.tolist() if isinstance(v, np.ndarray) and v.ndim > 1 else v for k, v in data.items()}
    )


def _is_scalar(value: Any) -> bool:
    return value is None or bool(np.isscalar(value))


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_positional(data: Any) -> bool:
    """Data whose columns have no names of their own."""
    if isinstance(data, list):
        return not any(isinstance(item, dict) for item in data)
    return isinstance(data, np.ndarray | pd.Series | pd.Timestamp) or bool(np.isscalar(data))


def _enforce_named_columns(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    names = set(schema.input_names())
    present = set(frame.columns)
    missing = [name for name in schema.required_input_names() if name not in present]
    extra = [column for column in frame.columns if column not in names]
    if missing:
        message = f"Model is missing inputs {missing}."
        if extra:
            message += f" Note that there were extra inputs: {extra}."
        raise InvalidParameterValue(message)
    if extra:
        _log.warning(
            "Found extra inputs in the model input that are not defined in the model "
            "signature: %s. These inputs will be ignored.",
            extra,
        )
    specs = [
        (spec.name, spec)
        for spec in schema
        if isinstance(spec, ColSpec) and spec.name is not None and spec.name in present
    ]
    if not extra and _already_conforms(frame, specs):
        return frame  # the common case on a serving path: nothing to convert, nothing copied
    columns = {name: _enforce_column(name, frame[name], spec) for name, spec in specs}
    return pd.DataFrame(columns, index=frame.index)


def _already_conforms(frame: pd.DataFrame, specs: Sequence[tuple[ColumnName, ColSpec]]) -> bool:
    """Whether ``frame`` has exactly the columns of ``specs``, in order, each already of its
    spec's numpy dtype (so enforcement would return every column unchanged)."""
    if list(frame.columns) != [name for name, _ in specs]:
        return False
    for dtype, (_, spec) in zip(frame_dtypes(frame), specs, strict=True):
        if not isinstance(spec.type, DataType) or spec.type in (DataType.string, DataType.binary):
            return False
        if spec.type is DataType.datetime or dtype != spec.type.to_numpy():
            return False
    return True


def frame_dtypes(frame: pd.DataFrame) -> list[Any]:
    """The dtype of each column, in order. Read from the frame's block manager when pandas
    offers it (well under a microsecond, against tens for ``frame.dtypes``, which builds a
    Series: a model server asks on every request); ``frame.dtypes`` otherwise."""
    manager = getattr(frame, "_mgr", None)
    get_dtypes = getattr(manager, "get_dtypes", None)
    if callable(get_dtypes):
        found = list(get_dtypes())
        if len(found) == frame.shape[1]:
            return found
    return list(frame.dtypes)


def _enforce_positional_columns(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    if frame.shape[1] < len(schema):
        raise InvalidParameterValue(
            f"Model inference is missing inputs. The model signature declares {len(schema)} "
            f"inputs but the provided value only has {frame.shape[1]} inputs. Note: the "
            "inputs were not named in the signature so we can only verify their count."
        )
    columns = {
        label: _enforce_column(label, frame[label], spec)
        for label, spec in zip(frame.columns, schema, strict=False)
        if isinstance(spec, ColSpec)
    }
    return pd.DataFrame(columns, index=frame.index)


def _enforce_column(name: ColumnName, values: pd.Series[Any], spec: ColSpec) -> pd.Series[Any]:
    if isinstance(spec.type, DataType):
        return _enforce_data_type(name, values, spec.type)
    for value in values:
        try:
            check_value(value, spec.type, spec.required)
        except InvalidParameterValue as error:
            raise InvalidParameterValue(f"Column {name!r}: {error.message}") from None
    return values


def _enforce_data_type(
    name: ColumnName, values: pd.Series[Any], target: DataType
) -> pd.Series[Any]:
    if values.dtype == object and target not in (DataType.string, DataType.binary):
        values = values.infer_objects()
    text_like = values.dtype == object or isinstance(values.dtype, pd.StringDtype)
    if target is DataType.string and text_like:
        return values
    if target is DataType.binary and (text_like or values.dtype.kind == "S"):
        return values
    if target is DataType.datetime:
        return _enforce_datetime(name, values, text_like)
    if target is DataType.boolean and values.dtype == object:
        _check_objects(name, values, target)  # kept as objects so that None stays None
        return values
    if values.dtype == target.to_numpy():
        return values
    return _cast_numeric(name, values, target)


def _enforce_datetime(name: ColumnName, values: pd.Series[Any], text_like: bool) -> pd.Series[Any]:
    if values.dtype.kind == "M" and getattr(values.dtype, "tz", None) is not None:
        raise InvalidParameterValue(
            f"Column {name!r} holds timezone-aware datetimes; the model expects naive ones "
            "(convert with .dt.tz_convert(None))"
        )
    if values.dtype.kind != "M" and not text_like:
        raise _incompatible(name, values, DataType.datetime)
    try:
        return values.astype(np.dtype("datetime64[ns]"))
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidParameterValue(
            f"Failed to convert column {name!r} from type {values.dtype} to datetime: {error}"
        ) from None


def _check_objects(name: ColumnName, values: pd.Series[Any], target: DataType) -> None:
    for value in values:
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            try:
                check_value(value, target)
            except InvalidParameterValue as error:
                raise InvalidParameterValue(f"Column {name!r}: {error.message}") from None


def _cast_numeric(name: ColumnName, values: pd.Series[Any], target: DataType) -> pd.Series[Any]:
    source = _numpy_dtype(values)
    wanted = target.to_numpy()
    if source is None:
        raise _incompatible(name, values, target)
    if wanted.kind in "iu" and values.hasnans:
        raise _incompatible(name, values, target, nan=True)
    if source == wanted and wanted.kind == "b" and values.hasnans:
        return values  # a nullable boolean column keeps its missing values
    if source == wanted or _safe_cast(source, wanted) or _zero_one_int64(values, source, wanted):
        return values.astype(wanted)
    raise _incompatible(name, values, target)


def _numpy_dtype(values: pd.Series[Any]) -> np.dtype[Any] | None:
    """The numpy dtype behind a column (``int64`` for pandas' nullable ``Int64``), if any."""
    try:
        dtype: Any = getattr(values.dtype, "numpy_dtype", values.dtype)
        resolved: np.dtype[Any] = np.dtype(dtype)
    except TypeError:  # categorical, period, interval, ...
        return None
    return resolved


def _safe_cast(source: np.dtype[Any], wanted: np.dtype[Any]) -> bool:
    """Numeric casts that lose nothing; booleans never turn into numbers."""
    return source.kind in "iuf" and wanted.kind in "iuf" and np.can_cast(source, wanted, "safe")


def _zero_one_int64(values: pd.Series[Any], source: np.dtype[Any], wanted: np.dtype[Any]) -> bool:
    """MLflow lets an int64 column of 0s and 1s (a label, a flag) into a float column."""
    return source == np.int64 and wanted.kind == "f" and bool(values.isin([0, 1]).all())


def _incompatible(
    name: ColumnName, values: pd.Series[Any], target: DataType, nan: bool = False
) -> InvalidParameterValue:
    wanted = (
        target.to_numpy() if target.name not in ("string", "binary", "datetime") else target.name
    )
    message = (
        f"Incompatible input types for column {name}. "
        f"Can not safely convert {values.dtype} to {wanted}."
    )
    if nan:
        message += (
            " The column has missing values (NaN), which integer columns cannot hold; declare "
            "it as double in the signature if it may have missing values."
        )
    return InvalidParameterValue(message)


# -- tensor-based schemas ----------------------------------------------------------------------


def _enforce_tensors(data: Any, schema: Schema) -> Any:
    specs = [spec for spec in schema if isinstance(spec, TensorSpec)]
    if not schema.has_input_names():
        return _enforce_unnamed_tensor(data, specs[0])
    if len(specs) == 1 and isinstance(data, np.ndarray | list):
        data = {specs[0].name: data}
    if isinstance(data, pd.DataFrame):
        data = {column: data[column] for column in data.columns}
    if not isinstance(data, dict):
        raise InvalidParameterValue(
            "This model has a tensor-based signature with input names, which takes a dict "
            f"mapping each name to an array (or a DataFrame), got {type(data).__name__}"
        )
    missing = [spec.name for spec in specs if spec.name not in data]
    if missing:
        raise InvalidParameterValue(f"Model is missing inputs {missing}.")
    if extra := [key for key in data if key not in {spec.name for spec in specs}]:
        _log.warning("Found extra inputs not in the model signature: %s; ignoring them.", extra)
    return {spec.name: _tensor_input(spec.name, data[spec.name], spec) for spec in specs}


def _enforce_unnamed_tensor(data: Any, spec: TensorSpec) -> Any:
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise InvalidParameterValue("Input DataFrame is empty.")
        if data.shape[1] == 1:
            return _tensor_input(None, data.iloc[:, 0], spec)
        if spec.shape != (-1, data.shape[1]):
            raise InvalidParameterValue(
                f"The input DataFrame has {data.shape[1]} columns, so the model's unnamed tensor "
                f"would need shape (-1, {data.shape[1]}), but its shape is {spec.shape}."
            )
        return _check_tensor(None, data.to_numpy(), spec, untyped=True)
    if isinstance(data, np.ndarray | list) or _is_sparse(data):
        return _tensor_input(None, data, spec)
    raise InvalidParameterValue(
        "This model has a tensor-based signature without input names, which takes a numpy "
        f"array (or a DataFrame), got {type(data).__name__}"
    )


def _tensor_input(name: str | None, value: Any, spec: TensorSpec) -> Any:
    if isinstance(value, np.ndarray) or _is_sparse(value):
        return _check_tensor(name, value, spec, untyped=False)
    if isinstance(value, pd.Series):
        return _series_to_tensor(name, value, spec)
    if isinstance(value, list | tuple) or np.isscalar(value):
        return _check_tensor(name, _list_to_array(name, value), spec, untyped=True)
    raise InvalidParameterValue(
        f"Input {_label(name)}must be a numpy array or a list, got {type(value).__name__}"
    )


def _list_to_array(name: str | None, value: Any) -> np.ndarray[Any, Any]:
    try:
        return np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise InvalidParameterValue(
            f"Input {_label(name)}could not be read as an array: {error}"
        ) from None


def _series_to_tensor(name: str | None, series: pd.Series[Any], spec: TensorSpec) -> Any:
    """A DataFrame column as a tensor: scalars for shapes (-1,)/(-1, 1), or one list or
    array per row for larger fixed shapes."""
    if spec.shape[:1] != (-1,) or -1 in spec.shape[1:]:
        raise InvalidParameterValue(
            "For DataFrame input, the first dimension of the tensor shape must be -1 and the "
            f"others fixed, but the shape of input {_label(name)}is {spec.shape}."
        )
    if series.empty:
        raise InvalidParameterValue(f"Input {_label(name)}is empty.")
    first = series.iloc[0]
    if np.isscalar(first):
        if spec.shape not in ((-1,), (-1, 1)):
            raise InvalidParameterValue(
                f"The input DataFrame column {_label(name)}holds scalars, which need the shape "
                f"(-1,) or (-1, 1), but the tensor's shape is {spec.shape}."
            )
        objects = series.dtype == object or isinstance(series.dtype, pd.StringDtype)
        array = _list_to_array(name, series.tolist()) if objects else series.to_numpy()
        return _check_tensor(name, array.reshape(spec.shape), spec, untyped=True)
    if not isinstance(first, list | np.ndarray):
        raise InvalidParameterValue(
            f"The input DataFrame column {_label(name)}must hold scalars, lists or numpy arrays "
            f"for a tensor input, got {type(first).__name__}"
        )
    try:
        array = np.vstack(series.tolist()).reshape(spec.shape)
    except ValueError:
        raise InvalidParameterValue(
            f"The values of DataFrame column {_label(name)}could not be shaped to {spec.shape}; "
            "each row needs the same number of elements."
        ) from None
    if len(array) != len(series):
        raise InvalidParameterValue(
            f"The values of DataFrame column {_label(name)}do not make one tensor row per row."
        )
    return _check_tensor(name, array, spec, untyped=isinstance(first, list))


def _check_tensor(name: str | None, value: Any, spec: TensorSpec, untyped: bool) -> Any:
    """``value`` with its shape checked and its dtype cast to the spec's when that is safe."""
    actual = value.data.dtype if _is_sparse(value) else value.dtype
    expected = spec.dtype
    ragged_object = actual == np.dtype("O") and len(value.shape) == 1
    if expected == np.dtype("O") and spec.shape == (-1,):
        return value
    if ragged_object and len(spec.shape) > 1 and -1 in spec.shape[1:]:
        return value  # a ragged batch (one object per row) for a spec with free inner dims
    _check_shape(name, tuple(value.shape), spec.shape)
    if actual == expected or (actual.kind in "US" and actual.kind == expected.kind):
        return value
    if (
        expected.kind == "O"
        or _safe_cast(actual, expected)
        or _untyped_fits(value, expected, untyped)
    ):
        return value.astype(expected)
    raise InvalidParameterValue(
        f"dtype of input {_label(name)}{actual} does not match expected dtype {expected} and "
        "can not be safely converted."
    )


def _check_shape(name: str | None, actual: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if len(actual) != len(expected) or any(
        want not in (-1, got) for want, got in zip(expected, actual, strict=True)
    ):
        raise InvalidParameterValue(
            f"Shape of input {_label(name)}{actual} does not match expected shape {expected}."
        )


def _untyped_fits(value: np.ndarray[Any, Any], expected: np.dtype[Any], untyped: bool) -> bool:
    """Whether Python numbers (which have no width) fit ``expected``: floats into any float
    dtype, integers into any float dtype or into an integer dtype that holds every value."""
    actual = value.dtype
    if not untyped or actual.kind not in "iuf" or expected.kind not in "iuf":
        return False
    if expected.kind == "f":
        return True
    if actual.kind == "f":
        return False
    limits = np.iinfo(expected)
    return value.size == 0 or bool(limits.min <= value.min() and value.max() <= limits.max)


def _is_sparse(data: object) -> bool:
    return type(data).__module__.startswith("scipy.sparse") and getattr(data, "format", None) in (
        "csr",
        "csc",
    )


def _label(name: str | None) -> str:
    return "" if name is None else f"'{name}' "
