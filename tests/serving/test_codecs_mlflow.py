"""MLflow's scoring protocol: every input format, content types, and the bad payloads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from slipway.exceptions import BadRequest
from slipway.serving.codecs import UnsupportedMediaType, parse_content_type
from slipway.serving.codecs.mlflow import decode_request, encode_response

JSON = "application/json"


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_dataframe_split_with_params() -> None:
    request = decode_request(
        body(
            {
                "dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3, 4.5]]},
                "params": {"top_k": 3},
            }
        ),
        JSON,
    )
    pd.testing.assert_frame_equal(request.data, pd.DataFrame({"a": [1, 3], "b": [2.5, 4.5]}))
    assert request.params == {"top_k": 3}


def test_dataframe_records() -> None:
    request = decode_request(body({"dataframe_records": [{"a": 1, "b": "x"}]}), JSON)
    assert request.data.to_dict(orient="records") == [{"a": 1, "b": "x"}]
    assert request.params is None


def test_instances_rows_and_records() -> None:
    rows = decode_request(body({"instances": [[1, 2], [3, 4]]}), JSON).data
    np.testing.assert_array_equal(rows, np.array([[1, 2], [3, 4]]))
    records = decode_request(body({"instances": [{"a": 1}, {"a": 2}]}), JSON).data
    np.testing.assert_array_equal(records["a"], np.array([1, 2]))


def test_inputs_tensor_and_named_tensors() -> None:
    tensor = decode_request(body({"inputs": [[1.0, 2.0]]}), JSON).data
    assert tensor.shape == (1, 2)
    named = decode_request(body({"inputs": {"x": [1, 2], "y": [[1], [2]]}}), JSON).data
    assert set(named) == {"x", "y"}
    assert named["y"].shape == (2, 1)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON; charset=UTF-8"]
)
def test_json_with_utf8_charset_is_accepted(content_type: str) -> None:
    data = decode_request(body({"inputs": [1, 2]}), content_type).data
    assert list(data) == [1, 2]


def test_csv_with_header() -> None:
    request = decode_request(b"a,b\n1,x\n2,y\n", "text/csv")
    assert request.data.to_dict(orient="list") == {"a": [1, 2], "b": ["x", "y"]}
    assert request.params is None


@pytest.mark.parametrize(
    ("content_type", "match"),
    [
        ("text/plain", "Unsupported Content-Type 'text/plain'"),
        (None, "Unsupported Content-Type '\\(none\\)'"),
        ("application/json; charset=latin-1", "charset 'latin-1'"),
        ("application/json; format=pandas-split", "Unrecognized Content-Type parameter"),
        ("application/x-parquet", "send application/json or text/csv"),
    ],
)
def test_unsupported_media_types_are_415(content_type: str | None, match: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=match) as info:
        decode_request(body({"inputs": [1]}), content_type)
    assert info.value.http_status == 415


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"{not json", "not valid JSON: Expecting property name .* line 1, column 2"),
        (b"", "empty"),
        (b"\xff\xfe", "not valid UTF-8"),
        (body([{"a": 1}]), "is a JSON list"),
        (body("text"), "must be a JSON object"),
        (body({}), "needs one of"),
        (body({"inputs": [1], "instances": [1]}), "has both 'instances' and 'inputs'"),
        (body({"inputs": [1], "extra": 1}), "Unknown key"),
        (body({"inputs": [1], "params": [1]}), "'params' must be a JSON object"),
        (body({"dataframe_split": {"columns": ["a"]}}), "'dataframe_split' does not hold"),
        (body({"dataframe_records": [1, 2]}), "list of records"),
        (body({"dataframe_records": []}), "no rows"),
        (body({"dataframe_split": {"columns": ["a"], "data": []}}), "no rows"),
        (body({"instances": []}), "no rows"),
        (body({"inputs": {"x": []}}), "no rows"),
    ],
)
def test_bad_json_payloads_are_400_naming_the_problem(raw: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match) as info:
        decode_request(raw, JSON)
    assert info.value.http_status == 400
    assert info.value.error_code == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("raw", "match"),
    [(b"", "CSV body is empty"), (b"a,b\n", "no rows"), (b'a,b\n"1,2\n', "not valid CSV")],
)
def test_bad_csv_is_400(raw: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        decode_request(raw, "text/csv")


def test_response_is_predictions_with_nan_as_null() -> None:
    frame = pd.DataFrame({"p": [0.5, float("nan")], "label": ["a", "b"]})
    assert json.loads(encode_response(frame)) == {
        "predictions": [{"p": 0.5, "label": "a"}, {"p": None, "label": "b"}]
    }
    assert json.loads(encode_response(np.array([[1, 2]]))) == {"predictions": [[1, 2]]}


def test_content_type_parser() -> None:
    assert parse_content_type('Text/CSV; Charset="UTF-8"') == ("text/csv", {"charset": "utf-8"})
    assert parse_content_type(None) == ("", {})
