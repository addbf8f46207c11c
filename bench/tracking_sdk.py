"""Slipway's tracking SDK against MLflow's, on a local ``sqlite:///`` store, in one run.

Usage::

    python -m bench.tracking_sdk [--steps 100000] [--runs 10000] [--history 100000]
                                 [--quick] [--json OUT] [--markdown OUT]

Workloads (each side in its own fresh temporary folder, one database file per workload):

1. a training loop: ``log_metric("loss", v, step=i)`` N times in one run, timed until the
   points are durably in the store (the run is ended, buffers flushed), then counted in the
   database. MLflow's synchronous loop is measured over ``--mlflow-steps`` steps and
   extrapolated to N; so is its default ``synchronous=False`` mode. MLflow's async mode with
   ``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1`` (batches merged in the background) runs all N.
2. ``log_batch``: ``--batch-calls`` calls of ``--batch-size`` metrics each, through the client.
3. ``search_runs`` over ``--runs`` runs with a filter and an order, every page fetched; the
   populate time is reported but is not the measured number.
4. metric history: ``--history`` points in one run, then the full ``get_metric_history`` and
   the downsampled bulk-interval query (320 points).

Every measurement runs in a child process of its own (``--worker``), so imports, caches and
peak memory (``ru_maxrss``) belong to one side and one workload. Ctrl-C stops the children and
removes the temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench._common import interrupt, package_version, temporary_root

REPO_ROOT = Path(__file__).resolve().parent.parent
SIDES = ("slipway", "mlflow")
WORKLOADS = ("loop", "batch", "search", "history")
SEARCH_FILTER = "metrics.loss < 0.5 and params.lr = '0.01'"
SEARCH_ORDER = ["metrics.loss ASC"]
INTERVAL_POINTS = 320
LRS = ("0.1", "0.01", "0.001")

# ---------------------------------------------------------------------------------------------
# The data, the same on both sides


def loss_of(i: int, runs: int) -> float:
    """A permutation of 0..runs-1 (7919 is prime), scaled into [0, 1): distinct losses."""
    return ((i * 7919) % runs) / runs


def run_content(i: int, runs: int) -> dict[str, dict[str, Any]]:
    loss = loss_of(i, runs)
    return {
        "metrics": {"loss": loss, "accuracy": 1.0 - loss, "f1": ((i * 31) % 97) / 97},
        "params": {
            "lr": LRS[i % 3],
            "batch_size": str((32, 64, 128, 256)[i % 4]),
            "optimizer": ("adam", "sgd")[i % 2],
        },
        "tags": {"team": f"team-{i % 5}", "stage": ("dev", "prod")[i % 2]},
    }


def expected_search_hits(runs: int) -> list[str]:
    """The run names the search must return, in order."""
    hits = [i for i in range(runs) if LRS[i % 3] == "0.01" and loss_of(i, runs) < 0.5]
    return [run_name(i) for i in sorted(hits, key=lambda i: loss_of(i, runs))]


def run_name(i: int) -> str:
    return f"run-{i:06d}"


# ---------------------------------------------------------------------------------------------
# Worker side: one task in one child process, reporting JSON lines on a private pipe


class Reporter:
    """Progress and the result, one JSON object a line, on the stdout the parent reads.

    File descriptor 1 is pointed at stderr so that nothing a library prints can mix in."""

    def __init__(self) -> None:
        self._out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)

    def progress(self, phase: str, done: int, total: int) -> None:
        self._out.write(
            json.dumps({"kind": "progress", "phase": phase, "done": done, "total": total}) + "\n"
        )

    def result(self, data: dict[str, Any]) -> None:
        self._out.write(json.dumps({"kind": "result", "data": data}) + "\n")


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def count_metric_rows(db: str, run_id: str, key: str | None = None) -> tuple[int, int]:
    """Points of a run (of one key) in the database, and their distinct steps, read with the
    sqlite3 module: the same check for both sides, independent of either SDK."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        if key is None:
            row = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT step) FROM metrics WHERE run_uuid = ?", (run_id,)
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT step) FROM metrics WHERE run_uuid = ? AND key = ?",
                (run_id, key),
            ).fetchone()
    return int(row[0]), int(row[1])


def count_runs(db: str, experiment_id: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM runs WHERE experiment_id = ?", (int(experiment_id),)
        ).fetchone()
    return int(row[0])


