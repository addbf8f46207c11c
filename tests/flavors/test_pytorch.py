"""The pytorch flavor: the directory it writes (pickled modules, TorchScript, ``torch.export``
programs), loading natively and through pyfunc, logging and registering, MLflow reading ours and
us reading MLflow's, and clear errors for bad input, damaged files and other torch versions."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import slipway
from slipway.exceptions import InvalidParameterValue
from slipway.flavors import pytorch as pt_flavor
from slipway.models import infer_signature

from ._interop import (
    MLFLOW_WARNINGS,
    import_mlflow,
    log_register_and_load,
    read_mlmodel,
    requirement_lines,
    set_flavor_entry,
)

pytestmark = [
    *MLFLOW_WARNINGS,
    # torch 2.13 deprecates TorchScript; these tests still check that such models load.
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
]

TORCH_VERSION = str(torch.__version__)
COLUMNS = ["a", "b", "c"]


class TinyNet(torch.nn.Module):
    """A linear layer with dropout, so that eval mode matters; ``scale`` is a forward kwarg."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.dropout(self.linear(x)) * scale


@pytest.fixture(scope="module")
def net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(0).random((6, 3)), columns=COLUMNS)


def expected(net: TinyNet, data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(np.array(data, dtype=np.float32, order="K"))).numpy()
    net.train(was_training)
    return out


def tensor(data: np.ndarray[Any, Any]) -> torch.Tensor:
    """``data`` as a tensor in the same memory layout (pandas 3 arrays are read-only)."""
    return torch.from_numpy(np.array(data, order="K"))


@pytest.fixture
def saved(tmp_path: Path, net: TinyNet, frame: pd.DataFrame) -> Path:
    path = tmp_path / "model"
    pt_flavor.save_model(net, path, input_example=frame.head(3))
    return path


def test_the_directory_is_mlflows_layout(saved: Path) -> None:
    assert (saved / "data" / "model.pth").is_file()
    assert (saved / "data" / "pickle_module_info.txt").read_text() == "pickle"
    body = read_mlmodel(saved)
    assert body["flavors"]["pytorch"] == {"model_data": "data", "pytorch_version": TORCH_VERSION}
    pyfunc = body["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pytorch"
    assert pyfunc["data"] == "data"
    assert pyfunc["pickle_module_name"] == "pickle"
    assert pyfunc["config"] == {"device": None}
    requirements = requirement_lines(saved)
    # The local version label (+cpu) is dropped: pip cannot install it from PyPI.
    assert requirements[0] == f"torch=={TORCH_VERSION.split('+')[0]}"
    assert any(line.startswith("cloudpickle==") for line in requirements)


def test_native_and_pyfunc_loading_predict_the_same(
    saved: Path, net: TinyNet, frame: pd.DataFrame
) -> None:
    native = pt_flavor.load_model(str(saved))
    assert isinstance(native, TinyNet)
    assert not native.training  # eval mode: dropout is off
    want = expected(net, frame.to_numpy())
    with torch.no_grad():
        np.testing.assert_allclose(
            native(torch.tensor(frame.to_numpy(), dtype=torch.float32)), want
        )

    model = slipway.pyfunc.load_model(str(saved))
    indexed = frame.set_axis([10, 11, 12, 13, 14, 15])
    result = model.predict(indexed)
    assert isinstance(result, pd.DataFrame)
    assert list(result.index) == [10, 11, 12, 13, 14, 15]
    np.testing.assert_allclose(result.to_numpy(), want, atol=1e-6)
    assert isinstance(model.get_raw_model(), TinyNet)


def test_pyfunc_takes_arrays_and_casts_floats_to_the_models_type(
    tmp_path: Path, net: TinyNet, frame: pd.DataFrame
) -> None:
    pt_flavor.save_model(net, tmp_path / "m")  # no signature: the flavor converts the data
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    result = model.predict(frame.to_numpy())  # float64 into a float32 model
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected(net, frame.to_numpy()), atol=1e-6)


def test_a_double_precision_model_gets_doubles(tmp_path: Path, frame: pd.DataFrame) -> None:
    torch.manual_seed(1)
    double = torch.nn.Linear(3, 1).double()
    pt_flavor.save_model(double, tmp_path / "m")
    result = slipway.pyfunc.load_model(str(tmp_path / "m")).predict(frame)
    with torch.no_grad():
        want = double(torch.from_numpy(frame.to_numpy().copy())).numpy()
    np.testing.assert_allclose(result.to_numpy(), want, rtol=1e-12)


def test_pyfunc_enforces_the_signature_first(saved: Path, frame: pd.DataFrame) -> None:
    model = slipway.pyfunc.load_model(str(saved))
    with pytest.raises(InvalidParameterValue, match="'c'"):
        model.predict(frame.drop(columns=["c"]))


