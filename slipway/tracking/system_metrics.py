"""System metrics (CPU, memory, disk, network; GPU when NVML is present) as ``system/*``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

_MB = 1024 * 1024


def sample() -> dict[str, float]:
    """One reading of the machine, with MLflow's metric names under ``system/``."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage("/")
    net = psutil.net_io_counters()
    values = {
        "system/cpu_utilization_percentage": psutil.cpu_percent(interval=None),
        "system/system_memory_usage_megabytes": (memory.total - memory.available) / _MB,
        "system/system_memory_usage_percentage": memory.percent,
        "system/disk_usage_percentage": disk.percent,
        "system/disk_usage_megabytes": disk.used / _MB,
        "system/disk_available_megabytes": disk.free / _MB,
        "system/network_receive_megabytes": net.bytes_recv / _MB,
        "system/network_transmit_megabytes": net.bytes_sent / _MB,
    }
    values.update(_gpu_sample())
    return values


def _gpu_sample() -> dict[str, float]:
    try:
        import pynvml
    except ImportError:
        return {}
    out: dict[str, float] = {}
    try:
        pynvml.nvmlInit()
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            out[f"system/gpu_{i}_memory_usage_megabytes"] = mem.used / _MB
            out[f"system/gpu_{i}_memory_usage_percentage"] = 100.0 * mem.used / mem.total
            out[f"system/gpu_{i}_utilization_percentage"] = float(util.gpu)
    except Exception:  # no driver or no device: GPU metrics are simply absent
        return {}
    return out


class SystemMetricsMonitor:
    """Samples every ``interval`` seconds in a daemon thread and hands each reading to ``emit``
    with a step counter, until :meth:`stop`."""

    def __init__(self, emit: Callable[[dict[str, float], int], Any], interval: float = 10.0):
        self._emit = emit
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="slipway-system-metrics", daemon=True
        )

    def start(self) -> SystemMetricsMonitor:
        psutil.cpu_percent(interval=None)  # primes the CPU counter
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)

    def _loop(self) -> None:
        step = 0
        next_at = time.monotonic() + min(self._interval, 1.0)
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self._emit(sample(), step)
            step += 1
            next_at += self._interval
