"""The experiments endpoints over raw HTTP, as MLflow's REST API 2.0 defines them."""

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


def unique(prefix: str = "exp") -> str:
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


def create(http: httpx.Client, name: str | None = None, **extra: Any) -> str:
    body = ok(http.post(f"{API}/experiments/create", json={"name": name or unique(), **extra}))
    return str(body["experiment_id"])


def get(http: httpx.Client, experiment_id: str) -> dict[str, Any]:
    body = ok(http.get(f"{API}/experiments/get", params={"experiment_id": experiment_id}))
    return dict(body["experiment"])


def test_create_get_and_get_by_name(http: httpx.Client) -> None:
    name = unique()
    tags = [{"key": "team", "value": "vision"}, {"key": "empty", "value": ""}]
    experiment_id = create(http, name, tags=tags)
    assert experiment_id.isdigit()
    exp = get(http, experiment_id)
    assert set(exp) == {
        "experiment_id",
        "name",
        "artifact_location",
        "lifecycle_stage",
        "creation_time",
        "last_update_time",
        "tags",
    }
    assert exp["experiment_id"] == experiment_id
    assert exp["name"] == name
    assert exp["lifecycle_stage"] == "active"
    assert exp["artifact_location"].endswith(experiment_id)
    assert isinstance(exp["creation_time"], int)
    assert exp["creation_time"] <= exp["last_update_time"]
    assert sorted(exp["tags"], key=lambda t: t["key"]) == sorted(tags, key=lambda t: t["key"])
    by_name = ok(http.get(f"{API}/experiments/get-by-name", params={"experiment_name": name}))
    assert by_name == {"experiment": exp}


def test_experiment_without_tags_leaves_the_field_out(http: httpx.Client) -> None:
    exp = get(http, create(http))
    assert "tags" not in exp


def test_ajax_prefix_serves_the_same_api(http: httpx.Client) -> None:
    name = unique()
    body = ok(http.post(f"{AJAX}/experiments/create", json={"name": name}))
    got = ok(http.get(f"{AJAX}/experiments/get", params={"experiment_id": body["experiment_id"]}))
    assert got["experiment"]["name"] == name
    assert get(http, body["experiment_id"]) == got["experiment"]


def test_default_experiment_exists(http: httpx.Client) -> None:
    exp = get(http, "0")
    assert exp["name"] == "Default"


def test_create_with_artifact_location(http: httpx.Client, tmp_path: Any) -> None:
    location = (tmp_path / "elsewhere").as_uri()
    exp = get(http, create(http, artifact_location=location))
    assert exp["artifact_location"].rstrip("/") == location.rstrip("/")


def test_create_refuses_a_runs_uri_location(http: httpx.Client) -> None:
    name = unique()
    response = http.post(
        f"{API}/experiments/create", json={"name": name, "artifact_location": "runs:/abc/x"}
    )
    error(response, 400, "INVALID_PARAMETER_VALUE")
    missing = http.get(f"{API}/experiments/get-by-name", params={"experiment_name": name})
    error(missing, 404, "RESOURCE_DOES_NOT_EXIST")


def test_duplicate_name_is_resource_already_exists(http: httpx.Client) -> None:
    name = unique()
    create(http, name)
    response = http.post(f"{API}/experiments/create", json={"name": name})
    error(response, 400, "RESOURCE_ALREADY_EXISTS", name)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"name": 123}, "Invalid value 123 for parameter 'name' supplied"),
        ({"name": ["a"]}, "for parameter 'name' supplied"),
        ({}, "Missing value for required parameter 'name'"),
        ({"name": ""}, "Missing value for required parameter 'name'"),
        ({"name": unique(), "bogus": 1}, "bogus"),
        ({"name": unique(), "tags": {"key": "a"}}, "parameter 'tags'"),
        ({"name": unique(), "tags": [{"key": "a", "value": "b", "extra": 1}]}, "extra"),
        ({"name": unique(), "tags": [{"value": "b"}]}, "Missing value for required parameter"),
        ({"name": unique(), "artifact_location": 5}, "parameter 'artifact_location'"),
    ],
)
def test_create_validation(http: httpx.Client, body: dict[str, Any], text: str) -> None:
    response = http.post(f"{API}/experiments/create", json=body)
    error(response, 400, "INVALID_PARAMETER_VALUE", text)
    name = body.get("name")
    if isinstance(name, str) and name:
        missing = http.get(f"{API}/experiments/get-by-name", params={"experiment_name": name})
        error(missing, 404, "RESOURCE_DOES_NOT_EXIST")


