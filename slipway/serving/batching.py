"""Dynamic batching: merge concurrent requests into one ``predict`` call.

Models answer many rows at once for little more than the cost of one, so under load it pays to
merge requests. A :class:`Batcher` queues each request, and one loop per model takes batches
from the queue: the oldest request and those after it that can join it (the same params, and
data of the same kind and columns or trailing shape), up to ``max_batch_size`` rows, waiting at
most ``max_delay_ms`` after the oldest arrived for more to come. At most
``MAX_CONCURRENT_BATCHES`` calls run at once, each in a worker thread; while they run, new
requests queue up and form the next, larger batch, so batches grow with load even with no
delay at all.

The merged result is split back by rows, in order. A model that fails on the merged batch, or
whose result cannot be split by rows, is called again once per request, so a request that
breaks the model fails alone and its neighbours get their answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable
from slipway.models.enforcement import frame_dtypes
from slipway.serving import metrics
from slipway.serving.codecs import count_rows

_log = logging.getLogger(__name__)

MAX_CONCURRENT_BATCHES = 4
"""Predict calls of one model that may run at once (in worker threads)."""

Predict = Callable[[Any, "dict[str, Any] | None"], Any]


@dataclass(frozen=True)
class BatchConfig:
    """How one model batches.

    Args:
        max_batch_size: rows merged into one call at most; 1 turns batching off. A single
            request with more rows runs alone, unsplit.
        max_delay_ms: how long the oldest queued request waits for others to join it.
    """

    max_batch_size: int = 1
    max_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch_size, int) or self.max_batch_size < 1:
            raise InvalidParameterValue(
                f"max_batch_size must be a positive integer, not {self.max_batch_size!r}"
            )
        if not self.max_delay_ms >= 0:
            raise InvalidParameterValue(
                f"max_delay_ms must be zero or more, not {self.max_delay_ms!r}"
            )

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1


@dataclass
class _Request:
    data: Any
    params: dict[str, Any] | None
    rows: int
    key: Hashable
    future: asyncio.Future[Any]
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """Merges the requests of one model (see the module docstring).

    Args:
        predict: the model's prediction, ``predict(data, params)``; called in worker threads.
        config: the batch size and delay.
        name: the served name, for metrics and logs.
        version: the registry version, for metrics (empty outside the registry).
    """

    def __init__(
        self, predict: Predict, config: BatchConfig, name: str = "", version: str = ""
    ) -> None:
        self._predict = predict
        self.config = config
        self.name = name
        self.version = version
        self._queue: deque[_Request] = deque()
        self._queued_rows: dict[Hashable, int] = {}  # rows waiting, by merge key
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)
        self._loop_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The prediction for ``data``, from a call that may merge it with concurrent requests
        of the same params (see the module docstring).

        Raises:
            TemporarilyUnavailable: after :meth:`close`.
            Exception: whatever the model raises on this request, alone.
        """
        if self._closed:
            raise TemporarilyUnavailable(f"Model {self.name!r} is shutting down")
        rows = count_rows(data)
        key = merge_key(data, params) if self.config.enabled else None
        if key is None or rows is None or rows >= self.config.max_batch_size:
            return await self._call(data, params, rows or 1)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(data, params, rows, key, future))
        self._queued_rows[key] = self._queued_rows.get(key, 0) + rows
        self._wake.set()
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._take_batches(), name=f"batch {self.name}")
        return await future

    async def close(self) -> None:
        """Stop batching: queued requests fail with TemporarilyUnavailable; calls that run
        now finish first."""
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self._queued_rows.clear()
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(
                    TemporarilyUnavailable(f"Model {self.name!r} is shutting down")
                )
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    # -- the batching loop ---------------------------------------------------------------------

    async def _take_batches(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._next_batch()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_batch(self) -> list[_Request]:
        """The next batch: waits for a first request, then for the batch to fill or the
        oldest request's delay to pass."""
        while True:
            while self._queue and self._queue[0].future.done():  # its caller gave up
                self._forget(self._queue.popleft())
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            first = self._queue[0]
            deadline = first.arrived + self.config.max_delay_ms / 1000.0
            remaining = deadline - time.monotonic()
            if remaining > 0 and self._queued_rows[first.key] < self.config.max_batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)
                continue
            return self._take(first)

    def _forget(self, request: _Request) -> None:
        left = self._queued_rows[request.key] - request.rows
        if left > 0:
            self._queued_rows[request.key] = left
        else:
            del self._queued_rows[request.key]

    def _take(self, first: _Request) -> list[_Request]:
        """The oldest request and the ones after it that can join it, in order; the others
        stay queued in order."""
        batch: list[_Request] = []
        rows = 0
        kept: deque[_Request] = deque()
        while self._queue:
            request = self._queue.popleft()
            fits = rows + request.rows <= self.config.max_batch_size
            if request.key != first.key or not fits:
                kept.append(request)
                continue
            self._forget(request)
            if request.future.done():
                continue
            batch.append(request)
            rows += request.rows
            if rows == self.config.max_batch_size:
                break
        kept.extend(self._queue)
        self._queue = kept
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        try:
            results = await self._call_merged(batch)
            for request, result in zip(batch, results, strict=True):
                if request.future.done():
                    continue
                if isinstance(result, _Failure):
                    request.future.set_exception(result.error)
                else:
                    request.future.set_result(result)
        finally:
            self._slots.release()

    async def _call_merged(self, batch: list[_Request]) -> list[Any]:
        """One result (or :class:`_Failure`) per request: from one merged call, or from one
        call each when the merged one fails."""
        if len(batch) > 1:
            try:
                merged = merge([r.data for r in batch])
                rows = sum(r.rows for r in batch)
                result = await self._call(merged, batch[0].params, rows, len(batch))
                return split(result, [r.rows for r in batch])
            except Exception as exc:
                _log.info(
                    "A batch of %d requests to %r failed (%s: %s); retrying each alone",
                    len(batch),
                    self.name,
                    type(exc).__name__,
                    exc,
                )
        return list(await asyncio.gather(*(self._call_alone(r) for r in batch)))

    async def _call_alone(self, request: _Request) -> Any:
        try:
            return await self._call(request.data, request.params, request.rows)
        except Exception as exc:
            return _Failure(exc)

    async def _call(
        self, data: Any, params: dict[str, Any] | None, rows: int, requests: int = 1
    ) -> Any:
        """One predict call in a worker thread, counted in the batch metrics."""
        metrics.observe_batch(self.name, self.version, rows, requests)
        return await asyncio.to_thread(self._predict, data, params)


