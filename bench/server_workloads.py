"""The timed workloads of the server benchmark, each against one running server."""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3

from bench.server_http import (
    LRS,
    POPULATE_THREADS,
    BenchError,
    Http,
    create_run,
    latency_ms,
    now_ms,
)
from bench.server_processes import Server

# ---------------------------------------------------------------------------------------------
# The workloads


@dataclass
class Config:
    calls: int
    batch_calls: int
    batch_size: int
    writers: int
    writer_calls: int
    runs: int
    history: int
    repeats: int
    settle: float
    warmup: int
    registry_cycles: int = 0


Progress = Callable[[str, int, int], None]


class Stop:
    """Set on Ctrl-C; the client threads look at it between calls."""

    event = threading.Event()


def client_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Meter:
    """Wall time, client CPU and server CPU of one workload."""

    def __init__(self, server: Server):
        self.server = server
        self.wall0 = time.perf_counter()
        self.client0 = client_cpu()
        self.server0 = server.cpu_seconds()

    def done(self) -> dict[str, float]:
        return {
            "wall_s": time.perf_counter() - self.wall0,
            "client_cpu_s": client_cpu() - self.client0,
            "server_cpu_s": self.server.cpu_seconds() - self.server0,
        }


def sequential_log_metric(
    server: Server, run_id: str, key: str, n: int, keepalive: bool, progress: Progress, phase: str
) -> dict[str, Any]:
    http = Http(server.url, keepalive=keepalive)
    base = now_ms()
    latencies: list[float] = []
    errors = 0
    first_error = ""
    meter = Meter(server)
    for i in range(n):
        if Stop.event.is_set():
            raise KeyboardInterrupt
        body = json.dumps(
            {"run_id": run_id, "key": key, "value": 1.0 / (i + 1), "timestamp": base + i, "step": i}
        ).encode()
        started = time.perf_counter()
        try:
            status, data = http.raw("POST", "runs/log-metric", body)
        except urllib3.exceptions.HTTPError as exc:
            status, data = -1, str(exc).encode()
        latencies.append(time.perf_counter() - started)
        if status != 200:
            errors += 1
            first_error = first_error or f"HTTP {status}: {data[:200]!r}"
            if errors > 50 and errors > i // 2:
                raise BenchError(f"{phase}: too many errors, first: {first_error}")
        if i % 50 == 0:
            progress(phase, i, n)
    cost = meter.done()
    connections = http.connections
    http.close()
    return {
        "calls": n,
        "calls_per_s": (n - errors) / cost["wall_s"],
        "server_cpu_ms_per_call": cost["server_cpu_s"] / n * 1e3,
        "client_cpu_ms_per_call": cost["client_cpu_s"] / n * 1e3,
        **latency_ms(latencies),
        **cost,
        "errors": errors,
        "first_error": first_error or None,
        "connections_opened": connections,
    }


def log_batch(
    server: Server,
    run_id: str,
    calls: int,
    size: int,
    keys: int,
    progress: Progress,
    phase: str,
    key_prefix: str = "b",
) -> dict[str, Any]:
    """``calls`` log-batch calls of ``size`` metrics over ``keys`` keys, distinct steps."""
    http = Http(server.url, keepalive=True)
    base = now_ms()
    latencies: list[float] = []
    meter = Meter(server)
    for c in range(calls):
        if Stop.event.is_set():
            raise KeyboardInterrupt
        metrics = []
        for j in range(size):
            step = c * size + j
            metrics.append(
                {
                    "key": f"{key_prefix}{j % keys}" if keys > 1 else key_prefix,
                    "value": math.sin(step * 1e-3),
                    "timestamp": base + step,
                    "step": step,
                }
            )
        body = json.dumps({"run_id": run_id, "metrics": metrics}).encode()
        started = time.perf_counter()
        status, data = http.raw("POST", "runs/log-batch", body)
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise BenchError(f"{phase}: log-batch -> HTTP {status}: {data[:300]!r}")
        progress(phase, c + 1, calls)
    cost = meter.done()
    http.close()
    return {
        "calls": calls,
        "metrics": calls * size,
        "metrics_per_s": calls * size / cost["wall_s"],
        **latency_ms(latencies),
        **cost,
        "server_cpu_ms_per_call": cost["server_cpu_s"] / calls * 1e3,
    }