def test_malformed_and_non_object_bodies(http: httpx.Client) -> None:
    url = f"{API}/experiments/create"
    headers = {"content-type": "application/json"}
    error(http.post(url, content=b"{not json", headers=headers), 400, "INVALID_PARAMETER_VALUE")
    error(http.post(url, content=b"[1, 2]", headers=headers), 400, "INVALID_PARAMETER_VALUE")
    error(http.post(url, content=b"\xff\xfe", headers=headers), 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        ({"content-type": "text/plain"}, "Content-Type must be one of ['application/json']"),
        (
            {"content-type": "application/x-www-form-urlencoded"},
            "Content-Type must be one of ['application/json']",
        ),
        ({}, "Content-Type header is missing"),
    ],
)
def test_post_bodies_must_be_json(http: httpx.Client, headers: dict[str, str], text: str) -> None:
    import json

    name = unique("csrf")
    body = json.dumps({"name": name}).encode()
    response = http.post(f"{API}/experiments/create", content=body, headers=headers)
    error(response, 400, "INVALID_PARAMETER_VALUE", text)
    missing = http.get(f"{API}/experiments/get-by-name", params={"experiment_name": name})
    error(missing, 404, "RESOURCE_DOES_NOT_EXIST")
    charset = {"content-type": "application/json; charset=utf-8"}
    ok(http.post(f"{API}/experiments/create", content=body, headers=charset))


def test_double_encoded_body_from_old_clients(http: httpx.Client) -> None:
    import json

    name = unique()
    body = json.dumps(json.dumps({"name": name}))
    response = http.post(
        f"{API}/experiments/create", content=body, headers={"content-type": "application/json"}
    )
    experiment_id = ok(response)["experiment_id"]
    assert get(http, experiment_id)["name"] == name


def test_proto_json_names_are_accepted(http: httpx.Client) -> None:
    experiment_id = create(http)
    new = unique("renamed")
    ok(http.post(f"{API}/experiments/update", json={"experimentId": experiment_id, "newName": new}))
    assert get(http, experiment_id)["name"] == new
    both = {"experiment_id": experiment_id, "experimentId": experiment_id, "new_name": "x"}
    error(http.post(f"{API}/experiments/update", json=both), 400, "INVALID_PARAMETER_VALUE")
    assert get(http, experiment_id)["name"] == new


