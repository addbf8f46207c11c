"""The sklearn flavor: the directory it writes, loading it back (natively and through pyfunc),
logging and registering, and clear errors for damaged models and other scikit-learn versions."""

from __future__ import annotations

import json
import logging
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import slipway
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists
from slipway.flavors import sklearn as sk_flavor
from slipway.flavors.pyfunc import load_model as load_pyfunc
from slipway.models import Model
from slipway.models.environment import python_version
from slipway.registry.store import clear_registry_store_cache, get_registry_store
from slipway.tracking import fluent


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    data = load_iris(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return frame, data.target.to_numpy()


@pytest.fixture(scope="module")
def classifier(iris: tuple[pd.DataFrame, Any]) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture
def saved(tmp_path: Path, classifier: LogisticRegression, iris: tuple[pd.DataFrame, Any]) -> Path:
    path = tmp_path / "model"
    sk_flavor.save_model(classifier, path, input_example=iris[0].head(3))
    return path


def _mlmodel(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((path / "MLmodel").read_text())
    return body


def test_the_directory_is_mlflows_layout(saved: Path) -> None:
    names = {p.name for p in saved.iterdir()}
    assert {"MLmodel", "model.pkl", "requirements.txt", "python_env.yaml", "conda.yaml"} <= names
    body = _mlmodel(saved)
    assert body["flavors"]["sklearn"] == {
        "pickled_model": "model.pkl",
        "sklearn_version": sklearn.__version__,
        "serialization_format": "cloudpickle",
    }
    pyfunc = body["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.sklearn"
    assert pyfunc["model_path"] == "model.pkl"
    assert pyfunc["predict_fn"] == "predict"
    assert pyfunc["python_version"] == python_version()
    assert pyfunc["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert body["model_size_bytes"] > 0
    requirements = (saved / "requirements.txt").read_text().splitlines()
    assert f"scikit-learn=={sklearn.__version__}" in requirements
    assert any(line.startswith("cloudpickle==") for line in requirements)
    assert any(line.startswith("numpy==") for line in requirements)


def test_the_signature_comes_from_the_input_example(saved: Path) -> None:
    meta = Model.load(saved)
    assert meta.signature is not None
    inputs = json.loads(meta.signature.to_dict()["inputs"] or "[]")
    assert [col["name"] for col in inputs] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert meta.signature.outputs is not None  # inferred from predict() on the example
    assert meta.saved_input_example_info is not None
    assert (saved / meta.saved_input_example_info["artifact_path"]).is_file()


def test_native_and_pyfunc_loading_predict_the_same(
    saved: Path, classifier: LogisticRegression, iris: tuple[pd.DataFrame, Any]
) -> None:
    X = iris[0]
    native = sk_flavor.load_model(str(saved))
    assert isinstance(native, LogisticRegression)
    np.testing.assert_array_equal(native.predict(X), classifier.predict(X))
    model = load_pyfunc(str(saved))
    assert model.loader_module == "mlflow.sklearn"
    assert model.metadata.flavors["sklearn"]["pickled_model"] == "model.pkl"
    np.testing.assert_array_equal(model.predict(X), classifier.predict(X))
    assert isinstance(model.get_raw_model(), LogisticRegression)


def test_pyfunc_enforces_the_signature_first(saved: Path, iris: tuple[pd.DataFrame, Any]) -> None:
    model = load_pyfunc(str(saved))
    with pytest.raises(InvalidParameterValue, match="petal_width"):
        model.predict(iris[0].drop(columns=["petal_width"]))


@pytest.mark.parametrize("fmt", ["pickle", "cloudpickle", "skops"])
def test_serialization_formats(
    tmp_path: Path, classifier: LogisticRegression, iris: tuple[pd.DataFrame, Any], fmt: str
) -> None:
    path = tmp_path / fmt
    sk_flavor.save_model(classifier, path, serialization_format=fmt)
    assert _mlmodel(path)["flavors"]["sklearn"]["serialization_format"] == fmt
    np.testing.assert_array_equal(
        sk_flavor.load_model(str(path)).predict(iris[0]), classifier.predict(iris[0])
    )


def test_skops_needs_tree_types_trusted(tmp_path: Path, iris: tuple[pd.DataFrame, Any]) -> None:
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(random_state=0).fit(*iris)
    with pytest.raises(InvalidParameterValue, match=r"sklearn\.tree\._tree\.Tree"):
        sk_flavor.save_model(tree, tmp_path / "refused", serialization_format="skops")
    assert not (tmp_path / "refused").exists()
    trusted = ["sklearn.tree._tree.Tree"]
    sk_flavor.save_model(
        tree, tmp_path / "m", serialization_format="skops", skops_trusted_types=trusted
    )
    assert _mlmodel(tmp_path / "m")["flavors"]["sklearn"]["skops_trusted_types"] == trusted
    np.testing.assert_array_equal(
        load_pyfunc(str(tmp_path / "m")).predict(iris[0]), tree.predict(iris[0])
    )


def test_predict_proba_through_pyfunc(
    tmp_path: Path, classifier: LogisticRegression, iris: tuple[pd.DataFrame, Any]
) -> None:
    sk_flavor.save_model(classifier, tmp_path / "m", pyfunc_predict_fn="predict_proba")
    model = load_pyfunc(str(tmp_path / "m"))
    np.testing.assert_allclose(model.predict(iris[0]), classifier.predict_proba(iris[0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"serialization_format": "json"}, "Unknown serialization_format 'json'"),
        ({"pyfunc_predict_fn": "transform"}, "Unknown pyfunc_predict_fn 'transform'"),
    ],
)
def test_bad_options(
    tmp_path: Path, classifier: LogisticRegression, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        sk_flavor.save_model(classifier, tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


def test_a_model_without_the_predict_method(tmp_path: Path, classifier: Any) -> None:
    from sklearn.preprocessing import StandardScaler

    with pytest.raises(InvalidParameterValue, match="StandardScaler model has no predict"):
        sk_flavor.save_model(StandardScaler(), tmp_path / "m")


def test_a_non_empty_target_is_refused_and_kept(
    tmp_path: Path, classifier: LogisticRegression
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ResourceAlreadyExists, match="not empty"):
        sk_flavor.save_model(classifier, tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    class Unpicklable(LogisticRegression):
        def __reduce__(self) -> Any:
            raise TypeError("cannot pickle this")

    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (tmp_path / "new", empty):
        with pytest.raises(InvalidParameterValue, match="Cannot serialize the Unpicklable"):
            sk_flavor.save_model(Unpicklable(), target, serialization_format="pickle")
        assert not target.exists() or not any(target.iterdir())
    assert empty.is_dir()


# -- damaged models and other versions -------------------------------------------------------


def test_missing_pickle_names_the_file(saved: Path) -> None:
    (saved / "model.pkl").unlink()
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "model.pkl"))):
        sk_flavor.load_model(str(saved))
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "model.pkl"))):
        load_pyfunc(str(saved))


