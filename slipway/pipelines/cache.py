"""The cache key of a step: two steps with the same key compute the same outputs, so the
second may reuse the first one's.

The key is the SHA-256 of a canonical JSON document (sorted keys, no whitespace, floats as
their shortest ``repr``) holding:

``component``
    the component's name.
``code``
    :func:`code_digest`: the function's source and the sources of the helpers it calls, so
    editing the function or a helper beside it changes the key.
``inputs`` / ``outputs``
    the component's typed signature (``InputSpec.to_dict()`` / ``OutputSpec.to_dict()``,
    defaults included), so a changed signature never meets an old entry.
``packages``, ``image``, ``env``
    what the step's environment is made of: a different requirement, image or environment
    variable may compute something else.
``cache_version``
    a string the author changes to drop old entries by hand (for example when data that the
    step reads from outside the pipeline has changed).
``parameters``
    the parameter values the step receives (an int given for a float input counts as that
    float, so ``1`` and ``1.0`` are one key).
``artifacts``
    the content digests of the input artifacts (a list of digests, in order, for a
    ``collected`` input). Digests, not URIs: the same data stored twice is one key.

Not in the key: artifact URIs, retries and back-off, the timeout, cache TTL and the resources
(cpu, memory, gpu): they change how and where a step runs, not what it computes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import types as ty
from slipway.pipelines.component import Component, StepOptions, function_source

KEY_VERSION = 1
"""Bumped when the key's recipe changes, so that entries made by another recipe never match."""

_LITERALS = (str, int, float, bool, bytes, type(None))


