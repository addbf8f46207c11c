"""Batch prediction from files: every input format, the errors bad input gets, the JSON written,
and the ``local`` manager end to end on real models saved with the sklearn and pyfunc flavors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.exceptions import (
    InvalidParameterValue,
    InvalidState,
    ResourceDoesNotExist,
    SlipwayError,
)
from slipway.flavors import pyfunc
from slipway.models import infer_signature
from slipway.models import predict as predicting
from slipway.models.predict import jsonable, parse_json_input, parse_params, read_input

FRAME = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [10, 20, 30]})


def write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# -- input formats ---------------------------------------------------------------------------


def test_csv_is_a_dataframe(tmp_path: Path) -> None:
    data, params = read_input(write(tmp_path, "in.csv", FRAME.to_csv(index=False)))
    pd.testing.assert_frame_equal(data, FRAME)
    assert params is None


def test_parquet_is_a_dataframe(tmp_path: Path) -> None:
    FRAME.to_parquet(tmp_path / "in.parquet")
    data, _ = read_input(tmp_path / "in.parquet")
    pd.testing.assert_frame_equal(data, FRAME)


def test_dataframe_split_keeps_columns_index_and_params(tmp_path: Path) -> None:
    body = {
        "dataframe_split": {"columns": ["x", "y"], "index": [7, 8], "data": [[1.5, 1], [2.5, 2]]},
        "params": {"scale": 3},
    }
    data, params = read_input(write(tmp_path, "in.JSON", body))  # the extension's case is free
    expected = pd.DataFrame({"x": [1.5, 2.5], "y": [1, 2]}, index=[7, 8])
    pd.testing.assert_frame_equal(data, expected)
    assert params == {"scale": 3}


def test_dataframe_records_and_a_plain_list_of_records_are_the_same_frame() -> None:
    records = FRAME.to_dict(orient="records")
    wrapped, _ = parse_json_input({"dataframe_records": records})
    plain, params = parse_json_input(records)
    pd.testing.assert_frame_equal(wrapped, FRAME)
    pd.testing.assert_frame_equal(plain, FRAME)
    assert params is None


def test_instances_rows_become_an_array_or_one_array_per_key() -> None:
    tensor, _ = parse_json_input({"instances": [[1, 2], [3, 4]]})
    assert isinstance(tensor, np.ndarray)
    assert tensor.tolist() == [[1, 2], [3, 4]]
    columns, _ = parse_json_input({"instances": [{"a": 1, "b": "p"}, {"a": 2, "b": "q"}]})
    assert set(columns) == {"a", "b"}
    assert columns["a"].tolist() == [1, 2]
    assert columns["b"].tolist() == ["p", "q"]


def test_inputs_is_a_tensor_or_named_tensors() -> None:
    tensor, _ = parse_json_input({"inputs": [[0.5, 1.5]]})
    assert tensor.shape == (1, 2)
    named, params = parse_json_input({"inputs": {"ids": [1, 2, 3]}, "params": {"k": 1}})
    assert named["ids"].tolist() == [1, 2, 3]
    assert params == {"k": 1}


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.txt", "x\n1\n", "unknown extension '.txt'"),
        ("noext", "x\n1\n", "unknown extension '(none)'"),
        ("in.json", '{"dataframe_records": [', "not valid JSON"),
        ("in.json", b"\xff\xfe".decode("latin-1"), "not valid JSON"),
        ("in.csv", "", "not valid CSV"),
        ("in.csv", 'a,b\n1,2\n3,4,5,6\n"unterminated\n', "not valid CSV"),
        ("in.parquet", "not parquet at all", "not valid Parquet"),
    ],
)
def test_unreadable_files_name_the_file_and_the_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(InvalidParameterValue) as info:
        read_input(path)
    assert message in info.value.message
    assert str(path) in info.value.message


def test_a_missing_input_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValue, match=r"in\.csv' does not exist"):
        read_input(tmp_path / "in.csv")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"dataframe_split": {"data": [[1]]}, "inputs": [1]},
            "both 'dataframe_split' and 'inputs'",
        ),
        ({"instances": [1], "inputs": [1]}, "both 'instances' and 'inputs'"),
        ({}, "needs one of 'dataframe_split'"),
        ({"params": {"a": 1}}, "needs one of"),
        (
            {"inputs": [1], "signature_name": "x"},
            "Unknown key(s) in the JSON input: 'signature_name'",
        ),
        ({"inputs": [1], "params": [1, 2]}, "'params' must be a JSON object"),
        ({"dataframe_split": [[1, 2]]}, "'dataframe_split' does not hold valid data"),
        ({"dataframe_split": {"data": [[1, 2]], "cols": ["a"]}}, "unknown field(s) 'cols'"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "does not hold valid data"),
        ({"dataframe_records": {"a": 1}}, "list of records"),
        ({"instances": [{"a": 1}, {"b": 2}]}, "same keys"),
        ({"inputs": "text"}, "a list (a tensor) or an object"),
        ([1, 2, 3], "plain JSON list must be a non-empty list of records"),
        ([], "plain JSON list must be a non-empty list of records"),
        ("just text", "must be an object"),
    ],
)
def test_bad_json_payloads_say_what_is_wrong(payload: Any, message: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        parse_json_input(payload)
    assert message in info.value.message


def test_bad_json_payload_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "in.json", {"instances": [1], "inputs": [1]})
    with pytest.raises(InvalidParameterValue, match=r"in\.json'.*both 'instances' and 'inputs'"):
        read_input(path)


def test_params_option_must_be_a_json_object() -> None:
    assert parse_params(None) is None
    assert parse_params('{"k": 2}') == {"k": 2}
    with pytest.raises(InvalidParameterValue, match="--params is not valid JSON"):
        parse_params("{k: 2}")
    with pytest.raises(InvalidParameterValue, match="--params must be a JSON object"):
        parse_params("[1]")


# -- output ----------------------------------------------------------------------------------


def test_jsonable_turns_pandas_and_numpy_into_plain_json() -> None:
    frame = pd.DataFrame(
        {"p": [0.25, np.nan], "when": pd.to_datetime(["2024-01-02", None]), "n": [1, 2]}
    )
    assert jsonable(frame) == [
        {"p": 0.25, "when": "2024-01-02T00:00:00", "n": 1},
        {"p": None, "when": None, "n": 2},
    ]
    assert jsonable(np.array([[1, 2], [3, 4]], dtype=np.int32)) == [[1, 2], [3, 4]]
    assert jsonable(pd.Series([1.5, np.inf])) == [1.5, None]
    assert jsonable({"a": np.float32(0.5), 1: (np.bool_(True), b"\x00\x01")}) == {
        "a": 0.5,
        "1": [True, "AAE="],
    }
    assert jsonable(pd.NA) is None
    json.dumps(jsonable(frame), allow_nan=False)  # strict JSON: no NaN


# -- the local manager end to end ------------------------------------------------------------


class Scaler(pyfunc.PythonModel):
    """``x * scale``; ``scale`` is a param (default 2); a negative x is an error."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        if (model_input["x"] < 0).any():
            raise ValueError("x must not be negative")
        return model_input["x"] * (params or {}).get("scale", 2)


