"""Reliability of ``slipway server`` on SQLite, as real processes.

1. 32 concurrent clients, each on its own connection, mix writes (log-metric, log-batch,
   set-tag, log-parameter) and reads (get run, search, metric history) for
   ``SLIPWAY_RELIABILITY_SECONDS`` (default 60): no request fails, and afterwards the store,
   read directly, holds exactly what the clients were told was written.
2. The server is killed with SIGKILL while clients log batches: after a restart on the same
   store every acknowledged write is there, a batch in flight at the kill is all there or not
   at all, SQLite's integrity check passes and the server serves again.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from slipway.tracking.store.sql import SqlTrackingStore

from .test_server_cli import API, ServerProcess, shut_down, start_server

DURATION = float(os.environ.get("SLIPWAY_RELIABILITY_SECONDS", "60"))
CLIENTS = 32
RUNS = 8
METRIC_KEYS = ("m0", "m1", "m2", "m3")
BATCH_METRICS = 20
T0 = 1_700_000_000_000

WRITES = ("log-metric", "log-batch", "set-tag", "log-parameter")
READS = ("get-run", "search", "get-history")
WEIGHTS = {
    "log-metric": 3,
    "log-batch": 2,
    "set-tag": 2,
    "log-parameter": 2,
    "get-run": 1,
    "search": 1,
    "get-history": 1,
}


@dataclass
class Ledger:
    """What one client was told (by a 200) it wrote, and what went wrong."""

    metrics: Counter[tuple[str, str]] = field(default_factory=Counter)  # (run, key) -> points
    params: dict[tuple[str, str], str] = field(default_factory=dict)  # (run, key) -> value
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # last value acknowledged
    calls: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def integrity(db: Path) -> list[tuple[str, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


def create_runs(api: str, name: str, count: int) -> tuple[str, list[str]]:
    with httpx.Client(base_url=api, timeout=60) as http:
        created = http.post("/experiments/create", json={"name": name})
        assert created.status_code == 200, created.text
        experiment_id = created.json()["experiment_id"]
        runs = []
        for _ in range(count):
            run = http.post("/runs/create", json={"experiment_id": experiment_id, "start_time": T0})
            assert run.status_code == 200, run.text
            runs.append(run.json()["run"]["info"]["run_id"])
    return experiment_id, runs


def client_loop(
    n: int, api: str, experiment_id: str, runs: list[str], deadline: float, ledger: Ledger
) -> None:
    """One client: random operations on random runs until ``deadline``. Metric values are
    unique to the client and call, param keys unique to the call, tag keys to the client."""
    rng = random.Random(n)
    ops, weights = list(WEIGHTS), list(WEIGHTS.values())
    seq = 0
    with httpx.Client(base_url=api, timeout=120, limits=httpx.Limits(max_connections=1)) as http:
        while time.monotonic() < deadline:
            seq += 1
            op = rng.choices(ops, weights)[0]
            run = rng.choice(runs)
            base = float(n * 10_000_000 + seq * 100)
            try:
                if op == "log-metric":
                    key = rng.choice(METRIC_KEYS)
                    response = http.post(
                        "/runs/log-metric",
                        json={
                            "run_id": run,
                            "key": key,
                            "value": base,
                            "timestamp": T0 + seq,
                            "step": seq,
                        },
                    )
                    if response.status_code == 200:
                        ledger.metrics[(run, key)] += 1
                elif op == "log-batch":
                    metrics = [
                        {
                            "key": METRIC_KEYS[j % len(METRIC_KEYS)],
                            "value": base + j,
                            "timestamp": T0 + seq,
                            "step": seq,
                        }
                        for j in range(BATCH_METRICS)
                    ]
                    params = [{"key": f"b{n}_{seq}_{j}", "value": str(j)} for j in range(2)]
                    tags = [{"key": f"t{n}_{rng.randrange(5)}", "value": f"batch {seq}"}]
                    response = http.post(
                        "/runs/log-batch",
                        json={"run_id": run, "metrics": metrics, "params": params, "tags": tags},
                    )
                    if response.status_code == 200:
                        for metric in metrics:
                            ledger.metrics[(run, str(metric["key"]))] += 1
                        for item in params:
                            ledger.params[(run, item["key"])] = item["value"]
                        for item in tags:
                            ledger.tags[(run, item["key"])] = item["value"]
                elif op == "set-tag":
                    key, value = f"t{n}_{rng.randrange(5)}", f"tag {seq}"
                    response = http.post(
                        "/runs/set-tag", json={"run_id": run, "key": key, "value": value}
                    )
                    if response.status_code == 200:
                        ledger.tags[(run, key)] = value
                elif op == "log-parameter":
                    key, value = f"p{n}_{seq}", str(seq)
                    response = http.post(
                        "/runs/log-parameter", json={"run_id": run, "key": key, "value": value}
                    )
                    if response.status_code == 200:
                        ledger.params[(run, key)] = value
                elif op == "get-run":
                    response = http.get("/runs/get", params={"run_id": run})
                    if (
                        response.status_code == 200
                        and response.json()["run"]["info"]["run_id"] != run
                    ):
                        ledger.errors.append(f"get-run answered another run: {response.text}")
                elif op == "search":
                    response = http.post(
                        "/runs/search",
                        json={
                            "experiment_ids": [experiment_id],
                            "filter": "metrics.m0 >= 0",
                            "order_by": ["metrics.m0 DESC"],
                            "max_results": 5,
                        },
                    )
                    if response.status_code == 200 and len(response.json().get("runs", [])) > 5:
                        ledger.errors.append("search returned more than max_results runs")
                else:
                    response = http.get(
                        "/metrics/get-history",
                        params={
                            "run_id": run,
                            "metric_key": rng.choice(METRIC_KEYS),
                            "max_results": 100,
                        },
                    )
                    if (
                        response.status_code == 200
                        and len(response.json().get("metrics", [])) > 100
                    ):
                        ledger.errors.append("get-history returned more than max_results")
            except httpx.HTTPError as exc:
                ledger.errors.append(f"{op}: {exc.__class__.__name__}: {exc}")
                continue
            ledger.calls[op] += 1
            if response.status_code != 200:
                ledger.errors.append(f"{op}: {response.status_code} {response.text[:300]}")
            elif op in WRITES and response.content != b"{}":
                ledger.errors.append(f"{op}: unexpected body {response.text[:300]}")


@pytest.mark.slow
def test_32_clients_no_errors_and_exact_counts(tmp_path: Path) -> None:
    db = tmp_path / "reliability.db"
    server = start_server(
        tmp_path,
        "--backend-store-uri",
        f"sqlite:///{db}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
        "--log-level",
        "warning",
    )
    try:
        api = f"{server.url}{API}"
        experiment_id, runs = create_runs(api, "reliability", RUNS)
        ledgers = [Ledger() for _ in range(CLIENTS)]
        deadline = time.monotonic() + DURATION
        threads = [
            threading.Thread(
                target=client_loop, args=(n, api, experiment_id, runs, deadline, ledgers[n])
            )
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DURATION + 300)
        assert not any(thread.is_alive() for thread in threads)
        assert server.stop() == 0, server.logs()
    finally:
        shut_down(server)

    errors = [e for ledger in ledgers for e in ledger.errors]
    assert errors == [], f"{len(errors)} errors, first ones: {errors[:10]}"
    calls = sum((ledger.calls for ledger in ledgers), Counter())
    assert all(calls[op] > 0 for op in WEIGHTS), calls
    assert all(ledger.calls.total() > 0 for ledger in ledgers)

    metrics = sum((ledger.metrics for ledger in ledgers), Counter())
    params = {k: v for ledger in ledgers for k, v in ledger.params.items()}
    tags = {k: v for ledger in ledgers for k, v in ledger.tags.items()}
    store = SqlTrackingStore(f"sqlite:///{db}", str(tmp_path / "artifacts"))
    try:
        for run_id in runs:
            run = store.get_run(run_id)
            assert run.data.params == {k: v for (r, k), v in params.items() if r == run_id}
            client_tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
            assert client_tags == {k: v for (r, k), v in tags.items() if r == run_id}
            for key in METRIC_KEYS:
                history = store.get_metric_history(run_id, key)
                assert len(history) == metrics[(run_id, key)], (run_id, key)
                assert len({m.value for m in history}) == len(history)
    finally:
        store.close()
    assert integrity(db) == [("ok",)]


def test_kill_9_during_ingest_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    args = ("--backend-store-uri", f"sqlite:///{db}", "--log-level", "warning")
    writers, per_batch = 8, 50
    server: ServerProcess = start_server(tmp_path, *args)
    restarted: ServerProcess | None = None
    try:
        _, runs = create_runs(f"{server.url}{API}", "crash", 4)
        acked: list[list[int]] = [[] for _ in range(writers)]
        refused: list[str] = []

        def writer(n: int) -> None:
            run = runs[n % len(runs)]
            with httpx.Client(base_url=f"{server.url}{API}", timeout=30) as http:
                for batch in range(1, 100_000):
                    body = {
                        "run_id": run,
                        "metrics": [
                            {
                                "key": f"k{n}",
                                "value": float(batch * 1000 + j),
                                "timestamp": T0 + batch,
                                "step": batch,
                            }
                            for j in range(per_batch)
                        ],
                        "params": [{"key": f"p{n}_{batch}", "value": str(batch)}],
                        "tags": [{"key": f"t{n}", "value": str(batch)}],
                    }
                    try:
                        response = http.post("/runs/log-batch", json=body)
                    except httpx.HTTPError:
                        return  # the server is gone: this batch's outcome is unknown
                    if response.status_code != 200:
                        refused.append(response.text)
                        return
                    acked[n].append(batch)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while sum(map(len, acked)) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        assert server.proc.wait(30) == -signal.SIGKILL
        for thread in threads:
            thread.join(60)
        assert refused == []
        assert all(acked), [len(a) for a in acked]
        assert integrity(db) == [("ok",)]

        restarted = start_server(tmp_path, *args)
        api = f"{restarted.url}{API}"
        assert httpx.get(f"{restarted.url}/health").status_code == 200
        after = httpx.post(
            f"{api}/runs/log-metric",
            json={"run_id": runs[0], "key": "after", "value": 1.0, "timestamp": T0, "step": 0},
        )
        assert after.status_code == 200, after.text
        fetched = httpx.get(f"{api}/runs/get", params={"run_id": runs[0]})
        assert fetched.status_code == 200
        assert restarted.stop() == 0, restarted.logs()
    finally:
        shut_down(server)
        if restarted is not None:
            shut_down(restarted)

    store = SqlTrackingStore(f"sqlite:///{db}", str(tmp_path / "artifacts"))
    try:
        for n, batches in enumerate(acked):
            run_id = runs[n % len(runs)]
            run = store.get_run(run_id)
            values = {m.value for m in store.get_metric_history(run_id, f"k{n}")}
            assert batches == list(range(1, len(batches) + 1))
            for batch in batches:  # every acknowledged batch, whole
                assert {float(batch * 1000 + j) for j in range(per_batch)} <= values, batch
                assert run.data.params[f"p{n}_{batch}"] == str(batch)
            in_flight = len(batches) + 1  # sent when the server died: all of it or nothing
            present = {float(in_flight * 1000 + j) for j in range(per_batch)} & values
            assert len(present) in (0, per_batch), (n, len(present))
            assert len(values) == per_batch * (len(batches) + (1 if present else 0))
            assert (f"p{n}_{in_flight}" in run.data.params) == bool(present)
            assert run.data.tags[f"t{n}"] == str(in_flight if present else len(batches))
        assert store.get_metric_history(runs[0], "after")[0].value == 1.0
    finally:
        store.close()
    assert integrity(db) == [("ok",)]
