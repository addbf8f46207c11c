"""Many clients at once against the server with batching on: 1,000 concurrent requests over
the three protocols with 5% bad ones, and a request that breaks the model inside a batch."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from slipway.flavors.pyfunc import load_model

from ._models import features
from ._protocol_models import BAD_A
from .conftest import LiveServing

TOTAL = 1000
BAD_SHARE = 0.05
CONNECTIONS = 64
"""Requests in flight at once: all of them queued inside httpx would make its connection
pool's own bookkeeping (quadratic in waiting requests) the bottleneck of the test."""


def good_request(row: list[float], kind: int) -> tuple[str, dict[str, Any]]:
    if kind == 0:
        return "/invocations?model=iris", {
            "dataframe_split": {"columns": ["a", "b", "c"], "data": [row]}
        }
    if kind == 1:
        tensor = {"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": row}
        return "/v2/models/iris/infer", {"inputs": [tensor]}
    return "/v1/models/iris:predict", {"instances": [row]}


BAD_REQUESTS: list[tuple[str, Any]] = [
    ("/invocations?model=iris", b"{not json"),
    ("/invocations?model=iris", {"dataframe_records": [{"a": 1.0, "b": 2.0}]}),
    ("/invocations?model=iris", {"dataframe_records": [{"a": "x", "b": 2.0, "c": 1.0}]}),
    ("/invocations?model=iris", {"inputs": [[1.0]], "instances": [[1.0]]}),
    (
        "/v2/models/iris/infer",
        {"inputs": [{"name": "i", "shape": [2, 3], "datatype": "FP64", "data": [1]}]},
    ),
    (
        "/v2/models/iris/infer",
        {"inputs": [{"name": "i", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]},
    ),
    ("/v1/models/iris:predict", {"instances": []}),
]


def samples(text: str, name: str, labels: dict[str, str]) -> dict[str, float]:
    """``{sample name + le: value}`` of metric ``name`` with ``labels``."""
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                found[sample.name + sample.labels.get("le", "")] = sample.value
    return found


def batches_of_several(url: str, model: str, version: str) -> float:
    """How many predict calls of ``model`` merged more than one request."""
    text = httpx.get(f"{url}/metrics").text
    values = samples(text, "slipway_serving_batch_requests", {"model": model, "version": version})
    calls = values.get("slipway_serving_batch_requests_count", 0.0)
    return calls - values.get("slipway_serving_batch_requests_bucket1.0", 0.0)


def test_1000_concurrent_requests_with_5_percent_bad(live_serving: LiveServing) -> None:
    rng = random.Random(7)
    rows = features(TOTAL, seed=11)
    model = load_model(live_serving.models.registry.get_download_uri("iris", "1"))
    expected = [int(v) for v in model.predict(rows)]
    bad = set(rng.sample(range(TOTAL), int(TOTAL * BAD_SHARE)))
    before = batches_of_several(live_serving.url, "iris", "1")
    gate = asyncio.Semaphore(CONNECTIONS)

    async def one(http: httpx.AsyncClient, i: int) -> tuple[int, int, Any]:
        async with gate:
            return await send(http, i)

    async def send(http: httpx.AsyncClient, i: int) -> tuple[int, int, Any]:
        if i in bad:
            path, payload = BAD_REQUESTS[i % len(BAD_REQUESTS)]
        else:
            path, payload = good_request(rows.iloc[i].tolist(), i % 3)
        if isinstance(payload, bytes):
            answer = await http.post(
                path, content=payload, headers={"content-type": "application/json"}
            )
        else:
            answer = await http.post(path, json=payload)
        return i, answer.status_code, answer.json()

    async def main() -> list[tuple[int, int, Any]]:
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        async with httpx.AsyncClient(base_url=live_serving.url, limits=limits, timeout=60) as http:
            return await asyncio.gather(*(one(http, i) for i in range(TOTAL)))

    results = asyncio.run(main())
    for i, status, body in results:
        if i in bad:
            assert 400 <= status < 500, (i, status, body)
            assert body.get("message") or body.get("error")
            continue
        assert status == 200, (i, status, body)
        if i % 3 == 1:
            assert body["outputs"][0]["data"] == [expected[i]]
            assert body["model_version"] == "1"
        else:
            assert body["predictions"] == [expected[i]], i
    assert batches_of_several(live_serving.url, "iris", "1") > before


def test_a_request_that_breaks_the_model_fails_alone_inside_a_batch(
    live_serving: LiveServing,
) -> None:
    values = np.arange(200, dtype=float) + 1000.0
    breaking = {17, 93, 150}
    values[list(breaking)] = BAD_A
    before = batches_of_several(live_serving.url, "picky", "")

    async def one(http: httpx.AsyncClient, i: int) -> tuple[int, int, Any]:
        record = {"a": values[i], "b": 0.0, "c": 0.0}
        answer = await http.post("/invocations?model=picky", json={"dataframe_records": [record]})
        return i, answer.status_code, answer.json()

    async def main() -> list[tuple[int, int, Any]]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=live_serving.url, limits=limits, timeout=60) as http:
            return await asyncio.gather(*(one(http, i) for i in range(len(values))))

    for i, status, body in asyncio.run(main()):
        if i in breaking:
            assert status == 500
            assert "a row has a == 13.0" in body["message"]
        else:
            assert (status, body) == (200, {"predictions": [2 * values[i]]})
    assert batches_of_several(live_serving.url, "picky", "") > before