@pytest.fixture(scope="module")
def scaler_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "scaler"
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    signature = infer_signature(frame, frame["x"], params={"scale": 2.0})
    pyfunc.save_model(path, python_model=Scaler(), signature=signature)
    return path


@pytest.fixture(scope="module")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, pd.DataFrame]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from slipway.flavors import sklearn as sk_flavor

    frame = load_iris(as_frame=True).frame.drop(columns="target")
    target = load_iris().target
    model = LogisticRegression(max_iter=500).fit(frame, target)
    path = tmp_path_factory.mktemp("models") / "iris"
    sk_flavor.save_model(model, path, signature=infer_signature(frame, model.predict(frame)))
    return path, model, frame


def test_local_prediction_of_a_csv_matches_the_sklearn_model(
    iris_dir: tuple[Path, Any, pd.DataFrame], tmp_path: Path
) -> None:
    path, model, frame = iris_dir
    batch = frame.sample(20, random_state=0)
    source = write(tmp_path, "batch.csv", batch.to_csv(index=False))
    out = tmp_path / "predictions.json"
    predicting.predict(str(path), source, out)
    assert json.loads(out.read_text()) == {"predictions": model.predict(batch).tolist()}


def test_local_prediction_passes_params_and_cli_params_win(
    scaler_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"dataframe_records": [{"x": 1.0}, {"x": 4.0}], "params": {"scale": 10}}
    source = write(tmp_path, "in.json", body)
    predicting.predict(str(scaler_dir), source)  # stdout
    assert json.loads(capsys.readouterr().out) == {"predictions": [10.0, 40.0]}
    predicting.predict(str(scaler_dir), source, params={"scale": 0.5})
    assert json.loads(capsys.readouterr().out) == {"predictions": [0.5, 2.0]}


