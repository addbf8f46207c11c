"""Building a graph from a ``@pipeline`` function: tasks, channels and nested pipelines
(control flow is in :mod:`slipway.pipelines.control`).

Inside a pipeline function nothing runs: calling a component adds a :class:`Task`, and what
flows between tasks are *channels* (a pipeline parameter, a task output, a loop item, a
collected list). Every binding is checked as it is made, so a wrong input name, a missing
input, a type that does not fit or an output read outside its loop fails here, naming the task
and the parameter. Channels compare (``task.output > 0.9``) into condition expressions; using
one as a Python bool is an error, since its value is not known until the pipeline runs.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slipway.pipelines import types as ty
from slipway.pipelines.component import (
    SINGLE_OUTPUT,
    Component,
    ComponentSpec,
    InputSpec,
    OutputSpec,
    StepOptions,
    make_options,
)
from slipway.pipelines.graph import (
    ROOT,
    Binding,
    GroupNode,
    PipelineDefinitionError,
    PipelineGraph,
    TaskNode,
)

_local = threading.local()
_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")


# ---------------------------------------------------------------------------------------------
# Channels


class Channel:
    """A value known only when the pipeline runs."""

    def binding(self) -> Binding:
        raise NotImplementedError

    def param_type(self) -> str | None:
        """The parameter type of the value (None for an artifact)."""
        return None

    def artifact_type(self) -> ty.ArtifactType | None:
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def _compare(self, op: str, other: Any) -> Condition:
        return Condition(op, _operand(self), _operand(other), f"{self.describe()} {op} {other!r}")

    def __eq__(self, other: object) -> Condition:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: object) -> Condition:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: Any) -> Condition:
        return self._compare("<", other)

    def __le__(self, other: Any) -> Condition:
        return self._compare("<=", other)

    def __gt__(self, other: Any) -> Condition:
        return self._compare(">", other)

    def __ge__(self, other: Any) -> Condition:
        return self._compare(">=", other)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise PipelineDefinitionError(
            f"{self.describe()} has no value while the pipeline is being built; branch on it "
            "with `with condition(...)`"
        )

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


@dataclass(frozen=True, eq=False)
class Condition:
    """A comparison between two values, for ``condition``/``elif_``."""

    op: str
    left: Binding
    right: Binding
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "left": self.left, "right": self.right}

    def __bool__(self) -> bool:
        raise PipelineDefinitionError(
            f"({self.text}) is only known when the pipeline runs; use `with condition(...)`"
        )


def _operand(value: Any) -> Binding:
    if isinstance(value, Channel):
        if value.artifact_type() is not None:
            raise PipelineDefinitionError(
                f"{value.describe()} is an artifact; conditions compare parameters"
            )
        return _bind_in_scope(value, "condition")
    return {"constant": ty.check_value(value, ty.ParamType(ty.ANY), "condition operand")}


class ParamChannel(Channel):
    def __init__(self, name: str, ptype: ty.ParamType) -> None:
        self.name = name
        self.ptype = ptype

    def binding(self) -> Binding:
        return {"param": self.name}

    def param_type(self) -> str:
        return self.ptype.name

    def describe(self) -> str:
        return f"pipeline parameter {self.name}"


class OutputChannel(Channel):
    def __init__(self, task: str, output: str, spec: Any) -> None:
        self.task = task
        self.output = output
        self.spec = spec

    def binding(self) -> Binding:
        return {"task": self.task, "output": self.output}

    def param_type(self) -> str | None:
        return self.spec.param.name if self.spec.param is not None else None

    def artifact_type(self) -> ty.ArtifactType | None:
        return self.spec.artifact  # type: ignore[no-any-return]

    def describe(self) -> str:
        return f"output {self.output} of task {self.task}"


class ItemChannel(Channel):
    """The current item of a parallel_for; ``item["field"]`` reads a field of a dict item."""

    def __init__(self, loop: str, item_type: str, key: tuple[str, ...] = ()) -> None:
        self.loop = loop
        self.item_type = item_type
        self.key = key

    def binding(self) -> Binding:
        return {"item": self.loop, "key": list(self.key)}

    def param_type(self) -> str:
        return self.item_type if not self.key else ty.ANY

    def describe(self) -> str:
        suffix = "".join(f"[{k!r}]" for k in self.key)
        return f"item of {self.loop}{suffix}"

    def __getitem__(self, key: str) -> ItemChannel:
        if not isinstance(key, str):
            raise PipelineDefinitionError(f"{self.describe()}: fields are named by str keys")
        return ItemChannel(self.loop, ty.ANY, (*self.key, key))

    def __iter__(self) -> Iterator[Any]:
        raise PipelineDefinitionError(f"{self.describe()} cannot be iterated while building")


class CollectedChannel(Channel):
    """Every iteration's value of an output produced inside a parallel_for, as one list."""

    def __init__(self, inner: OutputChannel) -> None:
        self.inner = inner

    def binding(self) -> Binding:
        raise AssertionError("collected channels are bound by _bind_in_scope")

    def param_type(self) -> str | None:
        return ty.LIST if self.inner.param_type() is not None else None

    def artifact_type(self) -> ty.ArtifactType | None:
        art = self.inner.artifact_type()
        return None if art is None else ty.ArtifactType(art.name, "input", True)

    def describe(self) -> str:
        return f"collected({self.inner.describe()})"


