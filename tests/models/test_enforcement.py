"""Schema and parameter enforcement: what passes (and is converted), what is refused and how."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.exceptions import InvalidParameterValue
from slipway.models.enforcement import enforce_params, enforce_schema, enforce_signature
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
    TensorSpec,
    infer_signature,
)

COLUMNS = Schema(
    [ColSpec("double", "x"), ColSpec("long", "n"), ColSpec("string", "s", required=False)]
)
TYPED = Schema(
    [
        ColSpec("float", "f"),
        ColSpec("integer", "i"),
        ColSpec("boolean", "b"),
        ColSpec("datetime", "d"),
        ColSpec("binary", "y"),
    ]
)
IMAGE = Schema([TensorSpec(np.dtype("float32"), (-1, 3))])
NAMED = Schema([TensorSpec(np.dtype("int32"), (-1,), "ids"), TensorSpec("str", (-1,), "text")])
PARAMS = ParamSchema(
    [
        ParamSpec("temperature", "double", 0.5),
        ParamSpec("top_k", "long", 3),
        ParamSpec("stop", "string", ["\n"], (-1,)),
        ParamSpec("options", Object([Property("mode", DataType.string)]), {"mode": "fast"}),
    ]
)


def frame(**columns: Any) -> pd.DataFrame:
    return pd.DataFrame(columns)


# -- columns: what passes ----------------------------------------------------------------------


def test_safe_casts_convert_and_order_columns_as_the_schema() -> None:
    data = frame(n=np.array([1, 2], dtype=np.int32), x=np.array([1, 2], dtype=np.int64))
    result = enforce_schema(data, COLUMNS)
    assert list(result.columns) == ["x", "n"]  # schema order; the optional column left out
    assert result["x"].dtype == np.float64
    assert result["x"].tolist() == [1.0, 2.0]
    assert result["n"].dtype == np.int64


@pytest.mark.parametrize(
    ("values", "target", "expected"),
    [
        (np.array([1.5], dtype=np.float32), "double", np.float64),
        (np.array([7], dtype=np.int16), "float", np.float32),
        (np.array([7], dtype=np.uint32), "long", np.int64),
        (np.array([1, 0]), "float", np.float32),  # int64 0/1 into float: MLflow allows it
        (pd.array([4, 5], dtype="Int64"), "long", np.int64),
        (pd.array([1.5, None], dtype="Float64"), "double", np.float64),
    ],
)
def test_lossless_casts_are_made(values: Any, target: str, expected: Any) -> None:
    result = enforce_schema(frame(v=values), Schema([ColSpec(target, "v")]))
    assert result["v"].dtype == expected


def test_extra_columns_are_dropped_with_a_log_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="slipway.models.enforcement"):
        result = enforce_schema(frame(x=[1.0], n=[1], extra=["?"]), COLUMNS)
    assert "extra" not in result.columns
    assert "['extra']" in caplog.text
    assert "will be ignored" in caplog.text


@pytest.mark.parametrize(
    "data",
    [
        {"x": 1.0, "n": 3},  # a dict of scalars is one row
        {"x": [1.0], "n": [3]},  # a dict of lists is columns
        [{"x": 1.0, "n": 3}],  # records
        np.array([[1.0, 3.0]]),  # positional: takes the schema's names
        [[1.0, 3]],  # rows without names
    ],
    ids=["dict-row", "dict-columns", "records", "numpy", "rows"],
)
def test_other_containers_become_a_frame_with_the_schemas_names(data: Any) -> None:
    result = enforce_schema(data, Schema([ColSpec("double", "x"), ColSpec("double", "n")]))
    assert list(result.columns) == ["x", "n"]
    assert result.iloc[0].tolist() == [1.0, 3.0]


def test_a_scalar_or_series_fills_a_one_column_schema() -> None:
    one = Schema([ColSpec("double", "x")])
    assert enforce_schema(3.0, one)["x"].tolist() == [3.0]
    assert enforce_schema(pd.Series([1.0, 2.0]), one)["x"].tolist() == [1.0, 2.0]


def test_unnamed_columns_are_checked_by_position() -> None:
    schema = Schema([ColSpec("double"), ColSpec("string")])
    result = enforce_schema([[1.0, "a", "ignored"]], schema)
    assert result.shape == (1, 2)
    with pytest.raises(InvalidParameterValue, match="declares 2 inputs but the provided"):
        enforce_schema([1.0], schema)


def test_typed_columns_pass_and_parse() -> None:
    data = frame(
        f=np.array([1.5], dtype=np.float32),
        i=np.array([1], dtype=np.int8),
        b=pd.Series([None], dtype=object),
        d=["2024-01-02"],
        y=[b"\x00"],
    )
    result = enforce_schema(data, TYPED)
    assert result["i"].dtype == np.int32
    assert result["b"].tolist() == [None]  # a missing boolean stays missing
    assert result["d"].tolist() == [pd.Timestamp("2024-01-02")]
    assert result["y"].tolist() == [b"\x00"]


def test_nested_columns_are_checked_value_by_value() -> None:
    schema = Schema(
        [
            ColSpec(Array(DataType.long), "ids"),
            ColSpec(Object([Property("k", DataType.string)]), "meta", required=False),
            ColSpec(Map(DataType.double), "scores", required=False),
            ColSpec(AnyType(), "anything"),
        ]
    )
    good = {"ids": [1, 2], "meta": {"k": "v"}, "scores": {"a": 1}, "anything": object}
    assert enforce_schema(good, schema)["ids"].tolist() == [[1, 2]]
    for bad, message in [
        ({"ids": [1, "a"], "anything": 1}, "Column 'ids': Expected a value of type long"),
        ({"ids": [1], "meta": {"z": "v"}, "anything": 1}, "Missing required properties: \\['k'\\]"),
        ({"ids": [1], "scores": {"a": "x"}, "anything": 1}, "Column 'scores'"),
        ({"ids": 3, "anything": 1}, "Expected a list or numpy array, got int"),
    ]:
        with pytest.raises(InvalidParameterValue, match=message):
            enforce_schema(bad, schema)


# -- columns: what is refused ------------------------------------------------------------------


def test_missing_required_columns_are_named() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        enforce_schema(frame(s=["a"], other=[1]), COLUMNS)
    assert caught.value.message == (
        "Model is missing inputs ['x', 'n']. Note that there were extra inputs: ['other']."
    )
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("values", "target", "message"),
    [
        ([1.5], "integer", "Can not safely convert float64 to int32."),
        (np.array([1.5], dtype=np.float64), "float", "Can not safely convert float64 to float32."),
        ([True], "long", "Can not safely convert bool to int64."),
        (np.array([2**40]), "integer", "Can not safely convert int64 to int32."),
        (np.array([5], dtype=np.uint64), "long", "Can not safely convert uint64 to int64."),
        ([1], "string", "Can not safely convert int64 to string."),
        (pd.Categorical(["a"]), "double", "Can not safely convert category to float64."),
        ([1], "datetime", "Can not safely convert int64 to datetime."),
    ],
)
def test_unsafe_casts_name_the_column_and_both_types(
    values: Any, target: str, message: str
) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        enforce_schema(frame(x=values), Schema([ColSpec(target, "x")]))
    assert caught.value.message.startswith(f"Incompatible input types for column x. {message}")


@pytest.mark.parametrize("values", [[1.0, None], pd.array([1, None], dtype="Int64")])
def test_missing_values_in_an_integer_column_are_refused_clearly(values: Any) -> None:
    with pytest.raises(InvalidParameterValue, match="missing values \\(NaN\\)") as caught:
        enforce_schema(frame(n=values, x=[1.0, 2.0]), COLUMNS)
    assert "column n" in caught.value.message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "needs input data"),
        (object(), "Expected a DataFrame, or data convertible to one"),
        (np.zeros((1, 2, 2)), "3-D array cannot be read as columns"),
        ({"x": [1.0, 2.0], "n": [1]}, "could not be read as a DataFrame"),
        (pd.DataFrame([[1.0, 2]], columns=["x", "x"]), "duplicate columns: \\['x'\\]"),
        (frame(x=[1.0], n=[1], s=[1]), "convert int64 to string"),
    ],
)
def test_bad_input_is_refused_clearly(data: Any, message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        enforce_schema(data, COLUMNS)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("b", ["yes"], "column b. Can not safely convert str to bool"),
        ("b", [True, "yes"], "Column 'b': Expected a value of type boolean, got str 'yes'"),
        ("d", ["never"], "column 'd' from type .* to datetime"),
        ("d", pd.to_datetime(["2024-01-01"]).tz_localize("UTC"), "timezone-aware"),
    ],
)
def test_bad_booleans_and_datetimes_are_refused_clearly(
    column: str, values: Any, message: str
) -> None:
    good: dict[str, Any] = {
        "f": np.array([1.0], dtype=np.float32),
        "i": np.array([1], dtype=np.int32),
        "b": [True],
        "d": ["2024-01-01"],
        "y": [b""],
    }
    rows = len(values)
    data = frame(**{name: list(v) * rows for name, v in good.items()})
    data[column] = pd.Series(values, dtype=object if column == "b" else None)
    with pytest.raises(InvalidParameterValue, match=message):
        enforce_schema(data, TYPED)


@pytest.mark.parametrize(
    ("data", "schema"),
    [
        (frame(n=[1]), COLUMNS),
        (frame(x=[1.0], n=[1.5]), COLUMNS),
        (np.zeros((2, 4), dtype=np.float32), IMAGE),
    ],
)
def test_mlflow_refuses_what_we_refuse(data: Any, schema: Schema) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.models.utils import _enforce_schema
    from mlflow.types import Schema as MlflowSchema

    with pytest.raises(InvalidParameterValue):
        enforce_schema(data, schema)
    with pytest.raises(MlflowException):
        _enforce_schema(data, MlflowSchema.from_json(schema.to_json()))


def test_the_catch_all_schema_takes_anything_as_it_is() -> None:
    data = {"odd": {1, 2}}
    assert enforce_schema(data, Schema([ColSpec(AnyType())])) is data
    assert enforce_schema(data, None) is data


# -- tensors -----------------------------------------------------------------------------------


def test_tensors_pass_and_cast_safely() -> None:
    exact = np.zeros((2, 3), dtype=np.float32)
    assert enforce_schema(exact, IMAGE) is exact
    widened = enforce_schema(np.zeros((2, 3), dtype=np.int16), IMAGE)
    assert widened.dtype == np.float32
    from_lists = enforce_schema([[1.0, 2.0, 3.0]], IMAGE)  # Python floats have no width
    assert from_lists.dtype == np.float32
    assert from_lists.shape == (1, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            np.zeros((2, 4), dtype=np.float32),
            "Shape of input \\(2, 4\\) does not match .*\\(-1, 3\\)",
        ),
        (np.zeros((2,), dtype=np.float32), "Shape of input \\(2,\\) does not match"),
        (np.zeros((2, 3), dtype=np.float64), "dtype of input float64 does not match .* float32"),
        (np.zeros((2, 3), dtype=bool), "dtype of input bool"),
        ([[1, 2], [3]], "could not be read as an array"),
        ("text", "takes a numpy array"),
        (pd.DataFrame(np.zeros((1, 4))), "would need shape \\(-1, 4\\)"),
        (pd.DataFrame(), "empty"),
    ],
)
def test_tensor_errors_name_shapes_and_dtypes(data: Any, message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        enforce_schema(data, IMAGE)


def test_named_tensors() -> None:
    result = enforce_schema({"ids": [1, 2], "text": ["a", "b"], "extra": [0]}, NAMED)
    assert set(result) == {"ids", "text"}
    assert result["ids"].dtype == np.int32
    assert result["text"].tolist() == ["a", "b"]
    from_frame = enforce_schema(pd.DataFrame({"ids": [1, 2], "text": ["a", "b"]}), NAMED)
    assert from_frame["text"].tolist() == ["a", "b"]
    with pytest.raises(InvalidParameterValue, match="Model is missing inputs \\['text'\\]"):
        enforce_schema({"ids": [1]}, NAMED)
    with pytest.raises(InvalidParameterValue, match=r"'ids' int64 does not match .* int32"):
        enforce_schema({"ids": [2**40], "text": ["a"]}, NAMED)
    with pytest.raises(InvalidParameterValue, match="'ids' \\(2, 1\\) does not match"):
        enforce_schema({"ids": np.zeros((2, 1), dtype=np.int32), "text": ["a"]}, NAMED)
    with pytest.raises(InvalidParameterValue, match="takes a dict"):
        enforce_schema("text", NAMED)


def test_frame_columns_of_lists_fill_fixed_tensor_shapes() -> None:
    schema = Schema([TensorSpec(np.dtype("float32"), (-1, 2), "pixels")])
    result = enforce_schema(pd.DataFrame({"pixels": [[1.0, 2.0], [3.0, 4.0]]}), schema)
    assert result["pixels"].shape == (2, 2)
    assert result["pixels"].dtype == np.float32
    with pytest.raises(InvalidParameterValue, match="could not be shaped to \\(-1, 2\\)"):
        enforce_schema(pd.DataFrame({"pixels": [[1.0, 2.0], [3.0]]}), schema)


# -- params ------------------------------------------------------------------------------------


def test_params_get_defaults_and_conversions(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="slipway.models.enforcement"):
        result = enforce_params({"temperature": 1, "unknown": 2}, PARAMS)
    assert result == {
        "temperature": 1.0,
        "top_k": 3,
        "stop": ["\n"],
        "options": {"mode": "fast"},
    }
    assert isinstance(result["temperature"], float)
    assert "Unrecognized params ['unknown'] are ignored" in caplog.text


def test_defaults_are_copies() -> None:
    first = enforce_params(None, PARAMS)
    assert first is not None
    first["stop"].append("mutated")
    again = enforce_params(None, PARAMS)
    assert again is not None
    assert again["stop"] == ["\n"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": "hot"}, "'temperature': can not safely convert str 'hot' to double"),
        ({"top_k": 2.5}, "'top_k': can not safely convert float 2.5 to long"),
        ({"stop": "x"}, "'stop': value must be a 1-D list"),
        ({"options": {"mode": 1}}, "'options': Property 'mode'"),
        ([("temperature", 1.0)], "Parameters must be a dictionary"),
    ],
)
def test_bad_params_are_refused_clearly(params: Any, message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        enforce_params(params, PARAMS)


def test_params_without_a_param_schema_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="slipway.models.enforcement"):
        assert enforce_params({"a": 1}, None) == {}
    assert "defines no parameters" in caplog.text
    assert enforce_params(None, None) is None


def test_enforce_signature_checks_data_and_params_together() -> None:
    data = pd.DataFrame({"x": [1, 2]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        signature = infer_signature(pd.DataFrame({"x": [1.0]}), params={"scale": 2.0})
    enforced, params = enforce_signature(data, signature, {"scale": 3})
    assert enforced["x"].dtype == np.float64
    assert params == {"scale": 3.0}
    assert enforce_signature(data, None, None) == (data, None)
    outputs_only = ModelSignature(outputs=Schema([ColSpec("double")]))
    assert enforce_signature(data, outputs_only)[0] is data


def test_a_frame_that_already_conforms_is_passed_through_uncopied() -> None:
    schema = Schema([ColSpec("double", "a"), ColSpec("long", "b")])
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": np.array([1, 2], dtype="int64")})
    assert enforce_schema(frame, schema) is frame
    # anything to convert, reorder or drop goes the slow way and leaves the input alone
    as_int = pd.DataFrame({"a": np.array([1, 2], dtype="int64"), "b": [3, 4]})
    converted = enforce_schema(as_int, schema)
    assert converted is not as_int
    assert converted["a"].dtype == np.float64
    assert as_int["a"].dtype == np.int64
    reordered = enforce_schema(frame[["b", "a"]], schema)
    assert list(reordered.columns) == ["a", "b"]
    extra = enforce_schema(frame.assign(c=0), schema)
    assert list(extra.columns) == ["a", "b"]
