"""A pipeline run as the UI shows it: the nodes of its DAG, its steps in order, and the state
that the live page polls.

The DAG is drawn from the graph the run stored (:meth:`PipelineGraph.to_dict`) and its steps:
one node per task instance. A task that has not started yet is one waiting node; a task inside
a ``parallel_for`` is fanned out into one node per iteration up to :data:`FAN_LIMIT`
instances, and drawn as one grouped node (``train x40``, with counts) above that, so a loop of
a thousand items stays readable. Edges follow :meth:`PipelineGraph.upstream`; between two
instances they join the same iteration of the loops both sit in.

:func:`state` is what ``/pipelines/runs/<id>/state.json`` answers: statuses and the short texts
of nodes and steps, plus a ``structure`` key that changes when nodes or steps appear (a loop
that expanded), which tells the page to fetch the drawing again rather than patch it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slipway.entities.pipelines import PipelineRun, PipelineStep, StepStatus
from slipway.pipelines.graph import PipelineGraph
from slipway.pipelines.live import format_ms, instance_indices, one_line, step_duration
from slipway.ui.dag import Edge, Node

FAN_LIMIT = 12
"""A loop task with more instances than this is drawn as one grouped node."""
WAITING = "WAITING"
"""The status class of a task with no step yet (``NOT_RUN`` once the run is over)."""
NOT_RUN = "NOT_RUN"
JSON_CHARS = 2000
LOG_FILES = ("logs/stdout.txt", "logs/stderr.txt")

_GROUP_PRIORITY = (
    StepStatus.FAILED,
    StepStatus.RUNNING,
    StepStatus.RETRYING,
    StepStatus.QUEUED,
    StepStatus.CANCELLED,
)


@dataclass(frozen=True, slots=True)
class TaskNode:
    """One drawn node: a task instance, a grouped loop task, or a task not started yet."""

    key: str
    task: str
    steps: tuple[PipelineStep, ...]
    grouped: bool
    indices: tuple[int, ...] | None
    """The instance's loop iterations; None for grouped and waiting nodes (they join any)."""


def graph_of(run: PipelineRun) -> PipelineGraph | None:
    """The run's stored graph, or None when it has none (or one this version cannot read)."""
    if not run.graph or not run.graph.get("tasks"):
        return None
    try:
        return PipelineGraph.from_dict(run.graph)
    except (KeyError, TypeError, ValueError):
        return None


def status_word(status: str) -> str:
    return status.lower().replace("_", " ")


def group_status(steps: Sequence[PipelineStep]) -> str:
    """One status for several instances: the most pressing one any has (failed, running,
    ...), cached when all were cached, skipped when all were skipped, else succeeded."""
    present = {s.status for s in steps}
    for status in _GROUP_PRIORITY:
        if status in present:
            return status.value
    if present == {StepStatus.CACHED}:
        return StepStatus.CACHED.value
    if present == {StepStatus.SKIPPED}:
        return StepStatus.SKIPPED.value
    return StepStatus.SUCCEEDED.value


def task_order(graph: PipelineGraph | None, steps: Sequence[PipelineStep]) -> list[str]:
    """Task names in the order they run (the graph's topological order), then any task that
    has steps but is not in the graph."""
    names: list[str] = []
    if graph is not None:
        try:
            names = graph.topological_order()
        except ValueError:
            names = list(graph.tasks)
    for step in steps:
        if step.task_name not in names:
            names.append(step.task_name)
    return names


def ordered_steps(graph: PipelineGraph | None, steps: Sequence[PipelineStep]) -> list[PipelineStep]:
    """Steps in run order: by task, then by loop iteration."""
    rank = {name: i for i, name in enumerate(task_order(graph, steps))}
    return sorted(steps, key=lambda s: (rank.get(s.task_name, 0), instance_indices(s.task_id)))


