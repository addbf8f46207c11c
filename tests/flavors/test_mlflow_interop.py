"""Both directions with the real mlflow package: MLflow loads what Slipway saves, Slipway loads
what MLflow saves (without MLflow installed, for scikit-learn), and predictions are identical."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import slipway

pytestmark = [
    # MLflow's advice about type hints, raised from inside mlflow (also when it is imported).
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
    # MLflow's input-example code compares a pandas Index with a range, which pandas 3 warns
    # about.
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:mlflow.*"),
]


@pytest.fixture(scope="module")
def mlflow() -> Any:
    """The mlflow package, imported here rather than at collection, where the warning
    filter above does not apply yet."""
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn

    return mlflow


@pytest.fixture(autouse=True)
def allow_mlflow_to_unpickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow 3 refuses pickled models unless this is set; these models are our own."""
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, Any]:
    data = load_iris(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return frame, data.target.to_numpy()


@pytest.fixture(scope="module")
def forest(iris: tuple[pd.DataFrame, Any]) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(*iris)


@pytest.fixture
def isolated_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model with code paths prepends to sys.path; undo it after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


# -- MLflow loads Slipway models -------------------------------------------------------------


def test_mlflow_loads_a_slipway_sklearn_model(
    mlflow: Any, tmp_path: Path, forest: RandomForestClassifier, iris: tuple[pd.DataFrame, Any]
) -> None:
    X = iris[0]
    slipway.sklearn.save_model(forest, tmp_path / "m", input_example=X.head(5))
    expected = forest.predict(X)
    by_pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(by_pyfunc.predict(X), expected)
    np.testing.assert_array_equal(
        by_pyfunc.predict(X), slipway.pyfunc.load_model(str(tmp_path / "m")).predict(X)
    )
    native = mlflow.sklearn.load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(native.predict(X), expected)
    assert by_pyfunc.metadata.get_input_schema().input_names() == list(X.columns)


def _write_module(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def test_mlflow_loads_a_slipway_python_model_with_artifacts_and_code(
    mlflow: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_sys_path: None
) -> None:
    code = _write_module(
        tmp_path / "src",
        "interop_offset_model",
        """
        from pathlib import Path
        from slipway.flavors.pyfunc import PythonModel

        class Offset(PythonModel):
            def load_context(self, context):
                self.offset = float(Path(context.artifacts["offset"]).read_text())

            def predict(self, context, model_input, params=None):
                return model_input * 2 + self.offset
        """,
    )
    (tmp_path / "offset.txt").write_text("0.5")
    monkeypatch.syspath_prepend(str(code.parent))
    import interop_offset_model  # type: ignore[import-not-found]

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    slipway.pyfunc.save_model(
        tmp_path / "m",
        interop_offset_model.Offset(),
        artifacts={"offset": str(tmp_path / "offset.txt")},
        code_paths=[code],
        input_example=frame,
    )
    # Forget the module and where it came from: the model's own code/ folder must do.
    del sys.modules["interop_offset_model"]
    sys.path.remove(str(code.parent))
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    pd.testing.assert_frame_equal(theirs.predict(frame), frame * 2 + 0.5)
    ours = slipway.pyfunc.load_model(str(tmp_path / "m"))
    pd.testing.assert_frame_equal(ours.predict(frame), theirs.predict(frame))


def test_mlflow_loads_a_slipway_model_logged_to_a_run(
    mlflow: Any, tracking_dir: Path, forest: RandomForestClassifier, iris: tuple[pd.DataFrame, Any]
) -> None:
    with slipway.start_run():
        info = slipway.sklearn.log_model(forest, "model")
    local = slipway.SlipwayClient().download_artifacts(info.run_id, "model")
    theirs = mlflow.pyfunc.load_model(str(local))
    np.testing.assert_array_equal(theirs.predict(iris[0]), forest.predict(iris[0]))


# -- Slipway loads MLflow models -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle", "skops"])
def test_slipway_loads_an_mlflow_sklearn_model(
    mlflow: Any,
    tmp_path: Path,
    forest: RandomForestClassifier,
    iris: tuple[pd.DataFrame, Any],
    fmt: str,
) -> None:
    X = iris[0]
    # skops (MLflow 3's default format) needs tree models' node storage trusted explicitly.
    trusted = {"skops_trusted_types": ["sklearn.tree._tree.Tree"]} if fmt == "skops" else {}
    mlflow.sklearn.save_model(
        forest, str(tmp_path / "m"), serialization_format=fmt, input_example=X.head(5), **trusted
    )
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(X)
    ours = slipway.pyfunc.load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(ours.predict(X), theirs)
    assert ours.loader_module == "mlflow.sklearn"
    assert ours.metadata.signature is not None  # MLflow's signature, read by Slipway
    np.testing.assert_array_equal(
        slipway.sklearn.load_model(str(tmp_path / "m")).predict(X), forest.predict(X)
    )


@pytest.fixture(scope="module")
def mlflow_models(mlflow: Any) -> tuple[type, type]:
    """Two MLflow PythonModel classes: one reading an artifact, one without a context. Their
    predict() is typed with pd.DataFrame, a hint MLflow accepts (it warns about other hints,
    and about none)."""

    class MlflowScaler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def load_context(self, context: Any) -> None:
            self.factor = float(Path(context.artifacts["factor"]).read_text())

        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> pd.DataFrame:
            return model_input * self.factor

    class MlflowNoContext(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(
            self, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> pd.DataFrame:
            return model_input + 1

    return MlflowScaler, MlflowNoContext


def test_slipway_loads_an_mlflow_python_model(
    mlflow: Any, mlflow_models: tuple[type, type], tmp_path: Path
) -> None:
    MlflowScaler, MlflowNoContext = mlflow_models
    (tmp_path / "factor.txt").write_text("3")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.pyfunc.save_model(
        str(tmp_path / "m"),
        python_model=MlflowScaler(),
        artifacts={"factor": str(tmp_path / "factor.txt")},
        input_example=frame,
    )
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(frame)
    ours = slipway.pyfunc.load_model(str(tmp_path / "m"))
    pd.testing.assert_frame_equal(ours.predict(frame), theirs)
    assert isinstance(ours.unwrap_python_model(), MlflowScaler)

    mlflow.pyfunc.save_model(str(tmp_path / "n"), python_model=MlflowNoContext())
    pd.testing.assert_frame_equal(
        slipway.pyfunc.load_model(str(tmp_path / "n")).predict(frame), frame + 1
    )


def test_an_mlflow_sklearn_model_loads_without_mlflow(
    mlflow: Any, tmp_path: Path, forest: RandomForestClassifier, iris: tuple[pd.DataFrame, Any]
) -> None:
    X = iris[0]
    mlflow.sklearn.save_model(forest, str(tmp_path / "m"), serialization_format="cloudpickle")
    X.to_csv(tmp_path / "X.csv", index=False)
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["mlflow"] = None  # any import of mlflow now fails
        import pandas as pd
        import slipway
        X = pd.read_csv({str(tmp_path / "X.csv")!r})
        model = slipway.pyfunc.load_model({str(tmp_path / "m")!r})
        native = slipway.sklearn.load_model({str(tmp_path / "m")!r})
        assert sys.modules["mlflow"] is None
        assert not [m for m in sys.modules if m.startswith("mlflow.")]
        print(json.dumps({{
            "pyfunc": model.predict(X).tolist(),
            "native": native.predict(X).tolist(),
            "loader": model.loader_module,
        }}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["loader"] == "mlflow.sklearn"
    assert result["pyfunc"] == forest.predict(X).tolist()
    assert result["native"] == forest.predict(X).tolist()