def test_a_model_that_fails_on_the_input_is_a_clear_error(scaler_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path, "in.csv", "x\n-1.0\n")
    with pytest.raises(InvalidParameterValue, match=r"ValueError: x must not be negative"):
        predicting.predict(str(scaler_dir), source, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_input_that_breaks_the_signature_names_the_column(scaler_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path, "in.csv", "y\n1.0\n")
    with pytest.raises(InvalidParameterValue, match=r"missing inputs \['x'\]"):
        predicting.predict(str(scaler_dir), source)


def test_unknown_env_manager_and_missing_model_are_clear(scaler_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path, "in.csv", "x\n1.0\n")
    with pytest.raises(InvalidParameterValue, match="Unknown env manager 'conda'"):
        predicting.predict(str(scaler_dir), source, env_manager="conda")
    with pytest.raises(ResourceDoesNotExist):
        predicting.predict(str(tmp_path / "nowhere"), source)


# -- the entry point the venv manager runs ---------------------------------------------------


def test_child_entry_point_writes_predictions(scaler_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path, "in.csv", "x\n3.0\n")
    out = tmp_path / "out.json"
    args = ["--model-dir", str(scaler_dir), "--input", str(source), "--output", str(out)]
    assert predicting.main([*args, "--params", '{"scale": 3}']) == 0
    assert json.loads(out.read_text()) == {"predictions": [9.0]}


def test_child_reports_its_error_as_one_json_line_that_the_parent_raises_again(
    scaler_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, "in.tsv", "x\n3.0\n")
    assert predicting.main(["--model-dir", str(scaler_dir), "--input", str(source)]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith(predicting.ERROR_PREFIX)
    with pytest.raises(InvalidParameterValue, match=r"unknown extension '\.tsv'"):
        predicting._raise_child_error(1, "a warning\n" + stderr)
    assert capsys.readouterr().err == "a warning\n"  # the rest of the child's stderr passes on


def test_a_child_that_dies_without_a_report_is_an_invalid_state() -> None:
    with pytest.raises(InvalidState, match=r"exit code 139\):\nSegmentation fault") as info:
        predicting._raise_child_error(139, "Segmentation fault\n")
    assert isinstance(info.value, SlipwayError)
    predicting._raise_child_error(0, "")  # success raises nothing


@pytest.mark.parametrize(
    ("rows", "dtypes"),
    [
        ([[1.5, 2.0], [3.0, 4.25]], ["float64", "float64"]),  # all floats: one block
        ([[1, 2], [3, 4]], ["int64", "int64"]),  # all ints
        ([[1, 2.5], [3, 4.5]], ["int64", "float64"]),  # mixed: each column keeps its type
        ([[True, 1.5]], ["bool", "float64"]),  # bools are never read as numbers
        ([["a", 1.5]], ["str", "float64"]),
    ],
)
def test_dataframe_split_keeps_each_columns_type(rows: list[Any], dtypes: list[str]) -> None:
    frame, _ = parse_json_input({"dataframe_split": {"columns": ["x", "y"], "data": rows}})
    assert [str(t) for t in frame.dtypes] == dtypes
    assert frame.values.tolist() == rows
    assert list(frame.columns) == ["x", "y"]
