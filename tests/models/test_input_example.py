"""Input examples: files identical to MLflow's, read by MLflow, and MLflow's read by us."""

from __future__ import annotations

import base64
import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import sparse

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.models.input_example import (
    EXAMPLE_FILENAME,
    SERVING_INPUT_FILENAME,
    load_input_example,
    load_input_example_params,
    save_input_example,
    split_input_example,
)
from slipway.models.signature import infer_signature

EXAMPLES: dict[str, Any] = {
    "frame": pd.DataFrame(
        {
            "i": [1, 2],
            "f": [1.0, np.nan],
            "s": ["a", None],
            "d": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "bytes": [b"ab", b"c"],
            "b": [True, False],
        }
    ),
    "frame_with_default_header": pd.DataFrame([[1, 2], [3, 4]]),
    "numpy_float32_with_nan": np.array([[1.5, np.nan]], dtype=np.float32),
    "numpy_strings": np.array(["a", "b"]),
    "numpy_datetimes": np.array(["2024-01-01"], dtype="datetime64[ns]"),
    "numpy_objects": np.array([1, "a", None], dtype=object),
    "dict_of_tensors": {"a": np.zeros((2, 3)), "b": np.array(["x", "y"])},
    "records": [{"a": 1, "b": "x"}],
    "dict": {"a": 1, "b": "x", "c": np.int32(3), "d": b"zz", "e": dt.date(2024, 1, 2)},
    "list_with_nan": [1.0, 2.0, float("nan")],
    "int": 3,
    "numpy_scalar": np.float32(2.5),
    "string": "héllo ✓",
    "datetime": dt.datetime(2024, 1, 1),
    "frame_with_params": (pd.DataFrame({"x": [1.0]}), {"t": 0.5, "l": [1, 2]}),
    "array_with_params": (np.array([[1.0]]), {"t": 0.5}),
    "chat_request": {"messages": [{"role": "user", "content": "hi"}]},
    "chat_request_with_params": (
        {"messages": [{"role": "user", "content": "hi"}]},
        {"temperature": 0.1},
    ),
    "csr_matrix": sparse.csr_matrix(np.array([[0, 1.5], [2.5, 0]])),
    "csc_matrix": sparse.csc_matrix(np.array([[0, 1], [2, 0]])),
}


def mlflow_saves(example: Any, directory: Path) -> dict[str, Any]:
    from mlflow.models import Model
    from mlflow.models.utils import _save_example

    model = Model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _save_example(model, example, str(directory))
    return dict(model.saved_input_example_info)


def comparable(value: Any) -> Any:
    """A plain, repr-comparable form of a loaded example."""
    if isinstance(value, pd.DataFrame):
        return ("frame", value.to_json())
    if isinstance(value, np.ndarray):
        return ("array", str(value.dtype), value.tolist())
    if sparse.issparse(value):
        return ("sparse", value.format, value.toarray().tolist())
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    return value