class Client:
    """The client calls a workload needs, on either side; both take the same arguments."""

    def __init__(self, side: str, uri: str) -> None:
        self.side = side
        if side == "slipway":
            import slipway
            from slipway.entities import Metric, Param, RunTag

            self.client: Any = slipway.SlipwayClient(uri)
        else:
            import mlflow
            from mlflow.entities import Metric, Param, RunTag

            self.client = mlflow.MlflowClient(uri)
        self.Metric: Any = Metric
        self.Param: Any = Param
        self.RunTag: Any = RunTag

    def experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(self.client.create_experiment(name))

    def create_run(self, experiment_id: str, name: str, tags: dict[str, str] | None = None) -> str:
        run = self.client.create_run(experiment_id, tags=tags, run_name=name)
        return str(run.info.run_id)

    def search_all(self, experiment_id: str, page_size: int) -> list[Any]:
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                experiment_ids=[experiment_id],
                filter_string=SEARCH_FILTER,
                max_results=page_size,
                order_by=SEARCH_ORDER,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def bulk_interval(self, run_id: str, key: str, max_results: int) -> list[Any]:
        if self.side == "slipway":
            return list(
                self.client.get_metric_history_bulk_interval([run_id], key, max_results=max_results)
            )
        # MlflowClient has no public method for this; its tracking server's
        # GetMetricHistoryBulkInterval handler calls this store method.
        store = self.client._tracking_client.store
        return list(
            store.get_metric_history_bulk_interval(
                run_ids=[run_id],
                metric_key=key,
                max_results=max_results,
                start_step=None,
                end_step=None,
            )
        )