def task_nodes(graph: PipelineGraph | None, steps: Sequence[PipelineStep]) -> list[TaskNode]:
    """The nodes to draw (see the module notes), in run order."""
    by_task: dict[str, list[PipelineStep]] = {}
    for step in ordered_steps(graph, steps):
        by_task.setdefault(step.task_name, []).append(step)
    nodes: list[TaskNode] = []
    for task in task_order(graph, steps):
        found = by_task.get(task, [])
        in_loop = graph is not None and task in graph.tasks and bool(graph.loops_of(task))
        if not found:
            nodes.append(TaskNode(task, task, (), False, None))
        elif in_loop and len(found) > FAN_LIMIT:
            nodes.append(TaskNode(f"{task}[*]", task, tuple(found), True, None))
        else:
            nodes.extend(
                TaskNode(s.task_id, task, (s,), False, instance_indices(s.task_id)) for s in found
            )
    return nodes


def _joins(graph: PipelineGraph | None, up: TaskNode, down: TaskNode) -> bool:
    """Whether an edge from ``up`` to ``down`` joins the same iteration of their shared loops."""
    if up.indices is None or down.indices is None or graph is None:
        return True
    if up.task not in graph.tasks or down.task not in graph.tasks:
        return True
    shared = 0
    for a, b in zip(graph.loops_of(up.task), graph.loops_of(down.task), strict=False):
        if a != b:
            break
        shared += 1
    return up.indices[:shared] == down.indices[:shared]


def task_edges(graph: PipelineGraph | None, nodes: Sequence[TaskNode]) -> list[Edge]:
    if graph is None:
        return []
    of_task: dict[str, list[TaskNode]] = {}
    for node in nodes:
        of_task.setdefault(node.task, []).append(node)
    edges: list[Edge] = []
    for task in graph.tasks:
        for up_task in graph.upstream(task):
            for up in of_task.get(up_task, []):
                edges.extend(
                    Edge(up.key, down.key)
                    for down in of_task.get(task, [])
                    if _joins(graph, up, down)
                )
    return edges


def node_status(node: TaskNode, run_over: bool) -> str:
    if not node.steps:
        return NOT_RUN if run_over else WAITING
    if node.grouped:
        return group_status(node.steps)
    return node.steps[0].status.value


def node_detail(node: TaskNode, run_over: bool, now_ms: int) -> str:
    """The node's second line: ``running · 3.2s``, ``7/40 done · 3 running``, ``waiting``."""
    status = node_status(node, run_over)
    if not node.steps:
        return status_word(status)
    if node.grouped:
        done = sum(s.status.terminal for s in node.steps)
        running = sum(s.status == StepStatus.RUNNING for s in node.steps)
        text = f"{done}/{len(node.steps)} done"
        return text + (f" · {running} running" if running else "")
    step = node.steps[0]
    parts = [status_word(status)]
    if step.status != StepStatus.CACHED and step.start_time is not None:
        parts.append(format_ms(step_duration(step, now_ms)))
    if step.attempt > 1:
        parts.append(f"try {step.attempt}")
    return " · ".join(parts)


def node_title(node: TaskNode, run_over: bool, now_ms: int) -> str:
    """The full text for a pointer and a screen reader: id, status, detail, error line."""
    status = status_word(node_status(node, run_over))
    label = f"{node.task} ({len(node.steps)} instances)" if node.grouped else node.key
    text = f"{label}: {node_detail(node, run_over, now_ms)}"
    if not text.endswith(status) and status not in text:
        text += f" ({status})"
    if len(node.steps) == 1 and node.steps[0].message:
        text += f". {one_line(node.steps[0].message)}"
    return text


def dag_nodes(
    run: PipelineRun,
    steps: Sequence[PipelineStep],
    now_ms: int,
    href: Callable[[str], str] | None = None,
) -> tuple[list[Node], list[Edge]]:
    """The run's DAG as :mod:`slipway.ui.dag` nodes and edges (``href(key)`` links a node)."""
    graph = graph_of(run)
    nodes = task_nodes(graph, steps)
    over = run.status.terminal
    drawn = [
        Node(
            key=n.key,
            label=f"{n.task} \u00d7{len(n.steps)}" if n.grouped else n.key,
            status=node_status(n, over),
            kind="group" if n.grouped else "step",
            detail=node_detail(n, over, now_ms),
            title=node_title(n, over, now_ms),
            href=href(n.key) if href is not None else None,
        )
        for n in nodes
    ]
    return drawn, task_edges(graph, nodes)


