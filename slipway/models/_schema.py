"""Input/output schemas and parameter schemas, written as MLflow writes them.

A :class:`Schema` is a list of :class:`ColSpec` (tabular data: one spec per column) or of
:class:`TensorSpec` (numpy arrays: dtype and shape, ``-1`` for a free dimension), never both.
A :class:`ParamSchema` lists the inference-time parameters a model accepts, with defaults.

``to_json`` output is byte for byte what MLflow writes for the same schema (same key order,
``json.dumps`` defaults), so that an ``MLmodel`` written by either tool reads in the other.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from slipway.exceptions import InvalidParameterValue
from slipway.models._types import (
    ColumnType,
    DataType,
    Object,
    check_value,
    type_from_dict,
    type_to_dict,
)

__all__ = [
    "ColSpec",
    "ColumnName",
    "ParamSchema",
    "ParamSpec",
    "Schema",
    "TensorSpec",
    "coerce_param_value",
]

# pandas allows any hashable column label; MLflow writes the integer labels of an unnamed
# DataFrame (``pd.DataFrame(array)``) as JSON integers, so they are kept as integers here too.
ColumnName = str | int


class ColSpec:
    """One column of tabular data.

    Args:
        type: a :class:`DataType`, a nested type (``Array``, ``Object``, ``Map``, ``AnyType``)
            or the name of a data type (``"double"``).
        name: the column name; ``None`` for a positional column.
        required: whether the column must be present (and free of missing values).
    """

    __slots__ = ("name", "required", "type")

    def __init__(
        self, type: ColumnType | str, name: ColumnName | None = None, required: bool = True
    ) -> None:
        self.type: ColumnType = DataType.from_name(type) if isinstance(type, str) else type
        if not isinstance(self.type, ColumnType):
            raise InvalidParameterValue(
                f"Unsupported column type {type!r}: expected a DataType, Array, Object, Map, "
                "AnyType or a type name"
            )
        self.name = name
        self.required = bool(required)

    def to_dict(self) -> dict[str, Any]:
        spec = type_to_dict(self.type)
        if self.name is not None:
            spec["name"] = self.name
        spec["required"] = self.required
        return spec

    @classmethod
    def from_json_dict(cls, spec: dict[str, Any]) -> ColSpec:
        name = spec.get("name")
        if name is not None and not isinstance(name, str | int):
            raise InvalidParameterValue(f"Column name must be a string, got {name!r}")
        required = spec.get("required", True)
        if required is None:  # MLflow writes nested-type columns it read without one this way
            required = True
        if not isinstance(required, bool):
            raise InvalidParameterValue(f"Column {name!r}: 'required' must be a boolean")
        return cls(type_from_dict(spec), name, required)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColSpec) and (self.name, self.type, self.required) == (
            other.name,
            other.type,
            other.required,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        required = "required" if self.required else "optional"
        prefix = "" if self.name is None else f"{self.name!r}: "
        return f"{prefix}{self.type!r} ({required})"


class TensorSpec:
    """One numpy array input or output.

    Args:
        dtype: a numpy dtype (or anything ``np.dtype`` accepts). Sized string/bytes dtypes
            (``<U5``) are stored size-free (``str``), as MLflow requires.
        shape: the array shape, ``-1`` for a dimension of any size (usually the batch).
        name: the tensor name; ``None`` for the single unnamed tensor of a schema.
    """

    __slots__ = ("dtype", "name", "shape")

    def __init__(
        self,
        dtype: np.dtype[Any] | str | type,
        shape: tuple[int, ...] | list[int],
        name: str | None = None,
    ) -> None:
        self.dtype = clean_tensor_dtype(dtype)
        self.shape = _check_shape(shape)
        self.name = name

    @property
    def type(self) -> np.dtype[Any]:
        """The dtype, under the attribute name MLflow uses."""
        return self.dtype

    @property
    def required(self) -> bool:
        """Tensors are always required."""
        return True

    def to_dict(self) -> dict[str, Any]:
        info = {"dtype": self.dtype.name, "shape": list(self.shape)}
        if self.name is None:
            return {"type": "tensor", "tensor-spec": info}
        return {"name": self.name, "type": "tensor", "tensor-spec": info}

    @classmethod
    def from_json_dict(cls, spec: dict[str, Any]) -> TensorSpec:
        info = spec.get("tensor-spec")
        if not isinstance(info, dict) or "dtype" not in info or "shape" not in info:
            raise InvalidParameterValue(
                f"Missing keys in TensorSpec JSON: expected 'tensor-spec' with 'dtype' and "
                f"'shape', got {spec!r}"
            )
        name = spec.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidParameterValue(f"Tensor name must be a string, got {name!r}")
        return cls(info["dtype"], info["shape"], name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorSpec) and (self.name, self.dtype, self.shape) == (
            other.name,
            other.dtype,
            other.shape,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        tensor = f"Tensor({self.dtype.name!r}, {self.shape!r})"
        return tensor if self.name is None else f"{self.name!r}: {tensor}"


def clean_tensor_dtype(dtype: object) -> np.dtype[Any]:
    """``dtype`` as a numpy dtype, with the size dropped from string and bytes dtypes."""
    try:
        resolved: np.dtype[Any] = np.dtype(dtype)  # type: ignore[call-overload]
    except (TypeError, ValueError) as error:
        raise InvalidParameterValue(f"Unsupported tensor dtype {dtype!r}: {error}") from None
    if resolved.kind == "U":
        return np.dtype("str")
    if resolved.kind == "S":
        return np.dtype("bytes")
    return resolved


def _check_shape(shape: object) -> tuple[int, ...]:
    if not isinstance(shape, tuple | list) or not all(
        isinstance(dim, int | np.integer) and not isinstance(dim, bool) and dim >= -1
        for dim in shape
    ):
        raise InvalidParameterValue(
            f"Tensor shape must be a list of integers (-1 for a free dimension), got {shape!r}"
        )
    return tuple(int(dim) for dim in shape)


Spec = ColSpec | TensorSpec


class Schema:
    """The inputs (or outputs) of a model: all :class:`ColSpec` or all :class:`TensorSpec`.

    Either every input is named or none is; a schema of unnamed inputs holds one tensor, or
    columns that are all required (positional columns cannot be left out).
    """

    def __init__(self, inputs: list[ColSpec] | list[TensorSpec]) -> None:
        if not isinstance(inputs, list) or not inputs:
            raise InvalidParameterValue("A schema needs a non-empty list of ColSpec or TensorSpec")
        if not all(isinstance(x, ColSpec) for x in inputs) and not all(
            isinstance(x, TensorSpec) for x in inputs
        ):
            raise InvalidParameterValue(
                "A schema holds either ColSpec or TensorSpec entries, not a mix (or other objects)"
            )
        names = [x.name for x in inputs]
        if any(n is None for n in names) and any(n is not None for n in names):
            raise InvalidParameterValue(
                f"A schema's inputs must be all named or all unnamed, got names {names}"
            )
        if duplicates := sorted({str(n) for n in names if n is not None and names.count(n) > 1}):
            raise InvalidParameterValue(f"Duplicate input names in schema: {duplicates}")
        if names[0] is None and isinstance(inputs[0], TensorSpec) and len(inputs) > 1:
            raise InvalidParameterValue("A schema with several tensors must name each of them")
        if names[0] is None and not all(x.required for x in inputs):
            raise InvalidParameterValue("Unnamed (positional) inputs cannot be optional")
        self._inputs: list[Spec] = list(inputs)

    @property
    def inputs(self) -> list[Spec]:
        return self._inputs

    def __len__(self) -> int:
        return len(self._inputs)

    def __iter__(self) -> Iterator[Spec]:
        return iter(self._inputs)

    def is_tensor_spec(self) -> bool:
        """Whether this schema describes numpy arrays rather than columns."""
        return isinstance(self._inputs[0], TensorSpec)

    def has_input_names(self) -> bool:
        return self._inputs[0].name is not None

    def input_names(self) -> list[ColumnName]:
        """The input names, or their positions when the schema has no names."""
        return [i if x.name is None else x.name for i, x in enumerate(self._inputs)]

    def required_input_names(self) -> list[ColumnName]:
        return [n for n, x in zip(self.input_names(), self._inputs, strict=True) if x.required]

    def optional_input_names(self) -> list[ColumnName]:
        return [n for n, x in zip(self.input_names(), self._inputs, strict=True) if not x.required]

    def input_types(self) -> list[ColumnType | np.dtype[Any]]:
        return [x.type for x in self._inputs]

    def input_dict(self) -> dict[ColumnName, Spec]:
        """Inputs by name (positions for an unnamed schema)."""
        return dict(zip(self.input_names(), self._inputs, strict=True))

    def to_dict(self) -> list[dict[str, Any]]:
        return [x.to_dict() for x in self._inputs]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Read a schema from the JSON string stored in ``MLmodel``."""
        specs = _load_json_list(text, "schema")
        tensors = [spec.get("type") == "tensor" for spec in specs]
        if all(tensors):
            return cls([TensorSpec.from_json_dict(spec) for spec in specs])
        if any(tensors):
            raise InvalidParameterValue("A schema holds either columns or tensors, not a mix")
        return cls([ColSpec.from_json_dict(spec) for spec in specs])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self._inputs == other._inputs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._inputs)