def _is_literal(value: Any) -> bool:
    if isinstance(value, _LITERALS):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_is_literal(item) for item in value)
    return False


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and every code object nested in it (inner functions, lambdas,
    comprehensions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _referenced_names(code: types.CodeType) -> set[str]:
    names: set[str] = set()
    for item in _code_objects(code):
        names.update(item.co_names)
    return names


def _code_fingerprint(code: types.CodeType) -> str:
    """A stand-in for source that is not available: the bytecode, names and constants of the
    code object and of the code nested in it (no addresses, so stable across processes)."""
    parts: list[str] = []
    for item in _code_objects(code):
        consts = [
            "<code>" if isinstance(c, types.CodeType) else repr(c)
            for c in item.co_consts
            if isinstance(c, types.CodeType) or _is_literal(c)
        ]
        parts.append(
            json.dumps(
                [item.co_name, item.co_code.hex(), list(item.co_names), consts],
                separators=(",", ":"),
            )
        )
    return "\n".join(parts)


def _function_text(func: types.FunctionType) -> str:
    return function_source(func) or _code_fingerprint(func.__code__)


def _class_text(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        members = sorted(
            (name, _function_text(value))
            for name, value in vars(cls).items()
            if isinstance(value, types.FunctionType)
        )
        return json.dumps([cls.__qualname__, members], separators=(",", ":"))


def _local_helpers(func: types.FunctionType, module: str | None) -> Iterator[tuple[str, object]]:
    """The globals ``func`` names that belong to its own module: functions and classes defined
    there (not imported), other components, and plain constants."""
    namespace = func.__globals__
    for name in sorted(_referenced_names(func.__code__)):
        if name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, Component):
            value = value.python_func
        if isinstance(value, (types.FunctionType, type)):
            if getattr(value, "__module__", None) == module:
                yield name, value
        elif _is_literal(value):
            yield name, value


def code_digest(component: Component | Callable[..., Any]) -> str:
    """SHA-256 hex of a component's code: its function's source (decorators left out), and,
    recursively, the sources of the functions and classes of the same module that it refers
    to (including from nested functions, lambdas and methods of those classes), plus the
    values of the plain constants (numbers, strings, tuples of them) it reads from there.
    Functions and modules imported from elsewhere are left out: their versions belong to the
    environment (``packages``, ``image``). Where source cannot be read (a function typed at a
    prompt) the code object's bytecode and constants stand in for it."""
    func = component.python_func if isinstance(component, Component) else component
    if not isinstance(func, types.FunctionType):
        raise InvalidParameterValue(f"code_digest takes a component or function, got {func!r}")
    module = func.__module__
    seen: dict[int, str] = {}
    parts: list[str] = [f"component\0{_function_text(func)}"]
    pending: list[types.FunctionType] = [func]
    seen[id(func)] = func.__qualname__
    while pending:
        current = pending.pop()
        for name, value in _local_helpers(current, module):
            if isinstance(value, (types.FunctionType, type)):
                if id(value) in seen:
                    continue
                seen[id(value)] = name
                if isinstance(value, types.FunctionType):
                    parts.append(f"function {value.__qualname__}\0{_function_text(value)}")
                    pending.append(value)
                else:
                    parts.append(f"class {value.__qualname__}\0{_class_text(value)}")
                    pending.extend(
                        member
                        for member in vars(value).values()
                        if isinstance(member, types.FunctionType)
                    )
            else:
                parts.append(f"constant {name}\0{type(value).__name__}\0{value!r}")
    head, rest = parts[0], sorted(set(parts[1:]))
    digest = hashlib.sha256()
    for part in [head, *rest]:
        digest.update(part.encode("utf-8", "surrogateescape"))
        digest.update(b"\n\x1e\n")
    return digest.hexdigest()


def _canonical(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (tuples as lists, a PipelineStatus as its fields)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **_canonical(dataclasses.asdict(value), where)}
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidParameterValue(f"{where}: dict keys must be strings, got {key!r}")
            out[key] = _canonical(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise InvalidParameterValue(
        f"{where}: {type(value).__name__} is not a JSON value and cannot be part of a cache key"
    )


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; floats are written by ``repr`` (the shortest
    text that reads back as the same float), NaN and infinities as ``NaN``/``Infinity``."""
    return json.dumps(
        _canonical(value, "value"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=True,
    )


def _parameters(component: Component, parameters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        spec = component.spec.inputs.get(name)
        declared = spec.param if spec is not None else None
        if (
            declared is not None
            and declared.name == ty.DOUBLE
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            value = float(value)
        out[name] = _canonical(value, f"parameter {name}")
    return out


def _digests(input_artifacts: Mapping[str, Any]) -> dict[str, Any]:
    def digest_of(name: str, ref: Any) -> str:
        digest = ref.get("digest") if isinstance(ref, Mapping) else None
        if not isinstance(digest, str) or not digest:
            raise InvalidParameterValue(f"input artifact {name!r} has no digest")
        return digest

    out: dict[str, Any] = {}
    for name, ref in input_artifacts.items():
        if isinstance(ref, list):
            out[name] = [digest_of(f"{name}[{i}]", item) for i, item in enumerate(ref)]
        elif ref is None:
            out[name] = None
        else:
            out[name] = digest_of(name, ref)
    return out


def cache_key(
    component: Component,
    options: StepOptions,
    parameters: Mapping[str, Any],
    input_artifacts: Mapping[str, Any],
) -> str:
    """SHA-256 hex of what decides a step's outputs (see the module docstring for each part).

    Args:
        component: the step's component.
        options: the task's options (``packages``, ``image``, ``env`` and ``cache_version``
            are read; the rest never changes the key).
        parameters: the parameter values the step receives, by input name.
        input_artifacts: artifact references by input name (a list for a collected input);
            only their ``digest`` is read.

    Raises:
        InvalidParameterValue: for a parameter value that is not JSON, or an artifact
            reference without a digest.
    """
    document = {
        "key_version": KEY_VERSION,
        "component": component.name,
        "code": code_digest(component),
        "inputs": {k: v.to_dict() for k, v in component.spec.inputs.items()},
        "outputs": {k: v.to_dict() for k, v in component.spec.outputs.items()},
        "packages": list(options.packages),
        "image": options.image,
        "env": dict(options.env),
        "cache_version": options.cache_version,
        "parameters": _parameters(component, parameters),
        "artifacts": _digests(input_artifacts),
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


__all__ = ["KEY_VERSION", "cache_key", "canonical_json", "code_digest"]
