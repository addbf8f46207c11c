"""KServe V1: ``{"instances": [...]}`` rows in, ``{"predictions": [...]}`` out."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.exceptions import BadRequest
from slipway.models.signature import ColSpec, Schema, TensorSpec
from slipway.serving.codecs import v1

COLUMNS = Schema([ColSpec("double", "a"), ColSpec("string", "b")])


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_records_become_a_dataframe() -> None:
    decoded = v1.decode_request(body({"instances": [{"a": 1.0, "b": "x"}]}), COLUMNS)
    assert isinstance(decoded.data, pd.DataFrame)
    assert decoded.data.to_dict(orient="records") == [{"a": 1.0, "b": "x"}]
    assert decoded.params is None


def test_list_rows_take_the_signature_column_order() -> None:
    decoded = v1.decode_request(body({"instances": [[1.0, "x"], [2.0, "y"]]}), COLUMNS)
    assert decoded.data.to_dict(orient="list") == {"a": [1.0, 2.0], "b": ["x", "y"]}


def test_rows_for_tensor_models_and_models_without_signature() -> None:
    tensor = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    data = v1.decode_request(body({"instances": [[1, 2], [3, 4]]}), tensor).data
    assert isinstance(data, np.ndarray)
    assert data.shape == (2, 2)
    named = Schema([TensorSpec(np.dtype("float64"), (-1,), "x")])
    records = v1.decode_request(body({"instances": [{"x": 1}, {"x": 2}]}), named).data
    assert records["x"].tolist() == [1, 2]
    assert v1.decode_request(body({"instances": [1, 2]}), None).data.tolist() == [1, 2]


def test_parameters_are_params() -> None:
    decoded = v1.decode_request(body({"instances": [[1]], "parameters": {"k": 1}}), None)
    assert decoded.params == {"k": 1}


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"inputs": [1]}, r'\{"instances": \[...\]\}'),
        ([1, 2], r'\{"instances": \[...\]\}'),
        ({"instances": []}, "no rows"),
        ({"instances": {"a": 1}}, "must be a list"),
        ({"instances": [[1]], "extra": 1}, "Unknown key"),
        ({"instances": [[1]], "parameters": 1}, '"parameters" must be'),
        ({"instances": [{"a": 1}, [1]]}, "not a mix"),
        ({"instances": [[1, 2], [1]]}, "ragged"),
    ],
)
def test_bad_requests_are_400(payload: Any, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        v1.decode_request(body(payload), None)


def test_tensor_records_need_the_same_keys() -> None:
    named = Schema([TensorSpec(np.dtype("float64"), (-1,), "x")])
    with pytest.raises(BadRequest, match="same keys"):
        v1.decode_request(body({"instances": [{"x": 1}, {"y": 2}]}), named)


def test_response() -> None:
    assert json.loads(v1.encode_response(np.array([1, 0]))) == {"predictions": [1, 0]}