def _load_json_list(text: object, what: str) -> list[dict[str, Any]]:
    if not isinstance(text, str):
        raise InvalidParameterValue(f"A {what} must be a JSON string, got {type(text).__name__}")
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidParameterValue(f"A {what} is not valid JSON: {error}") from None
    if not isinstance(loaded, list) or not all(isinstance(x, dict) for x in loaded):
        raise InvalidParameterValue(f"A {what} must be a JSON list of objects, got {text!r}")
    return loaded


class ParamSpec:
    """One inference-time parameter.

    Args:
        name: the parameter name.
        dtype: its :class:`DataType` (not binary), an :class:`Object`, or a type name.
        default: the value used when a caller leaves the parameter out; checked against
            ``dtype`` and ``shape`` and stored converted (``5`` for a double becomes ``5.0``).
        shape: ``None`` for a scalar, ``(-1,)`` for a 1-D list.
    """

    __slots__ = ("default", "dtype", "name", "shape")

    def __init__(
        self,
        name: str,
        dtype: DataType | Object | str,
        default: Any,
        shape: tuple[int, ...] | list[int] | None = None,
    ) -> None:
        self.name = str(name)
        self.dtype: DataType | Object = (
            DataType.from_name(dtype) if isinstance(dtype, str) else dtype
        )
        if not isinstance(self.dtype, DataType | Object):
            raise InvalidParameterValue(
                f"Param {self.name!r}: dtype must be a DataType, an Object or a type name"
            )
        if self.dtype is DataType.binary:
            raise InvalidParameterValue(f"Param {self.name!r}: binary parameters are not supported")
        self.shape = None if shape is None else tuple(shape)
        if self.shape not in (None, (-1,)):
            raise InvalidParameterValue(
                f"Param {self.name!r}: shape must be None (scalar) or (-1,) (1-D list), "
                f"got {shape!r}"
            )
        self.default = coerce_param_value(self.name, default, self.dtype, self.shape)

    def to_dict(self) -> dict[str, Any]:
        default = self.default
        if self.dtype is DataType.datetime and default is not None:
            default = [v.isoformat() for v in default] if self.shape else default.isoformat()
        spec: dict[str, Any] = {"name": self.name, "default": default, "shape": self.shape}
        spec.update(type_to_dict(self.dtype))
        return spec

    @classmethod
    def from_json_dict(cls, spec: dict[str, Any]) -> ParamSpec:
        kind = spec.get("type", spec.get("dtype"))  # MLflow once wrote "dtype"
        if "name" not in spec or "default" not in spec or kind is None:
            raise InvalidParameterValue(
                f"Missing keys in ParamSpec JSON: expected name, type and default, got {spec!r}"
            )
        dtype = type_from_dict({**spec, "type": kind}) if kind == "object" else kind
        if not isinstance(dtype, DataType | Object | str):
            raise InvalidParameterValue(f"Unsupported param type {kind!r}")
        return cls(spec["name"], dtype, spec["default"], spec.get("shape"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSpec) and (
            self.name,
            self.dtype,
            self.default,
            self.shape,
        ) == (other.name, other.dtype, other.default, other.shape)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shape = "" if self.shape is None else f" (shape: {self.shape})"
        return f"{self.name!r}: {self.dtype!r} (default: {self.default}){shape}"


class ParamSchema:
    """The parameters a model accepts at inference time; names are unique."""

    def __init__(self, params: list[ParamSpec]) -> None:
        if not isinstance(params, list) or not all(isinstance(p, ParamSpec) for p in params):
            raise InvalidParameterValue("ParamSchema takes a list of ParamSpec")
        names = [p.name for p in params]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise InvalidParameterValue(f"Duplicated parameters found in schema: {duplicates}")
        self._params = list(params)

    @property
    def params(self) -> list[ParamSpec]:
        return self._params

    def __len__(self) -> int:
        return len(self._params)

    def __iter__(self) -> Iterator[ParamSpec]:
        return iter(self._params)

    def to_dict(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self._params]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ParamSchema:
        return cls([ParamSpec.from_json_dict(spec) for spec in _load_json_list(text, "params")])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSchema) and self._params == other._params

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._params)