def test_wrong_shapes_and_types_give_clear_errors(
    tmp_path: Path, net: TinyNet, frame: pd.DataFrame
) -> None:
    pt_flavor.save_model(net, tmp_path / "m")
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    with pytest.raises(InvalidParameterValue, match=r"cannot predict .*shape \(6, 2\)"):
        model.predict(frame.to_numpy()[:, :2])
    with pytest.raises(InvalidParameterValue, match="must have numeric columns"):
        model.predict(frame.assign(a="text"))
    with pytest.raises(InvalidParameterValue, match="must be numeric"):
        model.predict(np.array([["x", "y", "z"]]))
    with pytest.raises(InvalidParameterValue, match="takes a pandas DataFrame"):
        model.predict(object())


def test_params_reach_forward_as_keyword_arguments(
    tmp_path: Path, net: TinyNet, frame: pd.DataFrame
) -> None:
    signature = infer_signature(frame, expected(net, frame.to_numpy()), params={"scale": 1.0})
    pt_flavor.save_model(net, tmp_path / "m", signature=signature)
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    base = model.predict(frame).to_numpy()
    np.testing.assert_allclose(
        model.predict(frame, params={"scale": 3.0}).to_numpy(), base * 3, atol=1e-6
    )


# -- other serializations --------------------------------------------------------------------


def test_pt2_is_traced_with_a_dynamic_batch_dimension(
    tmp_path: Path, net: TinyNet, frame: pd.DataFrame
) -> None:
    example = frame.to_numpy(dtype=np.float32)[:4]
    net.train()
    try:
        pt_flavor.save_model(net, tmp_path / "m", serialization_format="pt2", input_example=example)
        assert net.training  # the mode the caller left it in is restored
    finally:
        net.eval()
    assert (tmp_path / "m" / "data" / "model.pt2").is_file()
    assert not (tmp_path / "m" / "data" / "model.pth").exists()
    assert "pickle_module_name" not in read_mlmodel(tmp_path / "m")["flavors"]["python_function"]
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    data = frame.to_numpy(dtype=np.float32)  # six rows, where the example had four
    np.testing.assert_allclose(model.predict(data), expected(net, data), atol=1e-6)
    with pytest.raises(InvalidParameterValue, match="Shape of input"):
        model.predict(data[:, :2])
    native = pt_flavor.load_model(str(tmp_path / "m"))
    np.testing.assert_allclose(
        native(tensor(data)).detach().numpy(), expected(net, data), atol=1e-6
    )


def test_pt2_needs_an_input_example_and_leaves_nothing_behind(tmp_path: Path, net: TinyNet) -> None:
    with pytest.raises(InvalidParameterValue, match="needs an input_example"):
        pt_flavor.save_model(net, tmp_path / "m", serialization_format="pt2")
    assert not (tmp_path / "m").exists()


def test_torchscript_modules_round_trip(tmp_path: Path, net: TinyNet, frame: pd.DataFrame) -> None:
    scripted = torch.jit.script(net.eval())
    pt_flavor.save_model(scripted, tmp_path / "m", input_example=frame.head(2))
    native = pt_flavor.load_model(str(tmp_path / "m"))
    assert isinstance(native, torch.jit.ScriptModule)
    result = slipway.pyfunc.load_model(str(tmp_path / "m")).predict(frame)
    np.testing.assert_allclose(result.to_numpy(), expected(net, frame.to_numpy()), atol=1e-6)
    with pytest.raises(InvalidParameterValue, match="TorchScript module cannot be saved"):
        pt_flavor.save_model(
            scripted, tmp_path / "n", serialization_format="pt2", input_example=frame.to_numpy()
        )


def test_a_class_defined_in_main_travels_with_the_model(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import torch
        from slipway.flavors import pytorch

        class Doubler(torch.nn.Module):
            def forward(self, x):
                return x * 2

        pytorch.save_model(Doubler(), {str(tmp_path / "m")!r})
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    # This process has no __main__.Doubler: cloudpickle saved the class by value.
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(model.predict(np.array([[1.0, 2.0]])), [[2.0, 4.0]])


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        ("not a module", {}, "must be a torch.nn.Module, not str"),
        (torch.nn.Linear(1, 1), {"serialization_format": "onnx"}, "Unknown serialization_format"),
    ],
)
def test_bad_arguments(tmp_path: Path, model: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        pt_flavor.save_model(model, tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


# -- damaged models and other versions -------------------------------------------------------


def test_missing_model_file_names_it(saved: Path) -> None:
    (saved / "data" / "model.pth").unlink()
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "data" / "model.pth"))):
        pt_flavor.load_model(str(saved))
    with pytest.raises(InvalidParameterValue, match="is missing"):
        slipway.pyfunc.load_model(str(saved))


