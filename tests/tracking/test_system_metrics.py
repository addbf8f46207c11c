"""System metrics: one sample of the machine, the sampling thread, and ``system/*`` metrics on
a run started with ``log_system_metrics=True``."""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

import slipway
from slipway import SlipwayClient
from slipway.tracking import system_metrics
from slipway.tracking.system_metrics import SystemMetricsMonitor, sample

BASE_KEYS = {
    "system/cpu_utilization_percentage",
    "system/system_memory_usage_megabytes",
    "system/system_memory_usage_percentage",
    "system/disk_usage_percentage",
    "system/disk_usage_megabytes",
    "system/disk_available_megabytes",
    "system/network_receive_megabytes",
    "system/network_transmit_megabytes",
}


def test_sample_has_the_mlflow_names_and_sane_values() -> None:
    values = sample()
    assert set(values) >= BASE_KEYS
    assert all(isinstance(val, float | int) for val in values.values())
    assert all(val >= 0 for val in values.values())
    assert 0 <= values["system/cpu_utilization_percentage"] <= 100
    assert 0 < values["system/system_memory_usage_percentage"] <= 100
    assert values["system/system_memory_usage_megabytes"] > 0


def _fake_nvml(used: int, total: int, util: int, count: int = 1, fail: bool = False) -> Any:
    """Stands in for the pynvml module: ``count`` GPUs with the given memory and utilisation."""

    def init() -> None:
        if fail:
            raise RuntimeError("NVML Shared Library Not Found")

    return types.SimpleNamespace(
        nvmlInit=init,
        nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda handle: types.SimpleNamespace(used=used, total=total),
        nvmlDeviceGetUtilizationRates=lambda handle: types.SimpleNamespace(gpu=util),
    )


def test_gpu_metrics_come_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    mb = 1024 * 1024
    monkeypatch.setitem(
        sys.modules, "pynvml", _fake_nvml(used=512 * mb, total=2048 * mb, util=37, count=2)
    )
    values = sample()
    for i in (0, 1):
        assert values[f"system/gpu_{i}_memory_usage_megabytes"] == 512
        assert values[f"system/gpu_{i}_memory_usage_percentage"] == 25
        assert values[f"system/gpu_{i}_utilization_percentage"] == 37
    assert set(values) >= BASE_KEYS


def test_gpu_metrics_are_absent_without_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(0, 1, 0, fail=True))
    assert system_metrics._gpu_sample() == {}
    assert not any(k.startswith("system/gpu_") for k in sample())


def test_gpu_metrics_are_absent_without_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert system_metrics._gpu_sample() == {}


def test_monitor_emits_numbered_samples_until_stopped() -> None:
    got: list[tuple[dict[str, float], int]] = []
    lock = threading.Lock()

    def emit(values: dict[str, float], step: int) -> None:
        with lock:
            got.append((values, step))

    monitor = SystemMetricsMonitor(emit, interval=0.05).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            if len(got) >= 4:
                break
        time.sleep(0.02)
    monitor.stop()
    with lock:
        count = len(got)
        steps = [step for _, step in got]
    assert count >= 4
    assert steps == list(range(count))
    assert all(set(values) >= BASE_KEYS for values, _ in got)
    time.sleep(0.2)
    assert len(got) == count  # nothing after stop()
    assert not monitor._thread.is_alive()


def test_monitor_stop_before_the_first_sample() -> None:
    got: list[int] = []
    monitor = SystemMetricsMonitor(lambda values, step: got.append(step), interval=30).start()
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 5
    assert got == []


def test_run_with_system_metrics(tracking_dir: Path) -> None:
    with slipway.start_run(log_system_metrics=True, system_metrics_interval=0.2) as run:
        time.sleep(1.0)
    client = SlipwayClient()
    stored = client.get_run(run.info.run_id)
    assert set(stored.data.metrics) >= BASE_KEYS
    for key in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"):
        history = client.get_metric_history(run.info.run_id, key)
        steps = [m.step for m in history]
        assert len(steps) >= 3, steps
        assert steps == list(range(len(steps)))
    memory = client.get_metric_history(run.info.run_id, "system/system_memory_usage_megabytes")
    assert all(m.value > 0 for m in memory)
    count = len(memory)
    time.sleep(0.5)  # the sampler stopped with the run
    after = client.get_metric_history(run.info.run_id, "system/system_memory_usage_megabytes")
    assert len(after) == count
    assert not any(
        t.name == "slipway-system-metrics" and t.is_alive() for t in threading.enumerate()
    )


def test_run_without_system_metrics_has_none(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        slipway.log_metric("m", 1.0)
    metrics = SlipwayClient().get_run(run.info.run_id).data.metrics
    assert metrics == {"m": 1.0}


def test_nested_runs_sample_separately(tracking_dir: Path) -> None:
    with slipway.start_run(log_system_metrics=True, system_metrics_interval=0.1) as parent:
        with slipway.start_run(
            nested=True, log_system_metrics=True, system_metrics_interval=0.1
        ) as child:
            time.sleep(0.5)
        time.sleep(0.3)
    client = SlipwayClient()
    key = "system/cpu_utilization_percentage"
    parent_steps = [m.step for m in client.get_metric_history(parent.info.run_id, key)]
    child_steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
    assert len(child_steps) >= 2
    assert len(parent_steps) >= 2
    assert child_steps == list(range(len(child_steps)))
    assert parent_steps == list(range(len(parent_steps)))
