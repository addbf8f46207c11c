"""Showing a pipeline run's progress while it runs: a live tree on a terminal, lines elsewhere.

The executor calls ``on_update(run, steps)`` (from its own thread) whenever a step changes
state. :class:`LiveView` keeps the latest snapshot and lets rich redraw it a few times a second,
so a burst of updates costs one redraw and a running step's elapsed time keeps ticking between
updates. :class:`LineReporter` prints one line per change instead, for logs and pipes, where a
redrawn screen would be noise.

What is drawn comes from :func:`render`, a pure function of the snapshot (and the clock), so
tests render it to text with a recording console. Steps are placed in the tree by the groups of
the graph the run keeps: a condition, an exit handler, a nested pipeline, or a parallel_for with
its iterations (a loop of a single task lists the task's instances directly).
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from slipway.entities.pipelines import PipelineRun, PipelineRunStatus, PipelineStep, StepStatus
from slipway.pipelines.graph import PipelineGraph

REFRESH_PER_SECOND = 8
MESSAGE_CHARS = 160


@dataclass(frozen=True, slots=True)
class StateLook:
    symbol: str
    label: str
    style: str


STATE_LOOKS: dict[StepStatus, StateLook] = {
    StepStatus.QUEUED: StateLook("○", "queued", "dim"),
    StepStatus.RUNNING: StateLook("▶", "running", "bold yellow"),
    StepStatus.RETRYING: StateLook("↻", "retrying", "dark_orange"),
    StepStatus.SUCCEEDED: StateLook("✓", "succeeded", "green"),
    StepStatus.CACHED: StateLook("◆", "cached", "cyan"),
    StepStatus.FAILED: StateLook("✗", "failed", "bold red"),
    StepStatus.SKIPPED: StateLook("-", "skipped", "dim"),
    StepStatus.CANCELLED: StateLook("■", "cancelled", "magenta"),
}
PENDING = StateLook("·", "waiting", "dim")
"""A task of the graph that has no step yet (or never got one, once the run is over)."""
SUMMARY_ORDER = [
    StepStatus.SUCCEEDED,
    StepStatus.CACHED,
    StepStatus.RUNNING,
    StepStatus.RETRYING,
    StepStatus.QUEUED,
    StepStatus.FAILED,
    StepStatus.SKIPPED,
    StepStatus.CANCELLED,
]
RUN_STYLES = {
    PipelineRunStatus.QUEUED: "dim",
    PipelineRunStatus.RUNNING: "bold yellow",
    PipelineRunStatus.SUCCEEDED: "bold green",
    PipelineRunStatus.FAILED: "bold red",
    PipelineRunStatus.CANCELLING: "magenta",
    PipelineRunStatus.CANCELLED: "magenta",
}
_INDEX = re.compile(r"\[(\d+)\]")


# -- small formatting helpers ------------------------------------------------------------------


def format_ms(ms: int | float | None) -> str:
    """``850ms``, ``12.3s``, ``4m 05s`` or ``2h 07m``; ``-`` for None."""
    if ms is None:
        return "-"
    ms = max(0, int(ms))
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    sec = ms // 1000
    if sec >= 3600:
        return f"{sec // 3600}h {sec % 3600 // 60:02d}m"
    return f"{sec // 60}m {sec % 60:02d}s"


def step_duration(step: PipelineStep, now_ms: int) -> int | None:
    """How long the step has run: to its end, or to ``now_ms`` while it runs."""
    if step.start_time is None:
        return None
    end = step.end_time if step.end_time is not None else now_ms
    return max(0, end - step.start_time)


def instance_indices(task_id: str) -> tuple[int, ...]:
    """The parallel_for iteration numbers in a task id (``train[2]`` -> ``(2,)``)."""
    bracket = task_id.find("[")
    return () if bracket < 0 else tuple(int(i) for i in _INDEX.findall(task_id[bracket:]))


def one_line(message: str | None, limit: int = MESSAGE_CHARS) -> str:
    """The last non-empty line of ``message`` (where an error says what went wrong), cut to
    ``limit`` characters."""
    if not message:
        return ""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def step_detail(step: PipelineStep, now_ms: int, max_attempts: int | None = None) -> str:
    """What follows the state word: elapsed time, attempt, cache source, the error."""
    duration = format_ms(step_duration(step, now_ms))
    attempts = f"attempt {step.attempt}"
    if max_attempts is not None and max_attempts > 1:
        attempts += f"/{max_attempts}"
    status = step.status
    if status == StepStatus.RUNNING:
        return duration + (f" ({attempts})" if step.attempt > 1 else "")
    if status == StepStatus.RETRYING:  # the executor's message says which attempt failed
        return one_line(step.message) or f"after {attempts}"
    if status == StepStatus.SUCCEEDED:
        return duration + (f" ({attempts})" if step.attempt > 1 else "")
    if status == StepStatus.CACHED:
        return f"from run {step.cached_from[:8]}" if step.cached_from else ""
    if status == StepStatus.FAILED:
        reason = one_line(step.message)
        tried = f" after {step.attempt} attempts" if step.attempt > 1 else ""
        return f"{duration}{tried}" + (f": {reason}" if reason else "")
    reason = one_line(step.message)
    return "" if reason.lower() == status.value.lower() else reason  # not "cancelled cancelled"


def summary_counts(steps: Sequence[PipelineStep]) -> dict[StepStatus, int]:
    counts = dict.fromkeys(SUMMARY_ORDER, 0)
    for step in steps:
        counts[step.status] = counts.get(step.status, 0) + 1
    return {status: n for status, n in counts.items() if n}


def summary_text(steps: Sequence[PipelineStep]) -> str:
    """``7 steps: 3 succeeded, 1 cached, 1 running, 2 queued``."""
    counts = summary_counts(steps)
    parts = [f"{n} {STATE_LOOKS[status].label}" for status, n in counts.items()]
    total = len(steps)
    head = f"{total} step{'s' if total != 1 else ''}"
    return f"{head}: {', '.join(parts)}" if parts else head


# -- the tree ----------------------------------------------------------------------------------


@dataclass
class _Node:
    label: Text
    children: dict[Any, _Node] = field(default_factory=dict)
    steps: list[PipelineStep] = field(default_factory=list)
    """Steps under this node, its subtree's included (for the done/total count)."""
    leaf: Text | None = None