def test_truncated_pickle_names_the_file_and_versions(saved: Path) -> None:
    data = (saved / "model.pkl").read_bytes()
    (saved / "model.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidParameterValue) as info:
        sk_flavor.load_model(str(saved))
    assert str(saved / "model.pkl") in info.value.message
    assert "truncated or corrupt" in info.value.message


def test_unknown_format_in_mlmodel(saved: Path) -> None:
    body = _mlmodel(saved)
    body["flavors"]["sklearn"]["serialization_format"] = "joblib"
    (saved / "MLmodel").write_text(yaml.safe_dump(body))
    with pytest.raises(InvalidParameterValue, match="serialization format 'joblib'"):
        sk_flavor.load_model(str(saved))


def test_a_model_of_another_flavor(saved: Path) -> None:
    body = _mlmodel(saved)
    del body["flavors"]["sklearn"]
    body["flavors"]["python_function"]["loader_module"] = "mlflow.tensorflow"
    (saved / "MLmodel").write_text(yaml.safe_dump(body))
    with pytest.raises(InvalidParameterValue, match=r"'mlflow\.tensorflow'"):
        load_pyfunc(str(saved))


def _set_saved_version(path: Path, version: str) -> None:
    body = _mlmodel(path)
    body["flavors"]["sklearn"]["sklearn_version"] = version
    (path / "MLmodel").write_text(yaml.safe_dump(body))


def test_another_version_that_loads_logs_a_warning(
    saved: Path, iris: tuple[pd.DataFrame, Any], caplog: pytest.LogCaptureFixture
) -> None:
    _set_saved_version(saved, "0.0.1")
    with caplog.at_level(logging.WARNING, logger="slipway.flavors.sklearn"):
        model = sk_flavor.load_model(str(saved))
    assert model.predict(iris[0]).shape == (150,)
    assert any(
        "0.0.1" in r.getMessage() and sklearn.__version__ in r.getMessage() for r in caplog.records
    )


def test_another_version_that_cannot_load_names_both_versions(saved: Path) -> None:
    _set_saved_version(saved, "0.0.1")
    # What an estimator class that the installed version no longer has unpickles as.
    (saved / "model.pkl").write_bytes(b"csklearn.removed_module\nOldEstimator\n.")
    with pytest.raises(InvalidParameterValue) as info:
        sk_flavor.load_model(str(saved))
    message = info.value.message
    assert "scikit-learn 0.0.1" in message
    assert f"this is scikit-learn {sklearn.__version__}" in message
    assert "sklearn.removed_module" in message


def test_a_plain_pickle_without_the_sklearn_flavor(
    tmp_path: Path, classifier: LogisticRegression, iris: tuple[pd.DataFrame, Any]
) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(classifier))
    Model(
        flavors={"python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"}}
    ).save(tmp_path)
    np.testing.assert_array_equal(
        load_pyfunc(str(tmp_path)).predict(iris[0]), classifier.predict(iris[0])
    )


