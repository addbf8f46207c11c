"""Asynchronous, batched logging: calls return at once; a background thread writes batches.

Metrics, params and tags are appended to a per-run buffer under a lock (microseconds per call).
A flusher thread wakes every ``interval`` seconds, or as soon as a buffer holds a full batch,
and writes each run's buffer with ``log_batch`` calls of at most 1000 metrics, 100 params and
100 tags, in the order they were logged. :meth:`flush` writes everything that is buffered and
raises the first error that any write met since the last flush; ``end_run`` and interpreter
exit both flush. The buffer is bounded: when it is full, callers wait for the flusher, so a
fast loop can never use unbounded memory.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from slipway.entities import Metric, Param, RunTag
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
)

T = TypeVar("T")
_LIVE: weakref.WeakSet[AsyncBatchLogger] = weakref.WeakSet()


@dataclass
class _RunBuffer:
    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)


class AsyncBatchLogger:
    """Buffers writes for a store and flushes them in batches from one background thread.

    Args:
        store: where batches go.
        interval: seconds between background flushes.
        max_buffered: entries buffered (all runs together) before callers wait.
    """

    def __init__(
        self, store: AbstractTrackingStore, interval: float = 0.5, max_buffered: int = 200_000
    ) -> None:
        self._store = store
        self._interval = interval
        self._max_buffered = max_buffered
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._buffers: dict[str, _RunBuffer] = {}
        self._buffered = 0
        self._write_lock = threading.Lock()  # one drain at a time keeps batches in order
        self._wake = threading.Event()
        self._stopped = False
        self._errors: dict[str, list[Exception]] = {}
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    # -- producers -----------------------------------------------------------------------

    def log_metrics(self, run_id: str, metrics: list[Metric]) -> None:
        self._add(run_id, lambda b: b.metrics.extend(metrics), len(metrics))

    def log_params(self, run_id: str, params: list[Param]) -> None:
        self._add(run_id, lambda b: b.params.extend(params), len(params))

    def set_tags(self, run_id: str, tags: list[RunTag]) -> None:
        self._add(run_id, lambda b: b.tags.extend(tags), len(tags))

    def _add(self, run_id: str, put: Callable[[_RunBuffer], None], count: int) -> None:
        with self._room:
            while self._buffered >= self._max_buffered and not self._stopped:
                self._wake.set()
                self._room.wait(0.1)
            buffer = self._buffers.get(run_id)
            if buffer is None:
                buffer = self._buffers[run_id] = _RunBuffer()
            put(buffer)
            self._buffered += count
            full = len(buffer.metrics) >= MAX_METRICS_PER_BATCH
        if self._thread is None:
            self._start()
        if full and not self._wake.is_set():
            self._wake.set()

    # -- flushing ------------------------------------------------------------------------

    def flush(self, run_id: str | None = None) -> None:
        """Write everything buffered (all runs, which keeps the order between them), then
        raise the first error met since the last flush: of ``run_id`` only, when given, so a
        run never fails for another run's bad data."""
        self._drain()
        with self._lock:
            if run_id is None:
                errors = [e for run_errors in self._errors.values() for e in run_errors]
                self._errors = {}
            else:
                errors = self._errors.pop(run_id, [])
        if errors:
            first = errors[0]
            if len(errors) > 1:
                first.add_note(f"{len(errors) - 1} more asynchronous logging error(s) followed")
            raise first

    def close(self) -> None:
        """Flush and stop the background thread; errors are printed, not raised."""
        self._stopped = True
        self._wake.set()
        try:
            self.flush()
        except Exception as exc:
            print(f"slipway: asynchronous logging failed: {exc}", file=sys.stderr)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="slipway-flusher", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        with self._write_lock:
            with self._room:
                buffers, self._buffers = self._buffers, {}
                self._buffered = 0
                self._room.notify_all()
            for run_id, buffer in buffers.items():
                self._write_run(run_id, buffer)

    def _write_run(self, run_id: str, buffer: _RunBuffer) -> None:
        """Params and tags go in writes of their own, so a conflicting param fails alone and
        never takes metrics with it; a failed metrics write means the run itself cannot be
        written (gone, deleted), so its remaining metrics are not tried."""
        for params in _param_groups(buffer.params):
            self._try(run_id, partial(self._store.log_batch, run_id, params=params))
        for tags in _chunks(buffer.tags, MAX_TAGS_PER_BATCH):
            self._try(run_id, partial(self._store.log_batch, run_id, tags=tags))
        for metrics in _chunks(buffer.metrics, MAX_METRICS_PER_BATCH):
            if not self._try(run_id, partial(self._store.log_batch, run_id, metrics=metrics)):
                return

    def _try(self, run_id: str, write: Callable[[], None]) -> bool:
        try:
            write()
        except Exception as exc:
            exc.add_note(f"(raised while writing buffered data of run {run_id})")
            with self._lock:
                self._errors.setdefault(run_id, []).append(exc)
            return False
        return True

    def _after_fork_in_child(self) -> None:
        """The flusher thread does not survive ``fork``, and the parent's buffer belongs to
        the parent: the child starts empty, with fresh locks."""
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._buffers = {}
        self._buffered = 0
        self._errors = {}
        self._thread = None


def _param_groups(params: list[Param]) -> list[list[Param]]:
    """Groups of at most 100 params with a key at most once per group: the same value again
    is dropped, and a conflicting second value goes to a later group, where it fails alone."""
    groups: list[list[Param]] = []
    seen: list[dict[str, str]] = []
    for p in params:
        for group, keys in zip(groups, seen, strict=True):
            if keys.get(p.key) == p.value:
                break
            if p.key not in keys and len(group) < MAX_PARAMS_PER_BATCH:
                group.append(p)
                keys[p.key] = p.value
                break
        else:
            groups.append([p])
            seen.append({p.key: p.value})
    return groups


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _reset_after_fork() -> None:
    for logger in list(_LIVE):
        logger._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)


@atexit.register
def _flush_all_at_exit() -> None:
    for logger in list(_LIVE):
        logger.close()
