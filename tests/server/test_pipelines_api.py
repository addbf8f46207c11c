"""``/api/2.0/slipway/pipelines`` over raw HTTP: the JSON shapes of answers, and the error
shapes of bad requests (unknown field, wrong type, missing field, unknown resource)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from slipway.server.context import ServerContext

from .conftest import LiveServer

API = "/api/2.0/slipway/pipelines"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def post(server: LiveServer, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{API}/{path}", json=body, timeout=30, **kwargs)


def get(server: LiveServer, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.get(f"{server.url}{API}/{path}", params=params, timeout=30)


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error_code", "message"}
    assert payload["error_code"] == code
    message = payload["message"]
    assert isinstance(message, str)
    return message


@pytest.fixture
def run_id(live_server: LiveServer) -> str:
    """A pipeline run recorded on a new tracking run."""
    ctx = live_server.app.state.context
    assert isinstance(ctx, ServerContext)
    tracking_run = ctx.store.create_run("0", run_name="pipeline").info.run_id
    body = {
        "run_id": tracking_run,
        "experiment_id": "0",
        "pipeline_name": unique("p"),
        "status": "running",  # any case, as elsewhere in the API
        "start_time": "1700000000000",  # int64 as a string, as proto3 JSON allows
        "parameters": {"lr": 0.1, "names": ["ä", None]},
    }
    answer = post(live_server, "runs/create", body)
    assert answer.status_code == 200, answer.text
    return tracking_run


def test_run_json_shape(live_server: LiveServer, run_id: str) -> None:
    answer = get(live_server, "runs/get", {"run_id": run_id})
    assert answer.status_code == 200
    run = answer.json()["pipeline_run"]
    # None fields are left out; everything else is sent, enums by value.
    assert set(run) == {
        "run_id",
        "experiment_id",
        "pipeline_name",
        "status",
        "start_time",
        "parameters",
        "graph",
        "attempt",
    }
    assert (run["status"], run["start_time"], run["attempt"]) == ("RUNNING", 1_700_000_000_000, 1)
    assert run["parameters"] == {"lr": 0.1, "names": ["ä", None]}
    assert run["graph"] == {}


def test_search_and_step_json(live_server: LiveServer, run_id: str) -> None:
    name = get(live_server, "runs/get", {"run_id": run_id}).json()["pipeline_run"]
    found = get(live_server, "runs/search", {"pipeline_name": name["pipeline_name"]}).json()
    assert [r["run_id"] for r in found["pipeline_runs"]] == [run_id]
    assert "next_page_token" not in found
    assert get(live_server, "runs/search", {"pipeline_name": unique("none")}).json() == {}

    step = {
        "pipeline_run_id": run_id,
        "task_id": "train[0]",
        "task_name": "train",
        "component": "train",
        "status": "SUCCEEDED",
        "outputs": {"artifacts": {"m": {"uri": "s3://b/m", "digest": "sha256:9"}}},
    }
    answer = post(live_server, "steps/upsert", step)
    assert answer.status_code == 200, answer.text
    assert answer.json()["step"]["attempt"] == 0
    listed = get(live_server, "steps/list", {"pipeline_run_id": run_id}).json()
    assert [s["task_id"] for s in listed["steps"]] == ["train[0]"]
    links = get(live_server, "artifacts/links", {"uri": "s3://b/m"}).json()["links"]
    assert {"pipeline_run_id": run_id, "direction": "output", "name": "m"}.items() <= links[
        -1
    ].items()


def test_cache_and_schedule_answers(live_server: LiveServer) -> None:
    key = unique("key")
    assert get(live_server, "cache/get", {"key": key}).json() == {}
    entry = {
        "key": key,
        "component": "c",
        "outputs": {"parameters": {"x": 1}},
        "run_id": "r",
        "pipeline_run_id": "p",
        "task_id": "t",
        "created_time": 1,
    }
    assert post(live_server, "cache/put", entry).json() == {}
    assert get(live_server, "cache/get", {"key": key}).json() == {"entry": entry}
    component = unique("comp")
    assert post(live_server, "cache/delete", {"component": component}).json() == {"deleted": 0}

    sid = unique("s")
    created = post(
        live_server,
        "schedules/create",
        {
            "schedule_id": sid,
            "name": sid,
            "source": "p.py",
            "cron": "* * * * *",
            "next_run_time": 10,
        },
    )
    assert created.status_code == 200, created.text
    assert created.json()["schedule"]["paused"] is False
    claim = {"schedule_id": sid, "due_time": 10, "next_run_time": 20}
    assert post(live_server, "schedules/claim", claim).json() == {"claimed": True}
    assert post(live_server, "schedules/claim", claim).json() == {"claimed": False}
    assert post(live_server, "schedules/delete", {"schedule_id": sid}).json() == {}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("runs/update", {"run_id": "x", "colour": "red"}, "colour"),
        ("steps/upsert", {"pipeline_run_id": "x", "task": "t"}, "task"),
        ("schedules/claim", {"schedule_id": "s", "due": 1}, "due"),
        ("cache/delete", {"components": "c"}, "components"),
    ],
)
def test_unknown_fields(live_server: LiveServer, path: str, body: Any, field: str) -> None:
    message = error(post(live_server, path, body), 400, "INVALID_PARAMETER_VALUE")
    assert f"Unknown parameter(s) '{field}'" in message


def test_unknown_query_fields(live_server: LiveServer) -> None:
    message = error(
        get(live_server, "runs/search", {"pipeline": "p"}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert "'pipeline'" in message
    error(get(live_server, "schedules/list", {"all": "true"}), 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("runs/update", {"run_id": "x", "end_time": "soon"}, "end_time"),
        ("runs/update", {"run_id": "x", "graph": ["not", "an", "object"]}, "graph"),
        ("runs/update", {"run_id": "x", "clear_end": "maybe"}, "clear_end"),
        ("runs/update", {"run_id": 7}, "run_id"),
        ("schedules/update", {"schedule_id": "s", "paused": 1}, "paused"),
        ("schedules/claim", {"schedule_id": "s", "due_time": 1.5, "next_run_time": 2}, "due_time"),
        (
            "steps/upsert",
            {
                "pipeline_run_id": "x",
                "task_id": "t",
                "task_name": "t",
                "component": "c",
                "status": "QUEUED",
                "inputs": "text",
            },
            "inputs",
        ),
    ],
)
def test_wrong_types(live_server: LiveServer, path: str, body: Any, field: str) -> None:
    message = error(post(live_server, path, body), 400, "INVALID_PARAMETER_VALUE")
    assert f"parameter '{field}'" in message


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "runs/create", {"experiment_id": "0"}, "run_id"),
        ("POST", "runs/cancel", {}, "run_id"),
        ("GET", "runs/get", {}, "run_id"),
        ("GET", "steps/get", {"pipeline_run_id": "x"}, "task_id"),
        ("POST", "cache/put", {"key": "k", "component": "c"}, "outputs"),
        ("POST", "schedules/claim", {"schedule_id": "s", "due_time": 1}, "next_run_time"),
        ("POST", "schedules/create", {"schedule_id": "s", "name": ""}, "name"),
    ],
)
def test_missing_required(
    live_server: LiveServer, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    answer = post(live_server, path, body) if method == "POST" else get(live_server, path, body)
    message = error(answer, 400, "INVALID_PARAMETER_VALUE")
    assert f"Missing value for required parameter '{field}'" in message


def test_not_found_shape(live_server: LiveServer) -> None:
    missing = "0" * 32
    for answer in (
        get(live_server, "runs/get", {"run_id": missing}),
        post(live_server, "runs/cancel", {"run_id": missing}),
        get(live_server, "steps/list", {"pipeline_run_id": missing}),
        get(live_server, "schedules/get", {"schedule_id": unique("none")}),
        post(
            live_server, "schedules/claim", {"schedule_id": "x", "due_time": 1, "next_run_time": 2}
        ),
    ):
        assert "not found" in error(answer, 404, "RESOURCE_DOES_NOT_EXIST")


def test_store_errors_keep_their_codes(live_server: LiveServer, run_id: str) -> None:
    message = error(
        post(live_server, "runs/update", {"run_id": run_id, "status": "SLEEPING"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "SLEEPING" in message
    error(get(live_server, "artifacts/links", {}), 400, "INVALID_PARAMETER_VALUE")
    error(get(live_server, "runs/search", {"max_results": "0"}), 400, "INVALID_PARAMETER_VALUE")
    existing = get(live_server, "runs/get", {"run_id": run_id}).json()["pipeline_run"]
    assert error(post(live_server, "runs/create", existing), 400, "RESOURCE_ALREADY_EXISTS")


def test_bodies_must_be_json(live_server: LiveServer) -> None:
    answer = httpx.post(
        f"{live_server.url}{API}/runs/cancel",
        content=b'{"run_id": "x"}',
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert "Content-Type" in error(answer, 400, "INVALID_PARAMETER_VALUE")
    answer = httpx.post(
        f"{live_server.url}{API}/runs/cancel",
        content=b"[1, 2]",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert "JSON object" in error(answer, 400, "INVALID_PARAMETER_VALUE")


def test_unknown_routes_and_methods(live_server: LiveServer) -> None:
    assert get(live_server, "runs/nope").status_code == 404
    assert httpx.get(f"{live_server.url}{API}/runs/create", timeout=30).status_code == 405
    # The Slipway API beside it is still reachable.
    audit = httpx.get(f"{live_server.url}/api/2.0/slipway/registry/audit", timeout=30)
    assert audit.status_code == 200
