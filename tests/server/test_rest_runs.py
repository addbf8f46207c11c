"""The runs endpoints over raw HTTP: create, get, update, delete, restore, search and every
kind of logging, with MLflow's status codes and error bodies, and no change after a refusal."""

from __future__ import annotations

import json
import time
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
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def error(response: httpx.Response, status: int, code: str, text: str = "") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert text in body["message"], body
    return str(body["message"])


@pytest.fixture
def experiment_id(http: httpx.Client) -> str:
    name = f"runs-{uuid.uuid4().hex[:12]}"
    return str(ok(http.post(f"{API}/experiments/create", json={"name": name}))["experiment_id"])


def new_run(http: httpx.Client, experiment_id: str, **fields: Any) -> str:
    body = ok(http.post(f"{API}/runs/create", json={"experiment_id": experiment_id, **fields}))
    return str(body["run"]["info"]["run_id"])


def get_run(http: httpx.Client, run_id: str) -> dict[str, Any]:
    return dict(ok(http.get(f"{API}/runs/get", params={"run_id": run_id}))["run"])


def as_dict(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {i["key"]: i["value"] for i in items or []}


def post(http: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"{API}{path}", json=body)


def test_create_run_with_all_arguments(http: httpx.Client, experiment_id: str) -> None:
    body = ok(
        post(
            http,
            "/runs/create",
            {
                "experiment_id": experiment_id,
                "user_id": "someone",
                "run_name": "my-run",
                "start_time": 1_700_000_000_123,
                "tags": [{"key": "a", "value": "1"}, {"key": "empty", "value": ""}],
            },
        )
    )
    run = body["run"]
    assert set(run) == {"info", "data", "inputs"}
    info = run["info"]
    assert info["run_id"] == info["run_uuid"]
    assert info["run_name"] == "my-run"
    assert info["experiment_id"] == experiment_id
    assert info["user_id"] == "someone"
    assert info["status"] == "RUNNING"
    assert info["start_time"] == 1_700_000_000_123
    assert info["lifecycle_stage"] == "active"
    assert info["artifact_uri"].endswith(f"{info['run_id']}/artifacts")
    assert "end_time" not in info
    assert as_dict(run["data"]["tags"]) == {"a": "1", "empty": "", "mlflow.runName": "my-run"}
    assert "metrics" not in run["data"]
    assert "params" not in run["data"]
    assert run["inputs"] == {}
    assert get_run(http, info["run_id"]) == run


def test_create_run_defaults(http: httpx.Client, experiment_id: str) -> None:
    before = int(time.time() * 1000)
    run = get_run(http, new_run(http, experiment_id))
    assert run["info"]["run_name"]
    assert run["info"]["start_time"] >= before - 1000
    assert as_dict(run["data"]["tags"]) == {"mlflow.runName": run["info"]["run_name"]}


def test_create_run_errors(http: httpx.Client, experiment_id: str) -> None:
    unknown = post(http, "/runs/create", {"experiment_id": "99999999"})
    error(unknown, 404, "RESOURCE_DOES_NOT_EXIST")
    bad_time = post(http, "/runs/create", {"experiment_id": experiment_id, "start_time": "soon"})
    error(bad_time, 400, "INVALID_PARAMETER_VALUE", "'start_time'")
    bad_tags = post(http, "/runs/create", {"experiment_id": experiment_id, "tags": [{"k": 1}]})
    error(bad_tags, 400, "INVALID_PARAMETER_VALUE")
    bad_name = post(http, "/runs/create", {"experiment_id": experiment_id, "run_name": 7})
    error(bad_name, 400, "INVALID_PARAMETER_VALUE", "Invalid value 7 for parameter 'run_name'")
    search = ok(post(http, "/runs/search", {"experiment_ids": [experiment_id]}))
    assert search == {}
    ok(post(http, "/experiments/delete", {"experiment_id": experiment_id}))
    deleted = post(http, "/runs/create", {"experiment_id": experiment_id})
    error(deleted, 400, "INVALID_PARAMETER_VALUE")


def test_get_run_by_id_legacy_uuid_and_ajax(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    by_id = ok(http.get(f"{API}/runs/get", params={"run_id": run_id}))
    by_uuid = ok(http.get(f"{API}/runs/get", params={"run_uuid": run_id}))
    ajax = ok(http.get(f"{AJAX}/runs/get", params={"run_id": run_id}))
    assert by_id == by_uuid == ajax


def test_get_run_errors(http: httpx.Client) -> None:
    missing = http.get(f"{API}/runs/get", params={"run_id": "0" * 32})
    error(missing, 404, "RESOURCE_DOES_NOT_EXIST", f"Run with id={'0' * 32} not found")
    none = http.get(f"{API}/runs/get")
    error(none, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'")
    extra = http.get(f"{API}/runs/get", params={"run_id": "x", "bogus": "1"})
    error(extra, 400, "INVALID_PARAMETER_VALUE", "bogus")


def test_update_run(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id, run_name="before")
    body = ok(
        post(
            http,
            "/runs/update",
            {"run_id": run_id, "status": "FINISHED", "end_time": 1_800_000_000_000},
        )
    )
    info = body["run_info"]
    assert info["status"] == "FINISHED"
    assert info["end_time"] == 1_800_000_000_000
    assert info["run_name"] == "before"
    renamed = ok(post(http, "/runs/update", {"run_uuid": run_id, "run_name": "after"}))
    assert renamed["run_info"]["run_name"] == "after"
    assert renamed["run_info"]["status"] == "FINISHED"
    run = get_run(http, run_id)
    assert run["info"] == renamed["run_info"]
    assert as_dict(run["data"]["tags"])["mlflow.runName"] == "after"

    bad = post(http, "/runs/update", {"run_id": run_id, "status": "SOMEWHERE"})
    error(bad, 400, "INVALID_PARAMETER_VALUE")
    wrong_type = post(http, "/runs/update", {"run_id": run_id, "end_time": "late"})
    error(wrong_type, 400, "INVALID_PARAMETER_VALUE", "'end_time'")
    unknown = post(http, "/runs/update", {"run_id": "f" * 32, "status": "KILLED"})
    error(unknown, 404, "RESOURCE_DOES_NOT_EXIST")
    assert get_run(http, run_id)["info"] == renamed["run_info"]


def test_delete_and_restore_run(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    assert ok(post(http, "/runs/delete", {"run_id": run_id})) == {}
    assert get_run(http, run_id)["info"]["lifecycle_stage"] == "deleted"
    searched = ok(post(http, "/runs/search", {"experiment_ids": [experiment_id]}))
    assert searched == {}
    deleted = ok(
        post(
            http,
            "/runs/search",
            {"experiment_ids": [experiment_id], "run_view_type": "DELETED_ONLY"},
        )
    )
    assert [r["info"]["run_id"] for r in deleted["runs"]] == [run_id]

    for path, body in [
        ("/runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": 1}),
        ("/runs/log-parameter", {"run_id": run_id, "key": "p", "value": "v"}),
        ("/runs/set-tag", {"run_id": run_id, "key": "t", "value": "v"}),
        ("/runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "v"}]}),
        ("/runs/update", {"run_id": run_id, "status": "FINISHED"}),
    ]:
        error(post(http, path, body), 400, "INVALID_PARAMETER_VALUE", "active")
    run = get_run(http, run_id)
    assert "metrics" not in run["data"]
    assert "params" not in run["data"]
    assert run["info"]["status"] == "RUNNING"

    assert ok(post(http, "/runs/restore", {"run_id": run_id})) == {}
    assert get_run(http, run_id)["info"]["lifecycle_stage"] == "active"
    error(post(http, "/runs/delete", {"run_id": "a" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    error(post(http, "/runs/restore", {}), 400, "INVALID_PARAMETER_VALUE", "'run_id'")


def test_log_metric_param_and_tags(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    log = [
        ("/runs/log-metric", {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 10}),
        (
            "/runs/log-metric",
            {"run_uuid": run_id, "key": "loss", "value": "0.25", "timestamp": "20", "step": "1"},
        ),
        (
            "/runs/log-metric",
            {
                "run_id": run_id,
                "key": "acc",
                "value": 1,
                "timestamp": 5,
                "model_id": "m-1",
                "dataset_name": "d",
                "dataset_digest": "x",
            },
        ),
        ("/runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"}),
        ("/runs/log-parameter", {"run_uuid": run_id, "key": "lr", "value": "0.1"}),
        ("/runs/log-parameter", {"run_id": run_id, "key": "empty", "value": ""}),
        ("/runs/log-parameter", {"run_id": run_id, "key": "absent"}),
        ("/runs/set-tag", {"run_id": run_id, "key": "t", "value": "1"}),
        ("/runs/set-tag", {"run_uuid": run_id, "key": "t", "value": "2"}),
        ("/runs/set-tag", {"run_id": run_id, "key": "blank", "value": ""}),
    ]
    for path, body in log:
        assert ok(post(http, path, body)) == {}, (path, body)
    data = get_run(http, run_id)["data"]
    metrics = {m["key"]: m for m in data["metrics"]}
    assert metrics["loss"] == {"key": "loss", "value": 0.25, "timestamp": 20, "step": 1}
    assert metrics["acc"] == {"key": "acc", "value": 1.0, "timestamp": 5, "step": 0}
    assert as_dict(data["params"]) == {"lr": "0.1", "empty": "", "absent": ""}
    tags = as_dict(data["tags"])
    assert tags["t"] == "2"
    assert tags["blank"] == ""

    assert ok(post(http, "/runs/delete-tag", {"run_id": run_id, "key": "t"})) == {}
    assert "t" not in as_dict(get_run(http, run_id)["data"]["tags"])
    again = post(http, "/runs/delete-tag", {"run_id": run_id, "key": "t"})
    error(again, 404, "RESOURCE_DOES_NOT_EXIST", "No tag with name: t")


def test_param_values_cannot_change(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    ok(post(http, "/runs/log-parameter", {"run_id": run_id, "key": "p", "value": "1"}))
    changed = post(http, "/runs/log-parameter", {"run_id": run_id, "key": "p", "value": "2"})
    error(changed, 400, "INVALID_PARAMETER_VALUE", "Changing param values is not allowed")
    batch = post(
        http,
        "/runs/log-batch",
        {
            "run_id": run_id,
            "params": [{"key": "q", "value": "new"}, {"key": "p", "value": "3"}],
            "metrics": [{"key": "m", "value": 1, "timestamp": 1}],
        },
    )
    error(batch, 400, "INVALID_PARAMETER_VALUE", "Changing param values is not allowed")
    data = get_run(http, run_id)["data"]
    assert as_dict(data["params"]) == {"p": "1"}
    assert "metrics" not in data


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"key": "m", "value": 1}, "Missing value for required parameter 'timestamp'"),
        ({"key": "m", "timestamp": 1}, "Missing value for required parameter 'value'"),
        ({"value": 1, "timestamp": 1}, "Missing value for required parameter 'key'"),
        ({"key": "m", "value": "abc", "timestamp": 1}, "parameter 'value'"),
        ({"key": "m", "value": True, "timestamp": 1}, "parameter 'value'"),
        ({"key": "m", "value": 1, "timestamp": 1.5}, "parameter 'timestamp'"),
        ({"key": "m", "value": 1, "timestamp": 1, "step": "x"}, "parameter 'step'"),
        ({"key": 5, "value": 1, "timestamp": 1}, "Invalid value 5 for parameter 'key'"),
        ({"key": "../m", "value": 1, "timestamp": 1}, "Invalid metric name"),
        ({"key": "m", "value": 1, "timestamp": -1}, "timestamp"),
        ({"key": "m", "value": 1, "timestamp": 1, "colour": "red"}, "colour"),
    ],
)
def test_log_metric_validation(
    http: httpx.Client, experiment_id: str, body: dict[str, Any], text: str
) -> None:
    run_id = new_run(http, experiment_id)
    error(
        post(http, "/runs/log-metric", {"run_id": run_id, **body}),
        400,
        "INVALID_PARAMETER_VALUE",
        text,
    )
    assert "metrics" not in get_run(http, run_id)["data"]


def test_logging_needs_an_existing_run(http: httpx.Client) -> None:
    ghost = "b" * 32
    for path, body in [
        ("/runs/log-metric", {"run_id": ghost, "key": "m", "value": 1, "timestamp": 1}),
        ("/runs/log-parameter", {"run_id": ghost, "key": "p", "value": "v"}),
        ("/runs/set-tag", {"run_id": ghost, "key": "t", "value": "v"}),
        ("/runs/delete-tag", {"run_id": ghost, "key": "t"}),
        ("/runs/log-batch", {"run_id": ghost, "tags": [{"key": "t", "value": "v"}]}),
        ("/runs/log-batch", {"run_id": ghost}),
        ("/runs/log-inputs", {"run_id": ghost}),
    ]:
        error(post(http, path, body), 404, "RESOURCE_DOES_NOT_EXIST", ghost)
    missing = post(http, "/runs/log-parameter", {"key": "p", "value": "v"})
    error(missing, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'")


def test_special_metric_values_round_trip(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    values = {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity"}
    for key, value in values.items():
        ok(
            post(
                http,
                "/runs/log-metric",
                {"run_id": run_id, "key": key, "value": value, "timestamp": 1},
            )
        )
    batch = [{"key": "bnan", "value": "NaN", "timestamp": 1, "step": 2}]
    ok(post(http, "/runs/log-batch", {"run_id": run_id, "metrics": batch}))
    response = http.get(f"{API}/runs/get", params={"run_id": run_id})
    assert "NaN" in response.text
    metrics = as_dict(ok(response)["run"]["data"]["metrics"])
    assert metrics == {**values, "bnan": "NaN"}
    history = ok(
        http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "ninf"})
    )
    assert history["metrics"][0]["value"] == "-Infinity"


def test_log_batch_at_the_limits(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    metrics = [
        {"key": f"m{i % 10}", "value": i, "timestamp": 1000 + i, "step": i} for i in range(1000)
    ]
    assert ok(post(http, "/runs/log-batch", {"run_id": run_id, "metrics": metrics})) == {}
    body = {
        "run_id": run_id,
        "metrics": metrics[:800],
        "params": [{"key": f"p{i}", "value": str(i)} for i in range(100)],
        "tags": [{"key": f"t{i}", "value": "" if i % 2 else str(i)} for i in range(100)],
    }
    assert ok(post(http, "/runs/log-batch", body)) == {}  # 1000 entities in all
    data = get_run(http, run_id)["data"]
    assert len(data["metrics"]) == 10
    assert as_dict(data["metrics"])["m9"] == 999
    assert len(data["params"]) == 100
    assert len(as_dict(data["tags"])) == 101  # and mlflow.runName
    history = ok(
        http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "m3"})
    )
    assert [m["step"] for m in history["metrics"]] == sorted(
        [*range(3, 1000, 10), *range(3, 800, 10)]
    )


def test_log_batch_full_of_every_kind_at_once(http: httpx.Client, experiment_id: str) -> None:
    """MLflow's server also caps a batch at 1000 entities in all; Slipway's limits are MLflow's
    as a minimum, so 1000 metrics, 100 params and 100 tags go in one request."""
    run_id = new_run(http, experiment_id)
    body = {
        "run_id": run_id,
        "metrics": [{"key": "m", "value": i, "timestamp": i, "step": i} for i in range(1000)],
        "params": [{"key": f"p{i}", "value": "v"} for i in range(100)],
        "tags": [{"key": f"t{i}", "value": "v"} for i in range(100)],
    }
    assert ok(post(http, "/runs/log-batch", body)) == {}
    data = get_run(http, run_id)["data"]
    assert len(data["params"]) == 100
    history = ok(
        http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"})
    )
    assert len(history["metrics"]) == 1000


@pytest.mark.parametrize(
    ("what", "count", "make"),
    [
        ("metrics", 1001, lambda i: {"key": "m", "value": i, "timestamp": i}),
        ("params", 101, lambda i: {"key": f"p{i}", "value": "v"}),
        ("tags", 101, lambda i: {"key": f"t{i}", "value": "v"}),
    ],
)
def test_log_batch_over_the_limits(
    http: httpx.Client, experiment_id: str, what: str, count: int, make: Any
) -> None:
    run_id = new_run(http, experiment_id)
    body = {"run_id": run_id, what: [make(i) for i in range(count)]}
    error(post(http, "/runs/log-batch", body), 400, "INVALID_PARAMETER_VALUE", what)
    data = get_run(http, run_id)["data"]
    assert "metrics" not in data
    assert "params" not in data
    assert list(as_dict(data["tags"])) == ["mlflow.runName"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"params": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}, "Duplicate"),
        ({"params": [{"key": "a", "value": "1"}, {"key": "a", "value": "1"}]}, "Duplicate"),
        ({"metrics": [{"value": 1, "timestamp": 1}]}, "'metrics[0].key'"),
        ({"metrics": [{"key": "m", "value": 1}]}, "'metrics[0].timestamp'"),
        ({"metrics": [{"key": "m", "timestamp": 1}]}, "'metrics[0].value'"),
        ({"params": [{"value": "v"}]}, "'params[0].key'"),
        ({"tags": [{"key": "ok", "value": "v"}, {"value": "v"}]}, "'tags[1].key'"),
        ({"metrics": [{"key": "m", "value": "x", "timestamp": 1}]}, "'metrics[0].value'"),
        ({"metrics": [{"key": "m", "value": 1, "timestamp": 1, "unit": "s"}]}, "unit"),
        ({"metrics": {"key": "m"}}, "'metrics'"),
        ({"params": [{"key": "p", "value": 1}]}, "'params[0].value'"),
        ({"params": [{"key": "p", "value": "x" * 6001}]}, "6000"),
        ({"tags": [{"key": "t", "value": "x" * 8001}]}, "8000"),
        ({"tags": [{"key": "t" * 251, "value": "v"}]}, "250"),
    ],
)
def test_log_batch_validation(
    http: httpx.Client, experiment_id: str, body: dict[str, Any], text: str
) -> None:
    run_id = new_run(http, experiment_id)
    error(
        post(http, "/runs/log-batch", {"run_id": run_id, **body}),
        400,
        "INVALID_PARAMETER_VALUE",
        text,
    )
    data = get_run(http, run_id)["data"]
    assert "metrics" not in data
    assert "params" not in data
    assert list(as_dict(data["tags"])) == ["mlflow.runName"]


def test_log_batch_needs_a_run_id(http: httpx.Client) -> None:
    response = post(http, "/runs/log-batch", {"metrics": []})
    error(response, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'")
    legacy = post(http, "/runs/log-batch", {"run_uuid": "x"})
    error(legacy, 400, "INVALID_PARAMETER_VALUE", "run_uuid")


def test_log_inputs(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    dataset = {
        "name": "iris",
        "digest": "abc",
        "source_type": "local",
        "source": '{"uri": "/data/iris.csv"}',
        "schema": '{"mlflow_colspec": []}',
        "profile": '{"num_rows": 150}',
    }
    inputs = [{"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": dataset}]
    body = {"run_id": run_id, "datasets": inputs, "models": [{"model_id": "m-123"}]}
    assert ok(post(http, "/runs/log-inputs", body)) == {}
    run = get_run(http, run_id)
    assert run["inputs"] == {"dataset_inputs": inputs}
    ok(post(http, "/runs/log-inputs", {"run_id": run_id}))
    assert get_run(http, run_id)["inputs"] == {"dataset_inputs": inputs}

    for bad, text in [
        ({"datasets": [{"dataset": {**dataset, "size": 3}}]}, "size"),
        ({"datasets": [{"dataset": {"digest": "d"}}]}, "'datasets[0].dataset.name'"),
        ({"datasets": [{"dataset": dataset, "tags": [{"value": "x"}]}]}, "key"),
        ({"datasets": [{"dataset": {**dataset, "digest": "x" * 37}}]}, "digest"),
        ({"datasets": "iris"}, "'datasets'"),
        ({"models": [{"model": "x"}]}, "model"),
    ]:
        other = new_run(http, experiment_id)
        error(
            post(http, "/runs/log-inputs", {"run_id": other, **bad}),
            400,
            "INVALID_PARAMETER_VALUE",
            text,
        )
        assert get_run(http, other)["inputs"] == {}


def model_json(run_id: str, path: str) -> str:
    return json.dumps(
        {
            "run_id": run_id,
            "artifact_path": path,
            "utc_time_created": "2024-01-01 00:00:00.000000",
            "model_uuid": uuid.uuid4().hex,
            "mlflow_version": "3.17.2",
            "flavors": {
                "python_function": {"loader_module": "m", "config": {"big": "x" * 100}},
                "sklearn": {"pickled_model": "model.pkl"},
            },
            "signature": {"inputs": "[]"},
        }
    )


def test_log_model_appends_to_the_history_tag(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    for path in ("model", "model2"):
        body = {"run_id": run_id, "model_json": model_json(run_id, path)}
        assert ok(post(http, "/runs/log-model", body)) == {}
    tags = as_dict(get_run(http, run_id)["data"]["tags"])
    history = json.loads(tags["mlflow.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["model", "model2"]
    first = history[0]
    assert set(first) == {"run_id", "artifact_path", "utc_time_created", "model_uuid", "flavors"}
    assert first["flavors"]["python_function"] == {"loader_module": "m"}
    assert first["flavors"]["sklearn"] == {"pickled_model": "model.pkl"}

    for bad, text in [
        ({"model_json": "{not json"}, "Malformed model info"),
        ({"model_json": json.dumps({"run_id": run_id})}, "missing mandatory fields"),
        ({}, "Missing value for required parameter 'model_json'"),
        ({"model_json": {"run_id": run_id}}, "'model_json'"),
    ]:
        error(
            post(http, "/runs/log-model", {"run_id": run_id, **bad}),
            400,
            "INVALID_PARAMETER_VALUE",
            text,
        )
    ghost = post(http, "/runs/log-model", {"run_id": "c" * 32, "model_json": model_json("c", "m")})
    error(ghost, 404, "RESOURCE_DOES_NOT_EXIST")
    tags = as_dict(get_run(http, run_id)["data"]["tags"])
    assert len(json.loads(tags["mlflow.log-model.history"])) == 2

    other = new_run(http, experiment_id)
    ok(
        post(
            http,
            "/runs/set-tag",
            {"run_id": other, "key": "mlflow.log-model.history", "value": "not json"},
        )
    )
    corrupt = post(http, "/runs/log-model", {"run_id": other, "model_json": model_json(other, "m")})
    error(corrupt, 400, "INVALID_PARAMETER_VALUE", "JSON list")
    assert as_dict(get_run(http, other)["data"]["tags"])["mlflow.log-model.history"] == "not json"


def search(http: httpx.Client, method: str, **fields: Any) -> dict[str, Any]:
    if method == "GET":
        return dict(ok(http.get(f"{API}/runs/search", params=fields)))
    return dict(ok(http.post(f"{API}/runs/search", json=fields)))


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_search_runs(http: httpx.Client, experiment_id: str, method: str) -> None:
    other = str(
        ok(post(http, "/experiments/create", {"name": f"other-{uuid.uuid4().hex}"}))[
            "experiment_id"
        ]
    )
    ids = []
    for i, exp in enumerate([experiment_id, other] * 3):
        run_id = new_run(http, exp, run_name=f"r{i}", start_time=1000 + i)
        metrics = [{"key": "loss", "value": 1.0 / (i + 1), "timestamp": 1}]
        params = [{"key": "i", "value": str(i)}]
        ok(post(http, "/runs/log-batch", {"run_id": run_id, "metrics": metrics, "params": params}))
        ids.append(run_id)
    both = [experiment_id, other]

    body = search(http, method, experiment_ids=both, order_by=["metrics.loss ASC"])
    assert [r["info"]["run_id"] for r in body["runs"]] == ids[::-1]
    assert "next_page_token" not in body
    assert body["runs"][0]["data"]["params"] == [{"key": "i", "value": "5"}]

    body = search(
        http,
        method,
        experiment_ids=[experiment_id],
        filter="params.i != '0'",
        order_by=["attributes.start_time DESC"],
    )
    assert [r["info"]["run_id"] for r in body["runs"]] == [ids[4], ids[2]]

    body = search(
        http, method, experiment_ids=both, filter="metrics.loss < 0.21", order_by=["run_name"]
    )
    assert [r["info"]["run_name"] for r in body["runs"]] == ["r4", "r5"]

    seen: list[str] = []
    token = None
    while True:
        fields: dict[str, Any] = {
            "experiment_ids": both,
            "max_results": 4,
            "order_by": ["params.i"],
        }
        if token:
            fields["page_token"] = token
        body = search(http, method, **fields)
        seen.extend(r["info"]["run_id"] for r in body["runs"])
        token = body.get("next_page_token")
        if not token:
            break
    assert seen == ids


def test_search_runs_view_types_and_empty(http: httpx.Client, experiment_id: str) -> None:
    live, dead = new_run(http, experiment_id), new_run(http, experiment_id)
    ok(post(http, "/runs/delete", {"run_id": dead}))

    def found(view: Any) -> set[str]:
        body = search(http, "POST", experiment_ids=[experiment_id], run_view_type=view)
        return {r["info"]["run_id"] for r in body.get("runs", [])}

    assert found("ACTIVE_ONLY") == {live}
    assert found("DELETED_ONLY") == {dead}
    assert found("ALL") == found(3) == {live, dead}
    assert search(http, "POST", experiment_ids=[]) == {}
    assert search(http, "POST") == {}


@pytest.mark.parametrize(
    "fields",
    [
        {"max_results": 50001},
        {"max_results": 0},
        {"max_results": "lots"},
        {"filter": "metrics.loss <"},
        {"filter": "params.x > 'a'"},
        {"filter": "a = 1 OR b = 2"},
        {"order_by": ["metrics.loss SIDEWAYS"]},
        {"order_by": "metrics.loss"},
        {"run_view_type": "SOME"},
        {"experiment_ids": "0"},
        {"experiment_ids": [0]},
        {"page_token": "@@@"},
        {"limit": 3},
    ],
)
def test_search_runs_validation(http: httpx.Client, fields: dict[str, Any]) -> None:
    response = http.post(f"{API}/runs/search", json={"experiment_ids": ["0"], **fields})
    error(response, 400, "INVALID_PARAMETER_VALUE")


def test_search_runs_repeated_query_keys(http: httpx.Client, experiment_id: str) -> None:
    other = str(
        ok(post(http, "/experiments/create", {"name": f"q-{uuid.uuid4().hex}"}))["experiment_id"]
    )
    a, b = new_run(http, experiment_id), new_run(http, other)
    params = [
        ("experiment_ids", experiment_id),
        ("experiment_ids", other),
        ("order_by", "attributes.start_time ASC"),
        ("order_by", "run_id"),
    ]
    body = ok(http.get(f"{AJAX}/runs/search", params=params))
    assert {r["info"]["run_id"] for r in body["runs"]} == {a, b}
