"""Many writers on one SQLite file at the same time: 8 threads and 4 processes ('spawn'), each
logging 10,000 metric points to its own run. No writer may see an error (``database is locked``
above all), and every point must be there afterwards.

The writers mix the ways in: ``SqlTrackingStore.log_batch`` with 100 points a call, single
``log_metric`` calls batched by the asynchronous logger (client and fluent API), and single
synchronous fluent calls, one write transaction each."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

import pytest

from slipway import Metric, RunStatus, SlipwayClient
from slipway.tracking import uri as uris
from slipway.tracking.store.sql import SqlTrackingStore

POINTS = 10_000
BATCH = 100
KEY = "loss"
READY = "ready"
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300


def _batches(store: SqlTrackingStore, run_id: str) -> None:
    """10,000 points through the store in log_batch calls of 100."""
    now = int(time.time() * 1000)
    for start in range(0, POINTS, BATCH):
        store.log_batch(
            run_id, metrics=[Metric(KEY, float(i), now, i) for i in range(start, start + BATCH)]
        )


def _single_calls(uri: str, run_id: str) -> None:
    """10,000 separate asynchronous SlipwayClient.log_metric calls."""
    client = SlipwayClient(uri)
    try:
        for i in range(POINTS):
            client.log_metric(run_id, KEY, float(i), step=i, synchronous=False)
        client.flush()
    finally:
        if client._async is not None:
            client._async.close()


def process_worker(
    mode: str, uri: str, artifact_root: str, run_id: str, go: ProcessEvent, results: Any
) -> None:
    """Runs in a spawned process; reports ``(run_id, None)`` or ``(run_id, traceback)``."""
    try:
        if mode == "store-batches":
            store = SqlTrackingStore(uri, artifact_root)
            results.put((READY, run_id))
            go.wait()
            try:
                _batches(store, run_id)
            finally:
                store.close()
        else:
            import slipway
            from slipway.tracking import fluent

            slipway.set_tracking_uri(uri)
            slipway.set_async_logging(mode == "fluent-async")
            fluent.get_client()  # open the store before the start signal
            results.put((READY, run_id))
            go.wait()
            with slipway.start_run(run_id=run_id):
                for i in range(POINTS):
                    slipway.log_metric(KEY, float(i), step=i)
        results.put((run_id, None))
    except BaseException:
        results.put((run_id, traceback.format_exc()))


@pytest.mark.slow
def test_threads_and_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    artifact_root = str(tmp_path / "artifacts")
    store = SqlTrackingStore(uri, artifact_root)
    errors: list[str] = []

    # -- 8 threads in this process -------------------------------------------------------------
    thread_jobs: list[tuple[str, Callable[[str], None]]] = []
    for _ in range(6):
        thread_jobs.append((store.create_run("0").info.run_id, lambda r: _batches(store, r)))
    for _ in range(2):  # single calls, batched by each client's asynchronous logger
        thread_jobs.append((store.create_run("0").info.run_id, lambda r: _single_calls(uri, r)))
    start_threads = threading.Event()

    def thread_main(run_id: str, job: Callable[[str], None]) -> None:
        try:
            start_threads.wait()
            job(run_id)
        except BaseException:
            errors.append(f"thread for run {run_id}:\n{traceback.format_exc()}")

    threads = [
        threading.Thread(target=thread_main, args=(run_id, job), name=f"writer-{i}")
        for i, (run_id, job) in enumerate(thread_jobs)
    ]

    # -- 4 spawned processes: two log single points through the fluent API asynchronously, one
    # synchronously (10,000 write transactions racing the others for the database), and one
    # writes batches of 100 through the store.
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    results = ctx.Queue()
    process_modes = ["fluent-async", "fluent-async", "fluent-sync", "store-batches"]
    process_runs = [store.create_run("0").info.run_id for _ in process_modes]
    processes = [
        ctx.Process(
            target=process_worker,
            args=(mode, uri, artifact_root, run_id, go, results),
            name=f"writer-process-{mode}",
        )
        for mode, run_id in zip(process_modes, process_runs, strict=True)
    ]

    outcomes: dict[str, str | None] = {}  # run id -> traceback or None, per process
    ready = 0

    def receive(deadline: float) -> bool:
        nonlocal ready
        try:
            kind, payload = results.get(timeout=max(1.0, deadline - time.monotonic()))
        except queue.Empty:
            errors.append("timed out waiting for the writer processes")
            return False
        if kind == READY:
            ready += 1
        else:
            outcomes[kind] = payload
        return True

    try:
        for t in threads:
            t.start()
        for p in processes:
            p.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while ready + len(outcomes) < len(processes) and receive(deadline):
            pass

        # Everybody writes at once.
        go.set()
        start_threads.set()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(outcomes) < len(processes) and receive(deadline):
            pass
        for t in threads:
            t.join(timeout=max(1.0, deadline - time.monotonic()))
            if t.is_alive():
                errors.append(f"{t.name} did not finish in time")
        for p in processes:
            p.join(timeout=30)
            if p.exitcode != 0:
                errors.append(f"{p.name} exited with {p.exitcode}")
    finally:
        start_threads.set()
        go.set()
        for p in processes:
            if p.is_alive():
                p.kill()
                p.join()
        results.close()
        results.join_thread()
        uris.clear_store_cache()  # the stores the SlipwayClient threads opened

    errors.extend(f"process for run {r}:\n{tb}" for r, tb in outcomes.items() if tb is not None)
    locked = [e for e in errors if "database is locked" in e]
    assert locked == [], "\n\n".join(locked)
    assert errors == [], "\n\n".join(errors)

    reader = SqlTrackingStore(uri, artifact_root)
    try:
        for run_id in [r for r, _ in thread_jobs] + process_runs:
            history = list(reader.get_metric_history(run_id, KEY))
            assert len(history) == POINTS, (run_id, len(history))
            assert sorted(m.step for m in history) == list(range(POINTS)), run_id
            assert all(m.value == float(m.step) for m in history), run_id
            assert reader.get_run(run_id).data.metrics == {KEY: float(POINTS - 1)}
        for run_id in process_runs[:3]:  # the fluent ones were ended by their with-blocks
            assert reader.get_run(run_id).info.status == RunStatus.FINISHED
    finally:
        reader.close()
        store.close()
