"""The Open Inference Protocol V2 codec: datatypes, shapes, binary data, the mapping of
tensors to model input and of predictions to output tensors, and the bad requests."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.exceptions import BadRequest
from slipway.models.signature import ColSpec, Schema, TensorSpec
from slipway.serving.codecs import v2


def request(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def tensor(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("BOOL", [True, False], np.bool_),
        ("UINT8", [0, 255], np.uint8),
        ("UINT16", [0, 65535], np.uint16),
        ("UINT32", [0, 2**32 - 1], np.uint32),
        ("UINT64", [0, 2**64 - 1], np.uint64),
        ("INT8", [-128, 127], np.int8),
        ("INT16", [-(2**15), 2**15 - 1], np.int16),
        ("INT32", [-(2**31), 2**31 - 1], np.int32),
        ("INT64", [-(2**63), 2**63 - 1], np.int64),
        ("FP16", [1.5, -2], np.float16),
        ("FP32", [1.5, 2], np.float32),
        ("FP64", [1.5, 2], np.float64),
        ("BYTES", ["a", "héllo"], np.object_),
    ],
)
def test_every_datatype_maps_to_its_numpy_dtype(datatype: str, data: list[Any], dtype: Any) -> None:
    decoded = v2.decode_request(request(tensor("t", [2], datatype, data)))
    array = decoded.inputs["t"]
    assert array.dtype == np.dtype(dtype)
    assert array.tolist() == [dtype(v).item() if dtype is not np.object_ else v for v in data]


def test_flat_and_nested_data_give_the_same_tensor() -> None:
    flat = v2.decode_request(request(tensor("t", [2, 3], "FP64", [1, 2, 3, 4, 5, 6])))
    nested = v2.decode_request(request(tensor("t", [2, 3], "FP64", [[1, 2, 3], [4, 5, 6]])))
    np.testing.assert_array_equal(flat.inputs["t"], nested.inputs["t"])
    assert flat.inputs["t"].shape == (2, 3)


def test_request_fields_id_parameters_and_outputs() -> None:
    decoded = v2.decode_request(
        request(
            tensor("t", [1], "INT64", [1]),
            id="req-1",
            parameters={"offset": 2, "binary_data_output": True, "priority": 1},
            outputs=[{"name": "b", "parameters": {"binary_data": False}}, {"name": "a"}],
        )
    )
    assert decoded.id == "req-1"
    assert decoded.parameters == {"offset": 2}  # the protocol's own keys are not the model's
    assert decoded.binary_output is True
    assert decoded.outputs == [v2.RequestedOutput("b", False), v2.RequestedOutput("a", True)]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (tensor("t", [2, 2], "FP64", [1, 2, 3]), r"shape \[2, 2\] \(4 elements\) but 3 data"),
        (tensor("t", [2], "FP64", ["a", "b"]), "FP64, but its data holds strings"),
        (tensor("t", [2], "INT64", [1.5, 2]), "INT64, but its data holds fractional"),
        (tensor("t", [2], "INT32", [1, None]), "nulls or mixed"),
        (tensor("t", [1], "UINT8", [256]), "out of the range of UINT8"),
        (tensor("t", [1], "INT8", [-129]), "out of the range of INT8"),
        (tensor("t", [2], "BOOL", [1, 0]), "BOOL, but its data holds int64"),
        (tensor("t", [2], "BYTES", ["a", 1]), "BYTES, so its data must be strings"),
        (tensor("t", [2], "FP128", [1, 2]), "datatype 'FP128'"),
        (tensor("t", [-1], "FP64", [1]), "non-negative integers"),
        (tensor("t", "2", "FP64", [1, 2]), "non-negative integers"),
        (tensor("", [1], "FP64", [1]), "non-empty string 'name'"),
        (tensor("t", [2, 2], "FP64", [[1, 2], [3]]), "ragged"),
        ({"name": "t", "shape": [1], "datatype": "FP64"}, "has no 'data'"),
        ("not an object", "must be an object"),
    ],
)
def test_bad_tensors_are_400_naming_the_tensor(spec: Any, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        v2.decode_request(request(spec))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"[]", "must be a JSON object"),
        (json.dumps({"inputs": []}).encode(), "non-empty list"),
        (request(tensor("t", [1], "FP64", [1]), tensor("t", [1], "FP64", [1])), "given twice"),
        (request(tensor("t", [1], "FP64", [1]), outputs=[{"x": 1}]), 'string "name"'),
        (request(tensor("t", [1], "FP64", [1]), parameters=[]), '"parameters" must be'),
        (request(tensor("t", [1], "FP64", [1]), id=5), '"id" must be a string'),
        (b'{"inputs": [', "not valid JSON"),
    ],
)
def test_bad_requests_are_400(raw: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        v2.decode_request(raw)


# -- binary tensor data ------------------------------------------------------------------------


def binary_request(inputs: list[tuple[dict[str, Any], bytes]]) -> tuple[bytes, str]:
    header = json.dumps(
        {"inputs": [{**spec, "parameters": {"binary_data_size": len(raw)}} for spec, raw in inputs]}
    ).encode()
    return header + b"".join(raw for _, raw in inputs), str(len(header))


def test_binary_tensors_of_numbers_and_bytes() -> None:
    numbers = np.arange(6, dtype="<f4").reshape(2, 3)
    words = [b"ab", "é".encode()]
    packed = b"".join(struct.pack("<I", len(w)) + w for w in words)
    body, length = binary_request(
        [
            ({"name": "x", "shape": [2, 3], "datatype": "FP32"}, numbers.tobytes()),
            ({"name": "w", "shape": [2], "datatype": "BYTES"}, packed),
        ]
    )
    decoded = v2.decode_request(body, length)
    np.testing.assert_array_equal(decoded.inputs["x"], numbers)
    assert decoded.inputs["w"].tolist() == ["ab", "é"]


@pytest.mark.parametrize(
    ("raw", "size_delta", "match"),
    [
        (np.zeros(3, "<f8").tobytes(), 0, r"shape \[2\] \(2 elements\) but 3"),
        (b"\x00" * 7, 0, "not a whole number of FP64"),
        (np.zeros(2, "<f8").tobytes(), 8, "runs past the end"),
    ],
)
def test_bad_binary_data_is_400(raw: bytes, size_delta: int, match: str) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw) + size_delta},
                }
            ]
        }
    ).encode()
    with pytest.raises(BadRequest, match=match):
        v2.decode_request(header + raw, str(len(header)))


def test_binary_bytes_left_over_or_a_bad_header_length_are_400() -> None:
    body, length = binary_request(
        [({"name": "x", "shape": [1], "datatype": "INT64"}, np.ones(1, "<i8").tobytes())]
    )
    with pytest.raises(BadRequest, match="no input's binary_data_size accounts for"):
        v2.decode_request(body + b"extra", length)
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
        v2.decode_request(body, "99999")


# -- tensors to model input --------------------------------------------------------------------

COLUMNS = Schema([ColSpec("double", "a"), ColSpec("string", "b")])


def test_named_tensors_become_columns_for_a_column_based_model() -> None:
    data = v2.to_model_input(
        {"a": np.array([1.0, 2.0]), "b": np.array(["x", "y"], dtype=object)}, COLUMNS
    )
    assert isinstance(data, pd.DataFrame)
    assert data.to_dict(orient="list") == {"a": [1.0, 2.0], "b": ["x", "y"]}


def test_one_unnamed_tensor_passes_as_rows_for_a_column_based_model() -> None:
    rows = np.ones((3, 2))
    assert v2.to_model_input({"input-0": rows}, COLUMNS) is rows


def test_a_column_tensor_of_shape_n_by_1_is_a_column() -> None:
    data = v2.to_model_input({"a": np.ones((2, 1)), "b": np.array(["x", "y"])}, COLUMNS)
    assert data["a"].tolist() == [1.0, 1.0]


def test_tensor_based_models_get_arrays_or_dicts() -> None:
    unnamed = Schema([TensorSpec(np.dtype("float64"), (-1, 3))])
    array = np.ones((2, 3))
    assert v2.to_model_input({"whatever": array}, unnamed) is array
    with pytest.raises(BadRequest, match="takes one unnamed tensor"):
        v2.to_model_input({"a": array, "b": array}, unnamed)
    named = Schema(
        [TensorSpec(np.dtype("float64"), (-1,), "x"), TensorSpec(np.dtype("int64"), (-1,), "n")]
    )
    data = v2.to_model_input({"x": np.ones(2), "n": np.ones(2, "int64")}, named)
    assert set(data) == {"x", "n"}
    single = Schema([TensorSpec(np.dtype("float64"), (-1,), "x")])
    assert set(v2.to_model_input({"input": np.ones(2)}, single)) == {"x"}


def test_tensors_of_different_row_counts_cannot_be_columns() -> None:
    with pytest.raises(BadRequest, match="different first dimensions"):
        v2.to_model_input({"a": np.ones(2), "b": np.ones(3)}, COLUMNS)


def test_without_a_signature() -> None:
    assert v2.to_model_input({"x": np.ones((2, 2))}, None).shape == (2, 2)
    frame = v2.to_model_input({"a": np.ones(2), "b": np.zeros(2)}, None)
    assert list(frame.columns) == ["a", "b"]


# -- predictions to outputs --------------------------------------------------------------------


def test_outputs_from_a_dataframe_a_dict_and_an_array() -> None:
    frame = pd.DataFrame({"p": [0.5, 0.25], "label": ["a", "b"], "n": [1, 2]})
    outputs = v2.to_outputs(frame, None)
    assert [(o.name, o.datatype, o.array.shape) for o in outputs] == [
        ("p", "FP64", (2,)),
        ("label", "BYTES", (2,)),
        ("n", "INT64", (2,)),
    ]
    mapping = v2.to_outputs({"s": np.float32([1, 2]), "b": np.array([True, False])}, None)
    assert [(o.name, o.datatype) for o in mapping] == [("s", "FP32"), ("b", "BOOL")]
    (single,) = v2.to_outputs(np.ones((2, 3), "uint8"), None)
    assert (single.name, single.datatype, single.array.shape) == ("predict", "UINT8", (2, 3))
    named = Schema([TensorSpec(np.dtype("float64"), (-1,), "total")])
    assert v2.to_outputs([1.0, 2.0], named)[0].name == "total"


def test_requested_outputs_filter_and_order_and_unknown_ones_are_400() -> None:
    outputs = v2.to_outputs({"a": [1], "b": [2], "c": [3]}, None)
    chosen = v2.select_outputs(
        outputs, [v2.RequestedOutput("c", False), v2.RequestedOutput("a", False)]
    )
    assert [o.name for o in chosen] == ["c", "a"]
    with pytest.raises(BadRequest, match=r"Unknown output.*'nope'.*gives 'a', 'b', 'c'"):
        v2.select_outputs(outputs, [v2.RequestedOutput("nope", False)])


def test_response_json_with_nan_as_null_and_binary_outputs() -> None:
    decoded = v2.decode_request(
        request(
            tensor("t", [1], "FP64", [1]),
            id="r1",
            outputs=[{"name": "b", "parameters": {"binary_data": True}}, {"name": "a"}],
        )
    )
    outputs = v2.select_outputs(
        v2.to_outputs({"a": np.array([np.nan, 1.0]), "b": np.array(["x", "yz"])}, None),
        decoded.outputs,
    )
    body, length = v2.encode_response("m", "3", decoded, outputs)
    assert length is not None
    header = json.loads(body[:length])
    assert (header["model_name"], header["model_version"], header["id"]) == ("m", "3", "r1")
    b, a = header["outputs"]
    assert a == {"name": "a", "datatype": "FP64", "shape": [2], "data": [None, 1.0]}
    assert b["parameters"]["binary_data_size"] == len(body) - length
    assert body[length:] == struct.pack("<I", 1) + b"x" + struct.pack("<I", 2) + b"yz"


def test_json_only_response_has_no_header_length() -> None:
    decoded = v2.decode_request(request(tensor("t", [1], "FP64", [1])))
    body, length = v2.encode_response("m", None, decoded, v2.to_outputs(np.int32([[7]]), None))
    assert length is None
    answer = json.loads(body)
    assert answer["model_version"] == ""
    assert answer["id"]  # a fresh id when the request has none
    assert answer["outputs"] == [
        {"name": "predict", "datatype": "INT32", "shape": [1, 1], "data": [7]}
    ]


def test_tensor_metadata_from_signatures() -> None:
    assert v2.tensor_metadata(COLUMNS, "input") == [
        {"name": "a", "datatype": "FP64", "shape": [-1]},
        {"name": "b", "datatype": "BYTES", "shape": [-1]},
    ]
    unnamed = Schema([TensorSpec(np.dtype("float32"), (-1, 4))])
    assert v2.tensor_metadata(unnamed, "input") == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 4]}
    ]
    assert v2.tensor_metadata(None, "input") == []