def timed_repeats(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """One untimed warm-up call, then ``repeats`` timed calls; the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def task_loop(side: str, p: dict[str, Any], rep: Reporter) -> dict[str, Any]:
    """log_metric N times in one run, then end the run: timed until the data is stored."""
    if side == "slipway":
        import slipway as api
    else:
        import mlflow as api  # type: ignore[no-redef]
    n: int = p["n"]
    kwargs = {"synchronous": False} if p["mode"] == "async" else {}
    api.set_tracking_uri(p["uri"])
    api.set_experiment("bench-loop")
    run_id = api.start_run().info.run_id
    log_metric = api.log_metric
    rss_setup = peak_rss_bytes()
    every = max(1, n // 100)
    rep.progress("log_metric", 0, n)
    t0 = time.perf_counter()
    for i in range(n):
        log_metric("loss", 1.0 / (i + 1), step=i, **kwargs)
        if i % every == 0:
            rep.progress("log_metric", i, n)
    calls = time.perf_counter() - t0
    rep.progress("flushing and ending the run", n, n)
    if side == "mlflow" and p["mode"] == "async":
        api.flush_async_logging()  # end_run only stops the queue; this waits for the writes
    api.end_run()
    total = time.perf_counter() - t0
    count, steps = count_metric_rows(p["db"], run_id, "loss")
    if (count, steps) != (n, n):
        raise AssertionError(
            f"{side}: expected {n} points in the store, found {count} ({steps} distinct steps)"
        )
    return {
        "n": n,
        "mode": p["mode"],
        "calls_s": calls,
        "total_s": total,
        "end_s": total - calls,
        "points_stored": count,
        "rss_setup": rss_setup,
    }


def task_batch(side: str, p: dict[str, Any], rep: Reporter) -> dict[str, Any]:
    """``calls`` synchronous client log_batch calls of ``size`` metrics (distinct keys)."""
    c = Client(side, p["uri"])
    calls, size = p["calls"], p["size"]
    run_id = c.create_run(c.experiment_id("bench-batch"), "batch")
    ts = int(time.time() * 1000)
    batches = [
        [c.Metric(f"m{j:04d}", (k * size + j) / (calls * size), ts + k, k) for j in range(size)]
        for k in range(calls)
    ]
    rss_setup = peak_rss_bytes()
    rep.progress("log_batch", 0, calls)
    t0 = time.perf_counter()
    for k, batch in enumerate(batches):
        c.client.log_batch(run_id, metrics=batch)
        rep.progress("log_batch", k + 1, calls)
    total = time.perf_counter() - t0
    count, _ = count_metric_rows(p["db"], run_id)
    if count != calls * size:
        raise AssertionError(f"{side}: expected {calls * size} points, found {count}")
    return {
        "calls": calls,
        "size": size,
        "total_s": total,
        "points_stored": count,
        "rss_setup": rss_setup,
    }


def task_search_populate(side: str, p: dict[str, Any], rep: Reporter) -> dict[str, Any]:
    """Runs with a few metrics, params and tags each, as fast as the client allows: Slipway
    buffers log_batch asynchronously; MLflow's client logs synchronously."""
    c = Client(side, p["uri"])
    runs = p["runs"]
    experiment_id = c.experiment_id("bench-search")
    every = max(1, runs // 100)
    asynchronous = {"synchronous": False} if side == "slipway" else {}
    rep.progress("create_run + log_batch", 0, runs)
    t0 = time.perf_counter()
    for i in range(runs):
        content = run_content(i, runs)
        ts = int(time.time() * 1000)
        run_id = c.create_run(experiment_id, run_name(i), content["tags"])
        c.client.log_batch(
            run_id,
            metrics=[c.Metric(k, val, ts, 0) for k, val in content["metrics"].items()],
            params=[c.Param(k, val) for k, val in content["params"].items()],
            **asynchronous,
        )
        if i % every == 0:
            rep.progress("create_run + log_batch", i, runs)
    if side == "slipway":
        c.client.flush()
    total = time.perf_counter() - t0
    stored = count_runs(p["db"], experiment_id)
    if stored != runs:
        raise AssertionError(f"{side}: expected {runs} runs, found {stored}")
    return {"runs": runs, "total_s": total, "experiment_id": experiment_id}


def task_search(side: str, p: dict[str, Any], rep: Reporter) -> dict[str, Any]:
    c = Client(side, p["uri"])
    experiment_id, runs = p["experiment_id"], p["runs"]
    page_size = min(max(runs, 1), 50_000)
    rss_setup = peak_rss_bytes()
    rep.progress("search_runs", 0, p["repeats"] + 1)
    result: list[Any] = c.search_all(experiment_id, page_size)  # warm-up
    times = []
    for k in range(p["repeats"]):
        rep.progress("search_runs", k + 1, p["repeats"] + 1)
        t0 = time.perf_counter()
        result = c.search_all(experiment_id, page_size)
        times.append(time.perf_counter() - t0)
    names = [r.info.run_name for r in result]
    expected = expected_search_hits(runs)
    if names != expected:
        raise AssertionError(
            f"{side}: search returned {len(names)} runs, expected "
            f"{len(expected)} (or a different order)"
        )
    return {
        "runs": runs,
        "hits": len(names),
        "times_s": times,
        "median_s": statistics.median(times),
        "page_size": page_size,
        "digest": hashlib.sha256("\n".join(names).encode()).hexdigest()[:16],
        "rss_setup": rss_setup,
    }


def task_history_populate(side: str, p: dict[str, Any], rep: Reporter) -> dict[str, Any]:
    c = Client(side, p["uri"])
    points = p["points"]
    run_id = c.create_run(c.experiment_id("bench-history"), "history")
    ts = int(time.time() * 1000)
    rep.progress("log_batch", 0, points)
    t0 = time.perf_counter()
    for start in range(0, points, 1000):
        batch = [
            c.Metric("loss", 1.0 / (s + 1), ts + s, s)
            for s in range(start, min(start + 1000, points))
        ]
        c.client.log_batch(run_id, metrics=batch)
        rep.progress("log_batch", start + len(batch), points)
    total = time.perf_counter() - t0
    count, steps = count_metric_rows(p["db"], run_id, "loss")
    if (count, steps) != (points, points):
        raise AssertionError(f"{side}: expected {points} points, found {count}")
    return {"points": points, "total_s": total, "run_id": run_id}


def task_history(side: str, p: dict[str, Any], rep: Reporter) -> dict[str, Any]:
    c = Client(side, p["uri"])
    run_id, points, repeats = p["run_id"], p["points"], p["repeats"]
    rss_setup = peak_rss_bytes()
    rep.progress("get_metric_history", 0, 2)
    full_times, history = timed_repeats(
        lambda: c.client.get_metric_history(run_id, "loss"), repeats
    )
    steps = {m.step for m in history}
    if len(history) != points or len(steps) != points:
        raise AssertionError(f"{side}: history has {len(history)} points, expected {points}")
    rep.progress("bulk interval", 1, 2)
    interval_times, sample = timed_repeats(
        lambda: c.bulk_interval(run_id, "loss", INTERVAL_POINTS), repeats
    )
    sample_steps = sorted(m.step for m in sample)
    return {
        "points": points,
        "full_times_s": full_times,
        "full_median_s": statistics.median(full_times),
        "interval_times_s": interval_times,
        "interval_median_s": statistics.median(interval_times),
        "interval_points": len(sample),
        "interval_first_step": sample_steps[0] if sample_steps else None,
        "interval_last_step": sample_steps[-1] if sample_steps else None,
        "rss_setup": rss_setup,
    }


TASKS: dict[str, Callable[[str, dict[str, Any], Reporter], dict[str, Any]]] = {
    "loop": task_loop,
    "batch": task_batch,
    "search_populate": task_search_populate,
    "search": task_search,
    "history_populate": task_history_populate,
    "history": task_history,
}


def worker(task: str, side: str, params: str) -> int:
    rep = Reporter()
    try:
        data = TASKS[task](side, json.loads(params), rep)
    except Exception:
        traceback.print_exc()
        return 1
    data["peak_rss"] = peak_rss_bytes()
    rep.result(data)
    return 0


# ---------------------------------------------------------------------------------------------
# Parent side: the plan, the children, the table


class BenchError(Exception):
    pass


@dataclass
class Step:
    key: str  # where the result goes
    task: str
    side: str
    label: str
    params: Callable[[dict[str, dict[str, Any]]], dict[str, Any]]
    env: dict[str, str] = field(default_factory=dict)
    needs: str | None = None  # the key of a step whose result this one uses


@dataclass
class Config:
    steps: int
    mlflow_steps: int
    mlflow_async_steps: int
    buffered_steps: int
    batch_calls: int
    batch_size: int
    runs: int
    history: int
    repeats: int
    workloads: tuple[str, ...]


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child: defaults for both SDKs (no MLFLOW_*/SLIPWAY_* settings
    inherited), MLflow's telemetry off, the repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SLIPWAY_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["GIT_PYTHON_REFRESH"] = "quiet"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def plan(cfg: Config, root: Path) -> list[Step]:
    def db(side: str, name: str) -> dict[str, str]:
        path = root / side / f"{name}.db"
        return {"db": str(path), "uri": f"sqlite:///{path}"}

    steps: list[Step] = []
    if "loop" in cfg.workloads:
        steps += [
            Step(
                "loop/slipway",
                "loop",
                "slipway",
                f"loop: Slipway log_metric x {cfg.steps:,}",
                lambda _r: {**db("slipway", "loop"), "n": cfg.steps, "mode": "default"},
            ),
            Step(
                "loop/mlflow",
                "loop",
                "mlflow",
                f"loop: MLflow log_metric x {cfg.mlflow_steps:,} (sync)",
                lambda _r: {**db("mlflow", "loop"), "n": cfg.mlflow_steps, "mode": "default"},
            ),
            Step(
                "loop/mlflow-async",
                "loop",
                "mlflow",
                f"loop: MLflow log_metric x {cfg.mlflow_async_steps:,} (synchronous=False)",
                lambda _r: {
                    **db("mlflow", "loop_async"),
                    "n": cfg.mlflow_async_steps,
                    "mode": "async",
                },
            ),
            Step(
                "loop/mlflow-buffered",
                "loop",
                "mlflow",
                f"loop: MLflow log_metric x {cfg.buffered_steps:,} (async, buffered 1 s)",
                lambda _r: {
                    **db("mlflow", "loop_buffered"),
                    "n": cfg.buffered_steps,
                    "mode": "async",
                },
                env={"MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"},
            ),
        ]
    if "batch" in cfg.workloads:
        for side in SIDES:
            steps.append(
                Step(
                    f"batch/{side}",
                    "batch",
                    side,
                    f"log_batch: {side} {cfg.batch_calls} x {cfg.batch_size:,}",
                    lambda _r, s=side: {
                        **db(s, "batch"),
                        "calls": cfg.batch_calls,
                        "size": cfg.batch_size,
                    },
                )
            )
    if "search" in cfg.workloads:
        for side in SIDES:
            steps.append(
                Step(
                    f"populate/{side}",
                    "search_populate",
                    side,
                    f"search: {side} populate {cfg.runs:,} runs",
                    lambda _r, s=side: {**db(s, "search"), "runs": cfg.runs},
                )
            )
            steps.append(
                Step(
                    f"search/{side}",
                    "search",
                    side,
                    f"search: {side} search_runs",
                    lambda r, s=side: {
                        **db(s, "search"),
                        "runs": cfg.runs,
                        "repeats": cfg.repeats,
                        "experiment_id": r[f"populate/{s}"]["experiment_id"],
                    },
                    needs=f"populate/{side}",
                )
            )
    if "history" in cfg.workloads:
        for side in SIDES:
            steps.append(
                Step(
                    f"hpopulate/{side}",
                    "history_populate",
                    side,
                    f"history: {side} populate {cfg.history:,} points",
                    lambda _r, s=side: {**db(s, "history"), "points": cfg.history},
                )
            )
            steps.append(
                Step(
                    f"history/{side}",
                    "history",
                    side,
                    f"history: {side} reads",
                    lambda r, s=side: {
                        **db(s, "history"),
                        "points": cfg.history,
                        "repeats": cfg.repeats,
                        "run_id": r[f"hpopulate/{s}"]["run_id"],
                    },
                    needs=f"hpopulate/{side}",
                )
            )
    return steps


def stop(proc: subprocess.Popen[str]) -> None:
    """Terminate a child (its own process group), then kill it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_child(
    step: Step, params: dict[str, Any], root: Path, on_progress: Callable[[str, int, int], None]
) -> dict[str, Any]:
    cwd = root / step.side  # MLflow's default ./mlruns artifact root lands here
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = root / "logs" / (step.key.replace("/", "-") + ".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "bench.tracking_sdk",
        "--worker",
        step.task,
        "--side",
        step.side,
        "--params",
        json.dumps(params),
    ]
    result: dict[str, Any] | None = None
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=child_env(step.env),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if message.get("kind") == "progress":
                    on_progress(message["phase"], message["done"], message["total"])
                elif message.get("kind") == "result":
                    result = message["data"]
            rc = proc.wait()
        finally:
            stop(proc)
    if rc != 0 or result is None:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-25:]
        raise BenchError(f"{step.label} failed (exit {rc}):\n" + "\n".join(tail))
    return result


def run_plan(steps: list[Step], root: Path, console: Any) -> tuple[dict[str, Any], list[str]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    results: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<52}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[dim]{task.fields[phase]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, refresh_per_second=4) as progress:
        overall = progress.add_task("[bold]all workloads", total=len(steps), phase="")
        for step in steps:
            if step.needs is not None and step.needs not in results:
                errors.append(f"{step.label}: skipped ({step.needs} failed)")
                progress.advance(overall)
                continue
            task = progress.add_task(step.label, total=None, phase="starting")

            def on_progress(phase: str, done: int, total: int, task: Any = task) -> None:
                progress.update(task, completed=done, total=total, phase=phase)

            started = time.perf_counter()
            try:
                results[step.key] = run_child(step, step.params(results), root, on_progress)
                results[step.key]["load_after"] = os.getloadavg()[0]
                mark = f"[green]done in {time.perf_counter() - started:.1f} s"
            except BenchError as exc:
                errors.append(str(exc))
                mark = "[red]failed"
            progress.update(
                task,
                phase=mark,
                total=progress.tasks[task].total or 1,
                completed=progress.tasks[task].total or 1,
            )
            progress.advance(overall)
    return results, errors


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Row:
    workload: str
    slipway_s: float | None
    mlflow_s: float | None
    slipway_rss: int | None
    mlflow_rss: int | None
    aim: float | None = None
    note: str = ""
    mlflow_extrapolated: bool = False
    section: str = "measured"

    @property
    def ratio(self) -> float | None:
        if self.slipway_s is None or self.mlflow_s is None or self.slipway_s <= 0:
            return None
        return self.mlflow_s / self.slipway_s

    @property
    def meets_aim(self) -> bool | None:
        if self.aim is None or self.ratio is None:
            return None
        return self.ratio >= self.aim


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_mlflow(row: Row) -> str:
    return fmt_time(row.mlflow_s) + (" *" if row.mlflow_extrapolated else "")


def fmt_rss(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def fmt_ratio(row: Row) -> str:
    ratio = row.ratio
    if ratio is None:
        return "-"
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def fmt_aim(row: Row) -> str:
    if row.aim is None:
        return ""
    meets = row.meets_aim
    mark = "?" if meets is None else ("met" if meets else "MISSED")
    return f">={row.aim:.0f}x {mark}"


def rows_from(results: dict[str, Any], cfg: Config) -> list[Row]:
    def seconds(key: str, field_: str) -> float | None:
        found = results.get(key)
        return None if found is None else float(found[field_])

    def rss(key: str) -> int | None:
        found = results.get(key)
        return None if found is None else int(found["peak_rss"])

    rows: list[Row] = []
    n = cfg.steps
    if "loop" in cfg.workloads:
        s_loop = results.get("loop/slipway")
        s_note = ""
        if s_loop is not None:
            s_note = (
                f"Slipway: {s_loop['calls_s'] / n * 1e6:.1f} µs per log_metric call, "
                f"then {s_loop['end_s'] * 1e3:.0f} ms in end_run (flush + status); "
            )
        for key, label in (
            ("loop/mlflow", f"loop: log_metric x {n:,} / MLflow sync"),
            ("loop/mlflow-async", "  same / MLflow synchronous=False"),
            ("loop/mlflow-buffered", "  same / MLflow async, buffered 1 s"),
        ):
            found = results.get(key)
            value, extrapolated, note = None, False, ""
            if found is not None:
                m = int(found["n"])
                per_call = f"{found['calls_s'] / m * 1e3:.2f} ms per call"
                if m == n:
                    value, note = float(found["total_s"]), f"MLflow: {per_call}"
                elif found["mode"] == "async":  # the writes, done at the end, scale too
                    value = float(found["total_s"]) / m * n
                    extrapolated = True
                    note = (
                        f"MLflow: extrapolated linearly from {m:,} steps measured in "
                        f"{found['total_s']:.2f} s, flush included ({per_call}, then "
                        f"{found['end_s']:.2f} s in flush_async_logging + end_run)"
                    )
                else:  # the calls scale with the steps; ending the run is paid once
                    value = float(found["calls_s"]) / m * n + float(found["end_s"])
                    extrapolated = True
                    note = (
                        f"MLflow: extrapolated from {m:,} steps measured in "
                        f"{found['total_s']:.2f} s: {per_call} x {n:,} + end_run"
                    )
            rows.append(
                Row(
                    label,
                    seconds("loop/slipway", "total_s"),
                    value,
                    rss("loop/slipway"),
                    rss(key),
                    aim=50,
                    note=(s_note if key == "loop/mlflow" else "") + note,
                    mlflow_extrapolated=extrapolated,
                )
            )
    if "batch" in cfg.workloads:
        rows.append(
            Row(
                f"log_batch: {cfg.batch_calls} x {cfg.batch_size:,} metrics",
                seconds("batch/slipway", "total_s"),
                seconds("batch/mlflow", "total_s"),
                rss("batch/slipway"),
                rss("batch/mlflow"),
                note="synchronous client calls on both sides, distinct keys",
            )
        )
    if "search" in cfg.workloads:
        q_s, q_m = results.get("search/slipway"), results.get("search/mlflow")
        if q_s is not None and q_m is not None and q_s["digest"] != q_m["digest"]:
            raise BenchError(f"search: Slipway found {q_s['hits']} runs, MLflow {q_m['hits']}")
        hits = (q_s or q_m or {}).get("hits")
        hits_text = "?" if hits is None else f"{hits:,}"
        rows.append(
            Row(
                f"search_runs: {cfg.runs:,} runs -> {hits_text} hits",
                seconds("search/slipway", "median_s"),
                seconds("search/mlflow", "median_s"),
                rss("search/slipway"),
                rss("search/mlflow"),
                aim=10,
                note=(
                    f"filter {SEARCH_FILTER!r}, order_by {SEARCH_ORDER[0]!r}, all "
                    f"pages; same runs in the same order on both sides; median of "
                    f"{cfg.repeats}"
                ),
            )
        )
    if "history" in cfg.workloads:
        h_s, h_m = results.get("history/slipway"), results.get("history/mlflow")
        rows.append(
            Row(
                f"get_metric_history: {cfg.history:,} points",
                seconds("history/slipway", "full_median_s"),
                seconds("history/mlflow", "full_median_s"),
                rss("history/slipway"),
                rss("history/mlflow"),
                aim=10,
                note=f"the full history, median of {cfg.repeats}",
            )
        )
        counts = ", ".join(
            f"{side} {found['interval_points']} points"
            for side, found in (("Slipway", h_s), ("MLflow", h_m))
            if found is not None
        )
        rows.append(
            Row(
                f"bulk interval: {INTERVAL_POINTS} of {cfg.history:,} points",
                seconds("history/slipway", "interval_median_s"),
                seconds("history/mlflow", "interval_median_s"),
                rss("history/slipway"),
                rss("history/mlflow"),
                aim=10,
                note=(
                    f"median of {cfg.repeats}; {counts}; MLflow has no public client "
                    "method, so its store's get_metric_history_bulk_interval (what "
                    "its server calls) is timed"
                ),
            )
        )
    if "search" in cfg.workloads:
        rows.append(
            Row(
                f"(setup) populate {cfg.runs:,} runs",
                seconds("populate/slipway", "total_s"),
                seconds("populate/mlflow", "total_s"),
                rss("populate/slipway"),
                rss("populate/mlflow"),
                section="setup",
                note=(
                    "create_run + log_batch (3 metrics, 3 params) per run; Slipway "
                    "log_batch(synchronous=False) + one flush, MLflow synchronous"
                ),
            )
        )
    if "history" in cfg.workloads:
        rows.append(
            Row(
                f"(setup) populate {cfg.history:,} points",
                seconds("hpopulate/slipway", "total_s"),
                seconds("hpopulate/mlflow", "total_s"),
                rss("hpopulate/slipway"),
                rss("hpopulate/mlflow"),
                section="setup",
                note="log_batch of 1,000 points, synchronous on both sides",
            )
        )
    return rows


def render_table(rows: list[Row]) -> Any:
    from rich.table import Table

    table = Table(
        title="Slipway vs MLflow: tracking SDK on sqlite:///",
        caption="* extrapolated (see the notes); ratio = MLflow time / Slipway time",
    )
    table.add_column("Workload")
    table.add_column("Slipway", justify="right")
    table.add_column("MLflow", justify="right")
    table.add_column("Ratio", justify="right")
    table.add_column("Aim")
    table.add_column("RSS Slipway", justify="right")
    table.add_column("RSS MLflow", justify="right")
    for i, row in enumerate(rows):
        aim = fmt_aim(row)
        style = "red" if row.meets_aim is False else ("green" if row.meets_aim else "")
        following = rows[i + 1].section if i + 1 < len(rows) else row.section
        table.add_row(
            row.workload,
            fmt_time(row.slipway_s),
            fmt_mlflow(row),
            fmt_ratio(row),
            f"[{style}]{aim}[/]" if style else aim,
            fmt_rss(row.slipway_rss),
            fmt_rss(row.mlflow_rss),
            end_section=following != row.section,
        )
    return table


def notes(rows: list[Row]) -> list[str]:
    return [f"{row.workload.strip()}: {row.note}" for row in rows if row.note]


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| Workload | Slipway | MLflow | MLflow / Slipway | Aim | Peak RSS Slipway | "
        "Peak RSS MLflow |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        mlflow = fmt_time(row.mlflow_s) + (" (extrapolated)" if row.mlflow_extrapolated else "")
        lines.append(
            f"| {row.workload.strip()} | {fmt_time(row.slipway_s)} | {mlflow} | "
            f"**{fmt_ratio(row)}** | {fmt_aim(row)} | {fmt_rss(row.slipway_rss)} | "
            f"{fmt_rss(row.mlflow_rss)} |"
        )
    lines.append("")
    lines += [f"- {note}" for note in notes(rows)]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "slipway": package_version("slipway"),
        "mlflow": package_version("mlflow"),
        "sqlalchemy": package_version("sqlalchemy"),
    }


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracking_sdk",
        description="Compare Slipway's tracking SDK with MLflow's on a sqlite:/// store.",
    )
    parser.add_argument("--steps", type=int, help="training-loop steps (default 100,000)")
    parser.add_argument(
        "--mlflow-steps",
        type=int,
        help="steps of MLflow's synchronous loop, extrapolated to --steps "
        "(default: min(steps, 10,000); 1,000 with --quick)",
    )
    parser.add_argument(
        "--mlflow-async-steps",
        type=int,
        help="steps of MLflow's synchronous=False loop, extrapolated like --mlflow-steps",
    )
    parser.add_argument(
        "--mlflow-buffered-steps",
        type=int,
        help="steps of MLflow's buffered async loop (default: --steps)",
    )
    parser.add_argument("--runs", type=int, help="runs to search (default 10,000)")
    parser.add_argument("--history", type=int, help="metric-history points (default 100,000)")
    parser.add_argument("--batch-calls", type=int, help="log_batch calls (default 100)")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="metrics per log_batch call (default 1,000)"
    )
    parser.add_argument("--repeats", type=int, help="timed repeats of each read (default 5)")
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for a smoke test (2,000 steps, 500 runs, 10,000 points)",
    )
    parser.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    parser.add_argument("--markdown", metavar="OUT", help="write the table as Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    quick = args.quick
    steps = args.steps or (2_000 if quick else 100_000)
    mlflow_default = 1_000 if quick else 10_000
    workloads = tuple(w.strip() for w in args.workloads.split(",") if w.strip())
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
    cfg = Config(
        steps=steps,
        mlflow_steps=min(args.mlflow_steps or mlflow_default, steps),
        mlflow_async_steps=min(args.mlflow_async_steps or mlflow_default, steps),
        buffered_steps=min(args.mlflow_buffered_steps or steps, steps),
        batch_calls=args.batch_calls or (20 if quick else 100),
        batch_size=args.batch_size,
        runs=args.runs or (500 if quick else 10_000),
        history=args.history or (10_000 if quick else 100_000),
        repeats=args.repeats or (3 if quick else 5),
        workloads=workloads,
    )
    if (
        min(
            cfg.steps,
            cfg.mlflow_steps,
            cfg.mlflow_async_steps,
            cfg.buffered_steps,
            cfg.batch_calls,
            cfg.batch_size,
            cfg.runs,
            cfg.history,
            cfg.repeats,
        )
        < 1
    ):
        raise SystemExit("every size must be at least 1")
    if cfg.batch_size > 1000:
        raise SystemExit("--batch-size is at most 1,000 (the log_batch limit of both SDKs)")
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker, args.side, args.params)
    from rich.console import Console

    cfg = config_from(args)
    console = Console()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    signal.signal(signal.SIGTERM, interrupt)
    env = environment()
    console.print(
        f"[bold]Slipway {env['slipway']} vs MLflow {env['mlflow']}[/] - Python "
        f"{env['python']}, SQLAlchemy {env['sqlalchemy']}, SQLite {env['sqlite']}, "
        f"{env['cpus']} CPUs"
    )
    started = time.time()
    load_start = os.getloadavg()[0]
    try:
        with temporary_root("slipway-bench-", args.keep) as root:
            if args.keep:
                console.print(f"keeping the temporary folder {root}")
            results, errors = run_plan(plan(cfg, root), root, console)
    except KeyboardInterrupt:
        console.print(
            "[yellow]Interrupted: the children were stopped and the temporary folder removed."
        )
        return 130
    try:
        rows = rows_from(results, cfg)
    except BenchError as exc:
        errors.append(str(exc))
        rows = []
    console.print(render_table(rows))
    for note in notes(rows):
        console.print(f"[dim]- {note}")
    for error in errors:
        console.print(f"[red]{error}")
    console.print(f"[dim]wall time {time.time() - started:.0f} s")
    loads = [load_start] + [found["load_after"] for found in results.values()]
    console.print(
        f"[dim]1-minute load average: {min(loads):.1f} to {max(loads):.1f} ({env['cpus']} CPUs)"
    )
    if max(loads) > (env["cpus"] or 1) + 0.5:
        console.print(
            "[yellow]Other work competed for the CPUs during the run: the times are "
            "noisy; rerun on a quiet machine."
        )
    if args.json:
        report = {
            "environment": env,
            "config": cfg.__dict__,
            "results": results,
            "rows": [
                {**row.__dict__, "ratio": row.ratio, "meets_aim": row.meets_aim} for row in rows
            ],
            "errors": errors,
            "load_average_1min": {"start": load_start, "max": max(loads)},
            "wall_s": time.time() - started,
        }
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(rows))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
