"""The lightgbm flavor: boosters in LightGBM's own format and scikit-learn API models pickled or
in skops, loaded back natively and through pyfunc, logging and registering, MLflow reading ours
and us reading MLflow's, and clear errors for bad input, damaged files and other LightGBM
versions."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import slipway
from slipway.exceptions import InvalidParameterValue
from slipway.flavors import lightgbm as lgb_flavor

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


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    frame = pd.DataFrame(np.random.default_rng(0).random((60, 3)), columns=COLUMNS)
    return frame, (frame["a"] + frame["b"] > 1).astype(int).to_numpy()


@pytest.fixture(scope="module")
def classifier(data: tuple[pd.DataFrame, Any]) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(n_estimators=4, min_child_samples=5, verbose=-1).fit(*data)


@pytest.fixture(scope="module")
def booster(data: tuple[pd.DataFrame, Any]) -> lgb.Booster:
    params = {"objective": "binary", "min_data_in_leaf": 5, "verbose": -1}
    return lgb.train(params, lgb.Dataset(*data), num_boost_round=4)


@pytest.fixture
def saved(tmp_path: Path, booster: lgb.Booster, data: tuple[pd.DataFrame, Any]) -> Path:
    path = tmp_path / "model"
    lgb_flavor.save_model(booster, path, input_example=data[0].head(3))
    return path


def test_a_booster_is_saved_in_lightgbms_format(saved: Path) -> None:
    assert (saved / "model.lgb").read_text().startswith("tree\n")
    body = read_mlmodel(saved)
    assert body["flavors"]["lightgbm"] == {
        "lgb_version": lgb.__version__,
        "data": "model.lgb",
        "model_class": "lightgbm.basic.Booster",
    }
    pyfunc = body["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.lightgbm"
    assert pyfunc["data"] == "model.lgb"
    requirements = requirement_lines(saved)
    assert requirements[0] == f"lightgbm=={lgb.__version__}"
    assert not any(line.startswith(("scikit-learn", "cloudpickle")) for line in requirements)


def test_a_booster_round_trips(
    saved: Path, booster: lgb.Booster, data: tuple[pd.DataFrame, Any]
) -> None:
    X = data[0]
    native = lgb_flavor.load_model(str(saved))
    assert type(native) is lgb.Booster
    np.testing.assert_array_equal(native.predict(X), booster.predict(X))
    model = slipway.pyfunc.load_model(str(saved))
    np.testing.assert_array_equal(model.predict(X), booster.predict(X))
    assert type(model.get_raw_model()) is lgb.Booster


@pytest.mark.parametrize(
    ("fmt", "data_file"),
    [("cloudpickle", "model.pkl"), ("pickle", "model.pkl"), ("skops", "model.skops")],
)
def test_a_classifier_in_each_format(
    tmp_path: Path,
    classifier: lgb.LGBMClassifier,
    data: tuple[pd.DataFrame, Any],
    fmt: str,
    data_file: str,
) -> None:
    X = data[0]
    lgb_flavor.save_model(classifier, tmp_path / "m", serialization_format=fmt)
    conf = read_mlmodel(tmp_path / "m")["flavors"]["lightgbm"]
    assert conf["data"] == data_file
    assert conf["model_class"] == "lightgbm.sklearn.LGBMClassifier"
    assert conf["serialization_format"] == fmt
    if fmt == "skops":
        assert "lightgbm.sklearn.LGBMClassifier" in conf["skops_trusted_types"]
    requirements = " ".join(requirement_lines(tmp_path / "m"))
    assert "scikit-learn==" in requirements
    native = lgb_flavor.load_model(str(tmp_path / "m"))
    assert type(native) is lgb.LGBMClassifier
    np.testing.assert_array_equal(native.predict_proba(X), classifier.predict_proba(X))
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(model.predict(X), classifier.predict(X))


def test_pyfunc_enforces_the_signature_first(saved: Path, data: tuple[pd.DataFrame, Any]) -> None:
    model = slipway.pyfunc.load_model(str(saved))
    with pytest.raises(InvalidParameterValue, match="'c'"):
        model.predict(data[0].drop(columns=["c"]))


def test_a_wrong_number_of_features_gives_a_clear_error(
    tmp_path: Path, booster: lgb.Booster, data: tuple[pd.DataFrame, Any]
) -> None:
    lgb_flavor.save_model(booster, tmp_path / "m")  # no signature: LightGBM checks
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    with pytest.raises(InvalidParameterValue, match="LightGBM model cannot predict"):
        model.predict(data[0].drop(columns=["c"]))
    with pytest.raises(InvalidParameterValue, match="LightGBM model cannot predict"):
        model.predict(data[0].assign(a="text"))


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        ("not a model", {}, r"must be a lightgbm\.Booster .* not str"),
        (None, {"serialization_format": "joblib"}, "Unknown serialization_format 'joblib'"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, classifier: lgb.LGBMClassifier, model: Any, kwargs: Any, message: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        lgb_flavor.save_model(classifier if model is None else model, tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


# -- damaged models and other versions -------------------------------------------------------


def test_missing_model_file_names_it(saved: Path) -> None:
    (saved / "model.lgb").unlink()
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "model.lgb"))):
        slipway.pyfunc.load_model(str(saved))


def test_a_corrupt_booster_names_the_file_and_versions(saved: Path) -> None:
    path = saved / "model.lgb"
    path.write_text("not a LightGBM model\n")
    with pytest.raises(InvalidParameterValue) as info:
        lgb_flavor.load_model(str(saved))
    message = info.value.message
    assert str(path) in message
    assert f"saved with LightGBM {lgb.__version__}; this is LightGBM {lgb.__version__}" in message


def test_a_truncated_pickle_names_the_file_and_versions(
    tmp_path: Path, classifier: lgb.LGBMClassifier
) -> None:
    lgb_flavor.save_model(classifier, tmp_path / "m", serialization_format="pickle")
    path = tmp_path / "m" / "model.pkl"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InvalidParameterValue) as info:
        slipway.pyfunc.load_model(str(tmp_path / "m"))
    assert str(path) in info.value.message


def test_another_major_version_that_cannot_load_names_both(saved: Path) -> None:
    set_flavor_entry(saved, "lightgbm", "lgb_version", "2.3.1")
    (saved / "model.lgb").write_text("tree\nversion=v9\nnum_class=oops\n")
    with pytest.raises(InvalidParameterValue) as info:
        slipway.pyfunc.load_model(str(saved))
    message = info.value.message
    assert f"saved with LightGBM 2.3.1; this is LightGBM {lgb.__version__}" in message
    assert "LightGBM 2.x may not load with LightGBM 4.x: install lightgbm==2.3.1" in message


def test_another_version_that_loads_logs_a_warning(
    saved: Path, caplog: pytest.LogCaptureFixture
) -> None:
    set_flavor_entry(saved, "lightgbm", "lgb_version", "4.0.0")
    with caplog.at_level(logging.WARNING, logger="slipway.flavors.lightgbm"):
        lgb_flavor.load_model(str(saved))
    assert any("4.0.0" in r.getMessage() for r in caplog.records)


def test_an_unknown_serialization_format(tmp_path: Path, classifier: lgb.LGBMClassifier) -> None:
    lgb_flavor.save_model(classifier, tmp_path / "m")
    set_flavor_entry(tmp_path / "m", "lightgbm", "serialization_format", "joblib")
    with pytest.raises(InvalidParameterValue, match="serialization format 'joblib'"):
        lgb_flavor.load_model(str(tmp_path / "m"))


# -- logging, registering and MLflow ---------------------------------------------------------


def test_log_register_and_load_by_alias(
    tracking_dir: Path, classifier: lgb.LGBMClassifier, data: tuple[pd.DataFrame, Any]
) -> None:
    X = data[0]
    info, loaded = log_register_and_load(
        slipway.lightgbm, classifier, "lgb-classifier", input_example=X.head(3)
    )
    assert set(info.flavors) == {"python_function", "lightgbm"}
    for uri, model in loaded.items():
        np.testing.assert_array_equal(model.predict(X), classifier.predict(X), err_msg=uri)
    native = slipway.lightgbm.load_model("models:/lgb-classifier@champion")
    assert type(native) is lgb.LGBMClassifier


@pytest.fixture
def mlflow(monkeypatch: pytest.MonkeyPatch) -> Any:
    # MLflow 3 refuses pickled models unless this is set; these models are our own.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    return import_mlflow("lightgbm")


@pytest.mark.parametrize("fmt", ["booster", "cloudpickle", "skops"])
def test_mlflow_loads_ours(
    mlflow: Any,
    tmp_path: Path,
    booster: lgb.Booster,
    classifier: lgb.LGBMClassifier,
    data: tuple[pd.DataFrame, Any],
    fmt: str,
) -> None:
    X = data[0]
    if fmt == "booster":
        lgb_flavor.save_model(booster, tmp_path / "m", input_example=X.head(3))
    else:
        lgb_flavor.save_model(classifier, tmp_path / "m", serialization_format=fmt)
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(X)
    np.testing.assert_array_equal(slipway.pyfunc.load_model(str(tmp_path / "m")).predict(X), theirs)
    native = mlflow.lightgbm.load_model(str(tmp_path / "m"))
    assert type(native) is (lgb.Booster if fmt == "booster" else lgb.LGBMClassifier)
    np.testing.assert_array_equal(native.predict(X), theirs)


@pytest.mark.parametrize("fmt", ["booster", "cloudpickle", "skops"])
def test_we_load_mlflows(
    mlflow: Any,
    tmp_path: Path,
    booster: lgb.Booster,
    classifier: lgb.LGBMClassifier,
    data: tuple[pd.DataFrame, Any],
    fmt: str,
) -> None:
    X = data[0]
    model, options = (
        (booster, {}) if fmt == "booster" else (classifier, {"serialization_format": fmt})
    )
    mlflow.lightgbm.save_model(
        model,
        str(tmp_path / "m"),
        input_example=X.head(3),
        pip_requirements=["lightgbm"],  # spares MLflow's slow inference of requirements
        **options,
    )
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(X)
    ours = slipway.pyfunc.load_model(str(tmp_path / "m"))
    assert ours.loader_module == "mlflow.lightgbm"
    assert ours.metadata.signature is not None
    np.testing.assert_array_equal(ours.predict(X), theirs)
    np.testing.assert_array_equal(lgb_flavor.load_model(str(tmp_path / "m")).predict(X), theirs)
