"""Slipway's local pipeline executor against ``kfp.local``'s SubprocessRunner, the same
pipelines, one run.

Usage::

    python -m bench.pipelines [--quick] [--chain N] [--fanout N] [--chain-repeat R]
                              [--fanout-repeat R] [--sides kfp,kfp-nopip,slipway-seq,...]
                              [--workloads chain,fanout] [--no-profile]
                              [--json OUT] [--markdown OUT] [--keep]

Pipelines (each task trivial, so what is measured is what running a step costs):

1. ``chain``: ``--chain`` steps (20; 5 with ``--quick``), each taking an int and returning
   it plus one, each fed by the one before.
2. ``fanout``: one producer returning ``list(range(N))``, a loop over it (Slipway's
   ``parallel_for``, KFP's ``dsl.ParallelFor``) of ``N`` trivial tasks (``--fanout``: 200; 20
   with ``--quick``), then one fan-in step summing the collected outputs: ``N + 2`` steps.

Sides, each measured in a child process of its own on a fresh folder (no ``SLIPWAY_*`` or
``MLFLOW_*`` settings inherited, ``TMPDIR`` inside the folder):

* ``kfp``: kfp.local, ``SubprocessRunner(use_venv=False)``, default lightweight components,
  whose command runs ``pip install kfp`` before each task (already installed: pip starts, finds
  it and leaves);
* ``kfp-nopip``: the same with ``install_kfp_package=False``: the cheapest Python component
  kfp.local can run (see ``bench/pipelines_kfp.py``);
* ``slipway-seq``: ``slipway.pipelines.run(..., max_parallel=1)``: one step at a time;
* ``slipway-p2``: ``max_parallel=2``: kfp.local runs a ParallelFor's iterations on two threads,
  so this is the like-for-like row for the fan-out;
* ``slipway``: the default budget (as many steps at once as the machine has cores).

Slipway records everything: the pipeline run and one child tracking run per step (params,
output tags and metrics, stdout/stderr as artifacts), step states and cache entries, in a
SQLite store under the child's folder. The store is created before the clock starts and the
process's store handles are dropped, so a ``fresh`` run opens an existing store, like a second
``python pipeline.py`` against the same project does; the time to create it is reported apart.
kfp.local writes its outputs under its ``pipeline_root``, in the same folder.

What each child times (the library imported and the pipeline built first):

* ``fresh``: the first run in the process (Slipway: cache on, every step a miss; its fork server
  for steps starts during this run);
* ``second``: a second run in the same process (Slipway: ``cache=False``, every step runs);
* ``cached`` (``slipway-seq`` only): a third run, cache on, every step CACHED.

kfp sides run ``fresh`` and ``second`` for the chain and ``fresh`` only for the fan-out (at
about a second a task the fan-out is slow enough). Every run is checked: its status, the
pipeline's returned value, the number of steps that ran (Slipway: each step's status and the
child runs in the database, read with ``sqlite3``; kfp: the output file each task leaves).

The chain runs ``--chain-repeat`` times (3) and the fan-out ``--fanout-repeat`` times (1), the
sides interleaved; medians are reported. Per-step overhead is the wall time of the run divided
by its number of steps; the ratio is Slipway's per-step time as a fraction of kfp.local's
``fresh`` run (the aim is 0.20 or less). The headline row is ``slipway-seq`` ``fresh``: one
step at a time, like kfp.local outside loops. Orchestrator CPU is the CPU time of the
benchmarked process itself (not of the step processes).

Then (unless ``--no-profile``) one more child breaks a ``slipway-seq`` run of each pipeline
down: wall time inside the executor's parts (run records, scheduling, cache, tracking runs,
process launch, the step's own run time, log upload, state writes), each part's time less the
measured parts it calls, so they add up; and a cProfile of a third run, top functions by own
time.

Ctrl-C (or SIGTERM) stops the running child (a Slipway run cancels its steps) and removes the
temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import os
import platform
import pstats
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import interrupt, package_version, temporary_root
from bench.server_http import BenchError
from bench.server_processes import child_env

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = ("chain", "fanout")
AIM = 0.20
"""Slipway's per-step overhead as a fraction of kfp.local's, at most."""
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class Side:
    name: str
    label: str
    tool: str  # "kfp" or "slipway"
    max_parallel: int | None = None
    install_kfp: bool = True

    def kinds(self, workload: str) -> list[str]:
        if self.tool == "kfp":
            return ["fresh", "second"] if workload == "chain" else ["fresh"]
        return ["fresh", "second", "cached"] if self.max_parallel == 1 else ["fresh", "second"]


SIDES = {
    s.name: s
    for s in (
        Side("kfp", "kfp.local, default component (pip install kfp in each task)", "kfp"),
        Side("kfp-nopip", "kfp.local, install_kfp_package=False", "kfp", install_kfp=False),
        Side("slipway-seq", "Slipway, max_parallel=1", "slipway", max_parallel=1),
        Side("slipway-p2", "Slipway, max_parallel=2", "slipway", max_parallel=2),
        Side("slipway", f"Slipway, default budget ({os.cpu_count()} CPUs)", "slipway"),
    )
}
KIND_LABELS = {
    "fresh": "fresh process",
    "second": "second run in the process",
    "cached": "warm cache (every step CACHED)",
}
HEADLINE = ("slipway-seq", "fresh")
BASELINES = (("kfp", "kfp.local"), ("kfp-nopip", "kfp.local, no pip"))


def step_count(workload: str, size: int) -> int:
    return size if workload == "chain" else size + 2


def expected_output(workload: str, size: int) -> int:
    """What the pipeline returns: the chain counts up from 0; the fan-out sums 1..size."""
    return size if workload == "chain" else size * (size + 1) // 2


# ---------------------------------------------------------------------------------------------
# The Slipway side


def slipway_pipeline(workload: str, size: int) -> Any:
    """The ``chain`` or ``fanout`` pipeline of ``size`` as a Slipway pipeline."""
    from slipway.pipelines import collected, component, parallel_for, pipeline

    @component
    def add_one(x: int) -> int:
        return x + 1

    @component
    def items(n: int) -> list:  # type: ignore[type-arg]
        return list(range(n))

    @component
    def total(values: list) -> int:  # type: ignore[type-arg]
        return int(sum(values))

    def chain(x: int = 0) -> Any:
        task = add_one(x=x)
        for _ in range(size - 1):
            task = add_one(x=task.output)
        return task.output

    def fanout(n: int = size) -> Any:
        source = items(n=n)
        with parallel_for(source.output) as item:
            task = add_one(x=item)
        return total(values=collected(task.output)).output

    if workload == "chain":
        return pipeline(name=f"chain-{size}")(chain)
    return pipeline(name=f"fanout-{size}")(fanout)


def prepare_store(folder: Path) -> tuple[str, float]:
    """Create the run's SQLite store, then drop this process's handles on it, so that the runs
    open an existing store; ``(tracking URI, seconds to create it)``."""
    from slipway.pipelines.store import clear_pipeline_store_cache, get_pipeline_store
    from slipway.tracking import uri as uris

    uri = str(folder / "store")
    started = time.perf_counter()
    uris.get_store(uri)
    get_pipeline_store(uri)
    took = time.perf_counter() - started
    clear_pipeline_store_cache()
    uris.clear_store_cache()
    return uri, took


def check_slipway(result: Any, workload: str, size: int, want: str, db: Path) -> None:
    """The run succeeded, returned the expected value, and recorded every step (in the
    pipeline store with status ``want``, and as a child run in the tracking store)."""
    from slipway.entities.registry import PIPELINE_RUN_TAG

    where = f"Slipway {workload}-{size} run {result.run_id}"
    if not result.succeeded:
        raise BenchError(f"{where} ended {result.status.value}: {result.run.message}")
    value = result.outputs.get("Output")
    if value != expected_output(workload, size):
        raise BenchError(f"{where} returned {value!r}")
    steps = step_count(workload, size)
    statuses = Counter(s.status.value for s in result.steps)
    if statuses != {want: steps}:
        raise BenchError(f"{where}: steps {dict(statuses)}, expected {steps} {want}")
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (children,) = conn.execute(
            "SELECT COUNT(*) FROM tags WHERE key = ? AND value = ?",
            (PIPELINE_RUN_TAG, result.run_id),
        ).fetchone()
        (status,) = conn.execute(
            "SELECT status FROM runs WHERE run_uuid = ?", (result.run_id,)
        ).fetchone()
    if children != steps or status != "FINISHED":
        raise BenchError(f"{where}: {children} child runs recorded, run {status}")


def slipway_worker(side: Side, workload: str, size: int, folder: Path) -> dict[str, Any]:
    from slipway.pipelines import run

    pipe = slipway_pipeline(workload, size)
    pipe.graph  # noqa: B018 - built and validated before the clock starts
    uri, store_create_s = prepare_store(folder)
    runs = []
    for kind in side.kinds(workload):
        cpu, started = time.process_time(), time.perf_counter()
        result = run(pipe, tracking_uri=uri, max_parallel=side.max_parallel, cache=kind != "second")
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        want = "CACHED" if kind == "cached" else "SUCCEEDED"
        check_slipway(result, workload, size, want, folder / "store" / "slipway.db")
        runs.append({"kind": kind, "wall_s": wall, "cpu_s": cpu, "steps": len(result.steps)})
    return {"store_create_s": store_create_s, "runs": runs}


# ---------------------------------------------------------------------------------------------
# Where Slipway's time goes


@dataclass
class Part:
    key: str
    label: str
    owner: Any
    attribute: str
    seconds: float = 0.0
    """Time inside the part, less the time inside measured parts it called."""
    inclusive: float = 0.0
    calls: int = 0
    first: float | None = None
    longest: float = 0.0


@dataclass
class Breakdown:
    """Wall time per part of the executor, measured by wrapping the functions named in
    ``parts`` for the length of a ``with`` block (calls from other threads are not counted).
    A part's ``seconds`` leave out the measured parts it called, so the parts add up."""

    parts: list[Part]
    _stack: list[float] = field(default_factory=list)
    _saved: list[tuple[Any, str, Any, bool]] = field(default_factory=list)
    _thread: int = 0

    def __enter__(self) -> Breakdown:
        self._thread = threading.get_ident()
        for part in self.parts:
            own = part.attribute in vars(part.owner)
            original = getattr(part.owner, part.attribute)
            self._saved.append((part.owner, part.attribute, original, own))
            setattr(part.owner, part.attribute, self._wrap(part, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, attribute, original, own in reversed(self._saved):
            if own:
                setattr(owner, attribute, original)
            else:
                delattr(owner, attribute)
        self._saved.clear()

    def _wrap(self, part: Part, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def measured(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self._thread:
                return func(*args, **kwargs)
            self._stack.append(0.0)
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                took = time.perf_counter() - started
                nested = self._stack.pop()
                if self._stack:
                    self._stack[-1] += took
                part.seconds += took - nested
                part.inclusive += took
                part.calls += 1
                part.first = took if part.first is None else part.first
                part.longest = max(part.longest, took)

        return measured

    def report(self, wall: float) -> dict[str, Any]:
        loop = next(p for p in self.parts if p.key == "loop")
        out: dict[str, Any] = {
            "run": {
                "label": "pipeline run, parent run and graph checks (before and after the loop)",
                "seconds": wall - loop.inclusive,
                "calls": 1,
            }
        }
        for part in self.parts:
            out[part.key] = {
                "label": part.label,
                "seconds": part.seconds,
                "calls": part.calls,
                "first_s": part.first,
                "longest_s": part.longest,
            }
        return out


def executor_parts() -> list[Part]:
    import shutil

    from slipway.pipelines import cache
    from slipway.pipelines.executor import step
    from slipway.pipelines.executor.local import Execution
    from slipway.pipelines.executor.records import Recorder
    from slipway.pipelines.store.sql import SqlPipelineStore as store

    return [
        Part("advance", "deciding what can run (Execution._advance)", Execution, "_advance"),
        Part("cache_key", "cache key (digest of code and inputs)", cache, "cache_key"),
        Part("cache_get", "cache lookup (pipeline store)", store, "get_cache_entry"),
        Part("step_run", "creating the step's tracking run and params", Recorder, "step_run"),
        Part("payload", "pickling the step (cloudpickle)", step, "_payload"),
        Part(
            "start_step",
            "handing the step to the fork server, waiting for its pid",
            step,
            "start_step",
        ),
        Part("wait", "waiting while the step's process runs", Execution, "_wait"),
        Part("result", "reading the step's result", step.StepProcess, "result"),
        Part("upload_logs", "uploading stdout/stderr as artifacts", Recorder, "upload_logs"),
        Part(
            "finish_step_run",
            "finishing the step's tracking run (outputs, status)",
            Recorder,
            "finish_step_run",
        ),
        Part("cache_put", "cache write (pipeline store)", store, "put_cache_entry"),
        Part("save", "writing step states (pipeline store)", Recorder, "save"),
        Part("rmtree", "removing the run's work folders", shutil, "rmtree"),
        Part("loop", "the rest of the executor's loop", Execution, "execute"),
    ]


def top_functions(profile: cProfile.Profile, count: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(profile)
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = path
        for marker in ("site-packages/", "/slipway/", "/lib/python"):
            if marker in path:
                where = path.split(marker, 1)[1]
                where = ("slipway/" + where) if marker == "/slipway/" else where
                break
        rows.append(
            {
                "function": f"{where}:{line}({name})",
                "calls": calls,
                "own_s": own,
                "cumulative_s": cumulative,
            }
        )
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return rows[:count]


def profile_worker(workload: str, size: int, folder: Path) -> dict[str, Any]:
    from slipway.pipelines import run

    pipe = slipway_pipeline(workload, size)
    pipe.graph  # noqa: B018
    uri, store_create_s = prepare_store(folder)
    db = folder / "store" / "slipway.db"
    out: dict[str, Any] = {"store_create_s": store_create_s, "steps": step_count(workload, size)}
    for kind in ("fresh", "second"):
        breakdown = Breakdown(executor_parts())
        with breakdown:
            started = time.perf_counter()
            result = run(pipe, tracking_uri=uri, max_parallel=1, cache=kind == "fresh")
            wall = time.perf_counter() - started
        check_slipway(result, workload, size, "SUCCEEDED", db)
        out[kind] = {"wall_s": wall, "parts": breakdown.report(wall)}
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    result = run(pipe, tracking_uri=uri, max_parallel=1, cache=False)
    profile.disable()
    out["cprofile_wall_s"] = time.perf_counter() - started
    check_slipway(result, workload, size, "SUCCEEDED", db)
    out["top"] = top_functions(profile, 15)
    return out


# ---------------------------------------------------------------------------------------------
# Children


def worker(name: str, workload: str, size: int, folder: Path) -> dict[str, Any]:
    if name == "profile":
        return profile_worker(workload, size, folder)
    side = SIDES[name]
    if side.tool == "slipway":
        return slipway_worker(side, workload, size, folder)
    from bench.pipelines_kfp import run_kfp

    expected = (expected_output(workload, size), step_count(workload, size))
    runs = run_kfp(workload, size, side.install_kfp, folder, side.kinds(workload), expected)
    return {"runs": runs}


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's process group (the child reads it as Ctrl-C), SIGKILL after
    :data:`STOP_GRACE_S`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_child(name: str, workload: str, size: int, folder: Path) -> dict[str, Any]:
    """One worker in a process of its own, in ``folder``; what it measured."""
    args = ["bench.pipelines", "--worker", name, workload, str(size)]
    return run_in_child(args, folder, f"{name} {workload}-{size}")


def run_in_child(
    args: list[str], folder: Path, label: str, changes: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """``python -m ARGS FOLDER`` in a process group of its own (its temporary files in
    ``folder/tmp``, its output in ``folder/worker.log``), with ``changes`` to the children's
    environment (None removes a variable); the ``result.json`` it wrote there."""
    (folder / "tmp").mkdir(parents=True)
    env = child_env()
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["TMPDIR"] = str(folder / "tmp")
    cmd = [sys.executable, "-m", *args, str(folder)]
    log_path = folder / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        code = proc.wait()
    except BaseException:
        stop(proc)
        raise
    result_path = folder / "result.json"
    if code != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchError(f"{label} exited with {code}:\n{tail}")
    return dict(json.loads(result_path.read_text()))


# ---------------------------------------------------------------------------------------------
# The report


def summarise(measurements: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{workload: {"side/kind": {runs, wall_s, cpu_s, steps, per_step_ms, ...}}}`` of medians."""
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for m in measurements:
        grouped.setdefault((m["workload"], m["side"], m["kind"]), []).append(m)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (workload, side, kind), group in grouped.items():
        wall = statistics.median(r["wall_s"] for r in group)
        cpu = statistics.median(r["cpu_s"] for r in group)
        steps = group[0]["steps"]
        out.setdefault(workload, {})[f"{side}/{kind}"] = {
            "side": side,
            "kind": kind,
            "size": group[0]["size"],
            "runs": len(group),
            "wall_s": wall,
            "wall_all_s": [r["wall_s"] for r in group],
            "cpu_s": cpu,
            "steps": steps,
            "per_step_ms": wall / steps * 1000,
            "cpu_per_step_ms": cpu / steps * 1000,
        }
    for rows in out.values():
        for row in rows.values():
            for base, _ in BASELINES:
                ref = rows.get(f"{base}/fresh")
                row[f"vs_{base}"] = row["per_step_ms"] / ref["per_step_ms"] if ref else None
    return out


def fmt_s(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def fmt_ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def results_table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for workload in WORKLOADS:
        rows = summary.get(workload)
        if not rows:
            continue
        size = next(iter(rows.values()))["size"]
        steps = step_count(workload, size)
        title = f"chain of {size}" if workload == "chain" else f"fan-out of {size}"
        lines += [
            f"**{title}** ({steps} steps; per step = wall / {steps}; ratios: Slipway's per-step "
            "time over kfp.local's fresh-process run, aim <= 0.20)",
            "",
            "| configuration | runs | wall (median) | per step | orchestrator CPU / step "
            "| / kfp.local | / kfp.local, no pip |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for side in SIDES.values():
            for kind in KIND_LABELS:
                row = rows.get(f"{side.name}/{kind}")
                if row is None:
                    continue
                label = f"{side.label}, {KIND_LABELS[kind]}"
                if (side.name, kind) == HEADLINE:
                    label = f"**{label} (headline)**"
                ratios = [fmt_ratio(row[f"vs_{b}"]) for b, _ in BASELINES]
                if side.tool == "kfp":
                    ratios = ["", ""]
                lines.append(
                    f"| {label} | {row['runs']} | {fmt_s(row['wall_s'])} | "
                    f"{fmt_ms(row['per_step_ms'])} | {fmt_ms(row['cpu_per_step_ms'])} | "
                    f"{ratios[0]} | {ratios[1]} |"
                )
        if workload == "fanout":
            lines += [
                "",
                "kfp.local runs a ParallelFor's iterations two at a time (a thread pool capped "
                "at two), the rest of a pipeline one task at a time: the like-for-like Slipway "
                "row here is max_parallel=2; max_parallel=1 is stricter.",
            ]
        lines.append("")
    return "\n".join(lines)


def headline(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    out = []
    for workload, rows in summary.items():
        ours = rows.get("/".join(HEADLINE))
        if ours is None:
            continue
        for base, name in BASELINES:
            ratio = ours[f"vs_{base}"]
            if ratio is None:
                continue
            verdict = "met" if ratio <= AIM else "MISSED"
            out.append(
                f"{workload}-{ours['size']}: Slipway sequential {fmt_ms(ours['per_step_ms'])}/step "
                f"= {fmt_ratio(ratio)} of {name} ({fmt_ms(rows[base + '/fresh']['per_step_ms'])}"
                f"/step): aim <= {AIM:.2f} {verdict}"
            )
    return out


PART_ORDER = (
    "run",
    "advance",
    "cache_key",
    "cache_get",
    "step_run",
    "payload",
    "start_step",
    "wait",
    "result",
    "upload_logs",
    "finish_step_run",
    "cache_put",
    "save",
    "rmtree",
    "loop",
)


def profile_table(profile: dict[str, Any]) -> str:
    steps = profile["steps"]
    fresh, second = profile["fresh"], profile["second"]
    lines = [
        f"**Where a Slipway step's time goes: {profile['name']}, max_parallel=1** (ms per step; "
        "each part less the measured parts it calls)",
        "",
        "| part | fresh process | second run |",
        "| --- | ---: | ---: |",
    ]
    for key in PART_ORDER:
        a, b = fresh["parts"][key], second["parts"][key]
        lines.append(
            f"| {a['label']} | {a['seconds'] / steps * 1000:.2f} | "
            f"{b['seconds'] / steps * 1000:.2f} |"
        )
    lines.append(
        f"| **total: wall / steps** | {fresh['wall_s'] / steps * 1000:.2f} | "
        f"{second['wall_s'] / steps * 1000:.2f} |"
    )
    first = fresh["parts"]["start_step"]["first_s"] or 0.0
    lines += [
        "",
        f"Store created in {profile['store_create_s']:.2f} s (not in the runs). First step's "
        f"launch in the fresh process (fork server start and preload): {first:.2f} s.",
        "",
        f"cProfile of a third run ({profile['cprofile_wall_s']:.2f} s under the profiler), top "
        "functions by own time:",
        "",
        "| function | calls | own | cumulative |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in profile["top"][:10]:
        lines.append(
            f"| `{row['function']}` | {row['calls']} | {row['own_s'] * 1000:.0f} ms | "
            f"{row['cumulative_s'] * 1000:.0f} ms |"
        )
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "slipway": package_version("slipway"),
        "kfp": package_version("kfp"),
        "sqlalchemy": package_version("sqlalchemy"),
    }


# ---------------------------------------------------------------------------------------------
# Main


@dataclass
class Plan:
    sides: list[Side]
    sizes: dict[str, int]
    repeats: dict[str, int]
    profile: bool

    def children(self) -> Iterator[tuple[str, str, int, int]]:
        """``(side, workload, size, repetition)``, the sides interleaved."""
        for workload, size in self.sizes.items():
            for rep in range(self.repeats[workload]):
                for side in self.sides:
                    yield side.name, workload, size, rep
        if self.profile:
            for workload, size in self.sizes.items():
                yield "profile", workload, size, 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipelines", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="chain of 5, fan-out of 20")
    parser.add_argument("--chain", type=int, help="steps of the chain (20; 5 quick)")
    parser.add_argument("--fanout", type=int, help="loop iterations of the fan-out (200; 20 quick)")
    parser.add_argument("--chain-repeat", type=int, default=3, help="runs of the chain per side")
    parser.add_argument("--fanout-repeat", type=int, default=1, help="runs of the fan-out per side")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated, in order")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="chain,fanout")
    parser.add_argument("--no-profile", action="store_true", help="skip the breakdown")
    parser.add_argument("--json", type=Path, help="write every number to this file")
    parser.add_argument("--markdown", type=Path, help="write the tables to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--worker", nargs=4, metavar=("SIDE", "WORKLOAD", "SIZE", "DIR"))
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    names = [s.strip() for s in args.sides.split(",") if s.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(names) - set(SIDES)) + sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"unknown sides or workloads: {', '.join(unknown)}")
    sizes = {
        "chain": args.chain or (5 if args.quick else 20),
        "fanout": args.fanout or (20 if args.quick else 200),
    }
    if min(sizes.values()) < 1 or min(args.chain_repeat, args.fanout_repeat) < 1:
        raise SystemExit("sizes and repeats must be 1 or more")
    return Plan(
        [SIDES[n] for n in names],
        {w: sizes[w] for w in WORKLOADS if w in workloads},
        {"chain": args.chain_repeat, "fanout": args.fanout_repeat},
        not args.no_profile,
    )


def run_worker(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, interrupt)
    name, workload, size, folder = args.worker
    result = worker(name, workload, int(size), Path(folder))
    (Path(folder) / "result.json").write_text(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    plan = make_plan(args)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    env = environment()
    say = functools.partial(print, file=sys.stderr, flush=True)
    say(
        f"Pipelines: {', '.join(s.name for s in plan.sides)}; Python {env['python']}, "
        f"{env['cpus']} CPUs, load {os.getloadavg()[0]:.1f}; sizes {plan.sizes}"
    )
    started = time.time()
    measurements: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        with temporary_root("slipway-bench-pipelines-", args.keep) as root:
            if args.keep:
                say(f"keeping the temporary folder {root}")
            for name, workload, size, rep in plan.children():
                folder = root / f"{workload}-{rep}-{name}"
                load = os.getloadavg()[0]
                say(f"{workload}-{size} #{rep + 1} {name:12}", end=" ")
                try:
                    result = run_child(name, workload, size, folder)
                except BenchError as exc:
                    errors.append(str(exc))
                    say(f"FAILED\n{exc}")
                    continue
                if name == "profile":
                    profiles.append({"name": f"{workload}-{size}", **result})
                    say(f"breakdown done ({result['fresh']['wall_s']:.2f} s fresh)")
                    continue
                parts = []
                for r in result["runs"]:
                    measurements.append(
                        {"side": name, "workload": workload, "size": size, "rep": rep, **r}
                    )
                    measurements[-1]["loadavg"] = load
                    per_step = r["wall_s"] / r["steps"] * 1000
                    parts.append(f"{r['kind']} {r['wall_s']:.2f} s ({per_step:.1f} ms/step)")
                say(", ".join(parts))
    except KeyboardInterrupt:
        say("Interrupted: the running child was stopped and the folder removed.")
        return 130
    summary = summarise(measurements)
    loads = [m["loadavg"] for m in measurements] or [os.getloadavg()[0]]
    text = [
        f"Python {env['python']}, {env['cpus']} CPUs, slipway {env['slipway']}, "
        f"kfp {env['kfp']}; 1-minute load average {min(loads):.1f} to {max(loads):.1f} "
        "when the children started.",
        "",
        results_table(summary),
        *[f"- {line}" for line in headline(summary)],
        "",
        *[profile_table(p) for p in profiles],
    ]
    report = "\n".join(text)
    print(report)
    say(f"wall time {time.time() - started:.0f} s")
    if args.json:
        data = {
            "environment": env,
            "sizes": plan.sizes,
            "repeats": plan.repeats,
            "measurements": measurements,
            "summary": summary,
            "profiles": profiles,
            "errors": errors,
            "wall_s": time.time() - started,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(report)
    for error in errors:
        say(error)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