def coerce_param_value(
    name: str, value: Any, dtype: DataType | Object, shape: tuple[int, ...] | None
) -> Any:
    """``value`` checked against a parameter's type and shape, converted to a plain Python
    value (``int`` for long, ``float`` for double, ``datetime`` for datetime).

    Integers are accepted for float/double parameters and ints never stand for booleans;
    anything else that does not fit is refused.

    Raises:
        InvalidParameterValue: naming the parameter, its expected type and the value.
    """
    if shape is None:
        if isinstance(dtype, Object):
            if value is not None:
                _check_object_param(name, value, dtype)
            return value
        return _coerce_scalar(name, value, dtype)
    if isinstance(dtype, Object):
        raise InvalidParameterValue(f"Param {name!r}: object parameters cannot be lists")
    if not _is_1d(value):
        raise InvalidParameterValue(
            f"Param {name!r}: value must be a 1-D list for shape (-1,), got {value!r}"
        )
    return [_coerce_scalar(name, item, dtype) for item in value]


def _check_object_param(name: str, value: Any, dtype: Object) -> None:
    try:
        check_value(value, dtype)
    except InvalidParameterValue as error:
        raise InvalidParameterValue(f"Param {name!r}: {error.message}") from None


def _is_1d(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 1
    return isinstance(value, list) and not any(isinstance(v, list | np.ndarray) for v in value)


def _coerce_scalar(name: str, value: Any, dtype: DataType) -> Any:
    if value is None:
        return None
    if dtype is DataType.datetime:
        return _to_datetime(name, value)
    kind = dtype.name
    if isinstance(value, bool | np.bool_):
        ok = kind == "boolean"
    elif isinstance(value, int | np.integer):
        ok = kind in ("integer", "long", "float", "double")
    elif isinstance(value, float | np.floating):
        ok = kind in ("float", "double")
    else:
        ok = isinstance(value, str) and kind == "string"
    if not ok:
        raise InvalidParameterValue(
            f"Param {name!r}: can not safely convert {type(value).__name__} {value!r} to {kind}"
        )
    return dtype.to_python()(value)


def _to_datetime(name: str, value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    try:
        converted = np.datetime64(value).item()
    except (TypeError, ValueError):
        converted = None
    if not isinstance(converted, dt.date):
        raise InvalidParameterValue(
            f"Param {name!r}: can not convert {value!r} to datetime; expected a date, a "
            "datetime or an ISO 8601 string"
        )
    return converted
