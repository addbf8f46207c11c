"""Checks of a Kubeflow ``PipelineSpec`` (as a dict) that its protobuf schema cannot make.

The schema says which fields exist and what type they hold; it does not say that the names in
them point anywhere. A task whose ``componentRef`` names no component, an executor label with
no executor, a ``producerTask`` that is not in the same DAG, an input read from the enclosing
component that it does not declare, or tasks that wait on each other in a circle all load
without complaint and fail later on the Kubeflow backend, far from their cause. :func:`check_ir`
finds them before the file is written, naming the component and the task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from slipway.exceptions import InvalidParameterValue


def check_ir(doc: Mapping[str, Any]) -> None:
    """Raise INVALID_PARAMETER_VALUE naming the first broken reference in ``doc``.

    Checked: every ``componentRef`` names a component and every ``executorLabel`` an executor;
    every ``dependentTasks``, ``producerTask`` and ``producerSubtask`` names a task of the same
    DAG (and an output that task's component declares); every ``componentInputParameter`` and
    ``componentInputArtifact`` names an input of the enclosing component; a task passes only
    inputs its component declares; loop iterators read the loop task's own inputs; DAGs have
    no cycles; and components do not contain themselves.
    """
    try:
        _check(doc)
    except (AttributeError, KeyError, TypeError) as exc:
        # a field of the wrong shape (a list where a mapping belongs, ...)
        raise InvalidParameterValue(
            f"Invalid Kubeflow pipeline IR: malformed ({type(exc).__name__}: {exc})"
        ) from None


def _check(doc: Mapping[str, Any]) -> None:
    if not isinstance(doc, Mapping):
        _fail("the document", f"is a {type(doc).__name__}, not a mapping")
    for key in ("pipelineInfo", "root", "schemaVersion"):
        if key not in doc:
            _fail("the document", f"has no {key!r}")
    components = _mapping(doc.get("components", {}), "components")
    deployment = _mapping(doc.get("deploymentSpec", {}), "deploymentSpec")
    executors = _mapping(deployment.get("executors", {}), "deploymentSpec.executors")
    root = _mapping(doc["root"], "root")
    if "dag" not in root:
        _fail("root", "has no dag")
    for name, spec in components.items():
        spec = _mapping(spec, f"component {name}")
        has_dag, label = "dag" in spec, spec.get("executorLabel")
        if has_dag == (label is not None):
            _fail(f"component {name}", "needs exactly one of executorLabel and dag")
        if label is not None and label not in executors:
            _fail(f"component {name}", f"has executorLabel {label!r}, which is not an executor")
    for name, spec in [("root", root), *components.items()]:
        if "dag" in spec:
            _check_dag(name, spec, components)
    _check_nesting(components, root)


def _check_dag(owner: str, spec: Mapping[str, Any], components: Mapping[str, Any]) -> None:
    dag = _mapping(spec["dag"], f"{owner} dag")
    tasks = _mapping(dag.get("tasks", {}), f"{owner} dag.tasks")
    declared = spec.get("inputDefinitions", {})
    own_params = set(declared.get("parameters", {}))
    own_artifacts = set(declared.get("artifacts", {}))
    edges: dict[str, list[str]] = {}

    def producer(task: str, ref: Mapping[str, Any], field: str, section: str, what: str) -> str:
        name = str(ref.get("producerTask"))
        if name not in tasks:
            _fail(f"{owner}, task {task}", f"reads {what} of {name!r}, which is not in its DAG")
        key = ref.get(field)
        outputs = _outputs_of(tasks[name], components).get(section, {})
        if key not in outputs:
            _fail(
                f"{owner}, task {task}",
                f"reads output {key!r} of task {name}, whose component has no such output",
            )
        return name

    for task_name, task in tasks.items():
        where = f"{owner}, task {task_name}"
        task = _mapping(task, where)
        ref = str(task.get("componentRef", {}).get("name"))
        if ref not in components:
            _fail(where, f"refers to component {ref!r}, which is not in components")
        target = components[ref].get("inputDefinitions", {})
        ups = edges.setdefault(task_name, [])
        for dep in task.get("dependentTasks", []):
            if dep not in tasks or dep == task_name:
                _fail(where, f"depends on {dep!r}, which is not another task of its DAG")
            ups.append(dep)
        inputs = task.get("inputs", {})
        for name, entry in inputs.get("parameters", {}).items():
            if name not in target.get("parameters", {}):
                _fail(where, f"passes parameter {name!r}, which component {ref} does not declare")
            if "taskOutputParameter" in entry:
                ups.append(
                    producer(
                        task_name,
                        entry["taskOutputParameter"],
                        "outputParameterKey",
                        "parameters",
                        "a parameter",
                    )
                )
            elif "taskFinalStatus" in entry:
                name_ = entry["taskFinalStatus"].get("producerTask")
                if name_ not in tasks:
                    _fail(where, f"waits for the final status of {name_!r}, not in its DAG")
                ups.append(str(name_))
            elif "componentInputParameter" in entry:
                wanted = entry["componentInputParameter"]
                if wanted not in own_params:
                    _fail(where, f"reads input parameter {wanted!r}, not an input of {owner}")
        for name, entry in inputs.get("artifacts", {}).items():
            if name not in target.get("artifacts", {}):
                _fail(where, f"passes artifact {name!r}, which component {ref} does not declare")
            if "taskOutputArtifact" in entry:
                ups.append(
                    producer(
                        task_name,
                        entry["taskOutputArtifact"],
                        "outputArtifactKey",
                        "artifacts",
                        "an artifact",
                    )
                )
            elif "componentInputArtifact" in entry:
                wanted = entry["componentInputArtifact"]
                if wanted not in own_artifacts:
                    _fail(where, f"reads input artifact {wanted!r}, not an input of {owner}")
        iterator = task.get("parameterIterator")
        if iterator is not None:
            source = iterator.get("items", {}).get("inputParameter")
            if source is not None and source not in inputs.get("parameters", {}):
                _fail(where, f"iterates over {source!r}, which is not one of its inputs")
            item = iterator.get("itemInput")
            if item not in target.get("parameters", {}):
                _fail(where, f"loop item {item!r} is not an input of component {ref}")
    outputs = dag.get("outputs", {})
    for section, field, selectors in (
        ("parameters", "outputParameterKey", "valueFromParameter"),
        ("artifacts", "outputArtifactKey", "artifactSelectors"),
    ):
        for out_name, entry in outputs.get(section, {}).items():
            picks = entry.get(selectors)
            for pick in picks if isinstance(picks, list) else [picks or {}]:
                sub = str(pick.get("producerSubtask"))
                if sub not in tasks:
                    _fail(f"{owner}, output {out_name}", f"comes from {sub!r}, not in its DAG")
                if pick.get(field) not in _outputs_of(tasks[sub], components).get(section, {}):
                    _fail(
                        f"{owner}, output {out_name}",
                        f"reads {pick.get(field)!r} of task {sub}, which has no such output",
                    )
    _check_acyclic(owner, edges)


def _outputs_of(task: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = task.get("componentRef", {}).get("name")
    found: Mapping[str, Any] = components.get(ref, {}).get("outputDefinitions", {})
    return found


def _check_acyclic(owner: str, edges: Mapping[str, list[str]]) -> None:
    state: dict[str, int] = {}
    for start in edges:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                trail.append(node)
            ups = edges.get(node, [])
            if index < len(ups):
                stack.append((node, index + 1))
                nxt = ups[index]
                if state.get(nxt) == 1:
                    cycle = [*trail[trail.index(nxt) :], nxt]
                    _fail(owner, f"tasks wait on each other in a cycle: {' -> '.join(cycle)}")
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                trail.pop()


def _check_nesting(components: Mapping[str, Any], root: Mapping[str, Any]) -> None:
    """A DAG component may not run itself, directly or through others."""

    def children(spec: Mapping[str, Any]) -> list[str]:
        tasks = spec.get("dag", {}).get("tasks", {})
        return [str(t.get("componentRef", {}).get("name")) for t in tasks.values()]

    edges = {name: children(spec) for name, spec in components.items()}
    edges["root"] = children(root)
    _check_acyclic("the components", edges)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(where, f"is a {type(value).__name__}, not a mapping")
    return value


def _fail(where: str, what: str) -> NoReturn:
    raise InvalidParameterValue(f"Invalid Kubeflow pipeline IR: {where} {what}")


__all__ = ["check_ir"]