def run_threads(
    target: Callable[[int], None], count: int, started: Callable[[], None] | None = None
) -> None:
    """Run ``target(i)`` in ``count`` threads, then ``started()`` in this one; Ctrl-C here
    stops them (they look at :class:`Stop` between calls)."""
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)
            Stop.event.set()

    threads = [threading.Thread(target=wrapped, args=(i,), daemon=True) for i in range(count)]
    try:
        for t in threads:
            t.start()
        if started is not None:
            started()
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.2)
    except KeyboardInterrupt:
        Stop.event.set()
        raise
    if errors:
        if not isinstance(errors[0], KeyboardInterrupt):
            Stop.event.clear()
        raise errors[0]


def concurrent_writers(
    server: Server, run_ids: list[str], n: int, progress: Progress, phase: str
) -> dict[str, Any]:
    writers = len(run_ids)
    latencies: list[list[float]] = [[] for _ in range(writers)]
    errors = [0] * writers
    first_errors: list[str] = []
    done = [0] * writers
    barrier = threading.Barrier(writers + 1)
    base = now_ms()

    def writer(w: int) -> None:
        http = Http(server.url, keepalive=True)
        barrier.wait()
        for i in range(n):
            if Stop.event.is_set():
                return
            body = json.dumps(
                {
                    "run_id": run_ids[w],
                    "key": "conc",
                    "value": float(i),
                    "timestamp": base + i,
                    "step": i,
                }
            ).encode()
            started = time.perf_counter()
            try:
                status, data = http.raw("POST", "runs/log-metric", body)
            except urllib3.exceptions.HTTPError as exc:
                status, data = -1, str(exc).encode()
            latencies[w].append(time.perf_counter() - started)
            if status != 200:
                errors[w] += 1
                if not first_errors:
                    first_errors.append(f"HTTP {status}: {data[:200]!r}")
            done[w] = i + 1
        http.close()

    meter_box: list[Meter] = []
    ticker_stop = threading.Event()

    def ticker() -> None:
        while not ticker_stop.wait(0.25):
            progress(phase, sum(done), writers * n)

    def go() -> None:  # every writer is connected-ready; start the clock and release them
        meter_box.append(Meter(server))
        barrier.wait()

    tick = threading.Thread(target=ticker, daemon=True)
    tick.start()
    try:
        run_threads(writer, writers, started=go)
    finally:
        ticker_stop.set()
    cost = meter_box[0].done()
    flat = [x for per in latencies for x in per]
    total_errors = sum(errors)
    return {
        "writers": writers,
        "calls": writers * n,
        "calls_per_s": (writers * n - total_errors) / cost["wall_s"],
        **latency_ms(flat),
        **cost,
        "errors": total_errors,
        "first_error": first_errors[0] if first_errors else None,
    }


def acc_of(i: int, runs: int) -> float:
    """A permutation of 0..runs-1 scaled into [0, 1): distinct accuracies."""
    prime = next(p for p in (7919, 7927, 7933, 7937) if runs % p)
    return ((i * prime) % runs) / runs


def run_name(i: int) -> str:
    return f"run-{i:06d}"


def run_payload(run_id: str, i: int, runs: int, timestamp: int) -> dict[str, Any]:
    acc = acc_of(i, runs)
    return {
        "run_id": run_id,
        "params": [
            {"key": "lr", "value": LRS[i % 3]},
            {"key": "batch_size", "value": str((32, 64, 128, 256)[i % 4])},
            {"key": "optimizer", "value": ("adam", "sgd")[i % 2]},
            {"key": "layers", "value": str(2 + i % 6)},
            {"key": "seed", "value": str(i)},
        ],
        "metrics": [
            {"key": k, "value": v, "timestamp": timestamp, "step": 0}
            for k, v in (
                ("acc", acc),
                ("loss", 1.0 - acc),
                ("f1", ((i * 31) % 97) / 97),
                ("precision", (i % 89) / 89),
                ("recall", (i % 83) / 83),
            )
        ],
        "tags": [
            {"key": "team", "value": "abcde"[i % 5]},
            {"key": "stage", "value": ("dev", "prod")[i % 2]},
            {"key": "owner", "value": f"user{i % 7}"},
        ],
    }


