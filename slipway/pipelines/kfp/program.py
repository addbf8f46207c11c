"""The program a component's container runs: the function's source and what it needs.

On Kubeflow the component's module is not there, only the text embedded in the container
command. So the program is built from the names the function's source uses that its module
defines: a module becomes an ``import``, a function or class imported from elsewhere a
``from ... import``, a function or class written in the same module its own source (searched
again for the names *it* uses), and a plain constant (numbers, strings, tuples, lists and dicts
of them) an assignment. Anything else (an open file, a client object) cannot travel and is left
out; create such things inside the function. Other components are left out too: a component
calls no other component, the pipeline wires them.

The program starts with ``from __future__ import annotations`` so that annotations are
resolved only when :mod:`~slipway.pipelines.kfp.executor_main` reads the signature, whatever
order the pieces come in.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
import types
from collections.abc import Callable
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines.component import Component, function_source

_PRELUDE_NAMES = ("Artifact", "Dataset", "Input", "Metrics", "Model", "Output", "PipelineStatus")
PRELUDE = (
    "from __future__ import annotations\n\n"
    f"from slipway.pipelines.types import {', '.join(_PRELUDE_NAMES)}\n"
)


def component_program(component: Component) -> str:
    """The text of the module that defines ``component``'s function for executor_main."""
    func = component.python_func
    source = function_source(func)
    if not source:
        raise InvalidParameterValue(
            f"component {component.name}: the source of {func.__name__} cannot be read (was it "
            "defined at an interactive prompt?); Kubeflow runs a component from its source, so "
            "define it in a file"
        )
    collector = _Collector(func)
    collector.scan(source)
    header = f'"""Slipway component {component.name}: function {func.__name__}."""\n\n'
    parts = [header + PRELUDE]
    if collector.imports:
        parts.append("\n".join(collector.imports) + "\n")
    if collector.constants:
        parts.append("\n".join(collector.constants) + "\n")
    parts.extend(collector.definitions)
    parts.append(source)
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


class _Collector:
    """Walks the names a source uses, resolving them in the function's module globals."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.globals: dict[str, Any] = getattr(func, "__globals__", {})
        self.module = func.__module__
        self.seen: set[str] = {func.__name__}
        self.imports: list[str] = []
        self.constants: list[str] = []
        self.definitions: list[str] = []

    def scan(self, source: str) -> None:
        for name in _used_names(source):
            if name in self.seen or name not in self.globals:
                continue
            self.seen.add(name)
            self._add(name, self.globals[name])

    def _add(self, name: str, value: Any) -> None:
        from slipway.pipelines import types as ty

        if isinstance(value, Component):
            return
        if name in _PRELUDE_NAMES and getattr(ty, name, None) is value:
            return
        if isinstance(value, types.ModuleType):
            self.imports.append(_import_module(name, value))
            return
        if _defined_here(value, self.module):
            try:
                source = textwrap.dedent(inspect.getsource(value))
            except (OSError, TypeError):
                return
            self.scan(source)  # what it uses comes before it
            self.definitions.append(source)
            return
        line = _import_from(name, value)
        if line is not None:
            self.imports.append(line)
            return
        if _is_literal(value):
            self.constants.append(f"{name} = {value!r}")


def _defined_here(value: Any, module: str) -> bool:
    """A function or class written at the top level of ``module``."""
    if not (inspect.isfunction(value) or inspect.isclass(value)):
        return False
    return value.__module__ == module and "<locals>" not in value.__qualname__


def _used_names(source: str) -> list[str]:
    """Every name a piece of source reads, including inside string annotations, in order."""
    tree = ast.parse(source)
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations = [a.annotation for a in _all_args(node.args)] + [node.returns]
            for annotation in annotations:
                if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                    try:
                        inner = ast.parse(annotation.value, mode="eval")
                    except SyntaxError:
                        continue
                    names.extend(n.id for n in ast.walk(inner) if isinstance(n, ast.Name))
    return list(dict.fromkeys(names))


def _all_args(args: ast.arguments) -> list[ast.arg]:
    found = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    found.extend(a for a in (args.vararg, args.kwarg) if a is not None)
    return found


def _import_module(name: str, module: types.ModuleType) -> str:
    real = module.__name__
    if real == name:
        return f"import {real}"
    parent, _, leaf = real.rpartition(".")
    if parent and leaf == name:
        return f"from {parent} import {leaf}"
    return f"import {real} as {name}"


def _import_from(name: str, value: Any) -> str | None:
    """``from <module> import <name>`` when ``value`` can be imported back under that name."""
    module_name = getattr(value, "__module__", None)
    if not isinstance(module_name, str) or module_name in ("__main__", "builtins"):
        return None
    module = sys.modules.get(module_name)
    if module is None:
        return None
    if getattr(module, name, None) is value:
        return f"from {module_name} import {name}"
    qualname = getattr(value, "__qualname__", None)
    if (
        isinstance(qualname, str)
        and "." not in qualname
        and getattr(module, qualname, None) is value
    ):
        return f"from {module_name} import {qualname} as {name}"
    return None


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        if isinstance(value, float) and value != value:  # nan has no literal
            return False
        try:
            return bool(ast.literal_eval(repr(value)) == value)
        except (ValueError, SyntaxError):
            return False
    if isinstance(value, (tuple, list, frozenset, set)):
        return all(_is_literal(v) for v in value) and _round_trips(value)
    if isinstance(value, dict):
        return all(_is_literal(k) and _is_literal(v) for k, v in value.items()) and _round_trips(
            value
        )
    return False


def _round_trips(value: Any) -> bool:
    try:
        return bool(ast.literal_eval(repr(value)) == value)
    except (ValueError, SyntaxError, RecursionError):
        return False


__all__ = ["PRELUDE", "component_program"]
