"""NVIDIA Triton's own HTTP client (``tritonclient.http``) against the model server: the
Open Inference Protocol as a real client speaks it, JSON and binary tensor data alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as tritonclient_http  # a dev dependency: these tests always run

from .conftest import LiveServing


@pytest.fixture(scope="module")
def triton(live_serving: LiveServing) -> Iterator[Any]:
    client = tritonclient_http.InferenceServerClient(live_serving.url.removeprefix("http://"))
    yield client
    client.close()


def infer_input(name: str, array: np.ndarray, datatype: str, binary: bool) -> Any:
    tensor = tritonclient_http.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_server_and_model_health_and_metadata(triton: Any) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("multi")
    assert not triton.is_model_ready("nope")
    assert triton.get_server_metadata()["name"] == "slipway"
    meta = triton.get_model_metadata("multi")
    assert meta["platform"] == "slipway"
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP64", "shape": [-1, 2]},
        {"name": "n", "datatype": "INT64", "shape": [-1]},
    ]
    assert [o["name"] for o in meta["outputs"]] == ["sum", "count", "label"]
    assert triton.get_model_metadata("iris", model_version="1")["versions"] == ["1"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_fp64_and_int64_with_requested_outputs(triton: Any, binary: bool) -> None:
    x = np.array([[1.0, 2.5], [3.0, -4.0], [0.5, 0.25]])
    n = np.array([1, 2, 3], dtype=np.int64)
    outputs = [
        tritonclient_http.InferRequestedOutput("label", binary_data=binary),
        tritonclient_http.InferRequestedOutput("sum", binary_data=binary),
    ]
    result = triton.infer(
        "multi",
        [infer_input("x", x, "FP64", binary), infer_input("n", n, "INT64", binary)],
        outputs=outputs,
        request_id="req-7",
    )
    np.testing.assert_allclose(result.as_numpy("sum"), x.sum(axis=1) + n)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
    assert labels == ["row-1", "row-2", "row-3"]
    assert result.as_numpy("count") is None  # not requested
    response = result.get_response()
    assert response["id"] == "req-7"
    assert response["model_name"] == "multi"


def test_infer_bytes_inputs_and_all_outputs_in_binary(triton: Any) -> None:
    texts = np.array([b"ab", "héllo".encode()], dtype=np.object_)
    times = np.array([2, 3], dtype=np.int64)
    result = triton.infer(
        "text",
        [infer_input("text", texts, "BYTES", True), infer_input("times", times, "INT64", True)],
    )
    assert result.as_numpy("length").tolist() == [4, 15]
    assert [v.decode() for v in result.as_numpy("upper")] == ["AB", "HÉLLO"]


def test_infer_a_registry_version_and_errors(triton: Any) -> None:
    rows = np.array([[0.1, 0.2, 0.3], [-1.0, -2.0, 0.0]])
    result = triton.infer("iris", [infer_input("input-0", rows, "FP64", False)], model_version="1")
    assert result.get_response()["model_version"] == "1"
    assert result.as_numpy("predict").shape == (2,)
    with pytest.raises(tritonclient_http.InferenceServerException, match="has no version '5'"):
        triton.infer("iris", [infer_input("input-0", rows, "FP64", False)], model_version="5")
    with pytest.raises(tritonclient_http.InferenceServerException, match="missing inputs"):
        triton.infer("multi", [infer_input("x", rows[:, :2], "FP64", False)])
    floats = infer_input("n", np.array([1.5, 2.0]), "FP64", False)
    with pytest.raises(tritonclient_http.InferenceServerException, match=r"\[400\].*'n'"):
        triton.infer("multi", [infer_input("x", rows[:, :2], "FP64", False), floats])