def test_get_unknown_and_invalid_ids(http: httpx.Client) -> None:
    response = http.get(f"{API}/experiments/get", params={"experiment_id": "987654321"})
    error(response, 404, "RESOURCE_DOES_NOT_EXIST", "987654321")
    missing = http.get(f"{API}/experiments/get")
    error(missing, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter")
    unknown = http.get(f"{API}/experiments/get", params={"experiment_id": "0", "extra": "1"})
    error(unknown, 400, "INVALID_PARAMETER_VALUE", "extra")


def test_get_by_name_of_a_missing_experiment_is_404(http: httpx.Client) -> None:
    name = unique("nope")
    response = http.get(f"{API}/experiments/get-by-name", params={"experiment_name": name})
    error(response, 404, "RESOURCE_DOES_NOT_EXIST", name)


def test_wrong_method_is_405(http: httpx.Client) -> None:
    assert http.get(f"{API}/experiments/create").status_code == 405
    assert http.post(f"{API}/experiments/get", json={"experiment_id": "0"}).status_code == 405


def test_rename(http: httpx.Client) -> None:
    experiment_id = create(http)
    new = unique("renamed")
    body = ok(
        http.post(
            f"{API}/experiments/update", json={"experiment_id": experiment_id, "new_name": new}
        )
    )
    assert body == {}
    assert get(http, experiment_id)["name"] == new
    taken = create(http)
    clash = {"experiment_id": taken, "new_name": new}
    error(http.post(f"{API}/experiments/update", json=clash), 400, "RESOURCE_ALREADY_EXISTS")
    assert get(http, taken)["name"] != new
    missing_name = http.post(f"{API}/experiments/update", json={"experiment_id": experiment_id})
    error(missing_name, 400, "INVALID_PARAMETER_VALUE", "'new_name'")
    unknown = http.post(
        f"{API}/experiments/update", json={"experiment_id": "99999999", "new_name": unique()}
    )
    error(unknown, 404, "RESOURCE_DOES_NOT_EXIST")


def test_delete_and_restore(http: httpx.Client) -> None:
    experiment_id = create(http)
    assert ok(http.post(f"{API}/experiments/delete", json={"experiment_id": experiment_id})) == {}
    assert get(http, experiment_id)["lifecycle_stage"] == "deleted"
    assert ok(http.post(f"{API}/experiments/restore", json={"experiment_id": experiment_id})) == {}
    assert get(http, experiment_id)["lifecycle_stage"] == "active"
    again = http.post(f"{API}/experiments/restore", json={"experiment_id": experiment_id})
    error(again, 400, "INVALID_PARAMETER_VALUE")
    gone = http.post(f"{API}/experiments/delete", json={"experiment_id": "99999999"})
    error(gone, 404, "RESOURCE_DOES_NOT_EXIST")
    error(http.post(f"{API}/experiments/delete", json={}), 400, "INVALID_PARAMETER_VALUE")


def test_experiment_tags(http: httpx.Client) -> None:
    experiment_id = create(http)
    url = f"{API}/experiments/set-experiment-tag"
    assert ok(http.post(url, json={"experiment_id": experiment_id, "key": "k", "value": "v"})) == {}
    ok(http.post(url, json={"experiment_id": experiment_id, "key": "k", "value": "v2"}))
    ok(http.post(url, json={"experiment_id": experiment_id, "key": "empty", "value": ""}))
    ok(http.post(url, json={"experiment_id": experiment_id, "key": "absent"}))
    tags = {t["key"]: t["value"] for t in get(http, experiment_id)["tags"]}
    assert tags == {"k": "v2", "empty": "", "absent": ""}

    bad = http.post(url, json={"experiment_id": experiment_id, "key": "x", "value": 3})
    error(bad, 400, "INVALID_PARAMETER_VALUE", "'value'")
    no_key = http.post(url, json={"experiment_id": experiment_id, "value": "v"})
    error(no_key, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'key'")
    unknown = http.post(url, json={"experiment_id": "99999999", "key": "k", "value": "v"})
    error(unknown, 404, "RESOURCE_DOES_NOT_EXIST")

    delete_url = f"{API}/experiments/delete-experiment-tag"
    assert ok(http.post(delete_url, json={"experiment_id": experiment_id, "key": "k"})) == {}
    again = http.post(delete_url, json={"experiment_id": experiment_id, "key": "k"})
    error(again, 404, "RESOURCE_DOES_NOT_EXIST", "No tag with name: k")
    tags = {t["key"]: t["value"] for t in get(http, experiment_id)["tags"]}
    assert tags == {"empty": "", "absent": ""}

    ok(http.post(f"{API}/experiments/delete", json={"experiment_id": experiment_id}))
    on_deleted = http.post(url, json={"experiment_id": experiment_id, "key": "k", "value": "v"})
    error(on_deleted, 400, "INVALID_PARAMETER_VALUE")


def search_ids(http: httpx.Client, method: str, **fields: Any) -> tuple[list[str], str | None]:
    if method == "GET":
        response = http.get(f"{API}/experiments/search", params=fields)
    else:
        response = http.post(f"{API}/experiments/search", json=fields)
    body = ok(response)
    ids = [e["experiment_id"] for e in body.get("experiments", [])]
    return ids, body.get("next_page_token")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_search_filter_order_and_paging(http: httpx.Client, method: str) -> None:
    prefix = unique("search")
    ids = [create(http, f"{prefix}-{i}", tags=[{"key": "i", "value": str(i)}]) for i in range(5)]
    flt = f"name LIKE '{prefix}-%'"
    found, token = search_ids(http, method, filter=flt, order_by=["name DESC"])
    assert found == ids[::-1]
    assert token is None
    by_tag, _ = search_ids(http, method, filter=f"{flt} and tags.i = '3'")
    assert by_tag == [ids[3]]

    pages: list[str] = []
    token = None
    while True:
        fields: dict[str, Any] = {"filter": flt, "order_by": ["name ASC"], "max_results": 2}
        if token:
            fields["page_token"] = token
        page, token = search_ids(http, method, **fields)
        pages.extend(page)
        if not token:
            break
    assert pages == ids


def test_search_with_repeated_query_keys(http: httpx.Client) -> None:
    prefix = unique("multi")
    a = create(http, f"{prefix}-a", tags=[{"key": "g", "value": "1"}])
    b = create(http, f"{prefix}-b", tags=[{"key": "g", "value": "1"}])
    params = [
        ("filter", f"name LIKE '{prefix}%'"),
        ("order_by", "name DESC"),
        ("order_by", "experiment_id ASC"),
    ]
    body = ok(http.get(f"{API}/experiments/search", params=params))
    assert [e["experiment_id"] for e in body["experiments"]] == [b, a]
    params[1:] = [("order_by", "name ASC"), ("order_by", "experiment_id DESC")]
    body = ok(http.get(f"{API}/experiments/search", params=params))
    assert [e["experiment_id"] for e in body["experiments"]] == [a, b]


def test_search_view_types(http: httpx.Client) -> None:
    prefix = unique("view")
    live = create(http, f"{prefix}-live")
    dead = create(http, f"{prefix}-dead")
    ok(http.post(f"{API}/experiments/delete", json={"experiment_id": dead}))
    flt = f"name LIKE '{prefix}%'"
    assert search_ids(http, "POST", filter=flt)[0] == [live]
    assert search_ids(http, "POST", filter=flt, view_type="DELETED_ONLY")[0] == [dead]
    assert search_ids(http, "GET", filter=flt, view_type="2")[0] == [dead]
    both = search_ids(http, "POST", filter=flt, view_type="ALL", order_by=["name"])[0]
    assert both == [dead, live]
    assert search_ids(http, "POST", filter=flt, view_type=3, order_by=["name"])[0] == both


def test_search_empty_result_is_an_empty_object(http: httpx.Client) -> None:
    body = ok(http.post(f"{API}/experiments/search", json={"filter": f"name = '{unique()}'"}))
    assert body == {}


@pytest.mark.parametrize(
    "fields",
    [
        {"filter": "name ~ 'x'"},
        {"max_results": "many"},
        {"max_results": 0},
        {"max_results": 50001},
        {"view_type": "SOMETIMES"},
        {"order_by": "name"},
        {"order_by": ["bogus_column"]},
        {"page_token": "%%%not-a-token"},
        {"unknown": 1},
    ],
)
def test_search_validation(http: httpx.Client, fields: dict[str, Any]) -> None:
    response = http.post(f"{API}/experiments/search", json=fields)
    error(response, 400, "INVALID_PARAMETER_VALUE")


def test_search_datasets(http: httpx.Client) -> None:
    experiment_id = create(http)
    run = ok(http.post(f"{API}/runs/create", json={"experiment_id": experiment_id}))["run"]
    dataset = {"name": "iris", "digest": "abc123", "source_type": "local", "source": "{}"}
    datasets = [
        {"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "train"}]},
        {"dataset": {**dataset, "name": "other", "digest": "d2"}},
    ]
    ok(
        http.post(
            f"{API}/runs/log-inputs", json={"run_id": run["info"]["run_id"], "datasets": datasets}
        )
    )
    body = ok(
        http.post(f"{AJAX}/experiments/search-datasets", json={"experiment_ids": [experiment_id]})
    )
    summaries = sorted(body["dataset_summaries"], key=lambda s: s["name"])
    assert summaries == [
        {"experiment_id": experiment_id, "name": "iris", "digest": "abc123", "context": "train"},
        {"experiment_id": experiment_id, "name": "other", "digest": "d2"},
    ]
    empty = ok(
        http.post(f"{AJAX}/experiments/search-datasets", json={"experiment_ids": [create(http)]})
    )
    assert empty == {}
    none = http.post(f"{AJAX}/experiments/search-datasets", json={"experiment_ids": []})
    error(none, 400, "INVALID_PARAMETER_VALUE", "at least one experiment_id")
    many = http.post(
        f"{AJAX}/experiments/search-datasets", json={"experiment_ids": [str(i) for i in range(21)]}
    )
    error(many, 400, "INVALID_PARAMETER_VALUE", "more than 20")


def test_a_repeated_single_valued_query_key_uses_the_first(http: httpx.Client) -> None:
    first, second = create(http), create(http)
    params = [("experiment_id", first), ("experiment_id", second)]
    body = ok(http.get(f"{API}/experiments/get", params=params))
    assert body["experiment"]["experiment_id"] == first