def expected_hits(runs: int) -> list[str]:
    hits = [i for i in range(runs) if acc_of(i, runs) > 0.5 and LRS[i % 3] == "0.01"]
    hits.sort(key=lambda i: -acc_of(i, runs))
    return [run_name(i) for i in hits]


def populate_runs(
    server: Server, experiment_id: str, runs: int, progress: Progress, phase: str
) -> dict[str, Any]:
    """runs/create + one log-batch (5 params, 5 metrics, 3 tags) per run, 4 client threads."""
    done = [0] * POPULATE_THREADS
    meter = Meter(server)

    def worker(t: int) -> None:
        http = Http(server.url, keepalive=False)
        stamp = now_ms()
        for i in range(t, runs, POPULATE_THREADS):
            if Stop.event.is_set():
                return
            run_id = create_run(http, experiment_id, run_name(i))
            http.post("runs/log-batch", run_payload(run_id, i, runs, stamp))
            done[t] += 1
            if t == 0 and done[0] % 10 == 0:
                progress(phase, sum(done), runs)
        http.close()

    run_threads(worker, POPULATE_THREADS)
    cost = meter.done()
    return {"runs": runs, "http_calls": 2 * runs, "runs_per_s": runs / cost["wall_s"], **cost}


def timed_reads(
    fn: Callable[[], tuple[int, int, int, float]], repeats: int, progress: Progress, phase: str
) -> dict[str, Any]:
    """The first (cold) read, then ``repeats`` more; the median of those is the score."""
    times: list[float] = []
    parse: list[float] = []
    last: tuple[int, int, int, float] = (0, 0, 0, 0.0)
    for r in range(repeats + 1):
        if Stop.event.is_set():
            raise KeyboardInterrupt
        started = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - started)
        parse.append(last[3])
        progress(phase, r + 1, repeats + 1)
    warm = times[1:] or times
    return {
        "first_s": times[0],
        "median_s": statistics.median(warm),
        "min_s": min(warm),
        "times_s": times,
        "client_parse_median_s": statistics.median(parse[1:] or parse),
        "items": last[0],
        "pages": last[1],
        "bytes": last[2],
    }


def registry_cycle(
    server: Server, http: Http, run_id: str, n: int, progress: Progress, phase: str
) -> dict[str, Any]:
    """``n`` times, on one kept-alive connection: register a new version of one model from the
    run's artifacts, move the alias ``champion`` onto it, and read the model back by the
    alias (what a CI job that registers and promotes a model does). Every answer is checked:
    the versions count up from 1 and the alias names the version just made."""
    name = f"bench-{now_ms()}"
    http.post("registered-models/create", {"name": name})
    run = http.get("runs/get", {"run_id": run_id})[0]["run"]
    source = run["info"]["artifact_uri"] + "/model"
    latencies: list[float] = []
    meter = Meter(server)
    for i in range(n):
        if Stop.event.is_set():
            raise KeyboardInterrupt
        started = time.perf_counter()
        made = http.post(
            "model-versions/create", {"name": name, "source": source, "run_id": run_id}
        )["model_version"]
        http.post(
            "registered-models/alias",
            {"name": name, "alias": "champion", "version": made["version"]},
        )
        found = http.get("registered-models/alias", {"name": name, "alias": "champion"})[0]
        latencies.append(time.perf_counter() - started)
        if made["version"] != str(i + 1) or found["model_version"]["version"] != made["version"]:
            raise BenchError(
                f"{phase}: expected version {i + 1} behind the alias, got "
                f"{made['version']} / {found['model_version']['version']}"
            )
        if i % 20 == 0:
            progress(phase, i, n)
    cost = meter.done()
    return {
        "cycles": n,
        "cycles_per_s": n / cost["wall_s"],
        "server_cpu_ms_per_cycle": cost["server_cpu_s"] / n * 1e3,
        **latency_ms(latencies),
        **cost,
    }