@pytest.mark.parametrize("example", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_files_and_info_are_byte_for_byte_mlflows(example: Any, tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    info = save_input_example(ours, example)
    expected = mlflow_saves(example, theirs)
    assert list(info.items()) == list(expected.items())  # same keys, values and order
    assert sorted(p.name for p in ours.iterdir()) == [EXAMPLE_FILENAME, SERVING_INPUT_FILENAME]
    for name in (EXAMPLE_FILENAME, SERVING_INPUT_FILENAME):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


@pytest.mark.parametrize("example", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_mlflow_reads_ours_and_we_read_mlflows(example: Any, tmp_path: Path) -> None:
    from mlflow.models import Model

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    info = save_input_example(ours, example)
    (ours / "MLmodel").write_text(
        yaml.safe_dump({"flavors": {}, "saved_input_example_info": info}), encoding="utf-8"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_by_mlflow = Model.load(str(ours)).load_input_example(str(ours))
    read_by_us = load_input_example(theirs, mlflow_saves(example, theirs))
    assert repr(comparable(read_by_us)) == repr(comparable(read_by_mlflow))
    if info.get("params"):
        expected = Model.load(str(ours)).load_input_example_params(str(ours))
        assert load_input_example_params(theirs, info) == expected == example[1]


def test_a_frame_comes_back_as_it_went_in(tmp_path: Path) -> None:
    example = pd.DataFrame({"x": [1.5, 2.5], "s": ["a", "b"]})
    info = save_input_example(tmp_path, example)
    assert json.loads((tmp_path / EXAMPLE_FILENAME).read_text()) == {
        "columns": ["x", "s"],
        "data": [[1.5, "a"], [2.5, "b"]],
    }
    assert info["type"] == "dataframe"
    assert info["pandas_orient"] == "split"
    loaded = load_input_example(tmp_path, info)
    pd.testing.assert_frame_equal(loaded, example, check_dtype=False)


def test_the_schema_restores_binary_datetime_and_tensor_types(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"y": [b"\x00\xff"], "d": pd.to_datetime(["2024-01-02"]), "n": np.array([1], np.int32)}
    )
    signature = infer_signature(frame)
    assert signature.inputs is not None
    loaded = load_input_example(tmp_path, save_input_example(tmp_path, frame), signature.inputs)
    assert loaded["y"].tolist() == [b"\x00\xff"]
    assert loaded["d"].dtype.kind == "M"
    assert loaded["n"].dtype == np.int32
    assert (tmp_path / EXAMPLE_FILENAME).read_text().count(
        base64.encodebytes(b"\x00\xff").decode("ascii").replace("\n", "\\n")
    ) == 1

    tensors = {"a": np.ones((1, 2), dtype=np.float32)}
    schema = infer_signature(tensors).inputs
    loaded_tensors = load_input_example(tmp_path, save_input_example(tmp_path, tensors), schema)
    assert loaded_tensors["a"].dtype == np.float32
    assert loaded_tensors["a"].shape == (1, 2)


def test_params_travel_in_both_files(tmp_path: Path) -> None:
    info = save_input_example(tmp_path, ({"prompt": "hi"}, {"max_tokens": 5}))
    assert info["params"] == "true"
    serving = json.loads((tmp_path / SERVING_INPUT_FILENAME).read_text())
    assert serving == {"prompt": "hi", "max_tokens": 5}  # LLM requests are sent unwrapped
    assert load_input_example(tmp_path, info) == {"prompt": "hi"}
    assert load_input_example_params(tmp_path, info) == {"max_tokens": 5}
    assert load_input_example_params(tmp_path, {**info, "params": None}) is None


def test_split_input_example() -> None:
    frame = pd.DataFrame({"x": [1]})
    data, params = split_input_example((frame, {"k": 1}))
    assert data is frame
    assert params == {"k": 1}
    assert split_input_example((1, 2)) == ((1, 2), None)
    assert split_input_example((frame, {}))[1] is None
    with pytest.raises(InvalidParameterValue, match="'bad'"):
        split_input_example((frame, {"bad": {1, 2}}))


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ({"a": np.zeros(2), "b": [1]}, "Mixed types in dictionary"),
        ([np.zeros(2)], "Numpy arrays in lists are not supported"),
        ({1, 2}, "must be a pandas DataFrame, a numpy array"),
        (dt.date(2024, 1, 1), "got date"),
        ({"a": {1, 2}}, "cannot be written as JSON"),
        ((1, 2, 3), "got tuple"),
    ],
)
def test_unsupported_examples_are_refused_and_nothing_is_written(
    example: Any, message: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        save_input_example(tmp_path, example)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("info", "content", "error", "message"),
    [
        ({"type": "tensorflow"}, None, InvalidParameterValue, "'type' must be one of"),
        ({"type": "ndarray"}, None, InvalidParameterValue, "'artifact_path' must be"),
        (
            {"type": "ndarray", "artifact_path": "../outside.json"},
            None,
            InvalidParameterValue,
            "'..' is not allowed",
        ),
        (
            {"type": "ndarray", "artifact_path": "/etc/passwd"},
            None,
            InvalidParameterValue,
            "absolute paths",
        ),
        (
            {"type": "json_object", "artifact_path": "gone.json"},
            None,
            ResourceDoesNotExist,
            "'gone.json' not found",
        ),
        (
            {"type": "json_object", "artifact_path": "x.json"},
            "{oops",
            InvalidParameterValue,
            "Cannot read",
        ),
        (
            {"type": "dataframe", "artifact_path": "x.json"},
            "[1, 2]",
            InvalidParameterValue,
            "not a valid dataframe",
        ),
        (
            {"type": "ndarray", "artifact_path": "x.json"},
            "[[1], [2, 3]]",
            InvalidParameterValue,
            "not a valid ndarray",
        ),
        (
            {"type": "json_object", "artifact_path": "x.json", "params": "true"},
            "[1]",
            InvalidParameterValue,
            "no 'params' mapping",
        ),
    ],
)
def test_bad_saved_examples_are_refused_clearly(
    info: dict[str, Any], content: str | None, error: type[Exception], message: str, tmp_path: Path
) -> None:
    if content is not None:
        (tmp_path / "x.json").write_text(content)
    load = load_input_example_params if info.get("params") else load_input_example
    with pytest.raises(error, match=message):
        load(tmp_path, info)