def _step_text(step: PipelineStep, now_ms: int, max_attempts: int | None, width: int) -> Text:
    look = STATE_LOOKS.get(step.status, PENDING)
    text = Text()
    text.append(f"{look.symbol} ", style=look.style)
    text.append(step.task_id.ljust(width), style="bold" if not step.status.terminal else "")
    text.append(f"  {look.label}", style=look.style)
    detail = step_detail(step, now_ms, max_attempts)
    if detail:
        text.append(f"  {detail}", style="red" if step.status == StepStatus.FAILED else "dim")
    return text


def _pending_text(task_id: str, width: int, over: bool) -> Text:
    text = Text()
    text.append(f"{PENDING.symbol} ", style=PENDING.style)
    text.append(task_id.ljust(width), style="dim")
    text.append("  not run" if over else f"  {PENDING.label}", style=PENDING.style)
    return text


def _group_label(graph: PipelineGraph, group_id: str) -> Text:
    group = graph.groups[group_id]
    if group.kind == "loop":
        what = group.label or group.id
        count = ""
        items = group.items or {}
        if isinstance(items.get("constant"), list):
            count = f" over {len(items['constant'])} items"
        return Text(f"parallel_for {what}{count}", style="bold blue")
    if group.kind == "condition":
        return Text(f"if {group.label or group.id}", style="bold blue")
    if group.kind == "exit_handler":
        return Text(f"exit handler {group.label or group.id} (then {group.exit_task})", "bold blue")
    if group.kind == "pipeline":
        return Text(f"pipeline {group.label} ({group.id})", style="bold blue")
    return Text(group.label or group.id, style="bold blue")


def _flat_loop(graph: PipelineGraph, loop_id: str) -> bool:
    """A loop whose body is one task directly inside it: its instances need no iteration
    nodes."""
    inside = graph.tasks_in(loop_id)
    return len(inside) == 1 and graph.tasks[inside[0]].group == loop_id


