"""Dynamic batching: merging, the size cap and the delay, params, splitting results back,
isolating a bad request, closing, and the batch metrics."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable
from slipway.serving.batching import BatchConfig, Batcher, merge, merge_key, split

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


class Doubler:
    """A model that doubles column ``x``, records the rows of every call, and raises on
    negative values (a request that passes validation but breaks the model)."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.sleep_s = sleep_s
        self.lock = threading.Lock()

    def __call__(self, data: pd.DataFrame, params: dict[str, Any] | None) -> Any:
        with self.lock:
            self.calls.append(len(data))
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if (data["x"] < 0).any():
            raise ValueError("negative x")
        return (data["x"] * 2 + (params or {}).get("add", 0)).to_numpy()


def frame(*values: float) -> pd.DataFrame:
    return pd.DataFrame({"x": [float(v) for v in values]})


def batch_sample(name: str, metric: str) -> float:
    return REGISTRY.get_sample_value(metric, {"model": name, "version": ""}) or 0.0


def test_concurrent_requests_merge_into_one_call_and_split_back_in_order() -> None:
    model = Doubler()

    async def main() -> list[Any]:
        batcher = Batcher(model, BatchConfig(max_batch_size=64, max_delay_ms=50), name="merge")
        try:
            return await asyncio.gather(*(batcher.submit(frame(i, i + 0.5)) for i in range(10)))
        finally:
            await batcher.close()

    results = run(main())
    assert model.calls == [20]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, [2 * i, 2 * i + 1])
    assert batch_sample("merge", "slipway_serving_batch_requests_sum") == 10
    assert batch_sample("merge", "slipway_serving_batch_rows_sum") == 20


def test_batches_stay_under_the_size_cap_and_a_large_request_runs_alone() -> None:
    model = Doubler()

    async def main() -> list[Any]:
        batcher = Batcher(model, BatchConfig(max_batch_size=8, max_delay_ms=20), name="cap")
        small = [batcher.submit(frame(*[i] * 3)) for i in range(6)]
        large = batcher.submit(frame(*range(20)))
        return await asyncio.gather(*small, large)

    results = run(main())
    assert max(c for c in model.calls if c != 20) <= 8
    assert 20 in model.calls
    assert sum(model.calls) == 6 * 3 + 20
    np.testing.assert_array_equal(results[-1], np.arange(20) * 2.0)
    np.testing.assert_array_equal(results[2], [4.0, 4.0, 4.0])


def test_only_requests_with_the_same_params_merge() -> None:
    model = Doubler()

    async def main() -> list[Any]:
        batcher = Batcher(model, BatchConfig(max_batch_size=64, max_delay_ms=30), name="params")
        return await asyncio.gather(
            batcher.submit(frame(1), {"add": 1}),
            batcher.submit(frame(2), {"add": 1}),
            batcher.submit(frame(3), {"add": 100}),
            batcher.submit(frame(4)),
        )

    results = run(main())
    assert sorted(model.calls) == [1, 1, 2]
    assert [r.tolist() for r in results] == [[3.0], [5.0], [106.0], [8.0]]


def test_a_bad_request_fails_alone_and_its_neighbours_are_answered() -> None:
    model = Doubler()

    async def main() -> list[Any]:
        batcher = Batcher(model, BatchConfig(max_batch_size=64, max_delay_ms=30), name="bad")
        requests = [batcher.submit(frame(i)) for i in (1, 2, -3, 4, 5)]
        return await asyncio.gather(*requests, return_exceptions=True)

    results = run(main())
    assert model.calls[0] == 5  # the merged call, which failed
    assert sorted(model.calls[1:]) == [1, 1, 1, 1, 1]  # then one call per request
    assert isinstance(results[2], ValueError)
    assert [r.tolist() for i, r in enumerate(results) if i != 2] == [[2.0], [4.0], [8.0], [10.0]]


def test_a_result_that_cannot_be_split_by_rows_falls_back_to_one_call_each() -> None:
    calls: list[int] = []

    def total(data: pd.DataFrame, params: Any) -> float:
        calls.append(len(data))
        return float(data["x"].sum())

    async def main() -> list[Any]:
        batcher = Batcher(total, BatchConfig(max_batch_size=8, max_delay_ms=30), name="scalar")
        return await asyncio.gather(batcher.submit(frame(1, 2)), batcher.submit(frame(10)))

    assert run(main()) == [3.0, 10.0]
    assert calls == [3, 2, 1] or calls == [3, 1, 2]


