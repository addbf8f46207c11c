"""The entry point of a Slipway component's container on Kubeflow.

``python3 -m slipway.pipelines.kfp.executor_main --executor_input '<json>'
--function_to_execute <name> --component_module_path <file>`` (the command the compiler writes,
see :mod:`slipway.pipelines.kfp.container`) loads the component's program from ``<file>``,
calls the function with Slipway's types, and answers in Kubeflow's executor protocol:

* ``inputs.parameterValues[name]``: the parameter values (JSON; a number may come as a float,
  a loop item of an untyped list as JSON text, both are read as the input's type); a
  ``PipelineStatus`` parameter comes as Kubeflow's final-status struct (``state``,
  ``pipelineJobResourceName``, ``pipelineTaskName``, ``error.message``);
* ``inputs.artifacts[name].artifacts``: the input artifacts (``uri``, ``metadata``, ``type``);
  all of them for an ``Input[list[...]]``, else the first;
* ``outputs.artifacts[name].artifacts[0].uri``: where an output artifact goes;
* ``outputs.parameters[name].outputFile``: a file per output parameter;
* ``outputs.outputFile``: the executor output JSON, ``{"parameterValues": {...},
  "artifacts": {name: {"artifacts": [{"name", "uri", "metadata"}]}}}``, which is how the
  return values and the output artifacts' metadata (``Metrics.log_metric`` included) get back.

Remote URIs are read and written through the mounts Kubeflow gives the container: ``gs://b/k``
is ``/gcs/b/k``, ``s3://`` ``/s3/``, ``minio://`` ``/minio/`` (and ``oci://`` ``/oci/``, with
``/`` turned to ``_``). ``SLIPWAY_KFP_MOUNT_ROOT`` moves those mounts under another folder
(to run the entry point outside a cluster). ``SLIPWAY_STEP_TIMEOUT`` (seconds) stops the
function when it runs longer.

Exit status: 0 on success, 1 when the function raised (its traceback is printed) or returned
something its annotation does not allow, 2 when the executor input, the program or the function
cannot be used (a one-line message says why).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from slipway.exceptions import InvalidParameterValue, SlipwayError
from slipway.pipelines import types as ty
from slipway.pipelines.component import (
    SINGLE_OUTPUT,
    Component,
    ComponentSpec,
    StepOptions,
    build_spec,
)
from slipway.pipelines.kfp.container import TIMEOUT_ENV

MOUNT_ROOT_ENV = "SLIPWAY_KFP_MOUNT_ROOT"
_MOUNTS = (("gs://", "gcs"), ("s3://", "s3"), ("minio://", "minio"))
_BY_SCHEMA = {cls.schema_title: cls for cls in ty.ARTIFACT_TYPES.values()}


def local_path(uri: str, root: str | None = None) -> str:
    """Where the container sees ``uri``: under Kubeflow's mounts for remote URIs (below
    ``root``, by default ``$SLIPWAY_KFP_MOUNT_ROOT`` or ``/``), the path itself otherwise."""
    base = root if root is not None else os.environ.get(MOUNT_ROOT_ENV) or "/"
    for prefix, mount in _MOUNTS:
        if uri.startswith(prefix):
            return os.path.join(base, mount, uri[len(prefix) :])
    if uri.startswith("oci://"):
        return os.path.join(base, "oci", uri[len("oci://") :].replace("/", "_"))
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return uri


# ---------------------------------------------------------------------------------------------
# Loading the program


def load_function(module_path: str, name: str) -> Callable[..., Any]:
    """The function ``name`` of the program at ``module_path``."""
    if not os.path.isfile(module_path):
        raise InvalidParameterValue(f"component program {module_path!r} does not exist")
    module_name = os.path.splitext(os.path.basename(module_path))[0] or "slipway_component"
    spec = importlib.util.spec_from_file_location(module_name, module_path)
    if spec is None or spec.loader is None:
        raise InvalidParameterValue(f"component program {module_path!r} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # NamedTuples and dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InvalidParameterValue(
            f"component program {module_path!r} failed to load: {type(exc).__name__}: {exc}"
            + (" (add the package to the component's packages)" if _is_import(exc) else "")
        ) from None
    found = getattr(module, name, None)
    if isinstance(found, Component):
        found = found.python_func
    if not callable(found):
        raise InvalidParameterValue(f"component program {module_path!r} has no function {name!r}")
    return found


def _is_import(exc: BaseException) -> bool:
    return isinstance(exc, ImportError)


# ---------------------------------------------------------------------------------------------
# One call


@dataclass
class Call:
    """The function's arguments, read from an executor input, and where its results go."""

    func: Callable[..., Any]
    spec: ComponentSpec
    kwargs: dict[str, Any] = field(default_factory=dict)
    output_artifacts: dict[str, ty.Artifact] = field(default_factory=dict)
    parameter_files: dict[str, str] = field(default_factory=dict)
    output_file: str = ""


