"""Metric history over raw HTTP: one run (paged), many runs sampled by step (the UI's charts),
and the ajax-only bulk history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

API = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"


@pytest.fixture
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int, code: str, text: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert text in body["message"], body


@pytest.fixture
def experiment_id(http: httpx.Client) -> str:
    name = f"metrics-{uuid.uuid4().hex[:12]}"
    body = ok(http.post(f"{API}/experiments/create", json={"name": name}))
    return str(body["experiment_id"])


def new_run(http: httpx.Client, experiment_id: str) -> str:
    body = ok(http.post(f"{API}/runs/create", json={"experiment_id": experiment_id}))
    return str(body["run"]["info"]["run_id"])


def log_steps(http: httpx.Client, run_id: str, key: str, steps: range, scale: float = 1) -> None:
    points = [{"key": key, "value": s * scale, "timestamp": 1000 + s, "step": s} for s in steps]
    for start in range(0, len(points), 1000):
        body = {"run_id": run_id, "metrics": points[start : start + 1000]}
        ok(http.post(f"{API}/runs/log-batch", json=body))


def history(http: httpx.Client, **params: Any) -> dict[str, Any]:
    return dict(ok(http.get(f"{API}/metrics/get-history", params=params)))


def test_get_history_whole_and_paged(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    log_steps(http, run_id, "loss", range(25), scale=0.5)
    whole = history(http, run_id=run_id, metric_key="loss")
    assert "next_page_token" not in whole
    assert whole["metrics"][3] == {"key": "loss", "value": 1.5, "timestamp": 1003, "step": 3}
    assert [m["step"] for m in whole["metrics"]] == list(range(25))
    assert history(http, run_uuid=run_id, metric_key="loss") == whole

    pages: list[dict[str, Any]] = []
    token = None
    while True:
        params: dict[str, Any] = {"run_id": run_id, "metric_key": "loss", "max_results": 10}
        if token:
            params["page_token"] = token
        page = history(http, **params)
        assert len(page["metrics"]) <= 10
        pages.extend(page["metrics"])
        token = page.get("next_page_token")
        if not token:
            break
    assert pages == whole["metrics"]
    ajax = ok(
        http.get(f"{AJAX}/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"})
    )
    assert ajax == whole


def test_get_history_of_an_unlogged_key_is_empty(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    assert history(http, run_id=run_id, metric_key="nothing") == {}


def test_get_history_keeps_repeated_steps_and_nan(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    points = [
        {"key": "m", "value": "NaN", "timestamp": 5, "step": 1},
        {"key": "m", "value": 2, "timestamp": 3, "step": 1},
        {"key": "m", "value": "Infinity", "timestamp": 1, "step": 0},
    ]
    ok(http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": points}))
    values = [
        (m["step"], m["timestamp"], m["value"])
        for m in history(http, run_id=run_id, metric_key="m")["metrics"]
    ]
    assert values == [(0, 1, "Infinity"), (1, 3, 2.0), (1, 5, "NaN")]


@pytest.mark.parametrize(
    ("params", "status", "code", "text"),
    [
        ({"metric_key": "m"}, 400, "INVALID_PARAMETER_VALUE", "'run_id'"),
        ({"run_id": "RUN"}, 400, "INVALID_PARAMETER_VALUE", "'metric_key'"),
        (
            {"run_id": "RUN", "metric_key": "m", "max_results": "0"},
            400,
            "INVALID_PARAMETER_VALUE",
            "max_results",
        ),
        (
            {"run_id": "RUN", "metric_key": "m", "max_results": "ten"},
            400,
            "INVALID_PARAMETER_VALUE",
            "max_results",
        ),
        (
            {"run_id": "RUN", "metric_key": "m", "page_token": "!!"},
            400,
            "INVALID_PARAMETER_VALUE",
            "token",
        ),
        (
            {"run_id": "RUN", "metric_key": "m", "steps": "1"},
            400,
            "INVALID_PARAMETER_VALUE",
            "steps",
        ),
        ({"run_id": "d" * 32, "metric_key": "m"}, 404, "RESOURCE_DOES_NOT_EXIST", "d" * 32),
    ],
)
def test_get_history_validation(
    http: httpx.Client,
    experiment_id: str,
    params: dict[str, Any],
    status: int,
    code: str,
    text: str,
) -> None:
    if params.get("run_id") == "RUN":
        params = {**params, "run_id": new_run(http, experiment_id)}
    error(http.get(f"{API}/metrics/get-history", params=params), status, code, text)


def interval(http: httpx.Client, params: Any) -> list[dict[str, Any]]:
    body = ok(http.get(f"{API}/metrics/get-history-bulk-interval", params=params))
    return list(body.get("metrics", []))


def test_bulk_interval_over_several_runs(http: httpx.Client, experiment_id: str) -> None:
    a, b = new_run(http, experiment_id), new_run(http, experiment_id)
    log_steps(http, a, "acc", range(0, 100))
    log_steps(http, b, "acc", range(0, 10))
    points = interval(http, [("run_ids", a), ("run_ids", b), ("metric_key", "acc")])
    assert len(points) == 110
    assert {p["run_id"] for p in points} == {a, b}
    first = next(p for p in points if p["run_id"] == b and p["step"] == 3)
    assert first == {"key": "acc", "value": 3.0, "timestamp": 1003, "step": 3, "run_id": b}

    sampled = interval(http, [("run_ids", a), ("metric_key", "acc"), ("max_results", "10")])
    steps = [p["step"] for p in sampled]
    assert len(steps) == 10
    assert steps[0] == 0
    assert steps[-1] == 99
    assert steps == sorted(steps)

    window = interval(
        http,
        [
            ("run_ids", a),
            ("run_ids", b),
            ("metric_key", "acc"),
            ("start_step", "5"),
            ("end_step", "7"),
        ],
    )
    assert sorted((p["run_id"] == a, p["step"]) for p in window) == [
        (False, 5),
        (False, 6),
        (False, 7),
        (True, 5),
        (True, 6),
        (True, 7),
    ]
    ajax = ok(
        http.get(
            f"{AJAX}/metrics/get-history-bulk-interval",
            params=[("run_ids", b), ("metric_key", "acc")],
        )
    )
    assert len(ajax["metrics"]) == 10


def test_bulk_interval_default_is_2500_per_run(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    log_steps(http, run_id, "m", range(3000))
    points = interval(http, {"run_ids": run_id, "metric_key": "m"})
    assert len(points) == 2500
    assert points[0]["step"] == 0
    assert points[-1]["step"] == 2999


def test_bulk_interval_of_nothing_is_empty(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    assert interval(http, {"run_ids": run_id, "metric_key": "none"}) == []


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ([("metric_key", "m")], "Missing value for required parameter 'run_ids'"),
        ([("run_ids", "r")], "Missing value for required parameter 'metric_key'"),
        ([("run_ids", f"r{i}") for i in range(101)] + [("metric_key", "m")], "at most 100"),
        ([("run_ids", "r"), ("metric_key", "m"), ("max_results", "0")], "between 1 and 2500"),
        ([("run_ids", "r"), ("metric_key", "m"), ("max_results", "2501")], "between 1 and 2500"),
        ([("run_ids", "r"), ("metric_key", "m"), ("start_step", "3")], "both must be"),
        ([("run_ids", "r"), ("metric_key", "m"), ("end_step", "3")], "both must be"),
        (
            [("run_ids", "r"), ("metric_key", "m"), ("start_step", "5"), ("end_step", "1")],
            "end_step must be greater than start_step",
        ),
        (
            [("run_ids", "r"), ("metric_key", "m"), ("start_step", "x"), ("end_step", "1")],
            "'start_step'",
        ),
        ([("run_id", "r"), ("metric_key", "m")], "run_id"),
    ],
)
def test_bulk_interval_validation(http: httpx.Client, params: Any, text: str) -> None:
    response = http.get(f"{API}/metrics/get-history-bulk-interval", params=params)
    error(response, 400, "INVALID_PARAMETER_VALUE", text)


def test_bulk_history(http: httpx.Client, experiment_id: str) -> None:
    a, b = sorted([new_run(http, experiment_id), new_run(http, experiment_id)])
    log_steps(http, a, "x", range(3))
    log_steps(http, b, "x", range(2))
    body = ok(
        http.get(
            f"{AJAX}/metrics/get-history-bulk",
            params=[("run_id", b), ("run_id", a), ("metric_key", "x")],
        )
    )
    assert [(m["run_id"], m["step"]) for m in body["metrics"]] == [
        (a, 0),
        (a, 1),
        (a, 2),
        (b, 0),
        (b, 1),
    ]
    capped = ok(
        http.get(
            f"{AJAX}/metrics/get-history-bulk",
            params=[("run_id", a), ("run_id", b), ("metric_key", "x"), ("max_results", "4")],
        )
    )
    assert len(capped["metrics"]) == 4
    error(
        http.get(f"{AJAX}/metrics/get-history-bulk", params={"metric_key": "x"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "at least one run_id",
    )
    error(
        http.get(f"{AJAX}/metrics/get-history-bulk", params={"run_id": a}),
        400,
        "INVALID_PARAMETER_VALUE",
        "metric_key",
    )
