"""The model registry endpoints over raw HTTP against the live server: MLflow's routes, shapes,
status codes and error codes; bad input; model version sources that try to escape their run;
``/model-versions/get-artifact``; who the server takes the actor to be; and the approval rules
seen from the wire."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from .conftest import LiveServer

API = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"
SLIPWAY = "/api/2.0/slipway"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


def unique(prefix: str = "model") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


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


def send(http: httpx.Client, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    """GET with a query string, anything else with a JSON body, as MLflow's client does."""
    if method == "GET":
        return http.get(f"{API}/{path}", params=body, **kw)
    return http.request(method, f"{API}/{path}", json=body, **kw)


def create_model(http: httpx.Client, name: str | None = None, **extra: Any) -> dict[str, Any]:
    body = ok(send(http, "POST", "registered-models/create", {"name": name or unique(), **extra}))
    return dict(body["registered_model"])


@pytest.fixture
def run(http: httpx.Client) -> dict[str, Any]:
    """A run in the Default experiment (artifacts under ``mlflow-artifacts:/0/<run>/...``)."""
    return dict(ok(send(http, "POST", "runs/create", {"experiment_id": "0"}))["run"]["info"])


def create_version(
    http: httpx.Client, name: str, run: dict[str, Any], path: str = "model", **extra: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "source": f"{run['artifact_uri']}/{path}",
        "run_id": run["run_id"],
        **extra,
    }
    return dict(ok(send(http, "POST", "model-versions/create", body))["model_version"])


@pytest.fixture
def model(http: httpx.Client) -> str:
    return str(create_model(http)["name"])


