"""The types a signature column can have, in MLflow's JSON form.

A column is either a scalar :class:`DataType` or one of the JSON-shaped types that MLflow added
for GenAI inputs: :class:`Array` (``{"type": "array", "items": ...}``), :class:`Object`
(``{"type": "object", "properties": {...}}``), :class:`Map` (``{"type": "map", "values": ...}``),
:class:`AnyType` (``{"type": "any"}``) and :class:`SparkMLVector`. They are written and read
exactly as MLflow does, so a signature survives a round trip through either tool.

:func:`check_value` validates one Python value against any of these types; enforcement and
parameter schemas both use it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from slipway.exceptions import InvalidParameterValue

__all__ = [
    "AnyType",
    "Array",
    "ColumnType",
    "DataType",
    "Map",
    "Object",
    "Property",
    "SparkMLVector",
    "check_value",
    "is_missing",
    "merge_types",
    "type_from_dict",
    "type_to_dict",
]


class DataType(Enum):
    """A scalar column type. Member names are MLflow's type names, as they appear in JSON.

    The values are MLflow's enum values too, so ``DataType(5) is DataType.double`` in both.
    """

    boolean = 1
    integer = 2
    long = 3
    float = 4
    double = 5
    string = 6
    binary = 7
    datetime = 8

    def __repr__(self) -> str:
        return self.name

    def to_numpy(self) -> np.dtype[Any]:
        """The numpy dtype that holds this type (``str``/``bytes`` for string/binary)."""
        return _NUMPY[self.name]

    def to_pandas(self) -> Any:
        """The pandas column dtype: numpy's, except ``object`` for string and binary."""
        return object if self.name in ("string", "binary") else _NUMPY[self.name]

    def to_python(self) -> type:
        """The Python type a value of this type converts to (``datetime.date`` for datetime)."""
        return _PYTHON[self.name]

    @classmethod
    def from_name(cls, name: object) -> DataType:
        """The member called ``name``; a clear error for anything else."""
        if isinstance(name, str) and name in cls.__members__:
            return cls.__members__[name]
        raise InvalidParameterValue(
            f"Unsupported type {name!r}, expected one of {list(cls.__members__)}"
        )


_NUMPY: dict[str, np.dtype[Any]] = {
    "boolean": np.dtype("bool"),
    "integer": np.dtype("int32"),
    "long": np.dtype("int64"),
    "float": np.dtype("float32"),
    "double": np.dtype("float64"),
    "string": np.dtype("str"),
    "binary": np.dtype("bytes"),
    "datetime": np.dtype("datetime64[ns]"),
}
_PYTHON: dict[str, type] = {
    "boolean": bool,
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "string": str,
    "binary": bytes,
    "datetime": dt.date,
}


@dataclass(frozen=True)
class AnyType:
    """Any JSON value, ``None`` included. Nothing about it is checked."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "any"}

    def __repr__(self) -> str:
        return "Any"


@dataclass(frozen=True)
class Array:
    """A list whose items all have type ``dtype``."""

    dtype: ColumnType

    def to_dict(self) -> dict[str, Any]:
        return {"type": "array", "items": type_to_dict(self.dtype)}

    def __repr__(self) -> str:
        return f"Array({self.dtype!r})"


@dataclass(frozen=True)
class SparkMLVector:
    """Spark ML's dense/sparse vector column. Kept so that Spark models' signatures load; values
    pass enforcement unchecked, since Slipway has no Spark input path."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "sparkml_vector"}

    def __repr__(self) -> str:
        return "SparkML vector"


@dataclass(frozen=True)
class Property:
    """One named field of an :class:`Object`."""

    name: str
    dtype: ColumnType
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {self.name: {**type_to_dict(self.dtype), "required": self.required}}

    def __repr__(self) -> str:
        return f"{self.name}: {self.dtype!r} ({'required' if self.required else 'optional'})"


