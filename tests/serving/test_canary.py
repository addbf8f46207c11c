"""Canary routes (a weighted split between versions), sticky routing by header, and shadow
models that see every request without ever answering one."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slipway.serving.endpoint import Endpoint, PredictResult, sticky_point
from slipway.serving.request_log import RequestLogger

from ._models import ServingModels, features

REQUESTS = 5_000


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ServingModels:
    store = ServingModels(tmp_path_factory.mktemp("serving-canary"))
    store.register_constant("iris", 1.0, alias="champion")
    store.register_constant("iris", 2.0, alias="challenger")
    store.register_constant("iris", 3.0, alias="third")
    store.register_constant("shadow", 9.0, alias="ok")
    store.register_constant("shadow", 0.0, fail="shadow exploded", alias="raising")
    store.register_constant("shadow", 8.0, sleep_s=1.0, alias="slow")
    return store


def answered_by(result: PredictResult) -> tuple[str | None, float]:
    """Who answered: the version the endpoint reports, and the value that version's model
    computes (the two must agree, or the routing mislabels its answers)."""
    values = set(np.asarray(result.predictions).tolist())
    assert len(values) == 1
    return result.model_version, values.pop()


async def serve(
    endpoint: Endpoint, count: int, headers: list[Mapping[str, str]] | None = None
) -> list[PredictResult]:
    await endpoint.start()
    frame = features(1)
    results: list[PredictResult] = []
    for start in range(0, count, 500):  # waves of concurrent requests
        wave = range(start, min(start + 500, count))
        results += await asyncio.gather(
            *(endpoint.predict(frame, headers=headers[i] if headers else None) for i in wave)
        )
    return results


@pytest.mark.parametrize(
    "weights",
    [
        {"champion": 90, "challenger": 10},
        {"champion": 0.5, "challenger": 0.3, "third": 0.2},
    ],
)
def test_the_split_follows_the_weights(models: ServingModels, weights: dict[str, float]) -> None:
    routes = [(f"models:/iris@{alias}", weight) for alias, weight in weights.items()]
    endpoint = Endpoint(
        "iris", routes, tracking_uri=models.tracking_uri, rng=random.Random(20240611)
    )

    async def scenario() -> list[PredictResult]:
        try:
            return await serve(endpoint, REQUESTS)
        finally:
            await endpoint.close()

    answers = Counter(answered_by(result) for result in asyncio.run(scenario()))
    version_of = {"champion": ("1", 1.0), "challenger": ("2", 2.0), "third": ("3", 3.0)}
    total = sum(weights.values())
    assert sum(answers.values()) == REQUESTS
    assert set(answers) == {version_of[alias] for alias in weights}
    for alias, weight in weights.items():
        share = answers[version_of[alias]] / REQUESTS
        assert share == pytest.approx(weight / total, abs=0.02), (alias, share)


def test_a_sticky_header_keeps_each_caller_on_one_version(models: ServingModels) -> None:
    endpoint = Endpoint(
        "iris",
        [("models:/iris@champion", 80), ("models:/iris@challenger", 20)],
        sticky_header="X-User-Id",
        tracking_uri=models.tracking_uri,
    )
    users = [f"user-{i}" for i in range(1_000)]
    # Each user calls three times, with the header in different cases; 200 calls carry none.
    headers: list[Mapping[str, str]] = [
        {case("x-user-id"): user} for case in (str.lower, str.upper, str.title) for user in users
    ]
    headers += [{"x-other": "1"}] * 200

    async def scenario() -> list[PredictResult]:
        try:
            return await serve(endpoint, len(headers), headers)
        finally:
            await endpoint.close()

    results = asyncio.run(scenario())
    per_user: dict[str, set[str | None]] = {}
    for header, result in zip(headers, results, strict=True):
        assert answered_by(result)[0] == result.model_version
        if "x-other" not in header:
            per_user.setdefault(next(iter(header.values())), set()).add(result.model_version)
    assert all(len(versions) == 1 for versions in per_user.values())
    on_challenger = sum(versions == {"2"} for versions in per_user.values()) / len(users)
    assert on_challenger == pytest.approx(0.2, abs=0.04)
    # Without the header the split is random: both versions answer some of those requests.
    assert {r.model_version for r in results[-200:]} == {"1", "2"}


def test_the_sticky_point_is_stable_and_spread() -> None:
    assert sticky_point("alice") == sticky_point("alice")  # no per-process hash seed
    assert (
        sticky_point("alice")
        == int.from_bytes(
            bytes.fromhex("2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90")[:8],
            "big",
        )
        / 2**64
    )  # SHA-256 of "alice"
    points = [sticky_point(f"u{i}") for i in range(2_000)]
    assert all(0 <= p < 1 for p in points)
    assert np.histogram(points, bins=4, range=(0, 1))[0].min() > 400


# -- shadow ----------------------------------------------------------------------------------


def shadow_endpoint(models: ServingModels, shadow_alias: str, **kwargs: Any) -> Endpoint:
    return Endpoint(
        "iris",
        [("models:/iris@champion", 1)],
        shadow=f"models:/shadow@{shadow_alias}",
        tracking_uri=models.tracking_uri,
        **kwargs,
    )


def test_shadow_answers_are_logged_and_never_returned(
    models: ServingModels, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logger = RequestLogger(1.0, str(tmp_path / "log"), flush_every=1_000, flush_seconds=60)
    endpoint = shadow_endpoint(models, "ok", request_logger=logger)

    async def scenario() -> list[PredictResult]:
        try:
            results = await serve(endpoint, 20)
            await endpoint.wait_for_shadow()
            shadow = endpoint.shadow_model()
            assert shadow is not None
            assert shadow.version == "1"
            assert [m.registered_name for m in endpoint.current()] == ["iris"]
            return results
        finally:
            await endpoint.close()

    with caplog.at_level(logging.DEBUG, logger="slipway.serving.endpoint"):
        results = asyncio.run(scenario())
    logger.close()
    assert {answered_by(r) for r in results} == {("1", 1.0)}
    shadow_lines = [r for r in caplog.records if "Shadow models:/shadow@ok" in r.getMessage()]
    assert len(shadow_lines) == 20
    assert "array([9.])" in shadow_lines[0].getMessage()
    files = list((tmp_path / "log").rglob("*.jsonl"))
    assert [f.parent.parent.name for f in files] == ["iris.shadow"]
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert len(records) == 20
    assert {(r["version"], tuple(r["response"])) for r in records} == {("1", (9.0,))}
    assert set(records[0]["request"][0]) == {"a", "b", "c"}


def test_a_raising_shadow_does_not_reach_the_caller(
    models: ServingModels, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = shadow_endpoint(models, "raising")

    async def scenario() -> list[PredictResult]:
        try:
            results = await serve(endpoint, 30)
            await endpoint.wait_for_shadow()
            assert endpoint.ready  # the shadow's errors left the endpoint serving
            return results
        finally:
            await endpoint.close()

    with caplog.at_level(logging.WARNING, logger="slipway.serving.endpoint"):
        results = asyncio.run(scenario())
    assert [answered_by(r) for r in results] == [("1", 1.0)] * 30
    failures = [r for r in caplog.records if "shadow exploded" in r.getMessage()]
    assert len(failures) == 30


def test_a_slow_shadow_neither_delays_callers_nor_queues_without_bound(
    models: ServingModels, caplog: pytest.LogCaptureFixture
) -> None:
    # The shadow takes 1 s a request; 4 run at once and 2 may wait, so of 40 requests sent
    # at once most are not mirrored, and no caller waits for the shadow.
    endpoint = shadow_endpoint(models, "slow", shadow_queue_size=2)

    async def scenario() -> tuple[list[PredictResult], float]:
        try:
            await endpoint.start()
            started = time.perf_counter()
            results = []
            for _ in range(40):
                results.append(await endpoint.predict(features(1)))
            elapsed = time.perf_counter() - started
            await endpoint.wait_for_shadow()
            return results, elapsed
        finally:
            await endpoint.close()

    with caplog.at_level(logging.DEBUG, logger="slipway.serving.endpoint"):
        results, elapsed = asyncio.run(scenario())
    assert [answered_by(r) for r in results] == [("1", 1.0)] * 40
    assert elapsed < 1.0  # 40 answers before the shadow finished its first request
    mirrored = [r for r in caplog.records if "Shadow models:/shadow@slow" in r.getMessage()]
    assert 1 <= len(mirrored) <= 6