# -- registered models ------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [API, AJAX])
def test_registered_model_lifecycle(http: httpx.Client, prefix: str) -> None:
    name = unique()
    tags = [{"key": "team", "value": "vision"}, {"key": "empty", "value": ""}]
    answer = http.post(
        f"{prefix}/registered-models/create",
        json={"name": name, "tags": tags, "description": "first"},
    )
    created = ok(answer)["registered_model"]
    assert set(created) == {
        "name",
        "creation_timestamp",
        "last_updated_timestamp",
        "description",
        "tags",
    }
    assert created["name"] == name
    assert created["description"] == "first"
    assert sorted(created["tags"], key=lambda t: t["key"]) == sorted(tags, key=lambda t: t["key"])
    assert isinstance(created["creation_timestamp"], int)

    got = ok(http.get(f"{prefix}/registered-models/get", params={"name": name}))
    assert got["registered_model"] == created

    updated = ok(
        http.patch(
            f"{prefix}/registered-models/update", json={"name": name, "description": "second"}
        )
    )["registered_model"]
    assert updated["description"] == "second"

    new_name = unique("renamed")
    renamed = ok(
        http.post(f"{prefix}/registered-models/rename", json={"name": name, "new_name": new_name})
    )["registered_model"]
    assert renamed["name"] == new_name
    error(
        http.get(f"{prefix}/registered-models/get", params={"name": name}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )

    ok_body = ok(
        http.request("DELETE", f"{prefix}/registered-models/delete", json={"name": new_name})
    )
    assert ok_body == {}
    error(
        http.get(f"{prefix}/registered-models/get", params={"name": new_name}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_registered_model_errors(http: httpx.Client, model: str) -> None:
    error(
        send(http, "POST", "registered-models/create", {"name": model}),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )
    error(
        send(http, "POST", "registered-models/create", {}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'name'",
    )
    error(
        send(http, "POST", "registered-models/create", {"name": 5}),
        400,
        "INVALID_PARAMETER_VALUE",
        "'name'",
    )
    error(
        send(http, "POST", "registered-models/create", {"name": unique(), "colour": "red"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "colour",
    )
    error(
        send(http, "POST", "registered-models/create", {"name": "a/b"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        send(http, "GET", "registered-models/get", {"name": unique()}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(send(http, "GET", "registered-models/get", {}), 400, "INVALID_PARAMETER_VALUE")
    error(
        send(http, "POST", "registered-models/rename", {"name": model}),
        400,
        "INVALID_PARAMETER_VALUE",
        "new_name",
    )
    error(
        send(http, "DELETE", "registered-models/delete", {"name": unique()}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        send(
            http,
            "POST",
            "registered-models/create",
            {"name": unique(), "deployment_job_id": "job-1"},
        ),
        501,
        "NOT_IMPLEMENTED",
    )
    # Methods are MLflow's: update is PATCH, delete is DELETE.
    assert send(http, "POST", "registered-models/update", {"name": model}).status_code == 405
    assert send(http, "GET", "registered-models/delete", {"name": model}).status_code == 405
    # JSON bodies must say so.
    raw = http.post(
        f"{API}/registered-models/create",
        content=b'{"name": "x"}',
        headers={"Content-Type": "text/plain"},
    )
    error(raw, 400, "INVALID_PARAMETER_VALUE", "Content-Type")


def test_registered_model_tags(http: httpx.Client, model: str) -> None:
    assert (
        ok(
            send(
                http, "POST", "registered-models/set-tag", {"name": model, "key": "k", "value": "v"}
            )
        )
        == {}
    )
    ok(send(http, "POST", "registered-models/set-tag", {"name": model, "key": "empty"}))
    got = ok(send(http, "GET", "registered-models/get", {"name": model}))["registered_model"]
    assert {t["key"]: t["value"] for t in got["tags"]} == {"k": "v", "empty": ""}
    assert (
        ok(send(http, "DELETE", "registered-models/delete-tag", {"name": model, "key": "k"})) == {}
    )
    got = ok(send(http, "GET", "registered-models/get", {"name": model}))["registered_model"]
    assert got["tags"] == [{"key": "empty", "value": ""}]
    error(
        send(http, "POST", "registered-models/set-tag", {"name": model, "value": "v"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "'key'",
    )
    error(
        send(http, "POST", "registered-models/set-tag", {"name": unique(), "key": "k"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        send(
            http,
            "POST",
            "registered-models/set-tag",
            {"name": model, "key": "../etc", "value": "v"},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
    )


def test_search_registered_models_filters_and_pages(http: httpx.Client) -> None:
    stem = unique("search")
    names = [f"{stem}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        create_model(http, name, tags=[{"key": "parity", "value": "even" if i % 2 == 0 else "odd"}])

    found = ok(
        send(
            http,
            "GET",
            "registered-models/search",
            {"filter": f"name LIKE '{stem}-%'", "order_by": ["name DESC"]},
        )
    )
    assert [m["name"] for m in found["registered_models"]] == names[::-1]
    assert "next_page_token" not in found

    even = ok(
        send(
            http,
            "GET",
            "registered-models/search",
            {"filter": f"name LIKE '{stem}%' AND tags.parity = 'even'"},
        )
    )
    assert sorted(m["name"] for m in even["registered_models"]) == names[0::2]

    pages: list[str] = []
    token: str | None = None
    while True:
        query: dict[str, Any] = {
            "filter": f"name LIKE '{stem}%'",
            "max_results": 2,
            "order_by": ["name ASC"],
        }
        if token:
            query["page_token"] = token
        page = ok(send(http, "GET", "registered-models/search", query))
        pages.append(",".join(m["name"] for m in page["registered_models"]))
        token = page.get("next_page_token")
        if not token:
            break
    assert ",".join(pages).split(",") == names
    assert len(pages) == 3

    nothing = ok(send(http, "GET", "registered-models/search", {"filter": f"name = '{unique()}'"}))
    assert nothing == {}
    error(
        send(http, "GET", "registered-models/search", {"max_results": 1001}),
        400,
        "INVALID_PARAMETER_VALUE",
        "max_results",
    )
    error(
        send(http, "GET", "registered-models/search", {"max_results": "many"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "max_results",
    )
    error(
        send(http, "GET", "registered-models/search", {"filter": "name ~ 'x'"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        send(http, "GET", "registered-models/search", {"page_token": "garbage!"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )


# -- model versions ---------------------------------------------------------------------------


def test_model_version_lifecycle(http: httpx.Client, model: str, run: dict[str, Any]) -> None:
    v1 = create_version(
        http,
        model,
        run,
        tags=[{"key": "k", "value": "v"}],
        description="d1",
        run_link="http://example.com/run",
    )
    assert v1["version"] == "1"
    assert v1["current_stage"] == "None"
    assert v1["status"] == "READY"
    assert v1["source"] == f"{run['artifact_uri']}/model"
    assert v1["run_id"] == run["run_id"]
    assert v1["tags"] == [{"key": "k", "value": "v"}]
    assert v1["description"] == "d1"
    assert v1["run_link"] == "http://example.com/run"
    assert "aliases" not in v1

    v2 = create_version(http, model, run, path="model2")
    assert v2["version"] == "2"
    got = ok(send(http, "GET", "model-versions/get", {"name": model, "version": "2"}))
    assert got["model_version"] == v2

    updated = ok(
        send(
            http,
            "PATCH",
            "model-versions/update",
            {"name": model, "version": "1", "description": "new"},
        )
    )["model_version"]
    assert updated["description"] == "new"

    uri = ok(send(http, "GET", "model-versions/get-download-uri", {"name": model, "version": "1"}))
    assert uri == {"artifact_uri": f"{run['artifact_uri']}/model"}

    ok(
        send(
            http,
            "POST",
            "model-versions/set-tag",
            {"name": model, "version": "2", "key": "t", "value": "x"},
        )
    )
    ok(
        send(
            http, "DELETE", "model-versions/delete-tag", {"name": model, "version": "1", "key": "k"}
        )
    )
    got1 = ok(send(http, "GET", "model-versions/get", {"name": model, "version": "1"}))
    assert "tags" not in got1["model_version"]

    found = ok(
        send(
            http,
            "GET",
            "model-versions/search",
            {"filter": f"name = '{model}'", "order_by": ["version_number DESC"]},
        )
    )
    assert [v["version"] for v in found["model_versions"]] == ["2", "1"]
    by_tag = ok(
        send(http, "GET", "model-versions/search", {"filter": f"name = '{model}' AND tags.t = 'x'"})
    )
    assert [v["version"] for v in by_tag["model_versions"]] == ["2"]
    paged = ok(
        send(
            http, "GET", "model-versions/search", {"filter": f"name = '{model}'", "max_results": 1}
        )
    )
    assert len(paged["model_versions"]) == 1
    assert paged["next_page_token"]

    # The registered model lists the newest version per stage.
    rm = ok(send(http, "GET", "registered-models/get", {"name": model}))["registered_model"]
    assert [(v["version"], v["current_stage"]) for v in rm["latest_versions"]] == [("2", "None")]

    assert ok(send(http, "DELETE", "model-versions/delete", {"name": model, "version": "2"})) == {}
    error(
        send(http, "GET", "model-versions/get", {"name": model, "version": "2"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    # Numbers are never reused.
    assert create_version(http, model, run, path="model3")["version"] == "3"


def test_model_version_errors(http: httpx.Client, model: str, run: dict[str, Any]) -> None:
    create_version(http, model, run)
    for version in ("abc", "1.5", ""):
        answer = send(http, "GET", "model-versions/get", {"name": model, "version": version})
        error(answer, 400, "INVALID_PARAMETER_VALUE")
    error(
        send(http, "GET", "model-versions/get", {"name": model, "version": "abc"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Parameter 'version' must be an integer",
    )
    error(
        send(http, "GET", "model-versions/get", {"name": model, "version": "99"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        send(http, "GET", "model-versions/get", {"name": unique(), "version": "1"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        send(http, "GET", "model-versions/get", {"name": model}),
        400,
        "INVALID_PARAMETER_VALUE",
        "'version'",
    )
    error(
        send(http, "POST", "model-versions/create", {"name": model}),
        400,
        "INVALID_PARAMETER_VALUE",
        "'source'",
    )
    error(
        send(
            http,
            "POST",
            "model-versions/create",
            {"name": unique(), "source": f"{run['artifact_uri']}/m", "run_id": run["run_id"]},
        ),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        send(
            http,
            "POST",
            "model-versions/create",
            {"name": model, "source": f"{run['artifact_uri']}/m", "size": 3},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "size",
    )
    error(
        send(
            http,
            "POST",
            "model-versions/create",
            {"name": model, "source": "s3://bucket/m", "tags": {"k": "v"}},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "tags",
    )
    error(
        send(http, "DELETE", "model-versions/delete", {"name": model, "version": "7"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        send(http, "GET", "model-versions/search", {"max_results": 200_001}),
        400,
        "INVALID_PARAMETER_VALUE",
        "max_results",
    )
    # A version sent as a JSON number is read as its string.
    got = ok(send(http, "PATCH", "model-versions/update", {"name": model, "version": 1}))
    assert got["model_version"]["version"] == "1"


def test_stages_and_latest_versions(http: httpx.Client, model: str, run: dict[str, Any]) -> None:
    for i in range(3):
        create_version(http, model, run, path=f"m{i}")

    def transition(version: str, stage: str, archive: bool = False) -> dict[str, Any]:
        body = {
            "name": model,
            "version": version,
            "stage": stage,
            "archive_existing_versions": archive,
        }
        return dict(
            ok(send(http, "POST", "model-versions/transition-stage", body))["model_version"]
        )

    assert transition("1", "production")["current_stage"] == "Production"
    assert transition("2", "Staging")["current_stage"] == "Staging"
    assert transition("3", "PRODUCTION", archive=True)["current_stage"] == "Production"
    got1 = ok(send(http, "GET", "model-versions/get", {"name": model, "version": "1"}))
    assert got1["model_version"]["current_stage"] == "Archived"

    latest = ok(
        send(
            http,
            "POST",
            "registered-models/get-latest-versions",
            {"name": model, "stages": ["Production", "staging"]},
        )
    )
    assert sorted((v["version"], v["current_stage"]) for v in latest["model_versions"]) == [
        ("2", "Staging"),
        ("3", "Production"),
    ]
    # MLflow's client also reads it with GET, stages as repeated query keys.
    via_get = ok(
        http.get(
            f"{API}/registered-models/get-latest-versions",
            params=[("name", model), ("stages", "Archived")],
        )
    )
    assert [v["version"] for v in via_get["model_versions"]] == ["1"]
    every = ok(send(http, "POST", "registered-models/get-latest-versions", {"name": model}))
    assert sorted(v["version"] for v in every["model_versions"]) == ["1", "2", "3"]

    bad = {"name": model, "version": "1", "stage": "Nowhere"}
    error(
        send(http, "POST", "model-versions/transition-stage", bad),
        400,
        "INVALID_PARAMETER_VALUE",
        "stage",
    )
    error(
        send(
            http,
            "POST",
            "model-versions/transition-stage",
            {
                "name": model,
                "version": "1",
                "stage": "Staging",
                "archive_existing_versions": "perhaps",
            },
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "archive_existing_versions",
    )
    error(
        send(
            http,
            "POST",
            "registered-models/get-latest-versions",
            {"name": model, "stages": ["Nowhere"]},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        send(http, "POST", "registered-models/get-latest-versions", {"name": unique()}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_aliases(http: httpx.Client, model: str, run: dict[str, Any]) -> None:
    create_version(http, model, run)
    create_version(http, model, run, path="m2")
    body = {"name": model, "alias": "champion", "version": "1"}
    assert ok(send(http, "POST", "registered-models/alias", body)) == {}
    got = ok(send(http, "GET", "registered-models/alias", {"name": model, "alias": "champion"}))
    assert got["model_version"]["version"] == "1"
    assert got["model_version"]["aliases"] == ["champion"]
    # Setting it again moves it.
    ok(send(http, "POST", "registered-models/alias", {**body, "version": "2"}))
    rm = ok(send(http, "GET", "registered-models/get", {"name": model}))["registered_model"]
    assert rm["aliases"] == [{"alias": "champion", "version": "2"}]
    v1 = ok(send(http, "GET", "model-versions/get", {"name": model, "version": "1"}))
    assert "aliases" not in v1["model_version"]

    for reserved in ("latest", "LATEST", "v3", "V12"):
        error(
            send(http, "POST", "registered-models/alias", {**body, "alias": reserved}),
            400,
            "INVALID_PARAMETER_VALUE",
            "reserved",
        )
    for invalid in ("has space", "dot.ted", "slash/ed", "x" * 256, "semi;colon"):
        error(
            send(http, "POST", "registered-models/alias", {**body, "alias": invalid}),
            400,
            "INVALID_PARAMETER_VALUE",
        )
    error(
        send(http, "POST", "registered-models/alias", {"name": model, "alias": "a"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "'version'",
    )
    error(
        send(http, "POST", "registered-models/alias", {**body, "version": "9"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        send(http, "POST", "registered-models/alias", {**body, "version": "one"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    # MLflow answers an unknown alias with INVALID_PARAMETER_VALUE, and so does Slipway.
    error(
        send(http, "GET", "registered-models/alias", {"name": model, "alias": "nobody"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "not found",
    )

    assert (
        ok(send(http, "DELETE", "registered-models/alias", {"name": model, "alias": "champion"}))
        == {}
    )
    error(
        send(http, "GET", "registered-models/alias", {"name": model, "alias": "champion"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "not found",
    )


# -- sources ----------------------------------------------------------------------------------


def escaping_sources(run: dict[str, Any], elsewhere: dict[str, Any]) -> list[str]:
    root = run["artifact_uri"]  # mlflow-artifacts:/0/<run>/artifacts
    rel = root.removeprefix("mlflow-artifacts:")
    return [
        "/etc",
        "/etc/passwd",
        "file:///etc/passwd",
        "file://remotehost/etc/passwd",
        "file://localhost/etc/passwd",
        "//proc/self/root/etc/passwd",
        "/proc/self/root/etc",
        "relative/path",
        f"{root}/../../../../etc",
        f"{root}/%2e%2e/%2e%2e/%2e%2e/etc",
        f"{root}/%252e%252e/%252e%252e/etc",
        f"{root}/..%2f..%2f..%2fetc",
        f"{root}/model%00",
        f"{root}/model%2500",
        f"{root}\\..\\..\\etc",
        f"http://127.0.0.1:5000{PROXY}{rel}/../../../etc",
        f"https://host{PROXY}{rel}/%2e%2e/%2e%2e/x",
        f"http://host/{PROXY}/%252e%252e/%252e%252e/x",
        "s3://bucket/models/../../other",
        "s3://bucket/models/%2e%2e/%2e%2e/other",
        "s3://bucket/models/%252e%252e/other",
        "s3://bucket/models?x=../../etc",
        "s3://bucket/models#/../../etc",
        "dbfs:/etc",
        "jar:file:/etc!/x",
        elsewhere["artifact_uri"] + "/model",  # another run's files
        "mlflow-artifacts:/0",  # the whole destination
        f"runs:/{run['run_id']}/../../etc",
        f"runs:/{run['run_id']}/%2e%2e/%2e%2e/etc",
        "runs:/../etc",
    ]


@pytest.mark.parametrize("prompt_tag", [False, True], ids=["plain", "prompt-tagged"])
def test_sources_cannot_escape_the_run(
    http: httpx.Client, model: str, run: dict[str, Any], prompt_tag: bool
) -> None:
    elsewhere = dict(ok(send(http, "POST", "runs/create", {"experiment_id": "0"}))["run"]["info"])
    tags = [{"key": "mlflow.prompt.is_prompt", "value": "true"}] if prompt_tag else []
    for source in escaping_sources(run, elsewhere):
        for run_id in (run["run_id"], None):
            body = {"name": model, "source": source, "tags": tags}
            if run_id:
                body["run_id"] = run_id
            answer = send(http, "POST", "model-versions/create", body)
            assert answer.status_code == 400, f"{source!r} run_id={run_id}: {answer.text}"
            assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE", source
    # Nothing was registered.
    found = ok(send(http, "GET", "model-versions/search", {"filter": f"name = '{model}'"}))
    assert found == {}


def test_sources_inside_the_run_are_accepted(
    http: httpx.Client, model: str, run: dict[str, Any]
) -> None:
    root = run["artifact_uri"]
    for source in (
        f"{root}/model",
        f"{root}/nested/deeper/model",
        f"runs:/{run['run_id']}/model",
        "s3://some-bucket/models/m1",
    ):
        body = {"name": model, "source": source, "run_id": run["run_id"]}
        version = ok(send(http, "POST", "model-versions/create", body))["model_version"]
        assert version["source"] == source


# -- /model-versions/get-artifact ---------------------------------------------------------------


def raw(server: LiveServer, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``target`` exactly as written (no client-side clean-up of dots or escapes)."""
    parts = urlsplit(server.url)
    conn = HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


def test_get_model_version_artifact(
    http: httpx.Client, live_server: LiveServer, model: str, run: dict[str, Any]
) -> None:
    rel = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
    for name, data in (("model/MLmodel", b"flavors: {}\n"), ("model/data/w.bin", b"\x00\x01")):
        ok(http.put(f"{PROXY}/{rel}/{name}", content=data))
    create_version(http, model, run)

    status, headers, body = raw(
        live_server, f"/model-versions/get-artifact?name={model}&version=1&path=MLmodel"
    )
    assert (status, body) == (200, b"flavors: {}\n")
    assert headers["content-disposition"] == 'attachment; filename="MLmodel"'
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"].startswith("text/plain")
    status, _, body = raw(
        live_server, f"/model-versions/get-artifact?name={model}&version=1&path=data/w.bin"
    )
    assert (status, body) == (200, b"\x00\x01")

    status, _, body = raw(
        live_server, f"/model-versions/get-artifact?name={model}&version=1&path=nope"
    )
    assert status == 404
    for query, code in (
        (f"name={model}&version=9&path=MLmodel", 404),
        (f"name={unique()}&version=1&path=MLmodel", 404),
        (f"name={model}&version=x&path=MLmodel", 400),
        (f"name={model}&path=MLmodel", 400),
        (f"name={model}&version=1", 400),
    ):
        status, _, body = raw(live_server, f"/model-versions/get-artifact?{query}")
        assert status == code, (query, body)


def test_get_model_version_artifact_resolves_runs_and_models_uris(
    http: httpx.Client, live_server: LiveServer, model: str, run: dict[str, Any]
) -> None:
    rel = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
    ok(http.put(f"{PROXY}/{rel}/model/MLmodel", content=b"from the run"))
    body = {"name": model, "source": f"runs:/{run['run_id']}/model"}
    assert ok(send(http, "POST", "model-versions/create", body))["model_version"]["version"] == "1"
    copy = {"name": model, "source": f"models:/{model}/1"}
    assert ok(send(http, "POST", "model-versions/create", copy))["model_version"]["version"] == "2"
    for version in ("1", "2"):
        target = f"/model-versions/get-artifact?name={model}&version={version}&path=MLmodel"
        status, _, data = raw(live_server, target)
        assert (status, data) == (200, b"from the run"), version


def test_get_model_version_artifact_serves_no_foreign_bucket(
    http: httpx.Client, live_server: LiveServer, model: str, run: dict[str, Any]
) -> None:
    """A bucket source is a valid registration, but the server's credentials do not read it:
    it lies outside the server's artifact stores and outside the version's run."""
    body = {"name": model, "source": "s3://someone-elses-bucket/secrets", "run_id": run["run_id"]}
    ok(send(http, "POST", "model-versions/create", body))
    status, _, data = raw(
        live_server, f"/model-versions/get-artifact?name={model}&version=1&path=a"
    )
    assert status == 403, data
    assert json.loads(data)["error_code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "path",
    [
        "../../../../etc/passwd",
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "..%2f..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "//proc/self/root/etc/passwd",
        "%2fetc%2fpasswd",
        "MLmodel%00.txt",
        "..%5c..%5cetc%5cpasswd",
        "a%3f/../../../x",
    ],
)
def test_get_model_version_artifact_refuses_paths_outside_the_source(
    http: httpx.Client, live_server: LiveServer, model: str, run: dict[str, Any], path: str
) -> None:
    rel = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
    ok(http.put(f"{PROXY}/{rel}/secret.txt", content=b"beside the model"))
    ok(http.put(f"{PROXY}/{rel}/model/MLmodel", content=b"flavors: {}\n"))
    create_version(http, model, run)
    target = f"/model-versions/get-artifact?name={model}&version=1&path={path}"
    status, _, body = raw(live_server, target)
    assert status == 400, (path, body)
    assert json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"
    assert b"root:" not in body
    assert b"beside the model" not in body


def test_get_model_version_artifact_from_a_local_source(
    http: httpx.Client, live_server: LiveServer, model: str
) -> None:
    """A run whose experiment keeps artifacts in a folder of the server: a local source inside
    the run is served, and the same checks hold."""
    folder = live_server.root / "artifacts" / unique("local-exp")
    experiment_id = ok(
        send(
            http,
            "POST",
            "experiments/create",
            {"name": unique("local"), "artifact_location": str(folder)},
        )
    )
    info = ok(send(http, "POST", "runs/create", experiment_id))["run"]["info"]
    model_dir = folder / info["run_id"] / "artifacts" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    (folder / "secret.txt").write_text("outside the run")

    version = create_version(http, model, info)
    assert version["source"] == f"{info['artifact_uri']}/model"
    status, _, body = raw(
        live_server, f"/model-versions/get-artifact?name={model}&version=1&path=MLmodel"
    )
    assert (status, body) == (200, b"flavors: {}\n")
    status, _, body = raw(
        live_server, f"/model-versions/get-artifact?name={model}&version=1&path=../../../secret.txt"
    )
    assert status == 400
    assert b"outside the run" not in body
    # The run's folder itself is fine; the experiment's folder above it is not.
    error(
        send(
            http,
            "POST",
            "model-versions/create",
            {"name": model, "source": str(folder), "run_id": info["run_id"]},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "local path",
    )


# -- actors, approvals and audit seen from the wire ---------------------------------------------


def audit(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    body = ok(http.get(f"{SLIPWAY}/registry/audit", params={"name": name}))
    return list(body["events"])


def basic(user: str, password: str = "pw") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_actor_comes_from_basic_auth_then_the_header_then_anonymous(http: httpx.Client) -> None:
    a, b, c, d = (unique() for _ in range(4))
    create_model(http, a)
    send(http, "POST", "registered-models/create", {"name": b}, headers={"X-Slipway-User": "alice"})
    send(
        http,
        "POST",
        "registered-models/create",
        {"name": c},
        headers={"X-Slipway-User": "alice", "Authorization": basic("bob")},
    )
    send(
        http,
        "POST",
        "registered-models/create",
        {"name": d},
        headers={"X-Slipway-User": quote("zoë")},
    )
    assert [e["actor"] for e in audit(http, a)] == ["anonymous"]
    assert [e["actor"] for e in audit(http, b)] == ["alice"]
    assert [e["actor"] for e in audit(http, c)] == ["bob"]
    assert [e["actor"] for e in audit(http, d)] == ["zoë"]
    assert audit(http, a)[0]["action"] == "create_model"

    # A bearer token names nobody: the header still counts.
    e = unique()
    send(
        http,
        "POST",
        "registered-models/create",
        {"name": e},
        headers={"Authorization": "Bearer token", "X-Slipway-User": "carol"},
    )
    assert [x["actor"] for x in audit(http, e)] == ["carol"]

    for headers in (
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"X-Slipway-User": "%0aadmin"},
        {"X-Slipway-User": "x" * 300},
    ):
        name = unique()
        answer = send(http, "POST", "registered-models/create", {"name": name}, headers=headers)
        error(answer, 401, "UNAUTHENTICATED")
        error(
            send(http, "GET", "registered-models/get", {"name": name}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        )


def test_approvals_over_the_wire(http: httpx.Client, model: str, run: dict[str, Any]) -> None:
    create_version(http, model, run)
    alice = {"X-Slipway-User": "alice"}
    bob = {"X-Slipway-User": "bob"}
    policy = ok(
        http.post(
            f"{SLIPWAY}/registry/policies",
            headers=alice,
            json={"name": model, "target_kind": "alias", "target": "champion"},
        )
    )
    assert policy["policy"]["allow_self_approval"] is False
    assert policy["policy"]["created_by"] == "alice"

    # The alias is protected: setting it directly is refused.
    body = {"name": model, "alias": "champion", "version": "1"}
    error(
        send(http, "POST", "registered-models/alias", body, headers=alice), 403, "PERMISSION_DENIED"
    )

    request = ok(
        http.post(
            f"{SLIPWAY}/registry/requests/create",
            headers=alice,
            json={
                "name": model,
                "version": "1",
                "target_kind": "alias",
                "target": "champion",
                "comment": "beats the baseline",
            },
        )
    )
    request_id = request["request"]["request_id"]
    assert request["request"]["status"] == "PENDING"
    assert request["request"]["requested_by"] == "alice"

    error(
        http.post(
            f"{SLIPWAY}/registry/requests/approve", headers=alice, json={"request_id": request_id}
        ),
        403,
        "PERMISSION_DENIED",
    )
    approved = ok(
        http.post(
            f"{SLIPWAY}/registry/requests/approve",
            headers=bob,
            json={"request_id": request_id, "comment": "ok"},
        )
    )
    assert approved["request"]["status"] == "APPROVED"
    assert approved["request"]["decided_by"] == "bob"
    got = ok(send(http, "GET", "registered-models/alias", {"name": model, "alias": "champion"}))
    assert got["model_version"]["version"] == "1"

    # A decided request stays decided: deciding or withdrawing it again is a conflict.
    for action, who in (("approve", bob), ("reject", bob), ("cancel", alice)):
        error(
            http.post(
                f"{SLIPWAY}/registry/requests/{action}",
                headers=who,
                json={"request_id": request_id},
            ),
            409,
            "RESOURCE_CONFLICT",
        )

    actions = [(e["action"], e["actor"]) for e in audit(http, model)]
    assert ("set_policy", "alice") in actions
    assert ("request_transition", "alice") in actions
    assert ("approve", "bob") in actions


def test_slipway_api_bad_input(http: httpx.Client, model: str) -> None:
    error(
        http.post(
            f"{SLIPWAY}/registry/policies",
            json={"name": model, "target_kind": "branch", "target": "x"},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "target kind",
    )
    error(
        http.post(
            f"{SLIPWAY}/registry/policies",
            json={"name": model, "target_kind": "alias", "target": "latest"},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        http.post(f"{SLIPWAY}/registry/policies", json={"name": model, "target_kind": "alias"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "'target'",
    )
    error(
        http.post(
            f"{SLIPWAY}/registry/policies",
            json={"name": model, "target_kind": "alias", "target": "a", "x": 1},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "'x'",
    )
    error(
        http.get(f"{SLIPWAY}/registry/requests/get", params={"request_id": "nope"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    error(
        http.get(f"{SLIPWAY}/registry/requests/list", params={"status": "MAYBE"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "status",
    )
    error(
        http.get(f"{SLIPWAY}/registry/audit", params={"max_results": 0}),
        400,
        "INVALID_PARAMETER_VALUE",
        "max_results",
    )
    error(
        http.post(
            f"{SLIPWAY}/registry/deployments/create",
            json={"name": model, "version": "1", "endpoint": "http://x", "details": [1]},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "details",
    )
    error(
        http.post(
            f"{SLIPWAY}/registry/deployments/end", json={"deployment_id": "d", "status": "RUNNING"}
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "status",
    )
    error(http.get(f"{SLIPWAY}/lineage"), 400, "INVALID_PARAMETER_VALUE", "lineage root")
    error(http.get(f"{SLIPWAY}/lineage", params={"name": model}), 400, "INVALID_PARAMETER_VALUE")
    error(
        http.get(f"{SLIPWAY}/lineage", params={"uri": "runs:/x/model"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        http.get(f"{SLIPWAY}/lineage", params={"name": model, "version": "1", "uri": "x"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        http.get(f"{SLIPWAY}/lineage", params={"uri": f"models:/{model}/7"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
