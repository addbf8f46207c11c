"""The graph as it unfolds while a pipeline runs: task instances, loop items, bindings.

A task inside ``parallel_for`` loops has one *instance* per iteration of each loop around it,
identified by its *scope*: the iteration index of each enclosing loop, outermost first
(``train[2]``, ``inner[0][1]``). A loop's items are known once what they are bound to is known
(at once for a constant or a parameter, when the producer finishes for a task output), so
instances appear as the run goes. :class:`Runtime` holds that state and answers, for an
instance, whether it can be decided yet and what its inputs are; it starts no process and
writes nothing (the executor does).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from slipway.entities.pipelines import StepStatus
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import types as ty
from slipway.pipelines.graph import Binding, PipelineGraph

Scope = tuple[int, ...]
"""Iteration indices of the loops around a task, outermost first."""

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def task_id(name: str, scope: Scope) -> str:
    return name + "".join(f"[{i}]" for i in scope)


def split_task_id(value: str) -> tuple[str, Scope]:
    """``("train", (2,))`` from ``"train[2]"``."""
    name, _, rest = value.partition("[")
    if not rest:
        return name, ()
    return name, tuple(int(p) for p in rest.rstrip("]").split("]["))


class Blocked(Exception):
    """A value can never be known: what it comes from failed, was skipped or cancelled."""


class NotYet(Exception):
    """A value is not known yet: what it comes from has not finished."""


@dataclass(eq=False)
class Instance:
    task: str
    scope: Scope
    status: StepStatus = StepStatus.QUEUED
    outputs: dict[str, Any] = field(default_factory=dict)
    """``{"parameters": {...}, "artifacts": {...}}`` once it succeeded (or was cached)."""
    message: str | None = None
    started: bool = False
    """A process was started (or a cache hit recorded) for it in this execution."""

    @property
    def id(self) -> str:
        return task_id(self.task, self.scope)


class Runtime:
    """Instances and loop items of one pipeline run."""

    def __init__(self, graph: PipelineGraph, parameters: dict[str, Any]) -> None:
        self.graph = graph
        self.parameters = parameters
        self.instances: dict[str, Instance] = {}
        self.order = {name: i for i, name in enumerate(graph.topological_order())}
        self._loops = {name: graph.loops_of(name) for name in graph.tasks}
        self._upstream = {name: graph.upstream(name) for name in graph.tasks}
        self._items: dict[tuple[str, Scope], list[Any]] = {}

    # -- loops and scopes -----------------------------------------------------------------

    def loop_items(self, loop: str, outer: Scope) -> list[Any]:
        """The items of ``loop`` in the iteration ``outer`` of the loops around it; NotYet or
        Blocked while they cannot be known."""
        key = (loop, outer)
        if key not in self._items:
            group = self.graph.groups[loop]
            assert group.items is not None
            value = self.resolve(group.items, self._outer_loops(loop), outer, f"{loop} items")
            if not isinstance(value, list):
                raise Blocked(f"{loop}: items must be a list, got {type(value).__name__}")
            self._items[key] = value
        return self._items[key]

    def _outer_loops(self, loop: str) -> list[str]:
        parent = self.graph.groups[loop].parent
        assert parent is not None
        return [g.id for g in self.graph.group_path(parent) if g.kind == "loop"]

    def scopes(self, loops: list[str], prefix: Scope = ()) -> Iterator[Scope]:
        """Every known scope of ``loops`` that starts with ``prefix``; NotYet or Blocked when
        the items of one of the loops cannot be known (yet)."""
        depth = len(prefix)
        if depth == len(loops):
            yield prefix
            return
        items = self.loop_items(loops[depth], prefix)
        for index in range(len(items)):
            yield from self.scopes(loops, (*prefix, index))

    def instance(self, task: str, scope: Scope) -> Instance:
        key = task_id(task, scope)
        found = self.instances.get(key)
        if found is None:
            found = self.instances[key] = Instance(task, scope)
        return found

    def expand(self) -> list[Instance]:
        """Create the instances whose loops' items are known; returns them all, in graph order
        (then iteration order)."""
        for name in self.order:
            try:
                for scope in self.scopes(self._loops[name]):
                    self.instance(name, scope)
            except (NotYet, Blocked):
                continue
        return sorted(self.instances.values(), key=lambda i: (self.order[i.task], i.scope))

    def related(self, producer: str, consumer_loops: list[str], scope: Scope) -> list[Instance]:
        """The instances of ``producer`` that an instance in ``scope`` (of ``consumer_loops``)
        depends on: same iterations of the loops they share, every iteration of the others."""
        producer_loops = self._loops[producer]
        shared = 0
        while (
            shared < min(len(producer_loops), len(consumer_loops))
            and producer_loops[shared] == consumer_loops[shared]
        ):
            shared += 1
        return [self.instance(producer, s) for s in self.scopes(producer_loops, scope[:shared])]

    # -- values ---------------------------------------------------------------------------

    def resolve(self, binding: Binding, loops: list[str], scope: Scope, where: str) -> Any:
        """The value of ``binding`` for an instance in ``scope`` (of ``loops``)."""
        if "constant" in binding:
            return binding["constant"]
        if "param" in binding:
            return self.parameters.get(binding["param"])
        if "item" in binding:
            loop = binding["item"]
            position = loops.index(loop)
            value = self.loop_items(loop, scope[:position])[scope[position]]
            for key in binding.get("key") or []:
                if not isinstance(value, dict) or key not in value:
                    raise Blocked(f"{where}: loop item {value!r} has no field {key!r}")
                value = value[key]
            return value
        if "task" in binding:
            (found,) = self.related(binding["task"], loops, scope)
            return self._output_of(found, binding["output"])
        if "collected" in binding:
            inner = binding["collected"]
            values = []
            for inst in self.related(inner["task"], loops, scope):
                if not inst.status.terminal:
                    raise NotYet(inst.id)
                if inst.status == StepStatus.SKIPPED:
                    continue
                values.append(self._output_of(inst, inner["output"]))
            return values
        raise Blocked(f"{where}: unknown binding {binding!r}")

    @staticmethod
    def _output_of(inst: Instance, key: str) -> Any:
        if not inst.status.terminal:
            raise NotYet(inst.id)
        if not inst.status.done_ok:
            raise Blocked(f"{inst.id} {inst.status.value.lower()}")
        if key in inst.outputs.get("parameters", {}):
            return inst.outputs["parameters"][key]
        if key in inst.outputs.get("artifacts", {}):
            return inst.outputs["artifacts"][key]
        raise Blocked(f"{inst.id} has no output {key!r}")

    # -- readiness ------------------------------------------------------------------------

    def upstream_instances(self, inst: Instance) -> list[Instance]:
        """What ``inst`` waits for (NotYet/Blocked when a loop's items are not known)."""
        loops = self._loops[inst.task]
        found: list[Instance] = []
        for name in self._upstream[inst.task]:
            found.extend(self.related(name, loops, inst.scope))
        return found

    def decide(self, inst: Instance) -> tuple[str, str | None]:
        """``("wait", None)``, ``("skip", why)``, ``("fail", why)`` or ``("run", None)`` for a
        queued instance."""
        is_exit = self.graph.exit_handler_of(inst.task) is not None
        try:
            ups = self.upstream_instances(inst)
        except NotYet:
            return "wait", None
        except Blocked as exc:
            return ("run", None) if is_exit else ("skip", f"upstream: {exc}")
        if any(not u.status.terminal for u in ups):
            return "wait", None
        if not is_exit:
            bad = next((u for u in ups if not u.status.done_ok), None)
            if bad is not None:
                return "skip", f"upstream {bad.id} {bad.status.value.lower()}"
        loops = self._loops[inst.task]
        node = self.graph.tasks[inst.task]
        for group in self.graph.group_path(node.group):
            for cond in group.conditions:
                expr = cond["expr"]
                try:
                    left = self.resolve(expr["left"], loops, inst.scope, group.id)
                    right = self.resolve(expr["right"], loops, inst.scope, group.id)
                    holds = bool(_OPS[expr["op"]](left, right))
                except NotYet:
                    return "wait", None
                except Blocked as exc:
                    return "skip", f"condition of {group.id}: {exc}"
                except TypeError as exc:
                    return "fail", f"condition of {group.id}: cannot compare ({exc})"
                if holds != cond["want"]:
                    label = group.label or group.id
                    return "skip", f"condition {'false' if cond['want'] else 'true'}: {label}"
        return "run", None

    def inputs_of(self, inst: Instance) -> dict[str, Any]:
        """``{"parameters": {...}, "artifacts": {...}}`` for a runnable instance; Blocked with
        the reason when a value does not fit its input."""
        node = self.graph.tasks[inst.task]
        spec = self.graph.components[node.component]
        loops = self._loops[inst.task]
        params: dict[str, Any] = {}
        artifacts: dict[str, Any] = {}
        for name, input_spec in spec.inputs.items():
            where = f"task {inst.id}, input {name}"
            if name in node.inputs:
                value = self.resolve(node.inputs[name], loops, inst.scope, where)
            elif input_spec.param is not None and input_spec.param.name == ty.TASK_FINAL_STATUS:
                continue
            else:
                value = input_spec.default
            if input_spec.kind == "artifact":
                if value is not None:
                    artifacts[name] = value
                continue
            assert input_spec.param is not None
            try:
                params[name] = ty.check_value(value, input_spec.param, where)
            except InvalidParameterValue as exc:
                raise Blocked(exc.message) from None
        return {"parameters": params, "artifacts": artifacts}

    def group_status(self, group: str) -> tuple[str, list[str]]:
        """For an exit handler: ``SUCCEEDED``/``FAILED``/``CANCELLED`` of the tasks in
        ``group``, and the ids of those that failed."""
        names = set(self.graph.tasks_in(group))
        members = [i for i in self.instances.values() if i.task in names]
        failed = [i.id for i in members if i.status == StepStatus.FAILED]
        if failed:
            return "FAILED", failed
        if any(i.status == StepStatus.CANCELLED for i in members):
            return "CANCELLED", []
        return "SUCCEEDED", []

    def pipeline_outputs(self) -> dict[str, Any]:
        """The pipeline's return values (those that can be known)."""
        out: dict[str, Any] = {}
        for key, binding in self.graph.outputs.items():
            try:
                out[key] = self.resolve(binding, [], (), f"output {key}")
            except (NotYet, Blocked):
                continue
        return out


__all__ = [
    "Blocked",
    "Instance",
    "NotYet",
    "Runtime",
    "Scope",
    "split_task_id",
    "task_id",
]
