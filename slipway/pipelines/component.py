"""``@component``: a typed Python function that a pipeline runs as one step.

The decorator reads the function's signature once: each parameter is a typed parameter (with
its default) or an ``Input[...]``/``Output[...]`` artifact, and the return annotation gives the
outputs (one value named ``Output``, or the fields of a ``NamedTuple``). Options (retries,
timeout, caching, resources, environment) are checked here, so a bad one fails when the file is
imported, not when the step runs.
"""

from __future__ import annotations

import inspect
import re
import textwrap
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import types as ty

SINGLE_OUTPUT = "Output"
"""The name of a component's output when it returns one plain value (as in Kubeflow)."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|k)?B?$")
_MEMORY_UNITS = {
    None: 1,
    "K": 10**3,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_duration(value: float | str | None, what: str) -> float | None:
    """Seconds from ``30``, ``"30s"``, ``"10m"``, ``"1h30m"``, ``"500ms"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{what} must be a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            try:
                seconds = float(text)
            except ValueError:
                raise InvalidParameterValue(
                    f"{what} must be a duration such as 30, '30s', '10m' or '1h30m', got {value!r}"
                ) from None
        else:
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if not seconds >= 0 or seconds == float("inf"):
        raise InvalidParameterValue(f"{what} must be a finite duration >= 0, got {value!r}")
    return seconds


def parse_memory(value: int | str | None, what: str = "memory") -> int | None:
    """Bytes from ``1073741824``, ``"1Gi"``, ``"512Mi"``, ``"2G"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{what} must be a size, got {value!r}")
    if isinstance(value, (int, float)):
        amount = float(value)
    else:
        match = _MEMORY.match(str(value).strip())
        if match is None:
            raise InvalidParameterValue(
                f"{what} must be a size such as '512Mi', '1Gi' or a number of bytes, got {value!r}"
            )
        amount = float(match.group(1)) * _MEMORY_UNITS[match.group(2)]
    if amount <= 0:
        raise InvalidParameterValue(f"{what} must be more than 0, got {value!r}")
    return int(amount)


def parse_cpu(value: float | str | None) -> float | None:
    """Cores from ``1``, ``0.5``, ``"500m"``, ``"2"``; None stays None."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str) and value.strip().endswith("m"):
            cores = float(value.strip()[:-1]) / 1000
        else:
            cores = float(value)
    except ValueError:
        raise InvalidParameterValue(
            f"cpu must be a number of cores such as 1, 0.5 or '500m', got {value!r}"
        ) from None
    if not cores > 0 or cores == float("inf"):
        raise InvalidParameterValue(f"cpu must be more than 0, got {value!r}")
    return cores


@dataclass(frozen=True, slots=True)
class StepOptions:
    """How a step runs. Components set defaults; a task may override them (``task.set_*``)."""

    retries: int = 0
    backoff: float = 1.0
    """Seconds before the first retry; each further retry waits ``backoff_factor`` times more."""
    backoff_factor: float = 2.0
    backoff_max: float = 3600.0
    timeout: float | None = None
    cache: bool = True
    cache_version: str | None = None
    cache_ttl: float | None = None
    cpu: float | None = None
    memory: int | None = None
    gpu: int = 0
    env: tuple[tuple[str, str], ...] = ()
    packages: tuple[str, ...] = ()
    image: str | None = None
    workers: int = 1
    """Processes the step runs on, under the training launcher (``RANK``, ``WORLD_SIZE``, ...);
    rank 0's return value and outputs are the step's."""
    backend: str = "auto"
    """The distributed backend when ``workers > 1``: ``auto``, ``gloo`` or ``nccl``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "retries": self.retries,
            "backoff": self.backoff,
            "backoff_factor": self.backoff_factor,
            "backoff_max": self.backoff_max,
            "timeout": self.timeout,
            "cache": self.cache,
            "cache_version": self.cache_version,
            "cache_ttl": self.cache_ttl,
            "cpu": self.cpu,
            "memory": self.memory,
            "gpu": self.gpu,
            "env": dict(self.env),
            "packages": list(self.packages),
            "image": self.image,
            "workers": self.workers,
            "backend": self.backend,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepOptions:
        values = dict(data)
        values["env"] = tuple(sorted(dict(values.get("env") or {}).items()))
        values["packages"] = tuple(values.get("packages") or ())
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def retry_delay(self, failed_attempts: int) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure."""
        delay = self.backoff * self.backoff_factor ** max(failed_attempts - 1, 0)
        return float(min(delay, self.backoff_max))