def collected(output: Any) -> CollectedChannel:
    """Fan-in: the ``output`` of every iteration of the parallel_for it comes from, as a list
    (for an input typed ``list``, or ``Input[list[Model]]`` for artifacts)."""
    if isinstance(output, Task):
        output = output.output
    if not isinstance(output, OutputChannel):
        raise PipelineDefinitionError(
            f"collected() takes a task output from inside a parallel_for, got {output!r}"
        )
    return CollectedChannel(output)


# ---------------------------------------------------------------------------------------------
# The builder


@dataclass
class _Builder:
    graph: PipelineGraph
    stack: list[str] = field(default_factory=lambda: [ROOT])
    prefix: str = ""
    counter: int = 0
    chains: dict[str, list[Condition]] = field(default_factory=dict)
    """Per group: the conditions of the if/elif chain that an elif_/else_ would continue."""

    @property
    def group(self) -> str:
        return self.stack[-1]

    def next_id(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}-{self.counter}"

    def loops(self) -> list[str]:
        return [g.id for g in self.graph.group_path(self.group) if g.kind == "loop"]


def _builder(what: str) -> _Builder:
    builder: _Builder | None = getattr(_local, "builder", None)
    if builder is None:
        raise PipelineDefinitionError(
            f"{what} can only be used inside a @pipeline function (to call a component's "
            "function directly, use component.python_func(...))"
        )
    return builder


def _bind_in_scope(channel: Channel, where: str) -> Binding:
    """``channel``'s binding from the builder's current group: an output from inside a loop
    is readable only inside that loop (else collected), an item only inside its loop."""
    builder = _builder(where)
    here = builder.loops()
    if isinstance(channel, CollectedChannel):
        producer_loops = builder.graph.loops_of(channel.inner.task)
        outer = [loop for loop in producer_loops if loop not in here]
        if not outer:
            raise PipelineDefinitionError(
                f"{where}: collected() gathers an output produced inside a parallel_for that "
                f"does not enclose the consumer; {channel.inner.describe()} is not"
            )
        return {"collected": channel.inner.binding(), "loops": outer}
    if isinstance(channel, OutputChannel):
        outside = [loop for loop in builder.graph.loops_of(channel.task) if loop not in here]
        if outside:
            raise PipelineDefinitionError(
                f"{where}: {channel.describe()} is produced once per iteration of {outside[0]}; "
                "read it inside that loop, or gather it with collected(...)"
            )
    if isinstance(channel, ItemChannel) and channel.loop not in here:
        raise PipelineDefinitionError(f"{where}: {channel.describe()} is used outside its loop")
    return channel.binding()