@dataclass(frozen=True)
class _Failure:
    error: Exception


# -- merging and splitting ---------------------------------------------------------------------


def merge_key(data: Any, params: dict[str, Any] | None) -> Hashable | None:
    """What requests must share to be merged: their params, and the kind, columns, dtypes and
    trailing shape of their data. None for data that never merges."""
    import numpy as np
    import pandas as pd

    try:
        params_key = "" if params is None else json.dumps(params, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return None
    if isinstance(data, pd.DataFrame):
        columns = (tuple(data.columns), tuple(frame_dtypes(data)))  # labels and dtypes hash
        if len(set(data.columns)) != len(data.columns):
            return None
        return params_key, "frame", columns
    if isinstance(data, np.ndarray) and data.ndim >= 1:
        return params_key, "array", data.dtype.str, data.shape[1:]
    if (
        isinstance(data, dict)
        and data
        and all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in data.values())
    ):
        layout = tuple((str(k), v.dtype.str, v.shape[1:]) for k, v in data.items())
        return params_key, "dict", layout
    return None


def merge(parts: Sequence[Any]) -> Any:
    """One input holding the rows of every part, in order (parts share a :func:`merge_key`)."""
    import numpy as np
    import pandas as pd

    first = parts[0]
    if isinstance(first, pd.DataFrame):
        return pd.concat(parts, ignore_index=True)
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    return {key: np.concatenate([part[key] for part in parts]) for key in first}


def split(result: Any, rows: Sequence[int]) -> list[Any]:
    """``result`` cut into consecutive pieces of ``rows`` rows each.

    Raises:
        ValueError: when ``result`` does not have exactly ``sum(rows)`` rows.
    """
    import numpy as np
    import pandas as pd

    total = sum(rows)
    pairs = list(itertools.pairwise([0, *itertools.accumulate(rows)]))
    if isinstance(result, pd.DataFrame | pd.Series):
        _check_length(len(result), total)
        return [result.iloc[a:b].reset_index(drop=True) for a, b in pairs]
    if isinstance(result, np.ndarray) and result.ndim >= 1:
        _check_length(result.shape[0], total)
        return [result[a:b] for a, b in pairs]
    if isinstance(result, list | tuple):
        _check_length(len(result), total)
        return [result[a:b] for a, b in pairs]
    if isinstance(result, dict) and result:
        pieces = {key: split(value, rows) for key, value in result.items()}
        return [{key: pieces[key][i] for key in result} for i in range(len(rows))]
    raise ValueError(f"a {type(result).__name__} result cannot be split by rows")


def _check_length(length: int, total: int) -> None:
    if length != total:
        raise ValueError(f"the result has {length} rows for {total} rows of input")


__all__ = ["MAX_CONCURRENT_BATCHES", "BatchConfig", "Batcher", "merge", "merge_key", "split"]
