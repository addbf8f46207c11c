"""The types a component is written in: parameter types and artifact classes.

Parameters are JSON values typed by their Python annotation (``str``, ``int``, ``float``,
``bool``, ``list``, ``dict``, ``Optional[...]`` of those); their type names are Kubeflow
Pipelines' (``STRING``, ``NUMBER_INTEGER``, ``NUMBER_DOUBLE``, ``BOOLEAN``, ``LIST``,
``STRUCT``) so the graph and the compiled IR say the same thing. Artifacts are files or folders
that a step reads (``Input[Dataset]``) or writes (``Output[Model]``): the step gets an object
with a local ``path``, its ``uri`` in the artifact store and a ``metadata`` dict.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from slipway.exceptions import InvalidParameterValue

STRING = "STRING"
INTEGER = "NUMBER_INTEGER"
DOUBLE = "NUMBER_DOUBLE"
BOOLEAN = "BOOLEAN"
LIST = "LIST"
STRUCT = "STRUCT"
TASK_FINAL_STATUS = "TASK_FINAL_STATUS"
ANY = "ANY"
"""A value whose type the graph cannot know before it runs (a loop item over a parameter)."""

_PYTHON_TYPES: dict[Any, str] = {
    str: STRING,
    int: INTEGER,
    float: DOUBLE,
    bool: BOOLEAN,
    list: LIST,
    dict: STRUCT,
}
TYPE_WORDS = {
    STRING: "str",
    INTEGER: "int",
    DOUBLE: "float",
    BOOLEAN: "bool",
    LIST: "list",
    STRUCT: "dict",
    TASK_FINAL_STATUS: "PipelineStatus",
    ANY: "any",
}


class Artifact:
    """A file or folder passed between steps. Write to (or read from) ``path``; ``metadata`` is
    kept with the artifact's reference and shown in the UI."""

    schema_title: ClassVar[str] = "system.Artifact"
    schema_version: ClassVar[str] = "0.0.1"

    def __init__(
        self,
        name: str = "",
        uri: str = "",
        path: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.uri = uri
        self.path = path
        self.metadata: dict[str, Any] = dict(metadata or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, uri={self.uri!r})"


class Dataset(Artifact):
    schema_title = "system.Dataset"


class Model(Artifact):
    schema_title = "system.Model"


class Metrics(Artifact):
    """Scalar metrics: :meth:`log_metric` keeps them in ``metadata`` (as Kubeflow does) and
    logs them to the step's run."""

    schema_title = "system.Metrics"

    def log_metric(self, name: str, value: float) -> None:
        self.metadata[name] = value
        from slipway.tracking import fluent

        active = fluent.active_run()
        if active is not None:
            fluent.log_metric(name, float(value))


ARTIFACT_TYPES: dict[str, type[Artifact]] = {
    cls.__name__: cls for cls in (Artifact, Dataset, Model, Metrics)
}


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    """What an exit handler's task learns about the group it guards: annotate a parameter with
    this type and the executor fills it in."""

    state: str
    """``SUCCEEDED``, ``FAILED`` or ``CANCELLED``."""
    pipeline_run_id: str = ""
    failed_tasks: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class _IO:
    direction: str


class Input:
    """``Input[Dataset]``: an artifact the step reads; ``Input[list[Model]]`` takes the
    ``collected`` outputs of a parallel_for."""

    def __class_getitem__(cls, item: Any) -> Any:
        return Annotated[item, _IO("input")]


class Output:
    """``Output[Model]``: an artifact the step writes to ``.path``."""

    def __class_getitem__(cls, item: Any) -> Any:
        return Annotated[item, _IO("output")]


@dataclass(frozen=True, slots=True)
class ParamType:
    """A parameter's type: its name (``NUMBER_DOUBLE``, ...) and whether None is allowed."""

    name: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class ArtifactType:
    """An artifact's class name (``Dataset``), and whether the input is a list of them."""

    name: str
    direction: str
    is_list: bool = False

    @property
    def cls(self) -> type[Artifact]:
        return ARTIFACT_TYPES[self.name]


@dataclass(slots=True)
class ParsedAnnotation:
    kind: str  # "parameter" | "artifact"
    param: ParamType | None = None
    artifact: ArtifactType | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _artifact_class(item: Any) -> tuple[type[Artifact], bool] | None:
    if isinstance(item, type) and issubclass(item, Artifact):
        return item, False
    origin = typing.get_origin(item)
    if origin in (list, typing.List):  # noqa: UP006 - both spellings are accepted
        args = typing.get_args(item)
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], Artifact):
            return args[0], True
    return None