@dataclass(frozen=True, init=False)
class Object:
    """A dict with known fields. Properties are kept sorted by name, as MLflow keeps them, so
    that equal objects compare (and serialise) equal whatever order they were given in."""

    properties: tuple[Property, ...]

    def __init__(self, properties: list[Property] | tuple[Property, ...]) -> None:
        if not properties:
            raise InvalidParameterValue("Creating Object with empty properties is not allowed.")
        names = [prop.name for prop in properties]
        if duplicates := sorted({name for name in names if names.count(name) > 1}):
            raise InvalidParameterValue(f"Found duplicated property names: {duplicates}")
        object.__setattr__(self, "properties", tuple(sorted(properties, key=lambda p: p.name)))

    def to_dict(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for prop in self.properties:
            merged.update(prop.to_dict())
        return {"type": "object", "properties": merged}

    def __repr__(self) -> str:
        return "{" + ", ".join(map(repr, self.properties)) + "}"


@dataclass(frozen=True)
class Map:
    """A dict with string keys and values of one type."""

    value_type: ColumnType

    def to_dict(self) -> dict[str, Any]:
        return {"type": "map", "values": type_to_dict(self.value_type)}

    def __repr__(self) -> str:
        return f"Map(str -> {self.value_type!r})"


ColumnType = DataType | Array | Object | Map | AnyType | SparkMLVector


def type_to_dict(column_type: ColumnType) -> dict[str, Any]:
    """MLflow's JSON form of a column type (without name or requiredness)."""
    if isinstance(column_type, DataType):
        return {"type": column_type.name}
    return column_type.to_dict()


def type_from_dict(spec: object) -> ColumnType:
    """Read a column type from its JSON form; a clear error when the form is malformed."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise InvalidParameterValue(f"Expected a type spec with a 'type' key, got {spec!r}")
    kind = spec["type"]
    if kind == "array":
        return Array(type_from_dict(_field(spec, "items", dict)))
    if kind == "map":
        return Map(type_from_dict(_field(spec, "values", dict)))
    if kind == "object":
        properties = _field(spec, "properties", dict)
        return Object([_property_from_dict(name, prop) for name, prop in properties.items()])
    if kind == "any":
        return AnyType()
    if kind == "sparkml_vector":
        return SparkMLVector()
    return DataType.from_name(kind)


def _field(spec: dict[str, Any], key: str, kind: type) -> Any:
    value = spec.get(key)
    if not isinstance(value, kind):
        raise InvalidParameterValue(
            f"Expected key {key!r} of type {kind.__name__} in {spec['type']} spec {spec!r}"
        )
    return value


def _property_from_dict(name: object, prop: object) -> Property:
    if not isinstance(name, str) or not isinstance(prop, dict):
        raise InvalidParameterValue(f"Malformed object property {name!r}: {prop!r}")
    required = prop.get("required", True)
    if not isinstance(required, bool):
        raise InvalidParameterValue(f"Property {name!r}: 'required' must be a boolean")
    return Property(name, type_from_dict(prop), required)


class TypeMergeError(InvalidParameterValue):
    """Two values of one list (or one column) have types that do not merge."""


def merge_types(first: ColumnType, second: ColumnType) -> ColumnType:
    """The one type that describes values of both types, as MLflow merges them during inference.

    ``AnyType`` (from ``None``) merges into anything; objects merge field by field, fields
    found in only one side becoming optional; arrays and maps merge their item types.
    """
    if first == second:
        return first
    if isinstance(first, AnyType):
        return _optional_fields(second)
    if isinstance(second, AnyType):
        return _optional_fields(first)
    if isinstance(first, Array) and isinstance(second, Array):
        if isinstance(first, SparkMLVector) or isinstance(second, SparkMLVector):
            raise TypeMergeError("SparkML vector type can't be merged with another type.")
        return Array(merge_types(first.dtype, second.dtype))
    if isinstance(first, Map) and isinstance(second, Map):
        return Map(merge_types(first.value_type, second.value_type))
    if isinstance(first, Object) and isinstance(second, Object):
        return _merge_objects(first, second)
    raise TypeMergeError(f"Types {first!r} and {second!r} are incompatible")


def _optional_fields(column_type: ColumnType) -> ColumnType:
    """An object merged with ``None`` keeps its fields, all made optional (MLflow's rule)."""
    if isinstance(column_type, Object):
        return Object([Property(p.name, p.dtype, False) for p in column_type.properties])
    return column_type


def _merge_objects(first: Object, second: Object) -> Object:
    left = {prop.name: prop for prop in first.properties}
    right = {prop.name: prop for prop in second.properties}
    merged = [
        Property(
            name,
            merge_types(left[name].dtype, right[name].dtype),
            left[name].required and right[name].required,
        )
        for name in left.keys() & right.keys()
    ]
    merged += [Property(n, p.dtype, False) for n, p in left.items() if n not in right]
    merged += [Property(n, p.dtype, False) for n, p in right.items() if n not in left]
    return Object(merged)


def is_missing(value: object) -> bool:
    """``None``, NaN, ``pd.NA`` or ``pd.NaT``: the values that make a column optional."""
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return value is None or value is pd.NA or value is pd.NaT


def check_value(value: Any, column_type: ColumnType, required: bool = True) -> None:
    """Refuse ``value`` unless it fits ``column_type``; never converts anything.

    Raises:
        InvalidParameterValue: naming the expected type, the value's type and, for objects,
            the missing or unknown fields.
    """
    if isinstance(column_type, AnyType | SparkMLVector):
        return
    if not required and (is_missing(value) or (isinstance(value, dict | list) and not value)):
        return
    if isinstance(column_type, DataType):
        _check_scalar(value, column_type)
    elif isinstance(column_type, Array):
        _check_array(value, column_type, required)
    elif isinstance(column_type, Map):
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise InvalidParameterValue(f"Expected a dict with string keys, got {value!r}")
        for item in value.values():
            check_value(item, column_type.value_type, required)
    else:
        _check_object(value, column_type)


def _check_array(value: Any, array: Array, required: bool) -> None:
    if not isinstance(value, list | np.ndarray):
        raise InvalidParameterValue(
            f"Expected a list or numpy array, got {type(value).__name__} {value!r}"
        )
    for item in value:
        check_value(item, array.dtype, required)


def _check_object(value: Any, obj: Object) -> None:
    if not isinstance(value, dict):
        raise InvalidParameterValue(f"Expected a dict for {obj!r}, got {type(value).__name__}")
    fields = {prop.name: prop for prop in obj.properties}
    if missing := sorted(name for name, p in fields.items() if p.required and name not in value):
        raise InvalidParameterValue(f"Missing required properties: {missing}")
    if unknown := sorted(str(key) for key in value if key not in fields):
        raise InvalidParameterValue(f"Invalid properties not defined in the schema: {unknown}")
    for key, item in value.items():
        try:
            check_value(item, fields[key].dtype, fields[key].required)
        except InvalidParameterValue as error:
            raise InvalidParameterValue(f"Property {key!r}: {error.message}") from None


def _check_scalar(value: Any, data_type: DataType) -> None:
    if not _scalar_fits(value, data_type):
        raise InvalidParameterValue(
            f"Expected a value of type {data_type.name}, got {type(value).__name__} {value!r}"
        )


def _scalar_fits(value: Any, data_type: DataType) -> bool:
    """Whether a single value can stand for ``data_type`` without losing anything."""
    name = data_type.name
    if isinstance(value, bool | np.bool_):
        return name == "boolean"
    if isinstance(value, int | np.integer):
        return name in ("integer", "long", "float", "double")
    if isinstance(value, float | np.floating):
        return name in ("float", "double")
    if isinstance(value, str):
        return name == "string"
    if isinstance(value, bytes | bytearray):
        return name == "binary"
    if isinstance(value, dt.date | np.datetime64):
        return name == "datetime"
    return False
