"""The model server over HTTP: every route of the three protocols against real models, the
bad inputs of each, the limits (body size, slow clients, timeouts, hosts), a model that
raises, and ``/metrics``."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from slipway.flavors.pyfunc import load_model
from slipway.serving.settings import ServingSettings

from ._models import features
from ._protocol_models import BAD_A, save_all
from .conftest import LiveServing, run_app, serving_app


@pytest.fixture(scope="module")
def client(live_serving: LiveServing) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_serving.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def iris_expected(live_serving: LiveServing) -> tuple[pd.DataFrame, list[int]]:
    """Five rows of input, and what the iris model itself answers for them."""
    rows = features(5, seed=3)
    registry = live_serving.models.registry
    model = load_model(registry.get_download_uri("iris", "1"))
    return rows, [int(v) for v in model.predict(rows)]


# -- health and metadata ---------------------------------------------------------------------


def test_health_version_and_server_metadata(client: httpx.Client) -> None:
    assert client.get("/ping").status_code == 200
    assert client.get("/health").text == "OK\n"
    assert client.get("/version").text == __import__("slipway").__version__
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2").json() == {
        "name": "slipway",
        "version": __import__("slipway").__version__,
        "extensions": ["binary_tensor_data"],
    }


def test_v2_model_metadata_and_readiness(client: httpx.Client) -> None:
    meta = client.get("/v2/models/iris").json()
    assert meta == {
        "name": "iris",
        "versions": ["1"],
        "platform": "slipway",
        "inputs": [{"name": n, "datatype": "FP64", "shape": [-1]} for n in ("a", "b", "c")],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
    }
    assert client.get("/v2/models/iris/versions/1").json()["versions"] == ["1"]
    assert client.get("/v2/models/iris/ready").status_code == 200
    assert client.get("/v2/models/iris/versions/1/ready").status_code == 200
    missing = client.get("/v2/models/iris/versions/7")
    assert missing.status_code == 404
    assert "no version '7'" in missing.json()["error"]
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/v2/models/nope/ready").json()["error"].startswith("No model named")
    multi = client.get("/v2/models/multi").json()
    assert [i["name"] for i in multi["inputs"]] == ["x", "n"]
    assert multi["versions"] == []


def test_v1_model_status(client: httpx.Client) -> None:
    assert client.get("/v1/models/iris").json() == {"name": "iris", "ready": True}
    assert client.get("/v1/models/nope").status_code == 404


# -- MLflow's /invocations -------------------------------------------------------------------


def test_invocations_in_every_format_match_the_model(
    client: httpx.Client, iris_expected: tuple[pd.DataFrame, list[int]]
) -> None:
    rows, expected = iris_expected
    payloads = [
        {"dataframe_split": rows.to_dict(orient="split", index=False)},
        {"dataframe_records": rows.to_dict(orient="records")},
        {"instances": rows.to_numpy().tolist()},
        {"inputs": rows.to_numpy().tolist()},
        {"inputs": {c: rows[c].tolist() for c in rows.columns}},
    ]
    for payload in payloads:
        answer = client.post("/invocations?model=iris", json=payload)
        assert answer.status_code == 200, (payload, answer.text)
        assert answer.json() == {"predictions": expected}
    csv = client.post(
        "/models/iris/invocations",
        content=rows.to_csv(index=False),
        headers={"content-type": "text/csv"},
    )
    assert csv.json() == {"predictions": expected}


def test_invocations_params_reach_the_model(client: httpx.Client) -> None:
    payload = {"dataframe_records": features(2).to_dict(orient="records"), "params": {"offset": 2}}
    assert client.post("/invocations?model=const", json=payload).json() == {
        "predictions": [3.5, 3.5]
    }


def test_invocations_needs_a_model_name_with_several_models(client: httpx.Client) -> None:
    answer = client.post("/invocations", json={"inputs": [[1, 2, 3]]})
    assert answer.status_code == 400
    assert "name one with /invocations?model=NAME" in answer.json()["message"]
    unknown = client.post("/invocations?model=nope", json={"inputs": [[1, 2, 3]]})
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code", "message"),
    [
        (b"{oops", "application/json", 400, "BAD_REQUEST", "not valid JSON"),
        (
            b'{"inputs": [[1,2,3]], "instances": [[1,2,3]]}',
            "application/json",
            400,
            "BAD_REQUEST",
            "has both",
        ),
        (b'{"params": {}}', "application/json", 400, "BAD_REQUEST", "needs one of"),
        (b'{"inputs": [[1,2,3]]}', "text/plain", 415, "BAD_REQUEST", "Unsupported Content-Type"),
        (
            b'{"inputs": [[1,2,3]]}',
            "application/json; charset=utf-16",
            415,
            "BAD_REQUEST",
            "charset 'utf-16'",
        ),
        (b'{"dataframe_records": []}', "application/json", 400, "BAD_REQUEST", "no rows"),
        (
            b'{"dataframe_records": [{"a": 1.0, "b": 2.0}]}',
            "application/json",
            400,
            "INVALID_PARAMETER_VALUE",
            "'c'",
        ),
        (
            b'{"dataframe_records": [{"a": "x", "b": 2.0, "c": 1.0}]}',
            "application/json",
            400,
            "INVALID_PARAMETER_VALUE",
            "column a",
        ),
    ],
)
def test_invocations_bad_input(
    client: httpx.Client, content: bytes, content_type: str, status: int, code: str, message: str
) -> None:
    answer = client.post(
        "/invocations?model=iris", content=content, headers={"content-type": content_type}
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["error_code"] == code
    assert message in answer.json()["message"]


def test_extra_columns_are_accepted_and_ignored(
    client: httpx.Client, iris_expected: tuple[pd.DataFrame, list[int]]
) -> None:
    rows, expected = iris_expected
    records = rows.assign(extra="ignored").to_dict(orient="records")
    answer = client.post("/invocations?model=iris", json={"dataframe_records": records})
    assert answer.json() == {"predictions": expected}


def test_nan_where_the_signature_forbids_it_is_400(client: httpx.Client) -> None:
    answer = client.post(
        "/invocations?model=text",
        content=b'{"dataframe_records": [{"text": "a", "times": NaN}]}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert "missing values (NaN)" in answer.json()["message"]


def test_a_model_that_raises_is_500_and_the_server_keeps_serving(
    client: httpx.Client, iris_expected: tuple[pd.DataFrame, list[int]]
) -> None:
    rows, expected = iris_expected
    payload = {"dataframe_records": rows.to_dict(orient="records")}
    broken = client.post("/invocations?model=broken", json=payload)
    assert broken.status_code == 500
    assert broken.json()["error_code"] == "INTERNAL_ERROR"
    assert "RuntimeError: the model is broken" in broken.json()["message"]
    v2 = client.post(
        "/v2/models/broken/infer",
        json={"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
    )
    assert v2.status_code == 500
    assert "the model is broken" in v2.json()["error"]
    assert client.post("/invocations?model=iris", json=payload).json()["predictions"] == expected


# -- Open Inference Protocol V2 --------------------------------------------------------------


def test_v2_infer_with_one_tensor_or_named_columns_matches_the_model(
    client: httpx.Client, iris_expected: tuple[pd.DataFrame, list[int]]
) -> None:
    rows, expected = iris_expected
    one = {
        "id": "abc",
        "inputs": [
            {
                "name": "input-0",
                "shape": [5, 3],
                "datatype": "FP64",
                "data": rows.to_numpy().ravel().tolist(),
            }
        ],
    }
    answer = client.post("/v2/models/iris/infer", json=one).json()
    assert answer == {
        "model_name": "iris",
        "model_version": "1",
        "id": "abc",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [5], "data": expected}],
    }
    columns = {
        "inputs": [
            {"name": c, "shape": [5], "datatype": "FP64", "data": rows[c].tolist()}
            for c in ("c", "a", "b")
        ]
    }
    pinned = client.post("/v2/models/iris/versions/1/infer", json=columns).json()
    assert pinned["outputs"][0]["data"] == expected
    assert pinned["model_version"] == "1"


def test_v2_unknown_version_or_model_is_404(client: httpx.Client) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
    answer = client.post("/v2/models/iris/versions/2/infer", json=body)
    assert answer.status_code == 404
    assert "has no version '2'" in answer.json()["error"]
    assert client.post("/v2/models/nope/infer", json=body).status_code == 404


def test_v2_named_tensors_and_requested_outputs(client: httpx.Client) -> None:
    body = {
        "inputs": [
            {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]},
            {"name": "n", "shape": [2], "datatype": "INT64", "data": [10, 20]},
        ],
        "outputs": [{"name": "label"}, {"name": "sum"}],
    }
    answer = client.post("/v2/models/multi/infer", json=body).json()
    assert answer["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["row-10", "row-20"]},
        {"name": "sum", "datatype": "FP64", "shape": [2], "data": [13.0, 27.0]},
    ]
    body["outputs"] = [{"name": "nope"}]
    unknown = client.post("/v2/models/multi/infer", json=body)
    assert unknown.status_code == 400
    assert "Unknown output(s) requested: 'nope'" in unknown.json()["error"]


def test_v2_unnamed_tensor_model(client: httpx.Client) -> None:
    body = {"inputs": [{"name": "in", "shape": [2, 3], "datatype": "FP64", "data": list(range(6))}]}
    answer = client.post("/v2/models/tensor/infer", json=body).json()
    assert answer["outputs"] == [
        {"name": "total", "datatype": "FP64", "shape": [2], "data": [3.0, 12.0]}
    ]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"name": "in", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3]}], "6 elements"),
        ([{"name": "in", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}], "shape"),
        ([{"name": "in", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}], "in"),
        ([{"name": "in", "shape": [0, 3], "datatype": "FP64", "data": []}], "no rows"),
        ([{"name": "in", "shape": [1, 3], "datatype": "FP32X", "data": [1, 2, 3]}], "FP32X"),
    ],
)
def test_v2_bad_shapes_and_datatypes_are_400(
    client: httpx.Client, inputs: list[dict[str, Any]], message: str
) -> None:
    answer = client.post("/v2/models/tensor/infer", json={"inputs": inputs})
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def test_v2_compressed_bodies_are_415(client: httpx.Client) -> None:
    answer = client.post(
        "/v2/models/tensor/infer", content=b"\x1f\x8b", headers={"content-encoding": "gzip"}
    )
    assert answer.status_code == 415
    assert "Content-Encoding 'gzip'" in answer.json()["error"]


# -- KServe V1 -------------------------------------------------------------------------------


def test_v1_predict_rows_and_records_match_the_model(
    client: httpx.Client, iris_expected: tuple[pd.DataFrame, list[int]]
) -> None:
    rows, expected = iris_expected
    for instances in (rows.to_numpy().tolist(), rows.to_dict(orient="records")):
        answer = client.post("/v1/models/iris:predict", json={"instances": instances})
        assert answer.json() == {"predictions": expected}
    bad = client.post("/v1/models/iris:predict", json={"instances": []})
    assert bad.status_code == 400
    assert bad.json() == {"error": "The request holds no rows: send at least one instance"}
    assert client.post("/v1/models/nope:predict", json={"instances": [[1]]}).status_code == 404


# -- limits ----------------------------------------------------------------------------------


def raw_request(url: str, head: bytes, body: bytes = b"") -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def test_a_100_mb_body_is_413_and_the_server_stays_up(
    live_serving: LiveServing, client: httpx.Client
) -> None:
    head = (
        b"POST /invocations?model=iris HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    )
    answer = raw_request(live_serving.url, head, b'{"inputs": [' + b"1," * 1000)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"over the limit of 8388608 bytes" in answer
    assert client.get("/ping").status_code == 200


def test_a_streamed_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": ['
        for _ in range(10):
            yield b"1," * 500_000

    answer = client.post(
        "/v2/models/tensor/infer", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert "over the limit" in answer.json()["error"]


def test_a_stalled_client_does_not_block_others(
    live_serving: LiveServing, client: httpx.Client
) -> None:
    host, port = live_serving.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as stalled:
        stalled.sendall(
            b"POST /invocations?model=iris HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
        )
        started = time.perf_counter()
        for _ in range(20):
            assert client.get("/ping").status_code == 200
        payload = {"inputs": [[1.0, 2.0, 3.0]]}
        assert client.post("/invocations?model=iris", json=payload).status_code == 200
        assert time.perf_counter() - started < 5


def test_hosts_outside_the_allow_list_are_403(client: httpx.Client) -> None:
    answer = client.get("/v2/models/iris", headers={"host": "evil.example"})
    assert answer.status_code == 403
    assert "not allowed" in answer.json()["error"]
    mlflow = client.post("/invocations", json={}, headers={"host": "evil.example:80"})
    assert mlflow.json()["error_code"] == "PERMISSION_DENIED"


def test_unknown_routes_and_methods_answer_json(client: httpx.Client) -> None:
    assert client.get("/nope").json()["error_code"] == "ENDPOINT_NOT_FOUND"
    wrong = client.get("/invocations")
    assert wrong.status_code == 405
    assert client.get("/v2/models/iris/infer").json() == {"error": "Method Not Allowed"}


def test_timeouts_slow_bodies_and_readiness(live_serving: LiveServing, tmp_path: Any) -> None:
    """A model slower than the timeout is 504, a body that stalls is 408, and a server whose
    models are not loaded yet says so on every health route."""
    slow = save_all(tmp_path)["slow"]
    settings = ServingSettings(request_timeout_s=0.25)
    app = serving_app({"slow": slow}, live_serving.models.tracking_uri, settings)

    async def not_started() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            answers = [
                await http.get("/ping"),
                await http.get("/v2/health/ready"),
                await http.get("/v2/models/slow/ready"),
                await http.post("/invocations", json={"inputs": [[1, 2, 3]]}),
            ]
            assert (await http.get("/v1/models/slow")).json() == {"name": "slow", "ready": False}
        return [a.status_code for a in answers]

    assert asyncio.run(not_started()) == [503, 400, 400, 503]
    with run_app(app) as url:
        record = {"dataframe_records": [{"a": 1.0, "b": 2.0, "c": 3.0}]}
        answer = httpx.post(f"{url}/invocations", json=record, timeout=10)
        assert answer.status_code == 504
        assert answer.json()["error_code"] == "DEADLINE_EXCEEDED"
        head = (
            b"POST /invocations HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
        )
        stalled = raw_request(url, head)
        assert stalled.startswith(b"HTTP/1.1 408")
        assert b"did not arrive within 0.25 s" in stalled


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_count_requests_errors_batches_and_loaded_models(client: httpx.Client) -> None:
    client.post("/invocations?model=iris", json={"inputs": [[1.0, 2.0, 3.0]]})
    client.post("/invocations?model=broken", json={"inputs": [[1.0, 2.0, 3.0]]})
    client.post(
        "/invocations?model=iris", content=b"{", headers={"content-type": "application/json"}
    )
    answer = client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert (
        'slipway_serving_requests_total{model="iris",protocol="mlflow",status="200",version="1"}'
        in text
    )
    assert (
        'slipway_serving_requests_total{model="iris",protocol="mlflow",status="400",version=""}'
        in text
    )
    assert 'slipway_serving_errors_total{kind="model",model="broken",version=""}' in text
    assert 'slipway_serving_request_duration_seconds_bucket{le="0.1",model="iris"' in text
    assert 'slipway_serving_batch_rows_count{model="iris"' in text
    assert 'slipway_serving_model_loaded{model="iris",version="1"} 1.0' in text


def test_picky_rows_break_only_their_own_request(client: httpx.Client) -> None:
    good = {"dataframe_records": [{"a": 2.0, "b": 0.0, "c": 0.0}]}
    bad = {"dataframe_records": [{"a": BAD_A, "b": 0.0, "c": 0.0}]}
    assert client.post("/invocations?model=picky", json=good).json() == {"predictions": [4.0]}
    answer = client.post("/invocations?model=picky", json=bad)
    assert answer.status_code == 500
    assert f"a row has a == {BAD_A}" in answer.json()["message"]
    np.testing.assert_equal(client.post("/invocations?model=picky", json=good).status_code, 200)


def test_the_serving_package_exports_resolve() -> None:
    import slipway.serving

    assert slipway.serving.__all__ == sorted(slipway.serving.__all__)
    for name in slipway.serving.__all__:
        assert getattr(slipway.serving, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        slipway.serving.nope  # noqa: B018