def _check_binding(task: str, spec: InputSpec, value: Any) -> Binding:
    where = f"task {task}, input {spec.name}"
    if isinstance(value, Task):
        value = value.output
    if not isinstance(value, Channel):
        if spec.kind == "artifact":
            raise PipelineDefinitionError(
                f"{where}: an artifact input takes a task's output artifact, got {value!r}"
            )
        assert spec.param is not None
        if _holds_channel(value):
            raise PipelineDefinitionError(
                f"{where}: task outputs inside a list or dict are not supported; gather the "
                "outputs of a parallel_for with collected(...)"
            )
        return {"constant": ty.check_value(value, spec.param, where)}
    art = value.artifact_type()
    if spec.kind == "artifact":
        assert spec.artifact is not None
        if art is None:
            raise PipelineDefinitionError(
                f"{where}: expects artifact {spec.artifact.name}"
                f"{' list' if spec.artifact.is_list else ''}, got parameter {value.describe()}"
            )
        if art.is_list != spec.artifact.is_list:
            hint = "use Input[list[...]]" if art.is_list else "wrap it in collected(...)"
            raise PipelineDefinitionError(
                f"{where}: list and single artifact do not match ({value.describe()}); {hint}"
            )
        if spec.artifact.name != "Artifact" and not issubclass(art.cls, spec.artifact.cls):
            raise PipelineDefinitionError(
                f"{where}: expects {spec.artifact.name}, got {art.name} from {value.describe()}"
            )
        return _bind_in_scope(value, where)
    assert spec.param is not None
    if art is not None:
        raise PipelineDefinitionError(
            f"{where}: expects parameter {ty.TYPE_WORDS.get(spec.param.name)}, got artifact "
            f"{art.name} from {value.describe()}"
        )
    source = value.param_type() or ty.ANY
    if spec.param.name == ty.TASK_FINAL_STATUS or not ty.assignable(source, spec.param.name):
        raise PipelineDefinitionError(
            f"{where}: expects {ty.TYPE_WORDS.get(spec.param.name, spec.param.name)}, got "
            f"{ty.TYPE_WORDS.get(source, source)} from {value.describe()}"
        )
    return _bind_in_scope(value, where)