def _path(
    graph: PipelineGraph, task_name: str, indices: tuple[int, ...]
) -> list[tuple[Any, Callable[[], Text]]]:
    """``(key, label maker)`` of each tree node from the root to where the task's instance
    with ``indices`` sits; ``indices`` may be shorter (a task with no instance yet)."""
    path: list[tuple[Any, Callable[[], Text]]] = []
    depth = 0
    for group in graph.group_path(graph.tasks[task_name].group)[1:]:
        prefix = indices[:depth]
        path.append(((group.id, prefix), partial(_group_label, graph, group.id)))
        if group.kind != "loop":
            continue
        if depth < len(indices) and not _flat_loop(graph, group.id):
            i = indices[depth]
            path.append(((group.id, indices[: depth + 1]), partial(Text, f"[{i}]", "blue")))
        depth += 1
        if depth > len(indices):
            break
    return path


def _graph_of(run: PipelineRun) -> PipelineGraph | None:
    if not run.graph or not run.graph.get("tasks"):
        return None
    try:
        return PipelineGraph.from_dict(run.graph)
    except (KeyError, TypeError, ValueError):
        return None


def _render_tree(root: _Node, tree: Tree, now_ms: int, add_count: bool = True) -> None:
    for child in root.children.values():
        if child.leaf is not None:
            tree.add(child.leaf)
            continue
        label = child.label.copy()
        if add_count and child.steps:
            done = sum(s.status.terminal for s in child.steps)
            label.append(f"  {done}/{len(child.steps)} done", style="dim")
        _render_tree(child, tree.add(label), now_ms, add_count)


