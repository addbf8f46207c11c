"""Signatures: inference and JSON identical to MLflow's, read both ways, and clear errors."""

from __future__ import annotations

import datetime as dt
import json
import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.exceptions import InvalidParameterValue
from slipway.models.signature import (
    AnyType,
    Array,
    ColSpec,
    DataType,
    Map,
    ModelSignature,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    SparkMLVector,
    TensorSpec,
    infer_signature,
)


def mlflow_signature(data: Any, output: Any = None, params: Any = None) -> dict[str, Any]:
    """MLflow's signature for the same data, as its MLmodel dict."""
    from mlflow.models import infer_signature as mlflow_infer

    with warnings.catch_warnings():  # MLflow warns about integer columns
        warnings.simplefilter("ignore")
        return dict(mlflow_infer(data, output, params=params).to_dict())


INPUTS: dict[str, Any] = {
    "frame_of_each_type": pd.DataFrame(
        {
            "long": [1, 2],
            "double": [1.0, 2.5],
            "string": ["a", "b"],
            "bool": [True, False],
            "datetime": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "int32": np.array([1, 2], dtype=np.int32),
            "float32": np.array([1, 2], dtype=np.float32),
            "uint8": np.array([1, 2], dtype=np.uint8),
            "bytes": [b"ab", b"cd"],
            "nullable_int": pd.array([1, None], dtype="Int64"),
            "category": pd.Categorical(["x", "y"]),
        }
    ),
    "frame_with_missing_values": pd.DataFrame({"x": [1.0, None], "y": ["a", None]}),
    "frame_with_default_header": pd.DataFrame([[1, 2.0]]),
    "frame_of_lists_and_dicts": pd.DataFrame({"l": [[1, 2], [3]], "d": [{"a": 1}, {"b": "x"}]}),
    "numpy_float32_2d": np.zeros((3, 4), dtype=np.float32),
    "numpy_int8_3d": np.zeros((2, 2, 2), dtype=np.int8),
    "numpy_strings": np.array(["a", "bb"]),
    "numpy_bytes": np.array([b"a"]),
    "dict_of_named_tensors": {"a": np.zeros((2, 3)), "b": np.array(["x", "y"])},
    "dict_of_lists": {"a": [1, 2], "b": ["x", "y"], "c": [[1.0], []]},
    "dict_of_scalars_with_none": {"a": 1, "b": "x", "c": None, "d": {}},
    "list_of_dicts_with_none": [{"a": 1, "b": "x"}, {"a": 2, "b": None}],
    "records_with_different_keys": [{"a": 1}, {"b": 2.0}],
    "nested_records": [{"a": [1, 2], "o": {"k": 1.5}}, {"a": [], "o": {"j": "s"}}],
    "records_with_null_objects": [{"o": None}, {"o": {"x": 1}}],
    "list_of_floats": [1.0, 2.0],
    "list_of_strings": ["a", "b"],
    "list_of_lists": [[1, 2], [3, 4]],
    "list_of_nones": [None, None],
    "empty_list": [],
    "series_with_nan": pd.Series([1.0, None], name="x"),
    "unnamed_series": pd.Series([1, 2]),
    "int": 3,
    "float": 2.5,
    "bool": True,
    "string": "hello",
    "bytes": b"xx",
    "datetime": dt.datetime(2024, 1, 1),
    "numpy_float32_scalar": np.float32(1.0),
    "numpy_int32_scalar": np.int32(3),
    # MLflow cannot infer these and falls back to the catch-all schema; so do we.
    "list_mixing_types": [1, "a"],
    "numpy_0d": np.array(5),
    "uint64_tensor_is_fine": np.array([1, 2], dtype=np.uint64),
}

PARAMS: dict[str, Any] = {
    "temperature": 0.5,
    "n": 3,
    "flag": True,
    "name": "x",
    "ints": [1, 2],
    "floats": [0.5, 1.0],
    "strings": ["a", "b"],
    "when": dt.datetime(2024, 1, 1),
    "dates": [dt.date(2024, 1, 1)],
    "empty": [],
    "numpy_float": np.float32(0.5),
    "object": {"a": 1, "b": [1.0]},
}


@pytest.mark.parametrize("data", INPUTS.values(), ids=INPUTS.keys())
def test_inferred_json_is_byte_for_byte_mlflows(data: Any) -> None:
    ours = infer_signature(data, data).to_dict()
    assert json.dumps(ours) == json.dumps(mlflow_signature(data, data))