def test_truncated_file_names_the_file_and_versions(saved: Path) -> None:
    path = saved / "data" / "model.pth"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InvalidParameterValue) as info:
        slipway.pyfunc.load_model(str(saved))
    message = info.value.message
    assert str(path) in message
    assert f"saved with PyTorch {TORCH_VERSION}; this is PyTorch {TORCH_VERSION}" in message
    assert "truncated or corrupt" in message


def test_another_major_version_that_cannot_load_names_both(saved: Path) -> None:
    set_flavor_entry(saved, "pytorch", "pytorch_version", "1.13.1")
    (saved / "data" / "model.pth").write_bytes(b"written by a torch of long ago")
    with pytest.raises(InvalidParameterValue) as info:
        pt_flavor.load_model(str(saved))
    message = info.value.message
    assert str(saved / "data" / "model.pth") in message
    assert f"saved with PyTorch 1.13.1; this is PyTorch {TORCH_VERSION}" in message
    assert "PyTorch 1.x may not load with PyTorch 2.x: install torch==1.13.1" in message


def test_another_version_that_loads_logs_a_warning(
    saved: Path, frame: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    set_flavor_entry(saved, "pytorch", "pytorch_version", "2.0.0")
    with caplog.at_level(logging.WARNING, logger="slipway.flavors.pytorch"):
        model = pt_flavor.load_model(str(saved))
    assert isinstance(model, TinyNet)
    assert any(
        "2.0.0" in r.getMessage() and TORCH_VERSION in r.getMessage() for r in caplog.records
    )


def test_an_unknown_pickle_module_is_named(saved: Path) -> None:
    (saved / "data" / "pickle_module_info.txt").write_text("no_such_pickle_module")
    with pytest.raises(InvalidParameterValue, match="pickled with 'no_such_pickle_module'"):
        pt_flavor.load_model(str(saved))


def test_a_state_dict_is_not_a_model(saved: Path, net: TinyNet) -> None:
    torch.save(net.state_dict(), saved / "data" / "model.pth")
    with pytest.raises(
        InvalidParameterValue, match=r"holds a OrderedDict, not a torch\.nn\.Module"
    ):
        pt_flavor.load_model(str(saved))


# -- logging, registering and MLflow ---------------------------------------------------------


def test_log_register_and_load_by_alias(
    tracking_dir: Path, net: TinyNet, frame: pd.DataFrame
) -> None:
    info, loaded = log_register_and_load(
        slipway.pytorch, net, "torch-net", input_example=frame.head(2)
    )
    assert set(info.flavors) == {"python_function", "pytorch"}
    assert info.signature is not None
    want = expected(net, frame.to_numpy())
    for uri, model in loaded.items():
        np.testing.assert_allclose(model.predict(frame).to_numpy(), want, atol=1e-6, err_msg=uri)
    native = slipway.pytorch.load_model("models:/torch-net@champion")
    assert isinstance(native, TinyNet)


@pytest.fixture
def mlflow(monkeypatch: pytest.MonkeyPatch) -> Any:
    # MLflow 3 refuses pickled models unless this is set; these models are our own.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    return import_mlflow("pytorch")


@pytest.mark.parametrize("fmt", ["pickle", "pt2"])
def test_mlflow_loads_ours(
    mlflow: Any, tmp_path: Path, net: TinyNet, frame: pd.DataFrame, fmt: str
) -> None:
    data = frame.to_numpy(dtype=np.float32)
    # A DataFrame (column signature) for a pickled module; pt2 traces an array.
    inputs = frame if fmt == "pickle" else data
    pt_flavor.save_model(net, tmp_path / "m", serialization_format=fmt, input_example=inputs[:3])
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(inputs)
    ours = slipway.pyfunc.load_model(str(tmp_path / "m")).predict(inputs)
    assert type(ours) is type(theirs)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    np.testing.assert_allclose(np.asarray(theirs), expected(net, data), atol=1e-6)
    native = mlflow.pytorch.load_model(str(tmp_path / "m"))
    with torch.no_grad():
        np.testing.assert_allclose(native(tensor(data)).numpy(), np.asarray(ours), atol=1e-6)


@pytest.mark.parametrize("fmt", ["pickle", "pt2"])
def test_we_load_mlflows(
    mlflow: Any, tmp_path: Path, net: TinyNet, frame: pd.DataFrame, fmt: str
) -> None:
    data = frame.to_numpy(dtype=np.float32)
    mlflow.pytorch.save_model(
        net.eval(),
        str(tmp_path / "m"),
        serialization_format=fmt,
        input_example=data[:3],
        pip_requirements=["torch"],  # spares MLflow's slow inference of requirements
    )
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(data)
    ours = slipway.pyfunc.load_model(str(tmp_path / "m"))
    assert ours.loader_module == "mlflow.pytorch"
    np.testing.assert_array_equal(ours.predict(data), theirs)
    native = pt_flavor.load_model(str(tmp_path / "m"))
    with torch.no_grad():
        np.testing.assert_array_equal(native(tensor(data)).numpy(), theirs)
