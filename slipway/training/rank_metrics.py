"""Per-rank system metrics: each worker samples its own process into the job's run.

Machine-wide readings (what ``start_run(log_system_metrics=True)`` records) say little when
several workers share a machine, so every rank samples itself instead, under
``system/rank_<r>/``: the CPU its process used since the previous sample (100 = one core
busy), its resident memory in MB and as a share of the machine's, and on CUDA the memory its
tensors hold. Every rank writes these (only user metrics are rank 0's alone), straight through
a client, so they do not depend on the fluent API's state in the worker.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

__all__ = ["metric_prefix", "sample_until"]

_MB = 1024 * 1024


def metric_prefix(rank: int) -> str:
    return f"system/rank_{rank}/"


class _ProcessSampler:
    """Readings of one process; CPU as the share of wall time used since the last reading
    (since the process started, for the first)."""

    def __init__(self, rank: int) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._prefix = metric_prefix(rank)
        self._last_cpu = 0.0
        self._last_wall = self._process.create_time()
        self._total_memory = float(psutil.virtual_memory().total)

    def sample(self) -> dict[str, float]:
        times = self._process.cpu_times()
        cpu = float(times.user + times.system)
        wall = time.time()
        elapsed = max(wall - self._last_wall, 1e-6)
        percent = 100.0 * max(cpu - self._last_cpu, 0.0) / elapsed
        self._last_cpu, self._last_wall = cpu, wall
        rss = float(self._process.memory_info().rss)
        values = {
            f"{self._prefix}cpu_percent": percent,
            f"{self._prefix}memory_rss_megabytes": rss / _MB,
            f"{self._prefix}memory_percent": 100.0 * rss / self._total_memory,
        }
        values.update(self._gpu())
        return values

    def _gpu(self) -> dict[str, float]:
        torch: Any = sys.modules.get("torch")  # only when the script uses it: never imported here
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return {}
        device = torch.cuda.current_device()
        return {
            f"{self._prefix}gpu_memory_allocated_megabytes": torch.cuda.memory_allocated(device)
            / _MB
        }


def sample_until(
    stop: threading.Event,
    run_id: str,
    rank: int,
    interval: float,
    tracking_uri: str | None = None,
) -> int:
    """Log a reading now and then every ``interval`` seconds until ``stop`` is set; the
    number of readings logged. Errors end the sampling with a line on stderr: metrics about
    the machine must never fail the training."""
    try:
        from slipway.tracking.client import SlipwayClient, make_metric

        sampler = _ProcessSampler(rank)
        client = SlipwayClient(tracking_uri)
    except Exception as exc:
        print(f"slipway: rank {rank} system metrics are off: {exc}", file=sys.stderr)
        return 0
    step = 0
    while True:
        try:
            metrics = [make_metric(k, value, step=step) for k, value in sampler.sample().items()]
            client.log_batch(run_id, metrics=metrics)
        except Exception as exc:
            print(f"slipway: rank {rank} stopped logging system metrics: {exc}", file=sys.stderr)
            return step
        step += 1
        if stop.wait(interval):
            return step