def render(
    run: PipelineRun, steps: Sequence[PipelineStep], now_ms: int | None = None
) -> RenderableType:
    """The run as a header line, a tree of its steps by group, and a counts line.

    ``now_ms`` (default: the clock) is what a running step's elapsed time counts to."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    graph = _graph_of(run)
    status_style = RUN_STYLES.get(run.status, "")
    header = Text()
    header.append(f"Pipeline {run.pipeline_name}", style="bold")
    header.append(f"  run {run.run_id}  ", style="dim")
    header.append(str(run.status), style=status_style)
    elapsed = (run.end_time if run.end_time is not None else now) - run.start_time
    header.append(f"  {format_ms(elapsed)}", style="dim")
    over = run.status.terminal

    names = [s.task_id for s in steps] + list(graph.tasks if graph is not None else ())
    width = max((len(n) for n in names), default=0)
    root = _Node(Text(""))
    by_task: dict[str, list[PipelineStep]] = {}
    for step in steps:
        by_task.setdefault(step.task_name, []).append(step)
    order = list(graph.tasks) if graph is not None else []
    order += [name for name in by_task if name not in order]
    for task_name in order:
        instances = sorted(by_task.get(task_name, []), key=lambda s: instance_indices(s.task_id))
        max_attempts = None
        if graph is not None and task_name in graph.tasks:
            max_attempts = graph.tasks[task_name].options.retries + 1
        if not instances:
            if graph is None or task_name not in graph.tasks:
                continue
            node = root
            for key, make in _path(graph, task_name, ()):
                node = node.children.setdefault(key, _Node(make()))
            loops = graph.loops_of(task_name)
            shown = task_name + "[…]" * len(loops)
            node.children[("pending", task_name)] = _Node(
                Text(""), leaf=_pending_text(shown, width, over)
            )
            continue
        for step in instances:
            node = root
            trail = [root]
            if graph is not None and task_name in graph.tasks:
                for key, make in _path(graph, task_name, instance_indices(step.task_id)):
                    node = node.children.setdefault(key, _Node(make()))
                    trail.append(node)
            for holder in trail:
                holder.steps.append(step)
            node.children[("step", step.task_id)] = _Node(
                Text(""), leaf=_step_text(step, now, max_attempts, width)
            )

    tree = Tree(header, guide_style="dim")
    _render_tree(root, tree, now)
    counts = Text()
    for i, (status, n) in enumerate(summary_counts(steps).items()):
        look = STATE_LOOKS[status]
        counts.append(", " if i else f"{len(steps)} steps: ", style="dim")
        counts.append(f"{n} {look.label}", style=look.style)
    if not steps:
        counts.append("no steps yet", style="dim")
    parts: list[RenderableType] = [tree, counts]
    if (
        run.message
        and run.status.terminal
        and run.status != PipelineRunStatus.SUCCEEDED
        and run.message.strip().lower() != run.status.value.lower()
    ):
        parts.append(Text(one_line(run.message, 400), style="red"))
    return Group(*parts)


def render_text(
    run: PipelineRun, steps: Sequence[PipelineStep], now_ms: int | None = None, width: int = 120
) -> str:
    """:func:`render` as plain text (what the tests and a log file see)."""
    console = Console(record=True, width=width, color_system=None, file=io.StringIO())
    console.print(render(run, steps, now_ms))
    return console.export_text()


# -- reporters ---------------------------------------------------------------------------------


class LiveView:
    """A rich ``Live`` display of the latest ``(run, steps)`` given to :meth:`update`.

    Use as a context manager around the run; :meth:`update` is the executor's ``on_update``
    (safe to call from any thread, and cheap: it only stores the snapshot)."""

    def __init__(
        self, console: Console | None = None, refresh_per_second: float = REFRESH_PER_SECOND
    ) -> None:
        self.console = console or Console()
        self._lock = threading.Lock()
        self._snapshot: tuple[PipelineRun, list[PipelineStep]] | None = None
        self._live = Live(
            console=self.console,
            refresh_per_second=refresh_per_second,
            get_renderable=self._current,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def _current(self) -> RenderableType:
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return Text("Starting the pipeline...", style="dim")
        return render(*snapshot)

    def update(self, run: PipelineRun, steps: Sequence[PipelineStep]) -> None:
        with self._lock:
            self._snapshot = (run, list(steps))

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()  # draws the last snapshot once more


class LineReporter:
    """One line per change, for output that is not a terminal::

    12:00:03 train[1] RUNNING (attempt 1)
    12:00:05 train[1] FAILED: ValueError: lr must be positive
    12:00:05 pipeline iris FAILED
    """

    def __init__(self, stream: IO[str] | None = None, clock: Callable[[], float] = time.time):
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[StepStatus, int]] = {}
        self._run_status: PipelineRunStatus | None = None

    def _write(self, line: str) -> None:
        import sys

        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def _stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self._clock()))

    def update(self, run: PipelineRun, steps: Sequence[PipelineStep]) -> None:
        with self._lock:
            if self._run_status is None:
                self._write(f"{self._stamp()} pipeline {run.pipeline_name} run {run.run_id}")
            for step in steps:
                state = (step.status, step.attempt)
                if self._seen.get(step.task_id) == state:
                    continue
                self._seen[step.task_id] = state
                self._write(f"{self._stamp()} {step.task_id} {self._describe(step)}")
            if run.status != self._run_status:
                self._run_status = run.status
                if run.status not in (PipelineRunStatus.QUEUED, PipelineRunStatus.RUNNING):
                    self._write(f"{self._stamp()} pipeline {run.pipeline_name} {run.status}")

    @staticmethod
    def _describe(step: PipelineStep) -> str:
        status = str(step.status)
        if step.status in (StepStatus.RUNNING, StepStatus.RETRYING) and step.attempt:
            return f"{status} (attempt {step.attempt})"
        if step.status == StepStatus.CACHED and step.cached_from:
            return f"{status} (from run {step.cached_from})"
        if step.status == StepStatus.SUCCEEDED and step.start_time and step.end_time:
            return f"{status} in {format_ms(step.end_time - step.start_time)}"
        reason = one_line(step.message, 400)
        return f"{status}: {reason}" if reason else status

    def __enter__(self) -> LineReporter:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


__all__ = [
    "STATE_LOOKS",
    "LineReporter",
    "LiveView",
    "StateLook",
    "format_ms",
    "instance_indices",
    "render",
    "render_text",
    "step_detail",
    "summary_text",
]
