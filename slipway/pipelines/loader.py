"""Loading a pipeline from a Python file, and typing command-line parameters for it.

``slipway pipelines run iris.py`` names a file, not a module: the file is imported under a
module name of its own (so two files called ``pipeline.py`` never collide, and loading a file
twice runs it twice), with its folder on ``sys.path`` while it is imported so that it can
import its sibling modules. What goes wrong while importing it (a syntax error, a missing
module, a pipeline that cannot be built) becomes one INVALID_PARAMETER_VALUE naming the file
and line, since the person running the command wants to know where to look, not how the
import machinery got there.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.pipelines import types as ty
from slipway.pipelines.dsl import Pipeline

MODULE_PREFIX = "_slipway_pipeline_"
"""Loaded files become modules named ``_slipway_pipeline_<stem>_<digest>_<n>``."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_counter = itertools.count(1)
_PACKAGE = Path(__file__).resolve().parents[1]


def split_source(source: str) -> tuple[Path, str | None]:
    """``(file, name)`` of ``path.py`` or ``path.py:name``; ``name`` is None without one.

    Only a suffix that looks like a name is split off, so a path that itself holds a ``:``
    (``C:\\work\\iris.py``) stays whole."""
    text = source.strip()
    if not text:
        raise InvalidParameterValue("Give a pipeline file: path.py or path.py:name")
    head, sep, tail = text.rpartition(":")
    if sep and head and _IDENTIFIER.match(tail) and not tail.endswith(".py"):
        return Path(head).expanduser(), tail
    return Path(text).expanduser(), None


def absolute_source(source: str) -> str:
    """``source`` with its file made absolute (what a schedule or a pipeline run stores, so
    that it still names the file when run from another folder)."""
    path, name = split_source(source)
    absolute = str(path.resolve())
    return f"{absolute}:{name}" if name else absolute


def load_pipeline(source: str) -> Pipeline:
    """The pipeline in ``source`` (``path.py`` or ``path.py:name``).

    Without a name the file must hold exactly one pipeline (pipelines it imports from other
    modules count only when it defines none itself); with one, ``name`` is the variable the
    pipeline is bound to, or the pipeline's own name. Errors list the pipelines found.
    """
    path, name = split_source(source)
    module = import_file(path)
    found = _pipelines_in(module)
    if name is not None:
        chosen = found.get(name)
        if chosen is None:
            by_name = [p for p in found.values() if p.name == name]
            chosen = by_name[0] if len(set(map(id, by_name))) == 1 else None
        if chosen is None:
            raise InvalidParameterValue(
                f"{path} has no pipeline named {name!r} ({_listing(found)})"
            )
        return chosen
    own = {k: p for k, p in found.items() if getattr(p.func, "__module__", None) == module.__name__}
    candidates = own or found
    distinct = list({id(p): p for p in candidates.values()}.values())
    if len(distinct) == 1:
        return distinct[0]
    if not distinct:
        raise InvalidParameterValue(
            f"{path} defines no pipeline: decorate a function with @pipeline"
        )
    raise InvalidParameterValue(
        f"{path} holds {len(distinct)} pipelines ({_listing(candidates)}); pick one with "
        f"{path}:NAME"
    )