def test_inferred_params_json_is_byte_for_byte_mlflows() -> None:
    ours = infer_signature(pd.DataFrame({"x": [1.0]}), params=PARAMS).to_dict()
    theirs = mlflow_signature(pd.DataFrame({"x": [1.0]}), params=PARAMS)
    assert ours["params"] == theirs["params"]
    first = json.loads(str(ours["params"]))[0]
    assert list(first) == ["name", "default", "shape", "type"]  # MLflow's key order
    assert first == {"name": "temperature", "default": 0.5, "shape": None, "type": "double"}


def test_hand_built_specs_write_mlflows_forms() -> None:
    signature = ModelSignature(
        Schema([ColSpec("double", "x"), ColSpec(DataType.string, "s", required=False)]),
        Schema([TensorSpec(np.dtype("float64"), (-1, 4))]),
        ParamSchema([ParamSpec("alpha", "double", 1), ParamSpec("k", DataType.long, [1], (-1,))]),
    )
    assert signature.to_dict() == {
        "inputs": '[{"type": "double", "name": "x", "required": true}, '
        '{"type": "string", "name": "s", "required": false}]',
        "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]',
        "params": '[{"name": "alpha", "default": 1.0, "shape": null, "type": "double"}, '
        '{"name": "k", "default": [1], "shape": [-1], "type": "long"}]',
    }
    named = TensorSpec(np.dtype("<U7"), [-1], "text")
    assert named.to_dict() == {
        "name": "text",
        "type": "tensor",
        "tensor-spec": {"dtype": "str", "shape": [-1]},
    }


@pytest.mark.parametrize(
    "data",
    [
        INPUTS["frame_of_each_type"],
        INPUTS["dict_of_named_tensors"],
        INPUTS["nested_records"],
        INPUTS["dict_of_scalars_with_none"],
    ],
    ids=["columns", "tensors", "nested", "any"],
)
def test_mlflow_reads_ours_and_we_read_mlflows(data: Any) -> None:
    from mlflow.models import ModelSignature as MlflowSignature

    ours = infer_signature(data, data, params=PARAMS)
    theirs = mlflow_signature(data, data, params=PARAMS)
    assert MlflowSignature.from_dict(ours.to_dict()).to_dict() == ours.to_dict()
    read = ModelSignature.from_dict(theirs)
    assert read.to_dict() == theirs
    assert read == ours


def test_reading_types_mlflow_writes_by_hand() -> None:
    columns = [
        {"type": "array", "items": {"type": "map", "values": {"type": "double"}}, "name": "a"},
        {"type": "sparkml_vector", "name": "v", "required": True},
        {
            "type": "object",
            "properties": {"z": {"type": "any", "required": False}, "b": {"type": "binary"}},
            "name": "o",
            "required": False,
        },
    ]
    schema = Schema.from_json(json.dumps(columns))
    assert schema.input_types() == [
        Array(Map(DataType.double)),
        SparkMLVector(),
        Object([Property("b", DataType.binary), Property("z", AnyType(), required=False)]),
    ]
    assert schema.required_input_names() == ["a", "v"]
    assert schema.optional_input_names() == ["o"]
    # Object properties come back sorted by name, as MLflow writes them.
    assert list(json.loads(schema.to_json())[2]["properties"]) == ["b", "z"]


def test_schema_queries() -> None:
    named = Schema([ColSpec("long", "a"), ColSpec("double", "b", required=False)])
    assert not named.is_tensor_spec()
    assert named.has_input_names()
    assert named.input_names() == ["a", "b"]
    assert list(named.input_dict()) == ["a", "b"]
    assert len(named) == 2
    assert [spec.name for spec in named] == ["a", "b"]
    tensor = Schema([TensorSpec("float32", (-1, 2))])
    assert tensor.is_tensor_spec()
    assert not tensor.has_input_names()
    assert tensor.input_names() == [0]
    assert tensor.inputs[0].type == np.dtype("float32")
    assert Schema.from_json(named.to_json()) == named
    assert named.to_dict() == json.loads(named.to_json())


