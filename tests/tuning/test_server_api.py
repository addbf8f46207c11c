"""The tuning routes of ``slipway server`` speak Slipway's API dialect: unknown fields and bad
values are 400 INVALID_PARAMETER_VALUE, an unknown study 404, a held study 409."""

from __future__ import annotations

import json

import pytest
import urllib3

PREFIX = "/api/2.0/slipway/tuning"


@pytest.mark.parametrize("tracking_uri", ["rest"], indirect=True)
def test_tuning_routes_answer_with_mlflow_error_codes(tracking_uri: str) -> None:
    http = urllib3.PoolManager()

    def post(path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        response = http.request(
            "POST",
            f"{tracking_uri}{PREFIX}/{path}",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        return response.status, json.loads(response.data or b"{}")

    def get(path: str, **fields: object) -> tuple[int, dict[str, object]]:
        response = http.request("GET", f"{tracking_uri}{PREFIX}/{path}", fields=fields)
        return response.status, json.loads(response.data or b"{}")

    status, body = post("studies/create", {"name": "s", "run_id": "r", "experiment_id": "0"})
    assert status == 200
    assert body["study"] == {  # type: ignore[comparison-overlap]
        "name": "s",
        "run_id": "r",
        "experiment_id": "0",
        "spec": {},
        "created_time": body["study"]["created_time"],  # type: ignore[index]
        "log_count": 0,
    }
    status, body = post("journal/append", {"name": "s", "logs": ['{"a": 1}'], "log_number_from": 0})
    assert (status, body) == (200, {"log_count": 1, "logs": ['{"a": 1}']})
    assert get("journal/read", name="s", log_number_from=0) == (200, {"logs": ['{"a": 1}']})
    assert get("studies/list")[1]["studies"][0]["name"] == "s"  # type: ignore[index]

    status, body = post("journal/append", {"name": "s", "logs": ['{"a": 1}'], "extra": 1})
    assert status == 400
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "extra" in str(body["message"])
    status, body = post("journal/append", {"name": "s", "logs": "not a list"})
    assert status == 400
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    status, body = get("journal/read", name="nope")
    assert status == 404
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, body = post("studies/create", {"name": "s", "run_id": "r", "experiment_id": "0"})
    assert status == 400
    assert body["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert post("studies/claim", {"name": "s", "owner": "a", "ttl_ms": 60000})[0] == 200
    status, body = post("studies/claim", {"name": "s", "owner": "b", "ttl_ms": 60000})
    assert status == 409
    assert body["error_code"] == "RESOURCE_CONFLICT"
    assert post("studies/release", {"name": "s", "owner": "a"}) == (200, {})