# -- logging and registering ---------------------------------------------------------------


def test_log_model_register_and_load_by_every_uri(
    tracking_dir: Path, classifier: LogisticRegression, iris: tuple[pd.DataFrame, Any]
) -> None:
    X = iris[0]
    try:
        with slipway.start_run() as run:
            info = slipway.sklearn.log_model(
                classifier, "model", input_example=X[:5], registered_model_name="iris"
            )
            again = slipway.sklearn.log_model(
                classifier, "model2", registered_model_name="iris", metadata={"k": "v"}
            )
        assert info.run_id == run.info.run_id
        assert info.artifact_path == "model"
        assert info.model_uri == f"runs:/{run.info.run_id}/model"
        assert info.registered_model_version == 1
        assert again.registered_model_version == 2
        assert again.metadata == {"k": "v"}
        assert info.signature is not None
        assert info.saved_input_example_info is not None
        assert set(info.flavors) == {"python_function", "sklearn"}

        registry = get_registry_store()
        registry.set_registered_model_alias("iris", "champion", "1")
        expected = classifier.predict(X)
        for uri in (info.model_uri, "models:/iris/1", "models:/iris@champion", "models:/iris/2"):
            np.testing.assert_array_equal(slipway.pyfunc.load_model(uri).predict(X), expected)
        np.testing.assert_array_equal(
            slipway.sklearn.load_model(info.model_uri).predict(X), expected
        )

        history = json.loads(
            slipway.SlipwayClient().get_run(run.info.run_id).data.tags["mlflow.log-model.history"]
        )
        assert [entry["artifact_path"] for entry in history] == ["model", "model2"]
        assert history[0]["model_uuid"] == info.model_uuid
    finally:
        clear_registry_store_cache()