def parse_annotation(annotation: Any, where: str) -> ParsedAnnotation:
    """The parameter or artifact type that ``annotation`` declares; INVALID_PARAMETER_VALUE
    naming ``where`` for anything else."""
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        io = next((e for e in extras if isinstance(e, _IO)), None)
        if io is not None:
            found = _artifact_class(base)
            if found is None:
                raise InvalidParameterValue(
                    f"{where}: Input[...]/Output[...] take an artifact class (Artifact, Dataset, "
                    f"Model, Metrics) or list[...] of one, got {base!r}"
                )
            cls, is_list = found
            if is_list and io.direction == "output":
                raise InvalidParameterValue(f"{where}: Output[list[...]] is not supported")
            return ParsedAnnotation(
                "artifact", artifact=ArtifactType(cls.__name__, io.direction, is_list)
            )
        annotation = base
    if isinstance(annotation, type) and issubclass(annotation, Artifact):
        raise InvalidParameterValue(
            f"{where}: annotate artifacts as Input[{annotation.__name__}] or "
            f"Output[{annotation.__name__}]"
        )
    if annotation is PipelineStatus:
        return ParsedAnnotation("parameter", param=ParamType(TASK_FINAL_STATUS))
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(annotation)) != 2:
            raise InvalidParameterValue(
                f"{where}: only Optional[X] unions are supported, got {annotation!r}"
            )
        optional, annotation = True, args[0]
        origin = typing.get_origin(annotation)
    base = origin if origin is not None else annotation
    name = _PYTHON_TYPES.get(base)
    if name is None:
        raise InvalidParameterValue(
            f"{where}: unsupported type {annotation!r}; use str, int, float, bool, list, dict, "
            "Optional[...] of those, or Input[...]/Output[...] of an artifact class"
        )
    return ParsedAnnotation("parameter", param=ParamType(name, optional))


def type_of_value(value: Any) -> str:
    """The parameter type a Python value has (``ANY`` for None)."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, (list, tuple)):
        return LIST
    if isinstance(value, dict):
        return STRUCT
    return ANY


def assignable(source: str, target: str) -> bool:
    """Whether a value of parameter type ``source`` may feed an input of type ``target``."""
    return source == target or ANY in (source, target) or (source, target) == (INTEGER, DOUBLE)


def check_value(value: Any, ptype: ParamType, where: str) -> Any:
    """``value`` as a JSON value of ``ptype`` (an int where a float is wanted becomes a float);
    INVALID_PARAMETER_VALUE naming ``where`` if it is of another type or not JSON."""
    if value is None:
        if ptype.optional or ptype.name == ANY:
            return None
        raise InvalidParameterValue(f"{where}: None given, but the type is not Optional")
    if ptype.name == ANY:
        return _json_checked(value, where)
    got = type_of_value(value)
    if ptype.name == DOUBLE and got == INTEGER:
        return float(value)
    if got != ptype.name:
        raise InvalidParameterValue(
            f"{where}: expected {TYPE_WORDS.get(ptype.name, ptype.name)}, got "
            f"{type(value).__name__} {_short(value)}"
        )
    if got == DOUBLE and not math.isfinite(value):
        return float(value)
    if got in (LIST, STRUCT):
        return _json_checked(list(value) if isinstance(value, tuple) else value, where)
    return value


def parse_text(text: str, ptype: ParamType, where: str) -> Any:
    """A parameter value typed on a command line (``--param rows=5000``) as ``ptype``."""
    import json

    name = ptype.name
    if ptype.optional and text.lower() in ("none", "null"):
        return None
    try:
        if name == STRING:
            return text
        if name == INTEGER:
            return int(text)
        if name == DOUBLE:
            return float(text)
        if name == BOOLEAN:
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(text)
        value = json.loads(text)
    except ValueError:
        raise InvalidParameterValue(
            f"{where}: {text!r} is not a valid {TYPE_WORDS.get(name, name)}"
        ) from None
    return check_value(value, ptype, where)


def _json_checked(value: Any, where: str) -> Any:
    import json

    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"{where}: value is not JSON-serialisable ({exc})") from None
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "ARTIFACT_TYPES",
    "Artifact",
    "ArtifactType",
    "Dataset",
    "Input",
    "Metrics",
    "Model",
    "Output",
    "ParamType",
    "PipelineStatus",
    "assignable",
    "check_value",
    "parse_annotation",
    "parse_text",
    "type_of_value",
]