def test_without_batching_each_request_is_its_own_call() -> None:
    model = Doubler()

    async def main() -> list[Any]:
        batcher = Batcher(model, BatchConfig(), name="off")
        return await asyncio.gather(*(batcher.submit(frame(i)) for i in range(4)))

    results = run(main())
    assert model.calls == [1, 1, 1, 1]
    assert [r.tolist() for r in results] == [[0.0], [2.0], [4.0], [6.0]]
    assert batch_sample("off", "slipway_serving_batch_requests_count") == 4


def test_batches_grow_while_the_model_is_busy_even_without_delay() -> None:
    model = Doubler(sleep_s=0.05)

    async def main() -> None:
        batcher = Batcher(model, BatchConfig(max_batch_size=256, max_delay_ms=0), name="busy")
        await asyncio.gather(*(batcher.submit(frame(i)) for i in range(200)))

    run(main())
    assert sum(model.calls) == 200
    assert max(model.calls) > 1


def test_a_cancelled_request_does_not_disturb_the_others() -> None:
    model = Doubler(sleep_s=0.05)

    async def main() -> list[Any]:
        batcher = Batcher(model, BatchConfig(max_batch_size=4, max_delay_ms=1), name="cancel")
        first = asyncio.create_task(batcher.submit(frame(1)))
        await asyncio.sleep(0.01)
        doomed = asyncio.create_task(batcher.submit(frame(2)))
        others = [asyncio.create_task(batcher.submit(frame(i))) for i in (3, 4)]
        await asyncio.sleep(0)
        doomed.cancel()
        return await asyncio.gather(first, *others)

    assert [r.tolist() for r in run(main())] == [[2.0], [6.0], [8.0]]


def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    model = Doubler(sleep_s=0.2)

    async def main() -> list[Any]:
        batcher = Batcher(model, BatchConfig(max_batch_size=2, max_delay_ms=0), name="close")
        tasks = [asyncio.create_task(batcher.submit(frame(i))) for i in range(12)]
        await asyncio.sleep(0.05)
        await batcher.close()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        with pytest.raises(TemporarilyUnavailable, match="shutting down"):
            await batcher.submit(frame(1))
        return results

    results = run(main())
    answered = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, TemporarilyUnavailable)]
    assert answered, "calls running at close time finish"
    assert refused, "queued requests fail"
    assert len(answered) + len(refused) == 12


def test_merge_and_split_each_kind() -> None:
    frames = [frame(1, 2), frame(3)]
    merged = merge(frames)
    assert merged["x"].tolist() == [1.0, 2.0, 3.0]
    parts = split(pd.DataFrame({"p": [1, 2, 3]}, index=[7, 8, 9]), [2, 1])
    assert [p.index.tolist() for p in parts] == [[0, 1], [0]]
    arrays = merge([np.ones((2, 3)), np.zeros((1, 3))])
    assert arrays.shape == (3, 3)
    assert [a.shape for a in split(arrays, [2, 1])] == [(2, 3), (1, 3)]
    dicts = merge([{"a": np.ones(2)}, {"a": np.zeros(1)}])
    assert dicts["a"].tolist() == [1.0, 1.0, 0.0]
    assert [d["a"].tolist() for d in split(dicts, [2, 1])] == [[1.0, 1.0], [0.0]]
    assert split([1, 2, 3], [1, 2]) == [[1], [2, 3]]
    with pytest.raises(ValueError, match="3 rows for 4 rows"):
        split(np.ones(3), [2, 2])


def test_merge_keys_separate_incompatible_inputs() -> None:
    assert merge_key(frame(1), None) == merge_key(frame(2, 3), None)
    assert merge_key(frame(1), None) != merge_key(frame(1), {"k": 1})
    assert merge_key(frame(1), None) != merge_key(pd.DataFrame({"y": [1.0]}), None)
    assert merge_key(frame(1), None) != merge_key(pd.DataFrame({"x": [1]}), None)
    assert merge_key(np.ones((1, 3)), None) != merge_key(np.ones((1, 4)), None)
    assert merge_key([1, 2], None) is None
    assert merge_key(np.float64(1), None) is None


@pytest.mark.parametrize(("size", "delay"), [(0, 0.0), (2, -1.0)])
def test_batch_config_is_checked(size: int, delay: float) -> None:
    with pytest.raises(InvalidParameterValue):
        BatchConfig(size, delay)