def import_file(path: Path) -> ModuleType:
    """Import ``path`` as a fresh module; INVALID_PARAMETER_VALUE with file, line and message
    if it cannot be imported."""
    if not path.exists():
        raise ResourceDoesNotExist(f"No such pipeline file: {path}")
    if path.is_dir():
        raise InvalidParameterValue(f"{path} is a folder; give the pipeline's .py file")
    file = path.resolve()
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:8]
    stem = re.sub(r"\W", "_", file.stem)
    module_name = f"{MODULE_PREFIX}{stem}_{digest}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise InvalidParameterValue(f"{path} cannot be imported as Python (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(file.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise InvalidParameterValue(_syntax_message(path, exc)) from None
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise InvalidParameterValue(_import_message(path, file, exc)) from None
    finally:
        with contextlib.suppress(ValueError):  # unless the file took it off itself
            sys.path.remove(folder)
    _pickle_by_value(module)
    return module


def _pickle_by_value(module: ModuleType) -> None:
    """Have cloudpickle copy the file's functions into whatever it pickles: a step process
    cannot import a module that exists only under the name this loader made up."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)


def _syntax_message(path: Path, exc: SyntaxError) -> str:
    where = f"{exc.filename or path}, line {exc.lineno}" if exc.lineno else str(path)
    text = f"{where}: {type(exc).__name__}: {exc.msg}"
    if exc.text and exc.text.strip():
        text += f": {exc.text.strip()}"
    return text


def _import_message(path: Path, file: Path, exc: BaseException) -> str:
    """``<file>, line <n>: <Type>: <message>`` at the deepest line of the pipeline file itself
    (where the person can fix it); when the error came from a module beside it (their code
    too), that module's line is added."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename]
    own = [f for f in frames if Path(f.filename).resolve() == file]
    where = f"{path}, line {own[-1].lineno}" if own else str(path)
    if frames and frames[-1] not in own:
        deepest = Path(frames[-1].filename).resolve()
        if _user_code(deepest, file.parent):
            where += f" (raised at {deepest}, line {frames[-1].lineno})"
    message = getattr(exc, "message", None) or str(exc) or "(no message)"
    return f"{where}: {type(exc).__name__}: {message}"


def _user_code(path: Path, folder: Path) -> bool:
    """Whether ``path`` is a module beside the pipeline file (not an installed package)."""
    installed = {"site-packages", "dist-packages"} & set(path.parts)
    return path.is_relative_to(folder) and not installed and not path.is_relative_to(_PACKAGE)


def _pipelines_in(module: ModuleType) -> dict[str, Pipeline]:
    return {
        key: value
        for key, value in vars(module).items()
        if isinstance(value, Pipeline) and not key.startswith("__")
    }


def _listing(found: Mapping[str, Pipeline]) -> str:
    if not found:
        return "it has none"
    names = [key if key == p.name else f"{key} (pipeline {p.name})" for key, p in found.items()]
    return "found: " + ", ".join(sorted(names))


# -- parameters --------------------------------------------------------------------------------


def parse_params(
    pipeline: Pipeline, items: Iterable[str], *, complete: bool = False
) -> dict[str, Any]:
    """Typed values of ``NAME=VALUE`` texts (``--param rows=5000``) for ``pipeline``'s
    parameters, parsed as each parameter's type (lists and dicts as JSON).

    ``complete`` also requires every parameter without a default (a schedule has to know
    them all now, not when it first fires). INVALID_PARAMETER_VALUE names the parameter and
    its type, or lists the known parameters for an unknown name."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidParameterValue(f"Parameter {item!r} is not NAME=VALUE")
        spec = pipeline.parameters.get(key)
        if spec is None or spec.param is None:
            raise InvalidParameterValue(
                f"Pipeline {pipeline.name} has no parameter {key!r} ({_known(pipeline)})"
            )
        if key in values:
            raise InvalidParameterValue(f"Parameter {key!r} is given twice")
        word = ty.TYPE_WORDS.get(spec.param.name, spec.param.name)
        values[key] = ty.parse_text(text, spec.param, f"Parameter {key} ({word})")
    if complete:
        missing = [
            k for k, spec in pipeline.parameters.items() if not spec.has_default and k not in values
        ]
        if missing:
            raise InvalidParameterValue(
                f"Pipeline {pipeline.name} needs a value for {', '.join(missing)} "
                "(--param NAME=VALUE)"
            )
    return values


def check_params(pipeline: Pipeline, values: Mapping[str, Any]) -> dict[str, Any]:
    """Already-typed values (a schedule's stored parameters) checked against the pipeline's
    parameters, with the same errors as :func:`parse_params`."""
    checked: dict[str, Any] = {}
    for key, value in values.items():
        spec = pipeline.parameters.get(key)
        if spec is None or spec.param is None:
            raise InvalidParameterValue(
                f"Pipeline {pipeline.name} has no parameter {key!r} ({_known(pipeline)})"
            )
        word = ty.TYPE_WORDS.get(spec.param.name, spec.param.name)
        checked[key] = ty.check_value(value, spec.param, f"Parameter {key} ({word})")
    return checked


def _known(pipeline: Pipeline) -> str:
    if not pipeline.parameters:
        return "it takes none"
    described = []
    for key, spec in pipeline.parameters.items():
        word = ty.TYPE_WORDS.get(spec.param.name, spec.param.name) if spec.param else "?"
        described.append(f"{key}: {word}")
    return "parameters: " + ", ".join(described)


__all__ = [
    "MODULE_PREFIX",
    "absolute_source",
    "check_params",
    "import_file",
    "load_pipeline",
    "parse_params",
    "split_source",
]
