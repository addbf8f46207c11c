"""The pipeline graph: tasks, the groups that hold them, and how inputs are bound.

A ``@pipeline`` function builds one :class:`PipelineGraph` (see :mod:`slipway.pipelines.dsl`);
executors run it and the Kubeflow compiler translates it. It is plain data, and
:meth:`PipelineGraph.to_dict` is its stored form (the pipeline run keeps it for the UI and for
resume).

Bindings (how a task input, a loop's items or a condition operand gets its value) are dicts:

* ``{"constant": value}``
* ``{"param": name}``: a pipeline parameter;
* ``{"task": name, "output": key}``: an output of a task (in the same loop iteration when
  both sit in the same parallel_for);
* ``{"item": loop_id, "key": [k, ...]}``: the current item of an enclosing parallel_for (``key``
  picks fields of a dict item);
* ``{"collected": {"task": name, "output": key}, "loops": [loop_id, ...]}``: the output of every
  iteration of the loops named, as one list in iteration order (fan-in).

Groups: ``root``; ``condition`` (``conditions`` is a list of ``{"expr", "want"}``: an ``elif``
branch wants the earlier branches' expressions false and its own true); ``loop`` (``items`` and
``parallelism``, 0 for no limit); ``exit_handler`` (``exit_task`` runs after every task in the
group has finished, whatever their outcome); ``pipeline`` (a pipeline used as a component).
A condition's ``expr`` is ``{"op": "==" | "!=" | "<" | "<=" | ">" | ">=", "left": binding,
"right": binding}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import types as ty
from slipway.pipelines.component import (
    ComponentSpec,
    InputSpec,
    OutputSpec,
    StepOptions,
)

if TYPE_CHECKING:
    from slipway.pipelines.component import Component

Binding = dict[str, Any]
ROOT = "root"
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class PipelineDefinitionError(InvalidParameterValue):
    """The pipeline cannot be built: the message names the task and the parameter."""


@dataclass(slots=True)
class TaskNode:
    name: str
    component: str
    group: str
    inputs: dict[str, Binding] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)
    options: StepOptions = field(default_factory=StepOptions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "component": self.component,
            "group": self.group,
            "inputs": self.inputs,
            "after": list(self.after),
            "options": self.options.to_dict(),
        }


@dataclass(slots=True)
class GroupNode:
    id: str
    kind: str
    parent: str | None
    label: str = ""
    conditions: list[dict[str, Any]] = field(default_factory=list)
    items: Binding | None = None
    item_type: str = ty.ANY
    parallelism: int = 0
    exit_task: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "parent": self.parent}
        if self.label:
            out["label"] = self.label
        if self.kind == "condition":
            out["conditions"] = self.conditions
        if self.kind == "loop":
            out.update(items=self.items, item_type=self.item_type, parallelism=self.parallelism)
        if self.kind == "exit_handler":
            out["exit_task"] = self.exit_task
        return out


@dataclass
class PipelineGraph:
    name: str
    description: str = ""
    parameters: dict[str, InputSpec] = field(default_factory=dict)
    components: dict[str, ComponentSpec] = field(default_factory=dict)
    tasks: dict[str, TaskNode] = field(default_factory=dict)
    groups: dict[str, GroupNode] = field(
        default_factory=lambda: {ROOT: GroupNode(ROOT, "root", None)}
    )
    outputs: dict[str, Binding] = field(default_factory=dict)
    functions: dict[str, Component] = field(default_factory=dict, repr=False)
    """The components themselves (not stored): what an executor runs."""

    # -- structure ------------------------------------------------------------------------

    def group_path(self, group_id: str) -> list[GroupNode]:
        """The groups from the root down to ``group_id``."""
        path = []
        current: str | None = group_id
        while current is not None:
            node = self.groups[current]
            path.append(node)
            current = node.parent
        return path[::-1]

    def loops_of(self, task: str) -> list[str]:
        """The parallel_for groups around ``task``, outermost first."""
        return [g.id for g in self.group_path(self.tasks[task].group) if g.kind == "loop"]

    def tasks_in(self, group_id: str) -> list[str]:
        """Every task inside ``group_id`` (nested groups included), in graph order."""
        return [
            name
            for name, task in self.tasks.items()
            if any(g.id == group_id for g in self.group_path(task.group))
        ]

    def exit_handler_of(self, task: str) -> str | None:
        """The exit-handler group that ``task`` is the exit task of, if any."""
        for group in self.groups.values():
            if group.kind == "exit_handler" and group.exit_task == task:
                return group.id
        return None

    def upstream(self, task: str) -> list[str]:
        """The tasks ``task`` waits for: producers of its inputs, ``after``, producers read by
        the conditions and loop items of its groups, and for an exit task its whole group."""
        node = self.tasks[task]
        found: list[str] = []
        bindings: list[Binding] = list(node.inputs.values())
        for group in self.group_path(node.group):
            for cond in group.conditions:
                bindings.extend((cond["expr"]["left"], cond["expr"]["right"]))
            if group.items is not None:
                bindings.append(group.items)
        for binding in bindings:
            producer = producer_of(binding)
            if producer is not None:
                found.append(producer)
        found.extend(node.after)
        handler = self.exit_handler_of(task)
        if handler is not None:
            found.extend(self.tasks_in(handler))
        return list(dict.fromkeys(t for t in found if t != task))

    def downstream(self, tasks: set[str]) -> set[str]:
        """``tasks`` and every task that waits on one of them, transitively."""
        below = {name: set() for name in self.tasks}  # type: dict[str, set[str]]
        for name in self.tasks:
            for up in self.upstream(name):
                below[up].add(name)
        seen = set(tasks)
        stack = list(tasks)
        while stack:
            for child in below.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def topological_order(self) -> list[str]:
        """Tasks so that each comes after what it waits on; PipelineDefinitionError naming the
        tasks of a cycle."""
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]) -> None:
            mark = state.get(name)
            if mark == 2:
                return
            if mark == 1:
                cycle = [*trail[trail.index(name) :], name]
                raise PipelineDefinitionError(
                    f"pipeline {self.name}: tasks form a cycle: {' -> '.join(cycle)}"
                )
            state[name] = 1
            for up in self.upstream(name):
                visit(up, [*trail, name])
            state[name] = 2
            order.append(name)

        for name in self.tasks:
            visit(name, [])
        return order

    def validate(self) -> PipelineGraph:
        """Check what the builder could not check as it went (references and cycles)."""
        for name, task in self.tasks.items():
            if task.component not in self.components:
                raise PipelineDefinitionError(f"task {name}: unknown component {task.component}")
            for other in task.after:
                if other not in self.tasks:
                    raise PipelineDefinitionError(f"task {name}: .after() names unknown {other}")
            for key, binding in task.inputs.items():
                producer = producer_of(binding)
                if producer is not None and producer not in self.tasks:
                    raise PipelineDefinitionError(
                        f"task {name}, input {key}: unknown task {producer}"
                    )
        self.topological_order()
        return self

    def iter_bindings(self) -> Iterator[tuple[str, Binding]]:
        """``(where, binding)`` for every binding in the graph."""
        for name, task in self.tasks.items():
            for key, binding in task.inputs.items():
                yield f"task {name}, input {key}", binding
        for group in self.groups.values():
            for cond in group.conditions:
                yield f"{group.id} condition", cond["expr"]["left"]
                yield f"{group.id} condition", cond["expr"]["right"]
            if group.items is not None:
                yield f"{group.id} items", group.items

    # -- stored form ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": {k: v.to_dict() for k, v in self.parameters.items()},
            "components": {k: v.to_dict() for k, v in self.components.items()},
            "tasks": {
                k: {**v.to_dict(), "depends_on": self.upstream(k)} for k, v in self.tasks.items()
            },
            "groups": {k: v.to_dict() for k, v in self.groups.items()},
            "outputs": self.outputs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineGraph:
        """A graph read back from :meth:`to_dict` (without the component functions)."""
        graph = cls(name=data["name"], description=data.get("description", ""))
        graph.parameters = {k: _input_spec(k, v) for k, v in (data.get("parameters") or {}).items()}
        for name, spec in (data.get("components") or {}).items():
            graph.components[name] = ComponentSpec(
                name=spec["name"],
                inputs={k: _input_spec(k, v) for k, v in spec["inputs"].items()},
                outputs={k: _output_spec(k, v) for k, v in spec["outputs"].items()},
                returns=spec["returns"],
                options=StepOptions.from_dict(spec.get("options") or {}),
                description=spec.get("description", ""),
                kind=spec.get("kind", "python"),
            )
        graph.groups = {}
        for gid, g in (data.get("groups") or {}).items():
            graph.groups[gid] = GroupNode(
                id=g["id"],
                kind=g["kind"],
                parent=g.get("parent"),
                label=g.get("label", ""),
                conditions=list(g.get("conditions") or []),
                items=g.get("items"),
                item_type=g.get("item_type", ty.ANY),
                parallelism=int(g.get("parallelism") or 0),
                exit_task=g.get("exit_task"),
            )
        for name, t in (data.get("tasks") or {}).items():
            graph.tasks[name] = TaskNode(
                name=t["name"],
                component=t["component"],
                group=t["group"],
                inputs=dict(t.get("inputs") or {}),
                after=list(t.get("after") or []),
                options=StepOptions.from_dict(t.get("options") or {}),
            )
        graph.outputs = dict(data.get("outputs") or {})
        return graph


def producer_of(binding: Binding) -> str | None:
    """The task whose output ``binding`` reads, if any."""
    if "task" in binding:
        return str(binding["task"])
    if "collected" in binding:
        return str(binding["collected"]["task"])
    return None


def _input_spec(name: str, data: dict[str, Any]) -> InputSpec:
    if data["kind"] == "artifact":
        return InputSpec(
            name,
            "artifact",
            artifact=ty.ArtifactType(data["type"], "input", bool(data.get("list"))),
            has_default="default" in data,
        )
    return InputSpec(
        name,
        "parameter",
        param=ty.ParamType(data["type"], bool(data.get("optional"))),
        default=data.get("default"),
        has_default="default" in data,
    )


def _output_spec(name: str, data: dict[str, Any]) -> OutputSpec:
    if data["kind"] == "artifact":
        return OutputSpec(name, "artifact", artifact=ty.ArtifactType(data["type"], "output"))
    return OutputSpec(name, "parameter", param=ty.ParamType(data["type"]))


__all__ = [
    "COMPARISONS",
    "ROOT",
    "Binding",
    "GroupNode",
    "PipelineDefinitionError",
    "PipelineGraph",
    "TaskNode",
    "producer_of",
]
