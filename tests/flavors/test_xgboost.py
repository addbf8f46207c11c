"""The xgboost flavor: the directory it writes (UBJSON or JSON), boosters and scikit-learn API
models loaded back as their own class, pyfunc predictions, logging and registering, MLflow
reading ours and us reading MLflow's, and clear errors for bad input, damaged files and other
XGBoost versions."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import slipway
from slipway.exceptions import InvalidParameterValue
from slipway.flavors import xgboost as xgb_flavor
from slipway.models import infer_signature

from ._interop import (
    MLFLOW_WARNINGS,
    import_mlflow,
    log_register_and_load,
    read_mlmodel,
    requirement_lines,
    set_flavor_entry,
    write_mlmodel,
)

pytestmark = MLFLOW_WARNINGS

COLUMNS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    frame = pd.DataFrame(np.random.default_rng(0).random((40, 3)), columns=COLUMNS)
    return frame, (frame["a"] + frame["b"] > 1).astype(int).to_numpy()


@pytest.fixture(scope="module")
def classifier(data: tuple[pd.DataFrame, Any]) -> xgb.XGBClassifier:
    return xgb.XGBClassifier(n_estimators=4, max_depth=2, random_state=0).fit(*data)


@pytest.fixture(scope="module")
def booster(data: tuple[pd.DataFrame, Any]) -> xgb.Booster:
    return xgb.train({"max_depth": 2, "seed": 0}, xgb.DMatrix(*data), num_boost_round=4)


@pytest.fixture
def saved(tmp_path: Path, classifier: xgb.XGBClassifier, data: tuple[pd.DataFrame, Any]) -> Path:
    path = tmp_path / "model"
    xgb_flavor.save_model(classifier, path, input_example=data[0].head(3))
    return path


def test_the_directory_is_mlflows_layout(saved: Path) -> None:
    assert (saved / "model.ubj").is_file()
    body = read_mlmodel(saved)
    assert body["flavors"]["xgboost"] == {
        "xgb_version": xgb.__version__,
        "data": "model.ubj",
        "model_class": "xgboost.sklearn.XGBClassifier",
        "model_format": "ubj",
    }
    pyfunc = body["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.xgboost"
    assert pyfunc["data"] == "model.ubj"
    requirements = requirement_lines(saved)
    # Pinned to the importable version whatever the distribution is called (xgboost-cpu).
    assert requirements[0] == f"xgboost=={xgb.__version__}"
    assert any(line.startswith("scikit-learn==") for line in requirements)


def test_a_classifier_comes_back_as_a_classifier(
    saved: Path, classifier: xgb.XGBClassifier, data: tuple[pd.DataFrame, Any]
) -> None:
    X = data[0]
    native = xgb_flavor.load_model(str(saved))
    assert type(native) is xgb.XGBClassifier
    np.testing.assert_array_equal(native.predict_proba(X), classifier.predict_proba(X))
    model = slipway.pyfunc.load_model(str(saved))
    np.testing.assert_array_equal(model.predict(X), classifier.predict(X))
    assert model.get_raw_model().n_classes_ == 2


@pytest.mark.parametrize("fmt", ["ubj", "json"])
def test_a_booster_in_either_format(
    tmp_path: Path, booster: xgb.Booster, data: tuple[pd.DataFrame, Any], fmt: str
) -> None:
    xgb_flavor.save_model(booster, tmp_path / "m", model_format=fmt)
    assert (tmp_path / "m" / f"model.{fmt}").is_file()
    conf = read_mlmodel(tmp_path / "m")["flavors"]["xgboost"]
    assert (conf["model_class"], conf["model_format"]) == ("xgboost.core.Booster", fmt)
    assert "scikit-learn" not in " ".join(requirement_lines(tmp_path / "m"))
    X = data[0]
    want = booster.predict(xgb.DMatrix(X))
    native = xgb_flavor.load_model(str(tmp_path / "m"))
    assert type(native) is xgb.Booster
    np.testing.assert_array_equal(native.predict(xgb.DMatrix(X)), want)
    np.testing.assert_array_equal(slipway.pyfunc.load_model(str(tmp_path / "m")).predict(X), want)


def test_a_regressor_round_trips(tmp_path: Path, data: tuple[pd.DataFrame, Any]) -> None:
    X, y = data
    regressor = xgb.XGBRegressor(n_estimators=3, max_depth=2).fit(X, y * 2.5)
    xgb_flavor.save_model(regressor, tmp_path / "m", model_format="json")
    native = xgb_flavor.load_model(str(tmp_path / "m"))
    assert type(native) is xgb.XGBRegressor
    np.testing.assert_array_equal(native.predict(X), regressor.predict(X))


def test_pyfunc_enforces_the_signature_first(saved: Path, data: tuple[pd.DataFrame, Any]) -> None:
    model = slipway.pyfunc.load_model(str(saved))
    with pytest.raises(InvalidParameterValue, match="'c'"):
        model.predict(data[0].drop(columns=["c"]))


def test_other_columns_give_a_clear_error(
    tmp_path: Path, classifier: xgb.XGBClassifier, data: tuple[pd.DataFrame, Any]
) -> None:
    xgb_flavor.save_model(classifier, tmp_path / "m")  # no signature: XGBoost checks
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    renamed = data[0].rename(columns={"c": "z"})
    with pytest.raises(InvalidParameterValue, match=r"XGBoost model cannot predict.*feature"):
        model.predict(renamed)
    with pytest.raises(InvalidParameterValue, match="XGBoost model cannot predict"):
        model.predict(data[0].assign(a="text"))


def test_params_the_predict_method_takes_are_passed_on(
    tmp_path: Path,
    booster: xgb.Booster,
    data: tuple[pd.DataFrame, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    X = data[0]
    signature = infer_signature(X, params={"output_margin": False, "unknown": 1})
    xgb_flavor.save_model(booster, tmp_path / "m", signature=signature)
    model = slipway.pyfunc.load_model(str(tmp_path / "m"))
    with caplog.at_level(logging.WARNING, logger="slipway.flavors.xgboost"):
        margins = model.predict(X, params={"output_margin": True, "unknown": 2})
    np.testing.assert_array_equal(margins, booster.predict(xgb.DMatrix(X), output_margin=True))
    assert any("['unknown']" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        ("not a model", {}, "must be an xgboost.Booster .* not str"),
        (None, {"model_format": "xgb"}, "Unknown model_format 'xgb'"),
        (xgb.XGBClassifier(), {}, "Cannot save the XGBClassifier model \\(is it trained\\?\\)"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, classifier: xgb.XGBClassifier, model: Any, kwargs: Any, message: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        xgb_flavor.save_model(classifier if model is None else model, tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


# -- damaged models, other versions, other classes -------------------------------------------


@pytest.mark.parametrize(
    ("model_class", "message"),
    [
        ("os.system", "not an XGBoost class"),
        ("xgboost.core.DMatrix", "is not an XGBoost model class"),
        ("xgboost.sklearn.XGBNothing", "has no model class 'xgboost.sklearn.XGBNothing'"),
    ],
)
def test_only_xgboost_model_classes_are_loaded(saved: Path, model_class: str, message: str) -> None:
    set_flavor_entry(saved, "xgboost", "model_class", model_class)
    with pytest.raises(InvalidParameterValue, match=message):
        xgb_flavor.load_model(str(saved))


def test_a_model_without_model_class_is_a_booster(
    saved: Path, classifier: xgb.XGBClassifier, data: tuple[pd.DataFrame, Any]
) -> None:
    body = read_mlmodel(saved)
    del body["flavors"]["xgboost"]["model_class"]  # as MLflow before 1.22 wrote it
    write_mlmodel(saved, body)
    native = xgb_flavor.load_model(str(saved))
    assert type(native) is xgb.Booster
    np.testing.assert_array_equal(
        native.predict(xgb.DMatrix(data[0])), classifier.predict_proba(data[0])[:, 1]
    )


def test_missing_model_file_names_it(saved: Path) -> None:
    (saved / "model.ubj").unlink()
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "model.ubj"))):
        slipway.pyfunc.load_model(str(saved))


def test_a_corrupt_file_names_the_file_and_versions(saved: Path) -> None:
    path = saved / "model.ubj"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InvalidParameterValue) as info:
        xgb_flavor.load_model(str(saved))
    message = info.value.message
    assert str(path) in message
    assert f"saved with XGBoost {xgb.__version__}; this is XGBoost {xgb.__version__}" in message
    assert "Stack trace" not in message  # XGBoost's native trace stays out of the message


def test_another_major_version_that_cannot_load_names_both(saved: Path) -> None:
    set_flavor_entry(saved, "xgboost", "xgb_version", "1.7.6")
    (saved / "model.ubj").write_bytes(b"binf\x00\x00\x00 the binary format of XGBoost 1")
    with pytest.raises(InvalidParameterValue) as info:
        slipway.pyfunc.load_model(str(saved))
    message = info.value.message
    assert f"saved with XGBoost 1.7.6; this is XGBoost {xgb.__version__}" in message
    assert "XGBoost 1.x may not load with XGBoost 3.x: install xgboost==1.7.6" in message


def test_another_version_that_loads_logs_a_warning(
    saved: Path, caplog: pytest.LogCaptureFixture
) -> None:
    set_flavor_entry(saved, "xgboost", "xgb_version", "2.1.0")
    with caplog.at_level(logging.WARNING, logger="slipway.flavors.xgboost"):
        xgb_flavor.load_model(str(saved))
    assert any("2.1.0" in r.getMessage() for r in caplog.records)


# -- logging, registering and MLflow ---------------------------------------------------------


def test_log_register_and_load_by_alias(
    tracking_dir: Path, classifier: xgb.XGBClassifier, data: tuple[pd.DataFrame, Any]
) -> None:
    X = data[0]
    info, loaded = log_register_and_load(
        slipway.xgboost, classifier, "xgb-classifier", input_example=X.head(3)
    )
    assert set(info.flavors) == {"python_function", "xgboost"}
    for uri, model in loaded.items():
        np.testing.assert_array_equal(model.predict(X), classifier.predict(X), err_msg=uri)
    native = slipway.xgboost.load_model("models:/xgb-classifier@champion")
    assert type(native) is xgb.XGBClassifier


@pytest.fixture
def mlflow() -> Any:
    return import_mlflow("xgboost")


def test_mlflow_loads_ours(
    mlflow: Any, tmp_path: Path, classifier: xgb.XGBClassifier, data: tuple[pd.DataFrame, Any]
) -> None:
    X = data[0]
    xgb_flavor.save_model(classifier, tmp_path / "m", input_example=X.head(3))
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(X)
    np.testing.assert_array_equal(slipway.pyfunc.load_model(str(tmp_path / "m")).predict(X), theirs)
    native = mlflow.xgboost.load_model(str(tmp_path / "m"))
    assert type(native) is xgb.XGBClassifier
    np.testing.assert_array_equal(native.predict_proba(X), classifier.predict_proba(X))


@pytest.mark.parametrize("fmt", ["ubj", "json"])
def test_we_load_mlflows(
    mlflow: Any, tmp_path: Path, booster: xgb.Booster, data: tuple[pd.DataFrame, Any], fmt: str
) -> None:
    X = data[0]
    mlflow.xgboost.save_model(
        booster,
        str(tmp_path / "m"),
        model_format=fmt,
        input_example=X.head(3),
        pip_requirements=["xgboost"],  # spares MLflow's slow inference of requirements
    )
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(X)
    ours = slipway.pyfunc.load_model(str(tmp_path / "m"))
    assert ours.loader_module == "mlflow.xgboost"
    assert ours.metadata.signature is not None
    np.testing.assert_array_equal(ours.predict(X), theirs)
    native = xgb_flavor.load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(native.predict(xgb.DMatrix(X)), theirs)
