"""Every flavor through the live server: Slipway's SDK with
the server's URL as tracking URI logs each model with ``registered_model_name``, sets an alias,
and loads the model back by the alias (every byte through the artifact proxy), predicting what
the original model predicts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import slipway
import slipway.registry
from slipway.registry.store import clear_registry_store_cache
from slipway.tracking import fluent
from slipway.tracking import uri as uris

from .conftest import LiveServer

COLUMNS = ["a", "b", "c"]


@pytest.fixture
def on_server(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The fluent API pointed at the live server, with no run left over afterwards; a fresh
    experiment, so runs of other tests stay apart."""
    monkeypatch.chdir(tmp_path)
    for var in ("SLIPWAY_TRACKING_URI", "SLIPWAY_EXPERIMENT_ID", "SLIPWAY_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    slipway.set_tracking_uri(live_server.url)
    slipway.set_experiment(f"flavors-{uuid.uuid4().hex[:8]}")
    yield live_server.url
    while fluent.active_run() is not None:
        fluent.end_run()
    fluent.set_tracking_uri(None)
    uris.clear_store_cache()
    clear_registry_store_cache()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(3).random((30, 3)), columns=COLUMNS)


@pytest.fixture(scope="module")
def labels(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return (frame["a"] + frame["c"] > 1).astype(int).to_numpy()


def log_and_load_by_alias(flavor: Any, model: Any, frame: pd.DataFrame, **options: Any) -> Any:
    """Log ``model`` through the server as a new registered model, point alias ``prod`` at it,
    and return the pyfunc model loaded by ``models:/<name>@prod`` and the native one."""
    name = f"{flavor.FLAVOR_NAME}-{uuid.uuid4().hex[:8]}"
    with slipway.start_run():
        info = flavor.log_model(
            model, "model", registered_model_name=name, input_example=frame.head(3), **options
        )
    assert info.registered_model_version == 1
    slipway.registry.set_alias(name, "prod", 1)
    version = slipway.registry.get_model_version(name, alias="prod")
    assert str(version.version) == "1"
    # Stored by the server, so every byte goes through its artifact proxy.
    assert version.source.startswith("mlflow-artifacts:/")
    uri = f"models:/{name}@prod"
    return slipway.pyfunc.load_model(uri), flavor.load_model(uri)


def test_pytorch(on_server: str, frame: pd.DataFrame) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()).eval()
    model, native = log_and_load_by_alias(slipway.pytorch, net, frame)
    with torch.no_grad():
        want = net(torch.from_numpy(np.array(frame, dtype=np.float32))).numpy()
    np.testing.assert_allclose(model.predict(frame).to_numpy(), want, atol=1e-6)
    assert isinstance(native, torch.nn.Sequential)


def test_onnx(on_server: str, frame: pd.DataFrame) -> None:
    from onnx import TensorProto, helper, numpy_helper

    weights = np.array([[0.5], [-1.0], [2.0]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    model, native = log_and_load_by_alias(slipway.onnx, onnx_model, frame)
    want = (frame.to_numpy(dtype=np.float32) @ weights).reshape(-1)
    np.testing.assert_allclose(model.predict(frame)["y"], want, rtol=1e-6)
    assert native.graph == onnx_model.graph


def test_xgboost(on_server: str, frame: pd.DataFrame, labels: np.ndarray[Any, Any]) -> None:
    import xgboost as xgb

    classifier = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(frame, labels)
    model, native = log_and_load_by_alias(slipway.xgboost, classifier, frame)
    np.testing.assert_array_equal(model.predict(frame), classifier.predict(frame))
    assert type(native) is xgb.XGBClassifier


def test_lightgbm(on_server: str, frame: pd.DataFrame, labels: np.ndarray[Any, Any]) -> None:
    import lightgbm as lgb

    classifier = lgb.LGBMClassifier(n_estimators=3, min_child_samples=5, verbose=-1)
    classifier.fit(frame, labels)
    model, native = log_and_load_by_alias(slipway.lightgbm, classifier, frame)
    np.testing.assert_array_equal(model.predict(frame), classifier.predict(frame))
    np.testing.assert_array_equal(native.predict_proba(frame), classifier.predict_proba(frame))


def test_sklearn(on_server: str, frame: pd.DataFrame, labels: np.ndarray[Any, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression().fit(frame, labels)
    model, native = log_and_load_by_alias(slipway.sklearn, classifier, frame)
    np.testing.assert_array_equal(model.predict(frame), classifier.predict(frame))
    np.testing.assert_array_equal(native.coef_, classifier.coef_)


class Scaled(slipway.pyfunc.PythonModel):
    """Multiplies column ``a`` by a factor read from an artifact file at load time."""

    def load_context(self, context: Any) -> None:
        self.factor = float(Path(context.artifacts["factor"]).read_text())

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input["a"].to_numpy() * self.factor


def test_pyfunc(on_server: str, frame: pd.DataFrame, tmp_path: Path) -> None:
    factor = tmp_path / "factor.txt"
    factor.write_text("2.5")
    name = f"pyfunc-{uuid.uuid4().hex[:8]}"
    with slipway.start_run():
        info = slipway.pyfunc.log_model(
            "model",
            Scaled(),
            artifacts={"factor": str(factor)},
            registered_model_name=name,
            input_example=frame.head(3),
        )
    assert info.registered_model_version == 1
    slipway.registry.set_alias(name, "prod", 1)
    assert slipway.registry.get_model_version(name, alias="prod").source.startswith(
        "mlflow-artifacts:/"
    )
    factor.unlink()  # the artifact travels with the model, through the server
    model = slipway.pyfunc.load_model(f"models:/{name}@prod")
    np.testing.assert_allclose(model.predict(frame), frame["a"].to_numpy() * 2.5)
    with pytest.raises(slipway.SlipwayError, match="b"):
        model.predict(frame.drop(columns=["b"]))