def structure_key(
    nodes: Sequence[Node], edges: Sequence[Edge], steps: Sequence[PipelineStep]
) -> str:
    """Changes when a node, an edge or a step appears or goes (not when a status changes)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for node in nodes:
        digest.update(b"n" + node.key.encode() + b"\0")
    for edge in edges:
        digest.update(b"e" + edge.source.encode() + b"\0" + edge.target.encode() + b"\0")
    for step in sorted(s.task_id for s in steps):
        digest.update(b"s" + step.encode() + b"\0")
    return digest.hexdigest()[:16]


def step_row(step: PipelineStep, now_ms: int) -> dict[str, Any]:
    """What the steps table shows of a step (and what the live page patches)."""
    duration = step_duration(step, now_ms)
    return {
        "task_id": step.task_id,
        "status": step.status.value,
        "status_text": status_word(step.status.value),
        "attempt": step.attempt,
        "duration": format_ms(duration) if step.start_time is not None else "-",
        "message": one_line(step.message),
    }


def run_summary(run: PipelineRun, now_ms: int) -> dict[str, Any]:
    end = run.end_time if run.end_time is not None else now_ms
    return {
        "status": run.status.value,
        "status_text": status_word(run.status.value),
        "terminal": run.status.terminal,
        "attempt": run.attempt,
        "duration": format_ms(max(end - run.start_time, 0)),
        "message": one_line(run.message),
    }


def state(run: PipelineRun, steps: Sequence[PipelineStep], now_ms: int) -> dict[str, Any]:
    """The body of ``state.json`` (see the module notes)."""
    nodes, edges = dag_nodes(run, steps, now_ms)
    return {
        "run": run_summary(run, now_ms),
        "structure": structure_key(nodes, edges, steps),
        "nodes": [
            {"key": n.key, "status": n.status, "detail": n.detail, "title": n.title} for n in nodes
        ],
        "steps": [step_row(s, now_ms) for s in steps],
    }


def json_text(value: Any, limit: int = JSON_CHARS) -> str:
    """``value`` as JSON text for a details panel, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def artifact_refs(section: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, ref)`` for each artifact of a step's ``inputs`` or ``outputs`` (a collected
    input gives one pair per ref)."""
    pairs: list[tuple[str, dict[str, Any]]] = []
    artifacts = section.get("artifacts")
    if not isinstance(artifacts, dict):
        return pairs
    for name, value in artifacts.items():
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, dict):
                pairs.append((str(name), ref))
    return pairs


def parameters_of(section: dict[str, Any]) -> list[tuple[str, str]]:
    params = section.get("parameters")
    if not isinstance(params, dict):
        return []
    return [(str(k), json_text(v)) for k, v in params.items()]


def attempts_of(step: PipelineStep) -> list[dict[str, Any]]:
    """The step's attempts as the executor recorded them (newest last)."""
    found = step.details.get("attempts") if isinstance(step.details, dict) else None
    if not isinstance(found, list):
        return []
    return [a for a in found if isinstance(a, dict)]


def logs_run(step: PipelineStep) -> str | None:
    """The tracking run whose ``logs/`` hold the step's output (for a cached step, the run it
    was cached from)."""
    if step.status == StepStatus.CACHED and step.cached_from:
        return step.cached_from
    return step.run_id


__all__ = [
    "FAN_LIMIT",
    "LOG_FILES",
    "NOT_RUN",
    "WAITING",
    "TaskNode",
    "artifact_refs",
    "attempts_of",
    "dag_nodes",
    "graph_of",
    "group_status",
    "json_text",
    "logs_run",
    "node_detail",
    "node_status",
    "ordered_steps",
    "parameters_of",
    "run_summary",
    "state",
    "step_row",
    "structure_key",
    "task_nodes",
]