def prepare(executor_input: Mapping[str, Any], func: Callable[..., Any]) -> Call:
    """Read the arguments of ``func`` from ``executor_input``; INVALID_PARAMETER_VALUE naming
    the input for anything missing or of the wrong type."""
    if not isinstance(executor_input, Mapping):
        raise InvalidParameterValue("the executor input is not a JSON object")
    spec = build_spec(func, func.__name__, StepOptions())
    inputs = _section(executor_input, "inputs")
    outputs = _section(executor_input, "outputs")
    output_file = outputs.get("outputFile")
    if not isinstance(output_file, str) or not output_file:
        raise InvalidParameterValue("the executor input has no outputs.outputFile")
    call = Call(func, spec, output_file=output_file)
    values = _section(inputs, "parameterValues")
    artifacts = _section(inputs, "artifacts")
    for name, item in spec.inputs.items():
        where = f"input {name} of {func.__name__}"
        if item.kind == "parameter":
            assert item.param is not None
            if name not in values:
                if item.has_default:
                    continue
                if not item.param.optional:
                    raise InvalidParameterValue(f"{where}: no value in the executor input")
            call.kwargs[name] = _parameter(values.get(name), item.param, where)
            continue
        assert item.artifact is not None
        entries = _entries(artifacts, name, where)
        if not entries:
            if item.has_default:
                continue
            raise InvalidParameterValue(f"{where}: no artifact in the executor input")
        made = [_artifact(e, item.artifact.cls, where) for e in entries]
        call.kwargs[name] = made if item.artifact.is_list else made[0]
    out_artifacts = _section(outputs, "artifacts")
    out_params = _section(outputs, "parameters")
    for name, out in spec.outputs.items():
        where = f"output {name} of {func.__name__}"
        if out.artifact is not None:
            entries = _entries(out_artifacts, name, where)
            if not entries:
                raise InvalidParameterValue(f"{where}: no artifact in the executor input")
            artifact = _artifact(entries[0], out.artifact.cls, where)
            parent = os.path.dirname(artifact.path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            call.kwargs[name] = artifact
            call.output_artifacts[name] = artifact
        else:
            target = out_params.get(name)
            if isinstance(target, Mapping) and isinstance(target.get("outputFile"), str):
                call.parameter_files[name] = target["outputFile"]
    return call


def finish(call: Call, result: Any) -> dict[str, Any]:
    """Write the executor output (and the output parameter files) for ``result``; return it."""
    values = _returned(call, result)
    document: dict[str, Any] = {}
    if values:
        document["parameterValues"] = values
    if call.output_artifacts:
        document["artifacts"] = {
            name: {"artifacts": [{"name": a.name, "uri": a.uri, "metadata": a.metadata}]}
            for name, a in call.output_artifacts.items()
        }
    try:
        text = json.dumps(document, allow_nan=False)
    except ValueError as exc:
        raise InvalidParameterValue(
            f"{call.func.__name__}: its outputs are not JSON ({exc}); NaN and infinity cannot "
            "travel in Kubeflow's executor output"
        ) from None
    for name, path in call.parameter_files.items():
        if name in values:
            value = values[name]
            _write(path, value if isinstance(value, str) else json.dumps(value))
    _write(call.output_file, text)
    return document


def execute(executor_input: Mapping[str, Any], func: Callable[..., Any]) -> dict[str, Any]:
    """Run ``func`` on ``executor_input`` and write its executor output (what ``main`` does,
    without the exit statuses)."""
    call = prepare(executor_input, func)
    with _deadline(_timeout()):
        result = call.func(**call.kwargs)
    return finish(call, result)


# ---------------------------------------------------------------------------------------------
# Pieces


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidParameterValue(f"the executor input's {key} is not a JSON object")
    return value


def _entries(table: Mapping[str, Any], name: str, where: str) -> list[Mapping[str, Any]]:
    holder = table.get(name)
    if holder is None:
        return []
    found = holder.get("artifacts") if isinstance(holder, Mapping) else None
    if not isinstance(found, list) or not all(isinstance(e, Mapping) for e in found):
        raise InvalidParameterValue(f"{where}: the executor input's artifacts are malformed")
    return found


def _artifact(entry: Mapping[str, Any], declared: type[ty.Artifact], where: str) -> ty.Artifact:
    uri = entry.get("uri") or ""
    if not isinstance(uri, str):
        raise InvalidParameterValue(f"{where}: artifact uri {uri!r} is not a string")
    schema = (entry.get("type") or {}).get("schemaTitle", "")
    cls = _BY_SCHEMA.get(schema, declared)
    if not issubclass(cls, declared):
        cls = declared
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidParameterValue(f"{where}: artifact metadata is not a JSON object")
    return cls(
        name=str(entry.get("name") or ""),
        uri=uri,
        path=local_path(uri),
        metadata=dict(metadata),
    )


def _parameter(value: Any, ptype: ty.ParamType, where: str) -> Any:
    if ptype.name == ty.TASK_FINAL_STATUS:
        return _final_status(value, where)
    if value is None:
        return ty.check_value(None, ptype, where)
    if isinstance(value, str) and ptype.name not in (ty.STRING, ty.ANY):
        return ty.parse_text(value, ptype, where)
    if ptype.name == ty.INTEGER and isinstance(value, float) and value.is_integer():
        value = int(value)  # protobuf numbers are doubles
    return ty.check_value(value, ptype, where)


def _final_status(value: Any, where: str) -> ty.PipelineStatus:
    if not isinstance(value, Mapping):
        raise InvalidParameterValue(
            f"{where}: expected Kubeflow's task final status, got {value!r}"
        )
    state = str(value.get("state") or "").upper()
    state = "CANCELLED" if state == "CANCELED" else state
    run = value.get("pipelineJobResourceName") or value.get("pipeline_job_resource_name") or ""
    task = value.get("pipelineTaskName") or value.get("pipeline_task_name") or ""
    error = value.get("error") or {}
    message = str(error.get("message") or "") if isinstance(error, Mapping) else ""
    failed = (str(task),) if state == "FAILED" and task else ()
    return ty.PipelineStatus(state, str(run), failed, message)


def _returned(call: Call, result: Any) -> dict[str, Any]:
    spec = call.spec
    name = call.func.__name__
    if spec.returns == "none":
        return {}
    if spec.returns == "single":
        out = spec.outputs[SINGLE_OUTPUT]
        assert out.param is not None
        return {SINGLE_OUTPUT: ty.check_value(result, out.param, f"return value of {name}")}
    fields = [k for k, v in spec.outputs.items() if v.param is not None]
    if not isinstance(result, tuple) or len(result) != len(fields):
        raise InvalidParameterValue(
            f"return value of {name}: expected a tuple of {len(fields)} ({', '.join(fields)}), "
            f"got {type(result).__name__}"
        )
    values = {}
    for position, key in enumerate(fields):
        param = spec.outputs[key].param
        assert param is not None
        item = getattr(result, key, result[position])
        values[key] = ty.check_value(item, param, f"return value {key} of {name}")
    return values


def _write(path: str, text: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


class StepTimeout(BaseException):
    """The function ran past ``SLIPWAY_STEP_TIMEOUT`` (a BaseException, like
    KeyboardInterrupt, so that the function's own ``except Exception`` does not swallow it)."""


def _timeout() -> float | None:
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidParameterValue(f"{TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    return seconds if seconds > 0 else None


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    if seconds is None or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise StepTimeout(f"the step ran longer than its timeout of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m slipway.pipelines.kfp.executor_main",
        description="Run a Slipway component in a Kubeflow Pipelines container.",
    )
    parser.add_argument("--executor_input", required=True, help="the executor input JSON")
    parser.add_argument("--function_to_execute", required=True, help="the function's name")
    parser.add_argument("--component_module_path", required=True, help="the program file")
    parser.add_argument("--cache_version", help="part of Kubeflow's cache key; not used here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one component as Kubeflow asks; the exit status (see the module docstring)."""
    args, _unknown = _parser().parse_known_args(argv)
    try:
        try:
            executor_input = json.loads(args.executor_input)
        except ValueError as exc:
            raise InvalidParameterValue(f"--executor_input is not JSON ({exc})") from None
        func = load_function(args.component_module_path, args.function_to_execute)
        call = prepare(executor_input, func)
        timeout = _timeout()
    except SlipwayError as exc:
        print(f"slipway executor: {exc.message}", file=sys.stderr)
        return 2
    print(f"slipway executor: running {func.__name__}", flush=True)
    try:
        with _deadline(timeout):
            result = call.func(**call.kwargs)
    except StepTimeout as exc:
        print(f"slipway executor: {func.__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    try:
        finish(call, result)
    except SlipwayError as exc:
        print(f"slipway executor: {exc.message}", file=sys.stderr)
        return 1
    print(f"slipway executor: wrote {call.output_file}", flush=True)
    return 0


__all__ = [
    "MOUNT_ROOT_ENV",
    "TIMEOUT_ENV",
    "Call",
    "StepTimeout",
    "execute",
    "finish",
    "load_function",
    "local_path",
    "main",
    "prepare",
]


if __name__ == "__main__":
    sys.exit(main())
