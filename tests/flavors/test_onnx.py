"""The onnx flavor: the directory it writes (with and without external data), loading natively
and through onnxruntime, how inputs are fed to a graph's named inputs, options, logging and
registering, MLflow reading ours and us reading MLflow's, and clear errors for bad input,
damaged files and other ONNX versions.

The graphs are built with ``onnx.helper``: a linear model ``y = x @ W + B`` with one input of
shape ``[N, 3]``, and a two-input model ``sum = a + b`` with inputs of shape ``[N, 1]``."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

import slipway
from slipway.exceptions import InvalidParameterValue
from slipway.flavors import onnx as onnx_flavor

from ._interop import (
    MLFLOW_WARNINGS,
    import_mlflow,
    log_register_and_load,
    read_mlmodel,
    requirement_lines,
    set_flavor_entry,
)

pytestmark = MLFLOW_WARNINGS

COLUMNS = ["a", "b", "c"]
WEIGHTS = np.array([[1.0], [2.0], [-1.0]], dtype=np.float32)
BIAS = np.array([0.5], dtype=np.float32)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime of any recent version runs
    return model


def linear_model(weights: np.ndarray[Any, Any] = WEIGHTS) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(BIAS, "B")],
    )
    return _model(graph)


def two_input_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1]),
        ],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 1])],
    )
    return _model(graph)


def linear(data: Any) -> np.ndarray[Any, Any]:
    return np.asarray(data, dtype=np.float32) @ WEIGHTS + BIAS


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(0).random((5, 3)), columns=COLUMNS)


@pytest.fixture
def saved(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "model"
    onnx_flavor.save_model(linear_model(), path, input_example=frame.head(2))
    return path


def test_the_directory_is_mlflows_layout(saved: Path) -> None:
    assert (saved / "model.onnx").is_file()
    body = read_mlmodel(saved)
    assert body["flavors"]["onnx"] == {
        "onnx_version": onnx.__version__,
        "data": "model.onnx",
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    }
    pyfunc = body["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.onnx"
    assert pyfunc["data"] == "model.onnx"
    requirements = requirement_lines(saved)
    assert f"onnx=={onnx.__version__}" in requirements
    assert any(line.startswith("onnxruntime==") for line in requirements)


def test_native_and_pyfunc_loading_predict_the_same(saved: Path, frame: pd.DataFrame) -> None:
    native = onnx_flavor.load_model(str(saved))
    assert isinstance(native, onnx.ModelProto)
    assert native.graph == linear_model().graph
    model = slipway.pyfunc.load_model(str(saved))
    result = model.predict(frame)
    assert isinstance(result, pd.DataFrame)
    assert list(result.columns) == ["y"]
    np.testing.assert_allclose(result["y"], linear(frame).reshape(-1), rtol=1e-6)
    session = model.get_raw_model()
    assert session.get_providers() == ["CPUExecutionProvider"]  # no CUDA on this machine


def test_arrays_and_dicts_get_a_dict_of_outputs(tmp_path: Path, frame: pd.DataFrame) -> None:
    onnx_flavor.save_model(linear_model(), tmp_path / "m")  # no signature
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    array = frame.to_numpy()  # float64, cast to the graph's float
    for data in (array, {"x": array}):
        result = model.predict(data)
        assert list(result) == ["y"]
        assert result["y"].dtype == np.float32
        np.testing.assert_allclose(result["y"], linear(array), rtol=1e-6)


def test_an_output_with_several_values_per_row_keeps_the_rows(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    weights = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    onnx_flavor.save_model(linear_model(weights), tmp_path / "m")
    result = slipway.pyfunc.load_model(str(tmp_path / "m")).predict(frame)
    assert len(result) == len(frame)
    want = frame.to_numpy(dtype=np.float32) @ weights + BIAS
    np.testing.assert_allclose(np.stack(result["y"].to_list()), want, rtol=1e-6)


def test_several_inputs_take_one_column_each(tmp_path: Path) -> None:
    onnx_flavor.save_model(two_input_model(), tmp_path / "m")
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    frame = pd.DataFrame({"b": [1, 2, 3], "a": [0.5, 0.25, 0.0]})  # ints cast to float
    result = model.predict(frame)
    np.testing.assert_allclose(result["sum"], [1.5, 2.25, 3.0])
    with pytest.raises(InvalidParameterValue, match="Missing input 'b'"):
        model.predict(frame.drop(columns=["b"]))
    with pytest.raises(InvalidParameterValue, match="this one has 2"):
        model.predict(np.ones((3, 1), dtype=np.float32))


def test_pyfunc_enforces_the_signature_first(saved: Path, frame: pd.DataFrame) -> None:
    model = slipway.pyfunc.load_model(str(saved))
    with pytest.raises(InvalidParameterValue, match="'b'"):
        model.predict(frame.drop(columns=["b"]))


def test_wrong_shapes_and_types_give_clear_errors(tmp_path: Path) -> None:
    onnx_flavor.save_model(linear_model(), tmp_path / "m")
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    with pytest.raises(InvalidParameterValue, match="cannot predict for this input"):
        model.predict(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(InvalidParameterValue, match="tensor\\(float\\), which <U1 data cannot"):
        model.predict(np.array([["a", "b", "c"]]))
    with pytest.raises(InvalidParameterValue, match="takes a pandas DataFrame"):
        model.predict(object())


def test_large_tensors_go_to_external_data(tmp_path: Path, frame: pd.DataFrame) -> None:
    weights = np.random.default_rng(1).random((3, 500)).astype(np.float32) @ np.ones((500, 1))
    big = np.repeat(weights.astype(np.float32), 200, axis=0)  # 600 x 1: over 1 KB
    onnx_flavor.save_model(linear_model(big), tmp_path / "external")
    onnx_flavor.save_model(linear_model(big), tmp_path / "inline", save_as_external_data=False)
    assert {p.name for p in (tmp_path / "external").iterdir()} > {"model.onnx"} | {
        p.name for p in (tmp_path / "inline").iterdir()
    }
    data = np.ones((2, 600), dtype=np.float32)
    for name in ("external", "inline"):
        result = slipway.pyfunc.load_model(str(tmp_path / name)).predict(data)
        np.testing.assert_allclose(result["y"], data @ big + BIAS, rtol=1e-5)
        native = onnx_flavor.load_model(str(tmp_path / name))
        np.testing.assert_array_equal(numpy_helper.to_array(native.graph.initializer[0]), big)


def test_session_options_are_applied(tmp_path: Path) -> None:
    options = {
        "intra_op_num_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization_level": 1,
        "extra_session_config": {"session.use_env_allocators": "1"},
    }
    onnx_flavor.save_model(
        linear_model(),
        tmp_path / "m",
        onnx_execution_providers=["CPUExecutionProvider"],
        onnx_session_options=options,
    )
    assert read_mlmodel(tmp_path / "m")["flavors"]["onnx"]["onnx_session_options"] == options
    session = slipway.pyfunc.load_model(str(tmp_path / "m")).get_raw_model()
    applied = session.get_session_options()
    assert applied.intra_op_num_threads == 1
    assert applied.get_session_config_entry("session.use_env_allocators") == "1"


@pytest.mark.parametrize(
    "providers",
    [
        ["TensorrtExecutionProvider"],  # not in this onnxruntime: the CPU instead
        [["CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}]],
        "CPUExecutionProvider",  # hand-written as one name
    ],
)
def test_saved_providers_are_used_when_available(saved: Path, providers: Any) -> None:
    set_flavor_entry(saved, "onnx", "providers", providers)
    session = slipway.pyfunc.load_model(str(saved)).get_raw_model()
    assert session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        ("not onnx", {}, "must be an onnx.ModelProto, not str"),
        (None, {"onnx_execution_providers": "CPUExecutionProvider"}, "list of onnxruntime"),
        (None, {"onnx_execution_providers": []}, "at least one provider"),
        (None, {"onnx_session_options": {"threads": 2}}, r"Unknown onnx_session_options \['thr"),
        (None, {"onnx_session_options": {"intra_op_num_threads": -1}}, "integer >= 0"),
        (None, {"onnx_session_options": {"execution_mode": "fast"}}, "'sequential' or"),
        (None, {"onnx_session_options": {"graph_optimization_level": 7}}, "0, 1, 2, 3 or 99"),
        (None, {"onnx_session_options": {"extra_session_config": {"k": 1}}}, "strings to str"),
    ],
)
def test_bad_arguments(tmp_path: Path, model: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        onnx_flavor.save_model(linear_model() if model is None else model, tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


def test_an_invalid_graph_is_refused_at_save(tmp_path: Path) -> None:
    broken = linear_model()
    broken.graph.node[0].input[1] = "no_such_tensor"
    with pytest.raises(InvalidParameterValue, match="Invalid ONNX model"):
        onnx_flavor.save_model(broken, tmp_path / "m")
    assert not (tmp_path / "m").exists()


# -- damaged models and other versions -------------------------------------------------------


def test_missing_model_file_names_it(saved: Path) -> None:
    (saved / "model.onnx").unlink()
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "model.onnx"))):
        onnx_flavor.load_model(str(saved))
    with pytest.raises(InvalidParameterValue, match="is missing"):
        slipway.pyfunc.load_model(str(saved))


def test_truncated_file_names_the_file_and_versions(saved: Path) -> None:
    path = saved / "model.onnx"
    path.write_bytes(path.read_bytes()[:50])
    for load in (onnx_flavor.load_model, slipway.pyfunc.load_model):
        with pytest.raises(InvalidParameterValue) as info:
            load(str(saved))
        message = info.value.message
        assert str(path) in message
        assert f"saved with ONNX {onnx.__version__}; this is ONNX {onnx.__version__}" in message
        assert "truncated or corrupt" in message


def test_another_major_version_that_cannot_load_names_both(saved: Path) -> None:
    set_flavor_entry(saved, "onnx", "onnx_version", "0.9.0")
    (saved / "model.onnx").write_bytes(b"\xff\xff not protobuf")
    with pytest.raises(InvalidParameterValue) as info:
        slipway.pyfunc.load_model(str(saved))
    message = info.value.message
    assert f"saved with ONNX 0.9.0; this is ONNX {onnx.__version__}" in message
    assert "ONNX 0.x may not load with ONNX 1.x: install onnx==0.9.0" in message


def test_another_version_that_loads_logs_a_warning(
    saved: Path, caplog: pytest.LogCaptureFixture
) -> None:
    set_flavor_entry(saved, "onnx", "onnx_version", "1.0.0")
    with caplog.at_level(logging.WARNING, logger="slipway.flavors.onnx"):
        assert isinstance(onnx_flavor.load_model(str(saved)), onnx.ModelProto)
    assert any("1.0.0" in r.getMessage() for r in caplog.records)


# -- logging, registering and MLflow ---------------------------------------------------------


def test_log_register_and_load_by_alias(tracking_dir: Path, frame: pd.DataFrame) -> None:
    info, loaded = log_register_and_load(
        slipway.onnx, linear_model(), "onnx-linear", input_example=frame.head(2)
    )
    assert set(info.flavors) == {"python_function", "onnx"}
    for uri, model in loaded.items():
        np.testing.assert_allclose(
            model.predict(frame)["y"], linear(frame).reshape(-1), rtol=1e-6, err_msg=uri
        )
    assert slipway.onnx.load_model("models:/onnx-linear@champion").graph == linear_model().graph


@pytest.fixture
def mlflow() -> Any:
    return import_mlflow("onnx")


def test_mlflow_loads_ours(mlflow: Any, tmp_path: Path, frame: pd.DataFrame) -> None:
    onnx_flavor.save_model(linear_model(), tmp_path / "m", input_example=frame.head(2))
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    ours = slipway.pyfunc.load_model(str(tmp_path / "m"))
    pd.testing.assert_frame_equal(ours.predict(frame), theirs.predict(frame))
    assert mlflow.onnx.load_model(str(tmp_path / "m")).graph == linear_model().graph
    # MLflow takes an array only without a column signature.
    onnx_flavor.save_model(linear_model(), tmp_path / "n")
    array = frame.to_numpy(dtype=np.float32)
    theirs_n = mlflow.pyfunc.load_model(str(tmp_path / "n")).predict(array)
    ours_n = slipway.pyfunc.load_model(str(tmp_path / "n")).predict(array)
    np.testing.assert_array_equal(ours_n["y"], theirs_n["y"])


def test_we_load_mlflows(mlflow: Any, tmp_path: Path, frame: pd.DataFrame) -> None:
    mlflow.onnx.save_model(
        two_input_model(),
        str(tmp_path / "m"),
        input_example={"a": np.ones((2, 1), np.float32), "b": np.ones((2, 1), np.float32)},
        pip_requirements=["onnx", "onnxruntime"],  # spares MLflow's slow inference
    )
    feeds = {"a": np.array([[1.0], [2.0]], np.float32), "b": np.array([[0.5], [4.0]], np.float32)}
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(feeds)
    ours = slipway.pyfunc.load_model(str(tmp_path / "m"))
    assert ours.loader_module == "mlflow.onnx"
    np.testing.assert_array_equal(ours.predict(feeds)["sum"], theirs["sum"])
    np.testing.assert_array_equal(theirs["sum"], [[1.5], [6.0]])
    assert onnx_flavor.load_model(str(tmp_path / "m")).graph == two_input_model().graph
