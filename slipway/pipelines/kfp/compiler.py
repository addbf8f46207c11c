"""Compiling a pipeline's graph to Kubeflow Pipelines' IR (``PipelineSpec``, schema 2.1.0).

The IR is what Kubeflow's own compiler emits for the same pipeline, so a Kubeflow user reads
it without surprise and the Kubeflow backend runs it:

* every task is a task of a DAG with a ``comp-<component>`` component and an
  ``exec-<component>`` container (see :mod:`~slipway.pipelines.kfp.container`); tasks of one
  component share them unless their options (image, resources, env, packages) differ;
* every group is a DAG component of its own, run by a task of its parent DAG: a condition is
  ``comp-condition-N`` with the test as that task's CEL ``triggerPolicy.condition`` (see
  :mod:`~slipway.pipelines.kfp.cel`); a parallel_for is ``comp-for-loop-N`` with a
  ``parameterIterator`` and ``iteratorPolicy.parallelismLimit``; an exit handler is
  ``comp-exit-handler-N``, its exit task a sibling that waits with ``ALL_UPSTREAM_TASKS_COMPLETED``
  and reads the group's ``taskFinalStatus``; a nested pipeline is a DAG component named after
  it (not inlined), its tasks named as in the sub-pipeline;
* a value that crosses a group boundary travels, as Kubeflow does it, under a
  ``pipelinechannel--...`` name: into a group as an input of the group's task (and of its
  component), out of one as a DAG output. Out of a loop a DAG output is the list of every
  iteration's value: that is how ``collected(...)`` reaches its consumer (across nested loops
  it is gathered loop by loop, each loop's DAG passing its list up);
* a loop item's field (``item["key"]``) is read with a ``parameterExpressionSelector``
  (``parseJson(string_value)["key"]``) where it is used, under its own
  ``...-subvar-key`` name where it crosses into a group;
* pipeline parameters and outputs are the root's input and output definitions.

One difference: Kubeflow wraps an if/elif/else chain in a ``comp-condition-branches-N`` DAG,
which serves its ``OneOf``; Slipway has no OneOf, so the branches are sibling condition tasks
(with the same combined tests).

Names are Kubernetes names, as Kubeflow makes them: lowercase, ``.``, ``_`` and ``[`` become
``-`` (``etl.clean`` is ``etl-clean``), and a clash gets ``-2``, ``-3``...

The steps' own options map as follows: ``retries``/``backoff*`` to ``retryPolicy``, ``cache``
to ``cachingOptions`` (``{}`` is off), ``cpu``/``memory``/``gpu`` to container resources, ``env``
to the container's environment, ``timeout`` to ``SLIPWAY_STEP_TIMEOUT`` (enforced in the
container), ``cache_version`` to an argument (so Kubeflow's cache key changes with it);
``cache_ttl`` has no Kubeflow counterpart and is left out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import types as ty
from slipway.pipelines.component import ComponentSpec, InputSpec, StepOptions
from slipway.pipelines.graph import ROOT, Binding, GroupNode, PipelineGraph
from slipway.pipelines.kfp import cel, container
from slipway.pipelines.kfp.ir_check import check_ir

if TYPE_CHECKING:
    from slipway.pipelines.dsl import Pipeline

SCHEMA_VERSION = "2.1.0"
CHANNEL = "pipelinechannel--"
_PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")


def kfp_name(name: str) -> str:
    """``name`` as Kubeflow names tasks and components: lowercase letters, digits and ``-``."""
    text = re.sub(r"-+", "-", re.sub(r"[^-0-9a-z]+", "-", name.lower())).strip("-")
    return text or "task"


def sdk_version() -> str:
    from slipway import __version__

    return f"slipway-{__version__}"


def compile_pipeline(
    pipeline: Pipeline,
    *,
    image: str | None = None,
    slipway_requirement: str | None = None,
) -> dict[str, Any]:
    """``pipeline`` as Kubeflow Pipelines IR: a ``PipelineSpec`` as a dict (YAML-ready).

    Args:
        pipeline: a ``@pipeline``.
        image: the image of the components that name none (``python:3.11`` by default).
        slipway_requirement: what the containers pip-install to get Slipway
            (``slipway==<this version>`` by default; a wheel URL for an unreleased build).

    Raises:
        InvalidParameterValue: for what Kubeflow cannot express (a component whose source
            cannot be read, a pipeline output that is not a task's output, groups that would
            wait on each other), or if the IR fails :func:`check_ir`.
    """
    graph = pipeline.graph
    doc = _Compiler(
        graph,
        image or container.DEFAULT_IMAGE,
        slipway_requirement or container.slipway_requirement(),
    ).build()
    check_ir(doc)
    return doc


def write_pipeline_yaml(pipeline: Pipeline, path: str | Path, **kwargs: Any) -> None:
    """Compile ``pipeline`` (``kwargs`` as for :func:`compile_pipeline`) and write the IR to
    ``path`` as YAML, under a comment header that says what it is (as Kubeflow's files do)."""
    import yaml

    from slipway.artifacts.atomic import atomic_file

    doc = compile_pipeline(pipeline, **kwargs)
    text = _header(pipeline.graph, doc) + yaml.dump(
        doc, Dumper=_dumper(), sort_keys=True, default_flow_style=False, allow_unicode=True
    )
    with atomic_file(Path(path)) as handle:
        handle.write(text.encode("utf-8"))


def _header(graph: PipelineGraph, doc: dict[str, Any]) -> str:
    lines = [
        "Kubeflow Pipelines IR (PipelineSpec, schema "
        f"{doc['schemaVersion']}), compiled by {doc['sdkVersion']}",
        f"Name: {doc['pipelineInfo']['name']}",
    ]
    if graph.description:
        lines.append(f"Description: {graph.description}")
    if graph.parameters:
        lines.append("Inputs:")
        for name, spec in graph.parameters.items():
            assert spec.param is not None
            word = ty.TYPE_WORDS.get(spec.param.name, spec.param.name)
            default = f" [Default: {spec.default!r}]" if spec.has_default else ""
            lines.append(f"   {name}: {word}{default}")
    outputs = doc["root"].get("outputDefinitions", {})
    if outputs:
        lines.append("Outputs:")
        for name, spec in outputs.get("parameters", {}).items():
            lines.append(f"   {name}: {ty.TYPE_WORDS.get(spec['parameterType'], '?')}")
        for name, spec in outputs.get("artifacts", {}).items():
            lines.append(f"   {name}: {spec['artifactType']['schemaTitle']}")
    return "".join(f"# {line}\n" for line in lines)


def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Writes multi-line strings (the embedded programs) as readable ``|`` blocks."""

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return Dumper


# ---------------------------------------------------------------------------------------------
# Values that flow between DAGs


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a value comes from: a pipeline ``param``, a task ``output`` (``key`` is the output
    name), a loop's ``item`` or a ``subvar`` (fields ``key`` of a loop's item)."""

    kind: str
    name: str
    key: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Value:
    """The type of a value as seen in one DAG."""

    kind: str  # "parameter" | "artifact"
    type: str  # a parameter type, or an artifact class name
    is_list: bool = False

    def parameter_type(self) -> str:
        if self.is_list:
            return ty.LIST
        return ty.STRING if self.type == ty.ANY else self.type


def _source_of(binding: Binding) -> _Source:
    if "param" in binding:
        return _Source("param", binding["param"])
    if "task" in binding:
        return _Source("output", binding["task"], (binding["output"],))
    if "collected" in binding:
        inner = binding["collected"]
        return _Source("output", inner["task"], (inner["output"],))
    if "item" in binding:
        keys = tuple(str(k) for k in binding.get("key") or ())
        return _Source("subvar" if keys else "item", binding["item"], keys)
    raise InvalidParameterValue(f"cannot compile binding {binding!r}")


@dataclass
class _Dag:
    """One DAG component being built: its tasks and its interface."""

    group: str
    component: str
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: dict[tuple[str, str], str] = field(default_factory=dict)
    """``("task", name)`` or ``("group", id)`` -> its task name in this DAG."""
    input_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    input_artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    dag_output_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    dag_output_artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deps: dict[str, set[str]] = field(default_factory=dict)

    def allot(self, node: tuple[str, str], wanted: str) -> str:
        name = _unique(kfp_name(wanted), set(self.names.values()))
        self.names[node] = name
        return name

    def spec(self) -> dict[str, Any]:
        for name, task in self.tasks.items():
            deps = sorted(self.deps.get(name, ()))
            if deps:
                task["dependentTasks"] = deps
        dag: dict[str, Any] = {"tasks": self.tasks}
        outputs = _section(parameters=self.dag_output_params, artifacts=self.dag_output_artifacts)
        if outputs:
            dag["outputs"] = outputs
        out: dict[str, Any] = {"dag": dag}
        inputs = _section(parameters=self.input_params, artifacts=self.input_artifacts)
        if inputs:
            out["inputDefinitions"] = inputs
        outs = _section(parameters=self.output_params, artifacts=self.output_artifacts)
        if outs:
            out["outputDefinitions"] = outs
        return out


def _section(**parts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in parts.items() if v}


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


# ---------------------------------------------------------------------------------------------
# The compiler


class _Compiler:
    def __init__(self, graph: PipelineGraph, image: str, requirement: str) -> None:
        self.graph = graph
        self.image = image
        self.requirement = requirement
        self.components: dict[str, dict[str, Any]] = {}
        self.executors: dict[str, dict[str, Any]] = {}
        self.component_names: set[str] = set()
        self.executor_of: dict[tuple[str, str], str] = {}
        """(component, container key) -> component name, so equal containers are shared."""
        self.programs: dict[str, str] = {}
        self.dags: dict[str, _Dag] = {}
        self.paths: dict[str, list[str]] = {
            gid: [g.id for g in graph.group_path(gid)] for gid in graph.groups
        }
        self.labels: dict[str, str] = {}
        """Task name -> the label its outputs' channel names use (unique in the pipeline)."""
        self.item_inputs: dict[str, str] = {}
        self.loop_tasks: dict[str, dict[str, Any]] = {}

    # -- structure ------------------------------------------------------------------------

    def live_groups(self) -> list[str]:
        """Groups with at least one task (an empty block runs nothing and is left out)."""
        used: set[str] = set()
        for task in self.graph.tasks.values():
            used.update(self.paths[task.group])
        return [gid for gid in self.graph.groups if gid in used]

    def lca(self, a: str, b: str) -> str:
        common = ROOT
        for x, y in zip(self.paths[a], self.paths[b], strict=False):
            if x != y:
                break
            common = x
        return common

    def child_toward(self, group: str, home: str) -> str:
        """The child group of ``group`` on the way down to ``home``."""
        path = self.paths[home]
        return path[path.index(group) + 1]

    def node_in(self, dag: str, task: str) -> tuple[str, str]:
        """What stands for ``task`` in ``dag`` (an ancestor of its group): itself, or the
        child group of ``dag`` that holds it."""
        group = self.graph.tasks[task].group
        if group == dag:
            return ("task", task)
        return ("group", self.child_toward(dag, group))

    def relative_name(self, name: str, group: str) -> str:
        """``name`` without the prefix of the innermost nested pipeline around ``group``."""
        for gid in reversed(self.paths[group]):
            node = self.graph.groups[gid]
            if node.kind == "pipeline" and name.startswith(f"{gid}."):
                return name[len(gid) + 1 :]
        return name

    # -- build ----------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        graph = self.graph
        taken: set[str] = set()
        for name in graph.tasks:
            self.labels[name] = _unique(kfp_name(name), taken)
            taken.add(self.labels[name])
        live = self.live_groups()
        for gid in live:
            component = "root" if gid == ROOT else self.new_component_name(kfp_name(gid))
            self.dags[gid] = _Dag(gid, component)
        # every node gets its name in its parent DAG, in graph order
        for gid in live:
            if gid == ROOT:
                continue
            node = graph.groups[gid]
            assert node.parent is not None
            wanted = self.relative_name(gid, node.parent) if node.kind == "pipeline" else gid
            parent = self.dags[node.parent]
            name = parent.allot(("group", gid), wanted)
            parent.tasks[name] = {
                "taskInfo": {"name": name},
                "componentRef": {"name": self.dags[gid].component},
            }
        for name, task in graph.tasks.items():
            dag = self.dags[task.group]
            dag.allot(("task", name), self.relative_name(name, task.group))
        for gid in live:
            node = graph.groups[gid]
            if node.kind == "loop":
                self.item_inputs[gid] = self.item_input_name(node)
        for gid in live:
            node = graph.groups[gid]
            if node.kind == "loop":
                self.add_loop(node)
            elif node.kind == "condition":
                self.add_condition(node)
        for name in graph.tasks:
            self.add_task(name)
        for gid in live:
            node = graph.groups[gid]
            if node.kind == "exit_handler":
                self.add_exit_handler(node)
        self.add_dependencies()
        root = self.dags[ROOT]
        self.add_pipeline_interface(root)
        for gid in live:
            if gid != ROOT:
                self.components[self.dags[gid].component] = self.dags[gid].spec()
        info: dict[str, Any] = {"name": self.pipeline_name()}
        if info["name"] != graph.name:
            info["displayName"] = graph.name
        if graph.description:
            info["description"] = graph.description
        return {
            "pipelineInfo": info,
            "sdkVersion": sdk_version(),
            "schemaVersion": SCHEMA_VERSION,
            "components": dict(sorted(self.components.items())),
            "deploymentSpec": {"executors": dict(sorted(self.executors.items()))},
            "root": root.spec(),
        }

    def pipeline_name(self) -> str:
        name = kfp_name(self.graph.name)[:128].rstrip("-")
        if not _PIPELINE_NAME.match(name):  # pragma: no cover - kfp_name always fits
            raise InvalidParameterValue(f"cannot make a Kubeflow pipeline name of {name!r}")
        return name

    def new_component_name(self, base: str) -> str:
        name = _unique(f"comp-{base}", self.component_names)
        self.component_names.add(name)
        return name

    def group_task(self, gid: str) -> dict[str, Any]:
        node = self.graph.groups[gid]
        assert node.parent is not None
        parent = self.dags[node.parent]
        return parent.tasks[parent.names[("group", gid)]]

    # -- values across DAGs -----------------------------------------------------------------

    def home(self, source: _Source) -> str:
        if source.kind == "param":
            return ROOT
        if source.kind == "output":
            return self.graph.tasks[source.name].group
        return source.name  # a loop's item lives in the loop's DAG

    def value(self, source: _Source, at: str) -> _Value:
        """The type of ``source`` as a task in DAG ``at`` reads it."""
        graph = self.graph
        if source.kind == "param":
            spec = graph.parameters[source.name]
            assert spec.param is not None
            return _Value("parameter", spec.param.name)
        if source.kind == "item":
            return _Value("parameter", graph.groups[source.name].item_type)
        if source.kind == "subvar":
            return _Value("parameter", self.subvar_type(source))
        task = graph.tasks[source.name]
        out = graph.components[task.component].outputs[source.key[0]]
        home = task.group
        common = self.lca(home, at)
        below = self.paths[home][self.paths[home].index(common) + 1 :]
        is_list = any(graph.groups[g].kind == "loop" for g in below)
        if out.artifact is not None:
            return _Value("artifact", out.artifact.name, is_list)
        assert out.param is not None
        return _Value("parameter", out.param.name, is_list)

    def subvar_type(self, source: _Source) -> str:
        """A field's type, when the loop's items are a constant list of dicts that agree."""
        items = self.graph.groups[source.name].items or {}
        if "constant" not in items:
            return ty.ANY
        found: set[str] = set()
        for item in items["constant"]:
            value = item
            for key in source.key:
                if not isinstance(value, dict) or key not in value:
                    return ty.ANY
                value = value[key]
            found.add(ty.type_of_value(value))
        return found.pop() if len(found) == 1 else ty.ANY

    def channel(self, source: _Source) -> str:
        if source.kind == "param":
            return CHANNEL + source.name
        if source.kind == "output":
            return f"{CHANNEL}{self.labels[source.name]}-{source.key[0]}"
        item = self.item_inputs[source.name]
        if source.kind == "item":
            return item
        keys = "-".join(re.sub(r"[^A-Za-z0-9_]+", "_", k) for k in source.key)
        return f"{item}-subvar-{keys}"

    def item_input_name(self, loop: GroupNode) -> str:
        items = loop.items or {}
        if "constant" in items:
            digits = re.sub(r"\D", "", loop.id) or str(len(self.item_inputs) + 1)
            base = f"{CHANNEL}loop-item-param-{digits}"
        else:
            base = f"{self.channel(_source_of(items))}-loop-item"
        return _unique(base, set(self.item_inputs.values()))

    def ref(self, source: _Source, dag_id: str) -> dict[str, Any]:
        """How a task directly in ``dag_id`` reads ``source`` (a TaskInputsSpec entry)."""
        home = self.home(source)
        value = self.value(source, dag_id)
        artifact = value.kind == "artifact"
        if home == dag_id:
            return self.native(source, dag_id)
        if dag_id in self.paths[home]:  # the value is made further down: bring it up
            child = self.child_toward(dag_id, home)
            key = self.surface(child, source)
            producer = self.dags[dag_id].names[("group", child)]
            if artifact:
                return {"taskOutputArtifact": {"producerTask": producer, "outputArtifactKey": key}}
            return {"taskOutputParameter": {"producerTask": producer, "outputParameterKey": key}}
        name = self.require_input(dag_id, source)
        return {"componentInputArtifact" if artifact else "componentInputParameter": name}

    def native(self, source: _Source, dag_id: str) -> dict[str, Any]:
        """``source`` read in its own DAG."""
        if source.kind == "param":
            return {"componentInputParameter": source.name}
        if source.kind == "item":
            return {"componentInputParameter": self.item_inputs[source.name]}
        if source.kind == "subvar":
            selector = "parseJson(string_value)" + "".join(f"[{json.dumps(k)}]" for k in source.key)
            return {
                "componentInputParameter": self.item_inputs[source.name],
                "parameterExpressionSelector": selector,
            }
        producer = self.dags[dag_id].names[("task", source.name)]
        key = source.key[0]
        if self.value(source, dag_id).kind == "artifact":
            return {"taskOutputArtifact": {"producerTask": producer, "outputArtifactKey": key}}
        return {"taskOutputParameter": {"producerTask": producer, "outputParameterKey": key}}

    def require_input(self, dag_id: str, source: _Source) -> str:
        """Make ``source`` an input of DAG ``dag_id`` (wired by its task in the parent DAG)."""
        name = self.channel(source)
        dag = self.dags[dag_id]
        value = self.value(source, dag_id)
        table = dag.input_artifacts if value.kind == "artifact" else dag.input_params
        if name in table:
            return name
        table[name] = _definition(value)
        node = self.graph.groups[dag_id]
        assert node.parent is not None
        spec = self.ref(source, node.parent)
        inputs = self.group_task(dag_id).setdefault("inputs", {})
        section = "artifacts" if value.kind == "artifact" else "parameters"
        inputs.setdefault(section, {})[name] = spec
        return name

    def surface(self, gid: str, source: _Source) -> str:
        """Make task output ``source`` (made inside group ``gid``) an output of its DAG."""
        name = self.channel(source)
        dag = self.dags[gid]
        node = self.graph.groups[gid]
        assert node.parent is not None
        value = self.value(source, node.parent)
        artifact = value.kind == "artifact"
        table = dag.dag_output_artifacts if artifact else dag.dag_output_params
        if name in table:
            return name
        home = self.home(source)
        if home == gid:
            producer, key = dag.names[("task", source.name)], source.key[0]
        else:
            child = self.child_toward(gid, home)
            producer, key = dag.names[("group", child)], self.surface(child, source)
        if artifact:
            table[name] = {
                "artifactSelectors": [{"producerSubtask": producer, "outputArtifactKey": key}]
            }
            dag.output_artifacts[name] = _definition(value)
        else:
            table[name] = {
                "valueFromParameter": {"producerSubtask": producer, "outputParameterKey": key}
            }
            dag.output_params[name] = _definition(value)
        return name

    # -- groups ---------------------------------------------------------------------------

    def add_loop(self, node: GroupNode) -> None:
        task = self.group_task(node.id)
        dag = self.dags[node.id]
        item_input = self.item_inputs[node.id]
        dag.input_params[item_input] = _definition(_Value("parameter", node.item_type))
        items = node.items or {}
        iterator: dict[str, Any] = {"itemInput": item_input}
        if "constant" in items:
            iterator["items"] = {"raw": json.dumps(items["constant"])}
        else:
            iterator["items"] = {"inputParameter": self.require_input(node.id, _source_of(items))}
        task["parameterIterator"] = iterator
        if node.parallelism:
            task["iteratorPolicy"] = {"parallelismLimit": node.parallelism}

    def add_condition(self, node: GroupNode) -> None:
        def operand(binding: Binding) -> tuple[str, str]:
            source = _source_of(binding)
            name = self.require_input(node.id, source)
            return name, self.value(source, node.id).type

        text = cel.condition(node.conditions, operand)
        self.group_task(node.id)["triggerPolicy"] = {"condition": text}

    def add_exit_handler(self, node: GroupNode) -> None:
        assert node.exit_task is not None
        assert node.parent is not None
        parent = self.dags[node.parent]
        task = parent.tasks[parent.names[("task", node.exit_task)]]
        handler = parent.names[("group", node.id)]
        spec = self.graph.components[self.graph.tasks[node.exit_task].component]
        for name, input_spec in spec.inputs.items():
            if input_spec.param is not None and input_spec.param.name == ty.TASK_FINAL_STATUS:
                params = task.setdefault("inputs", {}).setdefault("parameters", {})
                params[name] = {"taskFinalStatus": {"producerTask": handler}}
        task["triggerPolicy"] = {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}

    # -- tasks ----------------------------------------------------------------------------

    def add_task(self, name: str) -> None:
        node = self.graph.tasks[name]
        dag = self.dags[node.group]
        kfp = dag.names[("task", name)]
        spec = self.graph.components[node.component]
        task: dict[str, Any] = {
            "taskInfo": {"name": kfp},
            "componentRef": {"name": self.component_for(name, spec, node.options)},
        }
        params: dict[str, Any] = {}
        artifacts: dict[str, Any] = {}
        for input_name, binding in node.inputs.items():
            if "constant" in binding:
                params[input_name] = {"runtimeValue": {"constant": binding["constant"]}}
                continue
            entry = self.ref(_source_of(binding), node.group)
            is_artifact = spec.inputs[input_name].kind == "artifact"
            (artifacts if is_artifact else params)[input_name] = entry
        inputs = _section(parameters=params, artifacts=artifacts)
        if inputs:
            task["inputs"] = inputs
        task["cachingOptions"] = {"enableCache": True} if node.options.cache else {}
        retry = _retry_policy(node.options)
        if retry:
            task["retryPolicy"] = retry
        dag.tasks[kfp] = task

    def component_for(self, task: str, spec: ComponentSpec, options: StepOptions) -> str:
        """The component (and executor) that runs ``spec`` with ``options``."""
        kind = getattr(spec, "kind", "python")
        if kind == "importer":
            executor: dict[str, Any] = _importer_executor(spec)
        else:
            component = self.graph.functions.get(spec.name)
            if component is None:
                raise InvalidParameterValue(
                    f"task {task}: the function of component {spec.name} is not known (a graph "
                    "read back from storage); compile the pipeline from its source"
                )
            program = self.programs.get(spec.name)
            if program is None:
                from slipway.pipelines.kfp.program import component_program

                program = self.programs[spec.name] = component_program(component)
            executor = container.executor_spec(
                function=component.python_func.__name__,
                program=program,
                options=options,
                image=self.image,
                requirement=self.requirement,
            )
        key = (spec.name, json.dumps(executor, sort_keys=True))
        found = self.executor_of.get(key)
        if found is not None:
            return found
        name = self.new_component_name(kfp_name(spec.name))
        label = "exec-" + name[len("comp-") :]
        self.executor_of[key] = name
        self.executors[label] = executor
        body: dict[str, Any] = {"executorLabel": label}
        body.update(_interface(spec))
        self.components[name] = body
        return name

    def add_dependencies(self) -> None:
        graph = self.graph
        for name, task in graph.tasks.items():
            for up in graph.upstream(name):
                common = self.lca(task.group, graph.tasks[up].group)
                dag = self.dags[common]
                mine = dag.names[self.node_in(common, name)]
                theirs = dag.names[self.node_in(common, up)]
                if mine != theirs:
                    dag.deps.setdefault(mine, set()).add(theirs)

    def add_pipeline_interface(self, root: _Dag) -> None:
        for name, spec in self.graph.parameters.items():
            root.input_params[name] = _parameter_definition(spec)
        for key, binding in self.graph.outputs.items():
            source = _source_of(binding)
            if source.kind != "output":
                raise InvalidParameterValue(
                    f"pipeline {self.graph.name} output {key}: Kubeflow takes a pipeline's "
                    "outputs from tasks; return a task's output"
                )
            value = self.value(source, ROOT)
            home = self.home(source)
            if home == ROOT:
                producer, out_key = root.names[("task", source.name)], source.key[0]
            else:
                child = self.child_toward(ROOT, home)
                producer, out_key = root.names[("group", child)], self.surface(child, source)
            if value.kind == "artifact":
                pick = {"producerSubtask": producer, "outputArtifactKey": out_key}
                root.dag_output_artifacts[key] = {"artifactSelectors": [pick]}
                root.output_artifacts[key] = _definition(value)
            else:
                pick = {"producerSubtask": producer, "outputParameterKey": out_key}
                root.dag_output_params[key] = {"valueFromParameter": pick}
                root.output_params[key] = _definition(value)


# ---------------------------------------------------------------------------------------------
# Pieces of specs


def _artifact_type(name: str) -> dict[str, str]:
    cls = ty.ARTIFACT_TYPES[name]
    return {"schemaTitle": cls.schema_title, "schemaVersion": cls.schema_version}


def _definition(value: _Value) -> dict[str, Any]:
    if value.kind == "artifact":
        out: dict[str, Any] = {"artifactType": _artifact_type(value.type)}
        if value.is_list:
            out["isArtifactList"] = True
        return out
    return {"parameterType": value.parameter_type()}


def _parameter_definition(spec: InputSpec) -> dict[str, Any]:
    assert spec.param is not None
    out: dict[str, Any] = {"parameterType": spec.param.name}
    if spec.param.name == ty.TASK_FINAL_STATUS:
        out["isOptional"] = True  # the backend fills it in, as Kubeflow declares it
        return out
    if spec.has_default and spec.default is not None:
        out["defaultValue"] = spec.default
    if spec.has_default or spec.param.optional:
        out["isOptional"] = True
    return out


def _interface(spec: ComponentSpec) -> dict[str, Any]:
    in_params: dict[str, Any] = {}
    in_artifacts: dict[str, Any] = {}
    for name, item in spec.inputs.items():
        if item.kind == "artifact":
            assert item.artifact is not None
            definition: dict[str, Any] = {"artifactType": _artifact_type(item.artifact.name)}
            if item.artifact.is_list:
                definition["isArtifactList"] = True
            if item.has_default:
                definition["isOptional"] = True
            in_artifacts[name] = definition
        else:
            in_params[name] = _parameter_definition(item)
    out_params: dict[str, Any] = {}
    out_artifacts: dict[str, Any] = {}
    for name, out in spec.outputs.items():
        if out.artifact is not None:
            out_artifacts[name] = {"artifactType": _artifact_type(out.artifact.name)}
        else:
            assert out.param is not None
            out_params[name] = {"parameterType": out.param.name}
    body: dict[str, Any] = {}
    inputs = _section(parameters=in_params, artifacts=in_artifacts)
    if inputs:
        body["inputDefinitions"] = inputs
    outputs = _section(parameters=out_params, artifacts=out_artifacts)
    if outputs:
        body["outputDefinitions"] = outputs
    return body


def _importer_executor(spec: ComponentSpec) -> dict[str, Any]:
    (output,) = spec.outputs.values()
    assert output.artifact is not None
    (uri_input,) = spec.inputs
    return {
        "importer": {
            "artifactUri": {"runtimeParameter": uri_input},
            "typeSchema": _artifact_type(output.artifact.name),
            # the file behind a URI may change between runs: import it afresh each time
            "reimport": True,
        }
    }


def _retry_policy(options: StepOptions) -> dict[str, Any]:
    if not options.retries:
        return {}
    return {
        "maxRetryCount": options.retries,
        "backoffDuration": container.duration_text(options.backoff),
        "backoffFactor": options.backoff_factor,
        "backoffMaxDuration": container.duration_text(options.backoff_max),
    }


__all__ = ["SCHEMA_VERSION", "compile_pipeline", "kfp_name", "sdk_version", "write_pipeline_yaml"]