def test_data_type_conversions() -> None:
    assert DataType.integer.to_numpy() == np.dtype("int32")
    assert DataType.string.to_pandas() is object
    assert DataType.datetime.to_python() is dt.date
    assert DataType.from_name("double") is DataType.double
    assert DataType(5) is DataType.double  # MLflow's enum values
    with pytest.raises(InvalidParameterValue, match="Unsupported type 'decimal'"):
        DataType.from_name("decimal")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Schema([]), "non-empty list"),
        (lambda: Schema([ColSpec("long", "a"), ColSpec("long")]), "all named or all unnamed"),
        (lambda: Schema([ColSpec("long", "a"), TensorSpec("int64", (-1,), "b")]), "not a mix"),
        (lambda: Schema([ColSpec("long", "a"), ColSpec("double", "a")]), "Duplicate input"),
        (lambda: Schema([ColSpec("long", required=False)]), "cannot be optional"),
        (
            lambda: Schema([TensorSpec("int64", (-1,)), TensorSpec("int64", (-1,))]),
            "must name each",
        ),
        (lambda: ColSpec("decimal"), "Unsupported type"),
        (lambda: ColSpec(3), "Unsupported column type"),  # type: ignore[arg-type]
        (lambda: TensorSpec("no-such-dtype", (-1,)), "Unsupported tensor dtype"),
        (lambda: TensorSpec("float32", (-1, "4")), "shape must be a list of integers"),
        (lambda: Object([]), "empty properties"),
        (lambda: Object([Property("a", DataType.long)] * 2), "duplicated property"),
        (lambda: ParamSpec("p", "binary", b"x"), "binary parameters are not supported"),
        (lambda: ParamSpec("p", "long", 1.5), "can not safely convert float 1.5 to long"),
        (lambda: ParamSpec("p", "long", True), "can not safely convert bool"),
        (lambda: ParamSpec("p", "long", [1], (2,)), "shape must be None"),
        (lambda: ParamSpec("p", "long", 1, (-1,)), "1-D list"),
        (lambda: ParamSpec("p", "datetime", "not a date"), "can not convert"),
        (lambda: ParamSchema([ParamSpec("p", "long", 1)] * 2), "Duplicated parameters"),
        (lambda: ModelSignature(), "At least one"),
        (lambda: ModelSignature(inputs=[ColSpec("long")]), "must be a Schema"),  # type: ignore[arg-type]
    ],
)
def test_bad_specs_are_refused_clearly(build: Any, message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        build()


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ({"inputs": "not json"}, "not valid JSON"),
        ({"inputs": '{"type": "double"}'}, "JSON list of objects"),
        ({"inputs": '[{"name": "x"}]'}, "'type' key"),
        ({"inputs": '[{"type": "double", "required": "yes"}]'}, "'required' must be a boolean"),
        ({"inputs": '[{"type": "tensor"}]'}, "Missing keys in TensorSpec"),
        ({"inputs": '[{"type": "array"}]'}, "Expected key 'items'"),
        (
            {
                "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "f4", "shape": [-1]}}, '
                '{"type": "long", "name": "x"}]'
            },
            "not a mix",
        ),
        ({"params": '[{"name": "p", "type": "long"}]'}, "Missing keys in ParamSpec"),
        ({"params": 7}, "must be a JSON string"),
    ],
)
def test_malformed_signature_json_is_refused_clearly(
    signature: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        ModelSignature.from_dict(signature)


def test_param_defaults_are_stored_converted() -> None:
    spec = ParamSpec("when", "datetime", "2024-01-02T03:04:05")
    assert spec.default == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert spec.to_dict()["default"] == "2024-01-02T03:04:05"
    assert ParamSpec("x", "double", np.int64(2)).default == 2.0
    assert ParamSpec.from_json_dict({"name": "y", "dtype": "long", "default": 1}).default == 1


def test_uninferable_data_gets_the_catch_all_schema(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="slipway.models.signature"):
        signature = infer_signature([1, "a"], object())
    assert signature.inputs == Schema([ColSpec(AnyType())])
    assert signature.outputs == Schema([ColSpec(AnyType())])
    assert "Failed to infer the schema of the inputs" in caplog.text


def test_uninferable_params_are_an_error() -> None:
    with pytest.raises(InvalidParameterValue, match="'bad'"):
        infer_signature(pd.DataFrame({"x": [1.0]}), params={"bad": [[1, 2]], "ok": 1})
    with pytest.raises(InvalidParameterValue, match="At least one"):
        infer_signature()