def test_log_model_starts_a_run_when_none_is_active(
    tracking_dir: Path, classifier: LogisticRegression
) -> None:
    info = slipway.sklearn.log_model(classifier, "model")
    active = fluent.active_run()
    assert active is not None
    assert active.info.run_id == info.run_id
    assert (slipway.SlipwayClient().download_artifacts(info.run_id, "model") / "MLmodel").is_file()


@pytest.mark.parametrize("artifact_path", ["", "../escape", "/abs"])
def test_log_model_refuses_bad_artifact_paths(
    tracking_dir: Path, classifier: LogisticRegression, artifact_path: str
) -> None:
    with slipway.start_run(), pytest.raises(InvalidParameterValue):
        slipway.sklearn.log_model(classifier, artifact_path)


def test_flavors_are_not_imported_with_slipway() -> None:
    code = (
        "import sys, slipway\n"
        "assert 'sklearn' not in sys.modules and 'slipway.flavors' not in sys.modules\n"
        "assert callable(slipway.sklearn.log_model) and callable(slipway.pyfunc.load_model)\n"
        "assert slipway.sklearn.__name__ == 'slipway.flavors.sklearn'\n"
        "try:\n"
        "    slipway.no_such_thing\n"
        "except AttributeError as e:\n"
        "    print('ok', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok module 'slipway' has no attribute 'no_such_thing'")


def test_log_register_and_load_through_a_tracking_server(
    rest_server: Any,
    tracking_dir: Path,
    tmp_path: Path,
    classifier: LogisticRegression,
    iris: tuple[pd.DataFrame, Any],
) -> None:
    """Every byte through the server: the artifact proxy (mlflow-artifacts:/ sources) and the
    registry's REST API."""
    from slipway.server import ServerSettings, create_app

    app = create_app(
        ServerSettings(
            backend_store_uri=str(tmp_path / "server"),
            artifacts_destination=str(tmp_path / "served"),
        )
    )
    rest_server.front.app = app
    try:
        fluent.set_tracking_uri(rest_server.url)
        with slipway.start_run():
            info = slipway.sklearn.log_model(classifier, "model", registered_model_name="remote")
        assert info.registered_model_version == 1
        source = get_registry_store().get_model_version("remote", "1").source
        assert source.startswith("mlflow-artifacts:/")
        get_registry_store().set_registered_model_alias("remote", "prod", "1")
        model = slipway.pyfunc.load_model("models:/remote@prod")
        np.testing.assert_array_equal(model.predict(iris[0]), classifier.predict(iris[0]))
    finally:
        fluent.set_tracking_uri(str(tracking_dir))
        clear_registry_store_cache()
        rest_server.front.app = None
        app.state.context.close()


def test_custom_estimators_load_from_code_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "custom_threshold.py").write_text(
        "from sklearn.base import BaseEstimator, ClassifierMixin\n"
        "import numpy as np\n\n"
        "class Threshold(ClassifierMixin, BaseEstimator):\n"
        "    def fit(self, X, y):\n"
        "        self.classes_ = np.array([0, 1])\n"
        "        return self\n\n"
        "    def predict(self, X):\n"
        "        return (np.asarray(X)[:, 0] > 0.5).astype(int)\n"
    )
    monkeypatch.syspath_prepend(str(src))
    import custom_threshold  # type: ignore[import-not-found]

    try:
        model = custom_threshold.Threshold().fit([[0.0]], [0])
        sk_flavor.save_model(
            model,
            tmp_path / "m",
            code_paths=[src / "custom_threshold.py"],
            serialization_format="pickle",
        )
    finally:
        del sys.modules["custom_threshold"]
    script = (
        "import json, slipway\n"
        f"m = slipway.sklearn.load_model({str(tmp_path / 'm')!r})\n"
        "print(json.dumps([type(m).__name__, m.predict([[0.2], [0.9]]).tolist()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["Threshold", [0, 1]]