def _holds_channel(value: Any) -> bool:
    if isinstance(value, (Channel, Task)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_channel(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_channel(v) for v in value.values())
    return False


def _unique_task_name(graph: PipelineGraph, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``, ... : free among tasks and groups (a nested
    pipeline's group is named like a task)."""

    def taken(name: str) -> bool:
        return name in graph.tasks or name in graph.groups

    if not taken(base):
        return base
    n = 2
    while taken(f"{base}-{n}"):
        n += 1
    return f"{base}-{n}"


def add_task(component: Component, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Task:
    """Add a task running ``component`` with ``kwargs`` to the pipeline being built."""
    builder = _builder(f"component {component.name}")
    spec = component.spec
    graph = builder.graph
    if args:
        raise PipelineDefinitionError(
            f"component {spec.name}: pass inputs by name ({', '.join(spec.inputs) or 'none'})"
        )
    known = graph.components.get(spec.name)
    if known is not None and graph.functions.get(spec.name) is not component:
        raise PipelineDefinitionError(
            f"two different components are named {spec.name}; give one another name"
        )
    name = _unique_task_name(graph, builder.prefix + spec.name)
    unknown = [k for k in kwargs if k not in spec.inputs]
    if unknown:
        raise PipelineDefinitionError(
            f"task {name}: component {spec.name} has no input {unknown[0]!r} "
            f"(inputs: {', '.join(spec.inputs) or 'none'})"
        )
    inputs: dict[str, Binding] = {}
    for input_name, input_spec in spec.inputs.items():
        if input_name in kwargs:
            inputs[input_name] = _check_binding(name, input_spec, kwargs[input_name])
        elif input_spec.param is not None and input_spec.param.name == ty.TASK_FINAL_STATUS:
            continue  # filled in by the executor for an exit task
        elif not input_spec.has_default:
            raise PipelineDefinitionError(f"task {name}: missing input {input_name!r}")
    graph.components[spec.name] = spec
    graph.functions[spec.name] = component
    graph.tasks[name] = TaskNode(name, spec.name, builder.group, inputs, [], spec.options)
    builder.chains.pop(builder.group, None)
    return Task(name, component, builder)


IMPORTER_OUTPUT = "artifact"


def _importer_component(artifact_class: type[ty.Artifact]) -> Component:
    """The built-in component behind :func:`importer` for one artifact class."""
    cached = _IMPORTERS.get(artifact_class.__name__)
    if cached is not None:
        return cached

    def importer_step(uri: str) -> None:
        raise AssertionError("the executor imports artifacts itself")

    art = ty.ArtifactType(artifact_class.__name__, "output")
    spec = ComponentSpec(
        name=f"importer-{artifact_class.__name__.lower()}",
        inputs={"uri": InputSpec("uri", "parameter", param=ty.ParamType(ty.STRING))},
        outputs={IMPORTER_OUTPUT: OutputSpec(IMPORTER_OUTPUT, "artifact", artifact=art)},
        returns="none",
        options=StepOptions(cache=False),
        description=f"Brings an existing file or URI in as a {artifact_class.__name__}.",
        kind="importer",
    )
    found = _IMPORTERS[artifact_class.__name__] = Component(importer_step, spec)
    return found


_IMPORTERS: dict[str, Component] = {}


def importer(uri: Any, artifact_class: type[ty.Artifact] = ty.Dataset) -> Task:
    """Bring an existing file, folder or URI (``s3://...``) into the pipeline as an artifact
    (output ``artifact``). Its content digest is taken each run, so the steps that read it are
    served from the cache only while its bytes stay the same."""
    if not (isinstance(artifact_class, type) and issubclass(artifact_class, ty.Artifact)):
        raise PipelineDefinitionError(
            f"importer(): artifact_class must be an artifact class, got {artifact_class!r}"
        )
    return add_task(_importer_component(artifact_class), (), {"uri": uri})


class Task:
    """A step of the pipeline being built: its outputs are channels for later tasks."""

    def __init__(self, name: str, component: Component, builder: _Builder) -> None:
        self.name = name
        self.component = component
        self._builder = builder

    @property
    def _node(self) -> TaskNode:
        return self._builder.graph.tasks[self.name]

    @property
    def outputs(self) -> dict[str, OutputChannel]:
        return {
            key: OutputChannel(self.name, key, spec)
            for key, spec in self.component.spec.outputs.items()
        }

    @property
    def output(self) -> OutputChannel:
        """The task's return value (named ``Output``), else its only output; an error naming
        the outputs if it has none or several."""
        outputs = self.outputs
        if SINGLE_OUTPUT in outputs and self.component.spec.returns == "single":
            return outputs[SINGLE_OUTPUT]
        if len(outputs) != 1:
            raise PipelineDefinitionError(
                f"task {self.name} has {len(outputs)} outputs "
                f"({', '.join(outputs) or 'none'}); pick one with .outputs[name]"
            )
        return next(iter(outputs.values()))

    def after(self, *tasks: Task | PipelineTask) -> Task:
        """Run after ``tasks`` even though no data flows between them."""
        for other in tasks:
            names = other.task_names if isinstance(other, PipelineTask) else [other.name]
            for name in names:
                if name == self.name:
                    raise PipelineDefinitionError(f"task {self.name} cannot run after itself")
                if name not in self._node.after:
                    self._node.after.append(name)
        return self

    def set_options(self, **options: Any) -> Task:
        """Override the component's options for this task (``retries``, ``timeout``, ``cache``,
        ``cpu``, ``memory``, ``gpu``, ``env``, ...; see :func:`component`)."""
        try:
            self._node.options = make_options(base=self._node.options, **options)
        except TypeError as exc:
            raise PipelineDefinitionError(f"task {self.name}: {exc}") from None
        return self

    # Kubeflow's spellings, for code being ported.
    def set_retry(self, num_retries: int, backoff_duration: str | float | None = None) -> Task:
        return self.set_options(retries=num_retries, backoff=backoff_duration)

    def set_caching_options(self, enable_caching: bool) -> Task:
        return self.set_options(cache=enable_caching)

    def set_env_variable(self, name: str, value: str) -> Task:
        return self.set_options(env={name: value})

    def set_cpu_limit(self, cpu: str | float) -> Task:
        return self.set_options(cpu=cpu)

    def set_memory_limit(self, memory: str | int) -> Task:
        return self.set_options(memory=memory)

    def set_gpu_limit(self, gpu: int) -> Task:
        return self.set_options(gpu=int(gpu))

    def set_timeout(self, timeout: str | float) -> Task:
        return self.set_options(timeout=timeout)

    def __repr__(self) -> str:
        return f"<task {self.name}>"


class PipelineTask:
    """A pipeline used as a component inside another: its tasks are added to the outer graph
    (named ``<task>.<inner task>``), and its return value gives its outputs."""

    def __init__(self, name: str, task_names: list[str], outputs: dict[str, Channel]) -> None:
        self.name = name
        self.task_names = task_names
        self.outputs = outputs

    @property
    def output(self) -> Channel:
        if len(self.outputs) != 1:
            raise PipelineDefinitionError(
                f"pipeline task {self.name} has {len(self.outputs)} outputs; pick one with "
                ".outputs[name]"
            )
        return next(iter(self.outputs.values()))

    def after(self, *tasks: Task | PipelineTask) -> PipelineTask:
        graph = _builder("after()").graph
        for other in tasks:
            names = other.task_names if isinstance(other, PipelineTask) else [other.name]
            for inner in self.task_names:
                for name in names:
                    if name not in graph.tasks[inner].after:
                        graph.tasks[inner].after.append(name)
        return self


# ---------------------------------------------------------------------------------------------
# Control flow


@contextlib.contextmanager
def _group(node: GroupNode) -> Iterator[None]:
    builder = _builder(f"{node.kind} group")
    builder.graph.groups[node.id] = node
    builder.chains.pop(builder.group, None)
    builder.stack.append(node.id)
    try:
        yield
    finally:
        builder.stack.pop()


# ---------------------------------------------------------------------------------------------
# Pipelines


class Pipeline:
    """A decorated pipeline function: ``graph`` builds (once) and validates its graph; called
    inside another pipeline it is a nested pipeline; called anywhere else it runs locally."""

    def __init__(self, func: Callable[..., Any], name: str, description: str) -> None:
        self.func = func
        self.name = name
        self.description = description
        self.parameters = _pipeline_parameters(func, name)
        self._graph: PipelineGraph | None = None
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    @property
    def graph(self) -> PipelineGraph:
        if self._graph is None:
            self._graph = self.build()
        return self._graph

    def build(self) -> PipelineGraph:
        """A fresh, validated graph of this pipeline."""
        if getattr(_local, "builder", None) is not None:
            raise PipelineDefinitionError(f"pipeline {self.name}: already building a pipeline")
        graph = PipelineGraph(self.name, self.description, dict(self.parameters))
        builder = _Builder(graph)
        _local.builder = builder
        try:
            returned = self.func(
                **{
                    k: ParamChannel(k, v.param)
                    for k, v in self.parameters.items()
                    if v.param is not None
                }
            )
            graph.outputs = {
                key: _bind_in_scope(ch, f"pipeline {self.name} output {key}")
                for key, ch in _returned_channels(self.name, returned).items()
            }
        finally:
            _local.builder = None
        if not graph.tasks:
            raise PipelineDefinitionError(f"pipeline {self.name} has no tasks")
        return graph.validate()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder: _Builder | None = getattr(_local, "builder", None)
        if builder is None:
            from slipway.pipelines import run as run_pipeline

            if args:
                raise PipelineDefinitionError(f"pipeline {self.name}: pass parameters by name")
            return run_pipeline(self, parameters=kwargs)
        return self._nest(builder, args, kwargs)

    def _nest(self, builder: _Builder, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if args:
            raise PipelineDefinitionError(f"pipeline {self.name}: pass inputs by name")
        unknown = [k for k in kwargs if k not in self.parameters]
        if unknown:
            raise PipelineDefinitionError(
                f"pipeline {self.name} has no parameter {unknown[0]!r} "
                f"(parameters: {', '.join(self.parameters) or 'none'})"
            )
        values: dict[str, Any] = {}
        for key, spec in self.parameters.items():
            assert spec.param is not None
            where = f"pipeline {self.name}, parameter {key}"
            if key in kwargs:
                value = kwargs[key]
                if isinstance(value, Channel):
                    _check_binding(self.name, spec, value)
                    values[key] = value
                else:
                    values[key] = ty.check_value(value, spec.param, where)
            elif spec.has_default:
                values[key] = spec.default
            else:
                raise PipelineDefinitionError(f"{where}: missing")
        name = _unique_task_name(builder.graph, builder.prefix + self.name)
        graph = builder.graph
        node = GroupNode(name, "pipeline", builder.group, self.name)
        before = set(graph.tasks)
        saved_prefix = builder.prefix
        builder.prefix = f"{name}."
        try:
            with _group(node):
                returned = self.func(**values)
        finally:
            builder.prefix = saved_prefix
        inner = [t for t in graph.tasks if t not in before]
        return PipelineTask(name, inner, _returned_channels(self.name, returned))

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def _returned_channels(name: str, returned: Any) -> dict[str, Channel]:
    if returned is None:
        return {}
    if isinstance(returned, Task):
        returned = returned.output
    if isinstance(returned, Channel):
        return {SINGLE_OUTPUT: returned}
    if isinstance(returned, Mapping) and all(isinstance(v, Channel) for v in returned.values()):
        return {str(k): v for k, v in returned.items()}
    fields = getattr(returned, "_fields", None)
    if fields is not None:
        return {f: getattr(returned, f) for f in fields}
    raise PipelineDefinitionError(
        f"pipeline {name} returns {returned!r}; return a task output, or a dict of them"
    )


def _pipeline_parameters(func: Callable[..., Any], name: str) -> dict[str, InputSpec]:
    from slipway.pipelines.component import build_spec

    spec = build_spec(func, name, StepOptions(), with_returns=False)
    for key, value in spec.inputs.items():
        if value.kind != "parameter":
            raise PipelineDefinitionError(
                f"pipeline {name}, parameter {key}: pipelines take parameters, not artifacts"
            )
    if any(o.kind == "artifact" for o in spec.outputs.values()):
        raise PipelineDefinitionError(f"pipeline {name}: Output[...] arguments are not allowed")
    return dict(spec.inputs)


def pipeline(
    func: Callable[..., Any] | None = None, *, name: str | None = None, description: str = ""
) -> Any:
    """Make ``func`` a pipeline (as ``@pipeline`` or ``@pipeline(name=...)``). Its parameters,
    with their annotations and defaults, are the pipeline's parameters."""

    def decorate(fn: Callable[..., Any]) -> Pipeline:
        pipeline_name = name or fn.__name__
        if not _TASK_NAME.match(pipeline_name):
            raise PipelineDefinitionError(
                f"pipeline name {pipeline_name!r} must be letters, digits, '_', '.' or '-'"
            )
        doc = description or (inspect.getdoc(fn) or "").split("\n\n")[0]
        return Pipeline(fn, pipeline_name, doc)

    return decorate(func) if func is not None else decorate


__all__ = [
    "Channel",
    "CollectedChannel",
    "Condition",
    "ItemChannel",
    "OutputChannel",
    "ParamChannel",
    "Pipeline",
    "PipelineTask",
    "Task",
    "add_task",
    "collected",
    "importer",
    "pipeline",
]
