"""The logged model endpoints over raw HTTP (MLflow 3's ``/logged-models`` and ``/runs/outputs``):
request fields, response shapes, status codes and error bodies, artifacts through the proxy,
and the official client's own calls for the endpoints that ``log_model`` does not exercise."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import LiveServer

pytestmark = [
    # MLflow's own advisory warnings, raised from inside mlflow when its client is imported.
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:mlflow.*"),
]

API = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")


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
    name = f"models-{uuid.uuid4().hex[:12]}"
    return str(ok(http.post(f"{API}/experiments/create", json={"name": name}))["experiment_id"])


def create(http: httpx.Client, experiment_id: str, **fields: Any) -> dict[str, Any]:
    body = ok(http.post(f"{API}/logged-models", json={"experiment_id": experiment_id, **fields}))
    return dict(body["model"])


def get(http: httpx.Client, model_id: str, **params: str) -> dict[str, Any]:
    return dict(ok(http.get(f"{API}/logged-models/{model_id}", params=params))["model"])


def new_run(http: httpx.Client, experiment_id: str) -> str:
    body = ok(http.post(f"{API}/runs/create", json={"experiment_id": experiment_id}))
    return str(body["run"]["info"]["run_id"])


def as_dict(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {i["key"]: i["value"] for i in items or []}


def search(http: httpx.Client, **body: Any) -> dict[str, Any]:
    return dict(ok(http.post(f"{API}/logged-models/search", json=body)))


# -- create, get, finalize, delete ----------------------------------------------------------------


def test_create_answers_mlflows_logged_model_shape(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    model = create(
        http,
        experiment_id,
        name="clf",
        model_type="sklearn",
        source_run_id=run_id,
        params=[{"key": "alpha", "value": "0.5"}],
        tags=[{"key": "mlflow.source.name", "value": "train.py"}],
    )
    info, data = model["info"], model["data"]
    model_id = info["model_id"]
    assert MODEL_ID.match(model_id)
    assert info == {
        "model_id": model_id,
        "experiment_id": experiment_id,
        "name": "clf",
        "creation_timestamp_ms": info["creation_timestamp_ms"],
        "last_updated_timestamp_ms": info["creation_timestamp_ms"],
        "artifact_uri": f"mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts",
        "status": "LOGGED_MODEL_PENDING",
        "model_type": "sklearn",
        "source_run_id": run_id,
        "tags": [{"key": "mlflow.source.name", "value": "train.py"}],
    }
    assert isinstance(info["creation_timestamp_ms"], int)
    assert info["creation_timestamp_ms"] > 1_600_000_000_000  # milliseconds
    assert data == {"params": [{"key": "alpha", "value": "0.5"}]}
    assert get(http, model_id) == model
    # The UI's prefix serves the same routes.
    assert ok(http.get(f"{AJAX}/logged-models/{model_id}"))["model"] == model


def test_create_with_nothing_but_an_experiment(http: httpx.Client, experiment_id: str) -> None:
    model = create(http, experiment_id)
    assert model["info"]["name"]
    assert "source_run_id" not in model["info"]
    assert model["data"] == {}


@pytest.mark.parametrize(
    ("body", "status", "code", "text"),
    [
        ({}, 400, "INVALID_PARAMETER_VALUE", "experiment_id"),
        ({"experiment_id": "424242"}, 404, "RESOURCE_DOES_NOT_EXIST", "424242"),
        ({"name": "a/b"}, 400, "INVALID_PARAMETER_VALUE", "model name"),
        ({"source_run_id": "0" * 32}, 404, "RESOURCE_DOES_NOT_EXIST", "0" * 32),
        ({"tags": [{"key": "a"}], "params": "x"}, 400, "INVALID_PARAMETER_VALUE", "params"),
        ({"flavor": "sklearn"}, 400, "INVALID_PARAMETER_VALUE", "flavor"),
        ({"params": [{"key": "a", "value": 1}]}, 400, "INVALID_PARAMETER_VALUE", "params[0]"),
    ],
)
def test_create_refusals(
    http: httpx.Client, experiment_id: str, body: dict[str, Any], status: int, code: str, text: str
) -> None:
    if body and "experiment_id" not in body:
        body = {"experiment_id": experiment_id, **body}
    error(http.post(f"{API}/logged-models", json=body), status, code, text)


def test_create_needs_a_json_body(http: httpx.Client, experiment_id: str) -> None:
    response = http.post(
        f"{API}/logged-models",
        content=f'{{"experiment_id": "{experiment_id}"}}',
        headers={"Content-Type": "text/plain"},
    )
    error(response, 400, "INVALID_PARAMETER_VALUE", "Content-Type")


def test_get_unknown_or_deleted(http: httpx.Client, experiment_id: str) -> None:
    error(http.get(f"{API}/logged-models/m-{'0' * 32}"), 404, "RESOURCE_DOES_NOT_EXIST")
    model_id = create(http, experiment_id)["info"]["model_id"]
    ok(http.request("DELETE", f"{API}/logged-models/{model_id}", json={"model_id": model_id}))
    error(http.get(f"{API}/logged-models/{model_id}"), 404, "RESOURCE_DOES_NOT_EXIST", model_id)
    assert get(http, model_id, allow_deleted="true")["info"]["model_id"] == model_id
    error(
        http.get(f"{API}/logged-models/{model_id}", params={"allow_deleted": "false"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(http.delete(f"{API}/logged-models/{model_id}"), 404, "RESOURCE_DOES_NOT_EXIST")
    error(
        http.get(f"{API}/logged-models/{model_id}", params={"view": "all"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "view",
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("LOGGED_MODEL_READY", "LOGGED_MODEL_READY"),
        ("LOGGED_MODEL_UPLOAD_FAILED", "LOGGED_MODEL_UPLOAD_FAILED"),
        (2, "LOGGED_MODEL_READY"),
        ("READY", "LOGGED_MODEL_READY"),
    ],
)
def test_finalize(http: httpx.Client, experiment_id: str, status: Any, expected: str) -> None:
    model_id = create(http, experiment_id)["info"]["model_id"]
    body = ok(
        http.patch(f"{API}/logged-models/{model_id}", json={"model_id": model_id, "status": status})
    )
    assert body["model"]["info"]["status"] == expected
    assert get(http, model_id)["info"]["status"] == expected


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "status"),
        ({"status": "LOGGED_MODEL_STATUS_UNSPECIFIED"}, "status"),
        ({"status": "DONE"}, "DONE"),
        ({"status": 9}, "9"),
        ({"model_id": "m-other", "status": 2}, "m-other"),
    ],
)
def test_finalize_refusals(
    http: httpx.Client, experiment_id: str, body: dict[str, Any], text: str
) -> None:
    model_id = create(http, experiment_id)["info"]["model_id"]
    response = http.patch(f"{API}/logged-models/{model_id}", json=body)
    error(response, 400, "INVALID_PARAMETER_VALUE", text)
    assert get(http, model_id)["info"]["status"] == "LOGGED_MODEL_PENDING"


# -- params and tags ----------------------------------------------------------------------------


def test_params_and_tags(http: httpx.Client, experiment_id: str) -> None:
    model_id = create(http, experiment_id, params=[{"key": "a", "value": "1"}])["info"]["model_id"]
    url = f"{API}/logged-models/{model_id}"
    ok(
        http.post(
            f"{url}/params", json={"model_id": model_id, "params": [{"key": "b", "value": "2"}]}
        )
    )
    error(
        http.post(f"{url}/params", json={"params": [{"key": "a", "value": "9"}]}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Changing param values",
    )
    tags = [{"key": "team", "value": "ml"}, {"key": "dir/with space", "value": "x"}]
    assert ok(http.patch(f"{url}/tags", json={"tags": tags})) == {}
    model = get(http, model_id)
    assert as_dict(model["data"]["params"]) == {"a": "1", "b": "2"}
    assert as_dict(model["info"]["tags"]) == {"team": "ml", "dir/with space": "x"}
    assert ok(http.delete(f"{url}/tags/dir/with space")) == {}
    assert as_dict(get(http, model_id)["info"]["tags"]) == {"team": "ml"}
    error(http.delete(f"{url}/tags/dir/with space"), 404, "RESOURCE_DOES_NOT_EXIST", "No tag")
    error(
        http.patch(f"{API}/logged-models/m-missing/tags", json={"tags": tags}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        http.post(f"{url}/params", json={"params": [{"key": "../x", "value": "1"}]}),
        400,
        "INVALID_PARAMETER_VALUE",
    )


# -- search ----------------------------------------------------------------------------------


def test_search(http: httpx.Client, experiment_id: str) -> None:
    made = {}
    for name, team in (("one", "a"), ("two", "b"), ("three", "a")):
        made[name] = create(http, experiment_id, name=name, tags=[{"key": "team", "value": team}])
    ok(
        http.patch(
            f"{API}/logged-models/{made['two']['info']['model_id']}",
            json={"status": "LOGGED_MODEL_READY"},
        )
    )
    everything = search(http, experiment_ids=[experiment_id])
    assert [m["info"]["name"] for m in everything["models"]] == ["three", "two", "one"]
    assert "next_page_token" not in everything
    assert everything["models"][1] == get(http, made["two"]["info"]["model_id"])

    found = search(http, experiment_ids=[experiment_id], filter="name = 'two'")
    assert [m["info"]["model_id"] for m in found["models"]] == [made["two"]["info"]["model_id"]]
    found = search(
        http,
        experiment_ids=[experiment_id],
        filter="tags.team = 'a'",
        order_by=[{"field_name": "name", "ascending": True}],
    )
    assert [m["info"]["name"] for m in found["models"]] == ["one", "three"]
    found = search(http, experiment_ids=[experiment_id], filter="status = 'LOGGED_MODEL_READY'")
    assert [m["info"]["name"] for m in found["models"]] == ["two"]
    assert search(http, experiment_ids=[experiment_id], filter="name = 'none'") == {}

    names, token, pages = [], None, 0
    while True:
        page = search(
            http,
            experiment_ids=[experiment_id],
            max_results=2,
            order_by=[{"field_name": "name"}],
            **({"page_token": token} if token else {}),
        )
        names += [m["info"]["name"] for m in page["models"]]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break
    assert (names, pages) == (["one", "three", "two"], 2)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "experiment_ids"),
        ({"experiment_ids": "0"}, "experiment_ids"),
        ({"filter": "name = 'a' OR name = 'b'"}, "OR"),
        ({"filter": "bogus = 'x'"}, "bogus"),
        ({"order_by": [{"field_name": "params.alpha"}]}, "params.alpha"),
        ({"order_by": [{"ascending": False}]}, "field_name"),
        ({"order_by": ["name"]}, "order_by"),
        ({"datasets": [{"dataset_digest": "d"}]}, "dataset_name"),
        ({"max_results": 0, "page_token": "junk"}, "page token"),
        ({"max_results": -1}, "max_results"),
        ({"view_type": "ALL"}, "view_type"),
    ],
)
def test_search_refusals(
    http: httpx.Client, experiment_id: str, body: dict[str, Any], text: str
) -> None:
    if "experiment_ids" not in body and body:
        body = {"experiment_ids": [experiment_id], **body}
    response = http.post(f"{API}/logged-models/search", json=body)
    error(response, 400, "INVALID_PARAMETER_VALUE", text)


# -- artifacts ----------------------------------------------------------------------------------


def upload(http: httpx.Client, artifact_uri: str, rel: str, data: bytes) -> None:
    base = artifact_uri.removeprefix("mlflow-artifacts:/")
    assert http.put(f"{PROXY}/{base}/{rel}", content=data).status_code == 200


def test_model_files_are_listed_and_served(http: httpx.Client, experiment_id: str) -> None:
    info = create(http, experiment_id)["info"]
    model_id, uri = info["model_id"], info["artifact_uri"]
    upload(http, uri, "MLmodel", b"flavors: {}\n")
    upload(http, uri, "data/model.pkl", b"\x80\x04pickle")
    url = f"{API}/logged-models/{model_id}/artifacts"
    top = ok(http.get(f"{url}/directories"))
    assert top == {
        "root_uri": uri,
        "files": [
            {"path": "MLmodel", "is_dir": False, "file_size": 12},
            {"path": "data", "is_dir": True},
        ],
    }
    inner = ok(http.get(f"{url}/directories", params={"artifact_directory_path": "data"}))
    assert inner["files"] == [{"path": "data/model.pkl", "is_dir": False, "file_size": 8}]
    empty = ok(http.get(f"{url}/directories", params={"artifact_directory_path": "nothing"}))
    assert empty == {"root_uri": uri}

    download = http.get(f"{url}/files", params={"artifact_file_path": "data/model.pkl"})
    assert download.status_code == 200
    assert download.content == b"\x80\x04pickle"
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["x-content-type-options"] == "nosniff"

    for params in ({"artifact_directory_path": "../../.."}, {"artifact_directory_path": "/etc"}):
        error(http.get(f"{url}/directories", params=params), 400, "INVALID_PARAMETER_VALUE")
    error(
        http.get(f"{url}/files", params={"artifact_file_path": "../MLmodel"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(http.get(f"{url}/files"), 400, "INVALID_PARAMETER_VALUE", "artifact_file_path")
    error(
        http.get(f"{url}/files", params={"artifact_file_path": "absent.txt"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        http.get(f"{API}/logged-models/m-missing/artifacts/directories"),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_http_artifact_locations_are_served_only_through_the_proxy(
    http: httpx.Client, live_server: LiveServer
) -> None:
    proxied = f"{live_server.url}{PROXY}/http-root-{uuid.uuid4().hex[:8]}"
    elsewhere = "https://example.com/bucket"
    for location, status in ((proxied, 200), (elsewhere, 501)):
        name = f"http-{uuid.uuid4().hex[:12]}"
        body = {"name": name, "artifact_location": location}
        experiment_id = ok(http.post(f"{API}/experiments/create", json=body))["experiment_id"]
        info = create(http, experiment_id)["info"]
        assert info["artifact_uri"] == f"{location}/models/{info['model_id']}/artifacts"
        response = http.get(f"{API}/logged-models/{info['model_id']}/artifacts/directories")
        assert response.status_code == status, response.text


# -- run outputs ------------------------------------------------------------------------------


def test_run_outputs(http: httpx.Client, experiment_id: str) -> None:
    run_id = new_run(http, experiment_id)
    model_id = create(http, experiment_id, source_run_id=run_id)["info"]["model_id"]
    body = {"run_id": run_id, "models": [{"model_id": model_id, "step": 3}]}
    assert ok(http.post(f"{API}/runs/outputs", json=body)) == {}
    assert ok(http.post(f"{API}/runs/outputs", json={"run_id": run_id})) == {}
    error(
        http.post(f"{API}/runs/outputs", json={"models": body["models"]}),
        400,
        "INVALID_PARAMETER_VALUE",
        "run_id",
    )
    error(
        http.post(f"{API}/runs/outputs", json={**body, "run_id": "f" * 32}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    missing = {"run_id": run_id, "models": [{"model_id": "m-missing"}]}
    error(http.post(f"{API}/runs/outputs", json=missing), 404, "RESOURCE_DOES_NOT_EXIST")
    bad_step = {"run_id": run_id, "models": [{"model_id": model_id, "step": "x"}]}
    error(
        http.post(f"{API}/runs/outputs", json=bad_step),
        400,
        "INVALID_PARAMETER_VALUE",
        "models[0].step",
    )


# -- the official client ------------------------------------------------------------------------


def test_the_mlflow_client_reads_and_writes_logged_models(
    mlflow_client: Any, experiment_id: str
) -> None:
    from mlflow.entities import LoggedModelStatus

    run = mlflow_client.create_run(experiment_id)
    model = mlflow_client.create_logged_model(
        experiment_id,
        name="client-made",
        source_run_id=run.info.run_id,
        params={f"p{i}": str(i) for i in range(150)},  # more than one request's worth
        tags={"team": "ml"},
        model_type="demo",
    )
    assert model.status == LoggedModelStatus.PENDING
    assert len(model.params) == 150
    mlflow_client.set_logged_model_tags(model.model_id, {"stage": "dev", "team": "ops"})
    mlflow_client.delete_logged_model_tag(model.model_id, "stage")
    done = mlflow_client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert done.status == LoggedModelStatus.READY
    again = mlflow_client.get_logged_model(model.model_id)
    assert again.tags == {"team": "ops"}
    assert again.model_type == "demo"
    assert again.source_run_id == run.info.run_id
    assert again.artifact_location.endswith(f"/models/{model.model_id}/artifacts")

    other = mlflow_client.create_logged_model(experiment_id, name="other")
    page = mlflow_client.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string="params.p7 = '7' AND tags.team = 'ops'",
    )
    assert [m.model_id for m in page] == [model.model_id]
    ordered = mlflow_client.search_logged_models(
        experiment_ids=[experiment_id],
        order_by=[{"field_name": "name", "ascending": False}],
        max_results=1,
    )
    assert [m.model_id for m in ordered] == [other.model_id]
    assert ordered.token
    rest = mlflow_client.search_logged_models(
        experiment_ids=[experiment_id],
        order_by=[{"field_name": "name", "ascending": False}],
        max_results=1,
        page_token=ordered.token,
    )
    assert [m.model_id for m in rest] == [model.model_id]
    mlflow_client.delete_logged_model(other.model_id)
    remaining = mlflow_client.search_logged_models(experiment_ids=[experiment_id])
    assert [m.model_id for m in remaining] == [model.model_id]