def make_options(
    *,
    base: StepOptions | None = None,
    retries: int | None = None,
    backoff: float | str | None = None,
    backoff_factor: float | None = None,
    backoff_max: float | str | None = None,
    timeout: float | str | None = None,
    cache: bool | None = None,
    cache_version: str | None = None,
    cache_ttl: float | str | None = None,
    cpu: float | str | None = None,
    memory: int | str | None = None,
    gpu: int | None = None,
    env: Mapping[str, str] | None = None,
    packages: Sequence[str] | None = None,
    image: str | None = None,
    workers: int | None = None,
    backend: str | None = None,
) -> StepOptions:
    """``base`` (the defaults when None) with the options given, each checked."""
    options = base or StepOptions()
    changes: dict[str, Any] = {}
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise InvalidParameterValue(f"retries must be an int from 0 to 100, got {retries!r}")
        changes["retries"] = retries
    if backoff is not None:
        changes["backoff"] = parse_duration(backoff, "backoff")
    if backoff_factor is not None:
        if isinstance(backoff_factor, bool) or not 1.0 <= float(backoff_factor) <= 100.0:
            raise InvalidParameterValue(
                f"backoff_factor must be from 1 to 100, got {backoff_factor!r}"
            )
        changes["backoff_factor"] = float(backoff_factor)
    if backoff_max is not None:
        changes["backoff_max"] = parse_duration(backoff_max, "backoff_max")
    if timeout is not None:
        seconds = parse_duration(timeout, "timeout")
        if not seconds:
            raise InvalidParameterValue(f"timeout must be more than 0, got {timeout!r}")
        changes["timeout"] = seconds
    if cache is not None:
        if not isinstance(cache, bool):
            raise InvalidParameterValue(f"cache must be True or False, got {cache!r}")
        changes["cache"] = cache
    if cache_version is not None:
        changes["cache_version"] = str(cache_version)
    if cache_ttl is not None:
        changes["cache_ttl"] = parse_duration(cache_ttl, "cache_ttl")
    if cpu is not None:
        changes["cpu"] = parse_cpu(cpu)
    if memory is not None:
        changes["memory"] = parse_memory(memory)
    if gpu is not None:
        if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
            raise InvalidParameterValue(f"gpu must be a whole number >= 0, got {gpu!r}")
        changes["gpu"] = gpu
    if env is not None:
        if not isinstance(env, Mapping):
            raise InvalidParameterValue(f"env must be a dict of str to str, got {env!r}")
        for key, value in env.items():
            if not isinstance(key, str) or not key or "=" in key or not isinstance(value, str):
                raise InvalidParameterValue(
                    f"env must map variable names to str values, got {key!r}: {value!r}"
                )
        changes["env"] = tuple(sorted({**dict(options.env), **env}.items()))
    if packages is not None:
        if isinstance(packages, str) or not all(isinstance(p, str) and p for p in packages):
            raise InvalidParameterValue(
                f"packages must be a list of requirement strings, got {packages!r}"
            )
        changes["packages"] = tuple(packages)
    if image is not None:
        changes["image"] = str(image)
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1024:
            raise InvalidParameterValue(f"workers must be an int from 1 to 1024, got {workers!r}")
        changes["workers"] = workers
    if backend is not None:
        if backend not in ("auto", "gloo", "nccl"):
            raise InvalidParameterValue(
                f"backend must be 'auto', 'gloo' or 'nccl', got {backend!r}"
            )
        changes["backend"] = backend
    return replace(options, **changes) if changes else options


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    kind: str
    """``parameter`` or ``artifact``."""
    param: ty.ParamType | None = None
    artifact: ty.ArtifactType | None = None
    default: Any = None
    has_default: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.param is not None:
            out.update(type=self.param.name, optional=self.param.optional)
        if self.artifact is not None:
            out.update(type=self.artifact.name, list=self.artifact.is_list)
        if self.has_default:
            out["default"] = self.default
        return out


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    kind: str
    param: ty.ParamType | None = None
    artifact: ty.ArtifactType | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.param is not None:
            out["type"] = self.param.name
        if self.artifact is not None:
            out["type"] = self.artifact.name
        return out


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """What the graph knows of a component: its typed inputs and outputs and its options."""

    name: str
    inputs: dict[str, InputSpec]
    outputs: dict[str, OutputSpec]
    returns: str
    """``none``, ``single`` (one value named ``Output``) or ``namedtuple``."""
    options: StepOptions = field(default_factory=StepOptions)
    description: str = ""
    kind: str = "python"
    """``python`` (a function run in a step process) or ``importer`` (brings an existing file
    or URI in as an artifact, in the executor itself)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "returns": self.returns,
            "options": self.options.to_dict(),
        }


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # a name the annotations use cannot be resolved
        raise InvalidParameterValue(
            f"component {func.__name__}: cannot resolve its type annotations ({exc})"
        ) from None


def _outputs_of(name: str, annotation: Any) -> tuple[str, dict[str, OutputSpec]]:
    if annotation is None or annotation is type(None) or annotation is inspect.Signature.empty:
        return "none", {}
    fields = getattr(annotation, "_fields", None)
    if isinstance(annotation, type) and issubclass(annotation, tuple) and fields is not None:
        hints = typing.get_type_hints(annotation)
        outputs = {}
        for field_name in fields:
            parsed = ty.parse_annotation(hints.get(field_name), f"{name} output {field_name}")
            if parsed.kind != "parameter":
                raise InvalidParameterValue(
                    f"{name} output {field_name}: return parameters only; write artifacts "
                    "through Output[...] arguments"
                )
            outputs[field_name] = OutputSpec(field_name, "parameter", param=parsed.param)
        return "namedtuple", outputs
    parsed = ty.parse_annotation(annotation, f"{name} return value")
    if parsed.kind != "parameter":
        raise InvalidParameterValue(
            f"{name} return value: return parameters only; write artifacts through "
            "Output[...] arguments"
        )
    return "single", {SINGLE_OUTPUT: OutputSpec(SINGLE_OUTPUT, "parameter", param=parsed.param)}


def build_spec(
    func: Callable[..., Any], name: str, options: StepOptions, with_returns: bool = True
) -> ComponentSpec:
    """The :class:`ComponentSpec` of ``func``; INVALID_PARAMETER_VALUE naming the component and
    parameter for anything a pipeline could not pass."""
    if not _NAME.match(name):
        raise InvalidParameterValue(
            f"component name {name!r} must be letters, digits, '_' or '-' (at most 100)"
        )
    hints = _hints(func)
    inputs: dict[str, InputSpec] = {}
    outputs: dict[str, OutputSpec] = {}
    for param in inspect.signature(func).parameters.values():
        where = f"component {name}, parameter {param.name}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise InvalidParameterValue(
                f"{where}: *args, **kwargs and positional-only parameters are not supported"
            )
        if param.name not in hints:
            raise InvalidParameterValue(f"{where}: add a type annotation")
        parsed = ty.parse_annotation(hints[param.name], where)
        has_default = param.default is not inspect.Parameter.empty
        if parsed.kind == "artifact":
            assert parsed.artifact is not None
            if parsed.artifact.direction == "output":
                outputs[param.name] = OutputSpec(param.name, "artifact", artifact=parsed.artifact)
                continue
            if has_default and param.default is not None:
                raise InvalidParameterValue(f"{where}: an input artifact can default only to None")
            inputs[param.name] = InputSpec(
                param.name,
                "artifact",
                artifact=parsed.artifact,
                default=None,
                has_default=has_default,
            )
            continue
        assert parsed.param is not None
        default = param.default if has_default else None
        if has_default:
            default = ty.check_value(default, parsed.param, f"{where} default")
        inputs[param.name] = InputSpec(
            param.name, "parameter", param=parsed.param, default=default, has_default=has_default
        )
    returns, returned = (
        _outputs_of(name, hints.get("return", inspect.Signature.empty))
        if with_returns
        else ("none", {})
    )
    for out_name in returned:
        if out_name in outputs or out_name in inputs:
            raise InvalidParameterValue(
                f"component {name}: output {out_name!r} is also the name of a parameter"
            )
    outputs.update(returned)
    description = inspect.getdoc(func) or ""
    return ComponentSpec(name, inputs, outputs, returns, options, description.split("\n\n")[0])


class Component:
    """A decorated function. Called inside a ``@pipeline`` function it adds a task to the graph
    and returns it; ``python_func`` is the plain function."""

    def __init__(self, func: Callable[..., Any], spec: ComponentSpec) -> None:
        self.python_func = func
        self.spec = spec
        self.name = spec.name
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from slipway.pipelines import dsl

        return dsl.add_task(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<component {self.name}>"

    @property
    def source(self) -> str:
        """The function's source without its decorators (empty when it has none, for example
        a function typed at an interactive prompt)."""
        return function_source(self.python_func)


def function_source(func: Callable[..., Any]) -> str:
    try:
        text = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return ""
    lines = text.splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def "))),
        0,
    )
    return "".join(lines[start:])


def component(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float | str = 1.0,
    backoff_factor: float = 2.0,
    backoff_max: float | str = "1h",
    timeout: float | str | None = None,
    cache: bool = True,
    cache_version: str | None = None,
    cache_ttl: float | str | None = None,
    cpu: float | str | None = None,
    memory: int | str | None = None,
    gpu: int = 0,
    env: Mapping[str, str] | None = None,
    packages: Sequence[str] = (),
    image: str | None = None,
    workers: int = 1,
    backend: str = "auto",
) -> Any:
    """Make ``func`` a pipeline component (as ``@component`` or ``@component(...)``).

    Args:
        name: the component's name (the function's name by default).
        retries: how many times a failed step is tried again; the n-th retry waits
            ``backoff * backoff_factor ** (n - 1)`` seconds, at most ``backoff_max``.
        timeout: kill the step after this long (``30``, ``"10m"``, ``"1h"``); a killed attempt
            counts as a failure (and is retried).
        cache: reuse the outputs of an earlier step with the same code, parameters and input
            data (see the cache key); ``cache_version`` changes the key by hand; ``cache_ttl``
            ignores entries older than this.
        cpu, memory, gpu: what the step needs; the local executor runs steps side by side only
            as far as the machine's cores and memory hold them, and Kubeflow gets them as
            resource requests.
        env: environment variables of the step's process.
        packages: pip requirements of the step (part of the cache key; installed by the
            container image on Kubeflow; locally they must be installed already).
        image: the container image on Kubeflow (``python:3.11`` by default).
        workers: run the step as a distributed job on this many processes (PyTorch's elastic
            agent, torchrun's environment; ``backend`` gloo, nccl or auto); its job run is a
            child of the step's run and rank 0's return value is the step's output. ``cpu``
            and ``gpu`` are per worker.
    """

    def decorate(fn: Callable[..., Any]) -> Component:
        if not callable(fn) or not hasattr(fn, "__code__"):
            raise InvalidParameterValue(f"@component decorates a function, got {fn!r}")
        options = make_options(
            retries=retries,
            backoff=backoff,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            timeout=timeout,
            cache=cache,
            cache_version=cache_version,
            cache_ttl=cache_ttl,
            cpu=cpu,
            memory=memory,
            gpu=gpu,
            env=env or {},
            packages=packages,
            image=image,
            workers=workers,
            backend=backend,
        )
        return Component(fn, build_spec(fn, name or fn.__name__, options))

    return decorate(func) if func is not None else decorate


__all__ = [
    "SINGLE_OUTPUT",
    "Component",
    "ComponentSpec",
    "InputSpec",
    "OutputSpec",
    "StepOptions",
    "component",
    "function_source",
    "make_options",
    "parse_cpu",
    "parse_duration",
    "parse_memory",
]
