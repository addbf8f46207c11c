"""Custom Python models and the pyfunc interface: artifacts, model config, code paths, both
forms of predict, params, logging, and clear errors for damaged models."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import slipway
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists
from slipway.flavors import pyfunc
from slipway.models import Model
from slipway.models.signature import ModelSignature, ParamSchema, ParamSpec, infer_signature


class AddN(pyfunc.PythonModel):
    """Adds the number in the ``n`` artifact, times the ``scale`` model config."""

    def load_context(self, context: pyfunc.PythonModelContext) -> None:
        self.n = float(Path(context.artifacts["n"]).read_text())
        self.scale = context.model_config.get("scale", 1)

    def predict(
        self, context: pyfunc.PythonModelContext, model_input: Any, params: Any = None
    ) -> Any:
        return (model_input + self.n) * self.scale


class NoContext(pyfunc.PythonModel):
    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:  # type: ignore[override]
        factor = (params or {}).get("factor", 1)
        return model_input * factor


class NoParams(pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any) -> Any:  # type: ignore[override]
        return model_input


@pytest.fixture
def n_file(tmp_path: Path) -> Path:
    path = tmp_path / "n.txt"
    path.write_text("10")
    return path


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})


@pytest.fixture
def saved(tmp_path: Path, n_file: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "model"
    pyfunc.save_model(
        path,
        python_model=AddN(),
        artifacts={"n": str(n_file)},
        model_config={"scale": 2},
        input_example=frame,
    )
    return path


def test_the_directory_is_mlflows_layout(saved: Path, n_file: Path) -> None:
    body = yaml.safe_load((saved / "MLmodel").read_text())
    assert set(body["flavors"]) == {"python_function"}
    conf = body["flavors"]["python_function"]
    assert conf["loader_module"] == "mlflow.pyfunc.model"
    assert conf["python_model"] == "python_model.pkl"
    assert conf["artifacts"] == {"n": {"path": "artifacts/n.txt", "uri": str(n_file)}}
    assert conf["model_config"] == {"scale": 2}
    assert conf["cloudpickle_version"]
    assert (saved / "artifacts" / "n.txt").read_text() == "10"
    requirements = (saved / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("cloudpickle==") for r in requirements)


def test_load_and_predict(saved: Path, frame: pd.DataFrame) -> None:
    model = pyfunc.load_model(str(saved))
    assert model.loader_module == "mlflow.pyfunc.model"
    pd.testing.assert_frame_equal(model.predict(frame), (frame + 10) * 2)
    inner = model.unwrap_python_model()
    assert isinstance(inner, AddN)
    assert inner.n == 10.0
    assert model.metadata.signature is not None  # inferred from the example and predict()
    assert "PyFuncModel(loader_module='mlflow.pyfunc.model'" in repr(model)


def test_the_signature_is_enforced(saved: Path) -> None:
    model = pyfunc.load_model(str(saved))
    with pytest.raises(InvalidParameterValue, match="'b'"):
        model.predict(pd.DataFrame({"a": [1.0]}))


def test_predict_without_context_and_params(tmp_path: Path, frame: pd.DataFrame) -> None:
    signature = ModelSignature(
        inputs=infer_signature(frame).inputs,
        params=ParamSchema([ParamSpec("factor", "long", 3)]),
    )
    pyfunc.save_model(tmp_path / "m", NoContext(), signature=signature)
    model = pyfunc.load_model(str(tmp_path / "m"))
    pd.testing.assert_frame_equal(model.predict(frame), frame * 3)  # the default
    pd.testing.assert_frame_equal(model.predict(frame, params={"factor": 5}), frame * 5)
    with pytest.raises(InvalidParameterValue, match="factor"):
        model.predict(frame, params={"factor": "many"})


def test_a_predict_without_params_ignores_them(
    tmp_path: Path, frame: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    pyfunc.save_model(tmp_path / "m", NoParams())
    model = pyfunc.load_model(str(tmp_path / "m"))
    pd.testing.assert_frame_equal(model.predict(frame), frame)
    assert model.metadata.signature is None


def test_a_function_as_the_model(tmp_path: Path, frame: pd.DataFrame) -> None:
    pyfunc.save_model(tmp_path / "m", lambda df: df * 7, signature=False, input_example=frame)
    model = pyfunc.load_model(str(tmp_path / "m"))
    assert model.metadata.signature is None
    pd.testing.assert_frame_equal(model.predict(frame), frame * 7)


def test_folder_artifacts_and_same_named_files(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "w.txt").write_text("1")
    (tmp_path / "two" / "w.txt").write_text("2")
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "words.txt").write_text("a b")

    class ReadAll(pyfunc.PythonModel):
        def load_context(self, context: pyfunc.PythonModelContext) -> None:
            self.paths = context.artifacts

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return {k: Path(v).name for k, v in self.paths.items()}

    artifacts = {"w1": tmp_path / "one" / "w.txt", "w2": tmp_path / "two" / "w.txt"}
    pyfunc.save_model(tmp_path / "m", ReadAll(), artifacts={**artifacts, "v": tmp_path / "vocab"})
    inner = pyfunc.load_model(str(tmp_path / "m")).unwrap_python_model()
    assert Path(inner.paths["w1"]).read_text() == "1"
    assert Path(inner.paths["w2"]).read_text() == "2"
    assert (Path(inner.paths["v"]) / "words.txt").read_text() == "a b"
    assert all(Path(p).is_relative_to((tmp_path / "m").resolve()) for p in inner.paths.values())


def test_code_paths_make_the_model_loadable_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "doubler_model.py").write_text(
        textwrap.dedent(
            """
            from slipway.flavors.pyfunc import PythonModel

            class Doubler(PythonModel):
                def predict(self, context, model_input, params=None):
                    return [2 * x for x in model_input]
            """
        )
    )
    monkeypatch.syspath_prepend(str(src))
    import doubler_model  # type: ignore[import-not-found]

    try:
        pyfunc.save_model(
            tmp_path / "m", doubler_model.Doubler(), code_paths=[src / "doubler_model.py"]
        )
    finally:
        del sys.modules["doubler_model"]
    assert (tmp_path / "m" / "code" / "doubler_model.py").is_file()
    assert (
        yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]["python_function"][
            "code"
        ]
        == "code"
    )
    # A fresh interpreter that has never seen src/: the model's code/ folder is enough.
    code = (
        "import json, sys, slipway\n"
        f"m = slipway.pyfunc.load_model({str(tmp_path / 'm')!r})\n"
        "print(json.dumps(m.predict([1, 2, 3])))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [2, 4, 6]


def test_a_non_empty_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep")
    with pytest.raises(ResourceAlreadyExists):
        pyfunc.save_model(tmp_path, NoParams())
    assert (tmp_path / "x").read_text() == "keep"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"python_model": 42}, "python_model must be a PythonModel or a function, not int"),
        ({"python_model": NoParams(), "artifacts": {"": "x"}}, "Invalid artifact name"),
        ({"python_model": NoParams(), "artifacts": ["x"]}, "artifacts must map names"),
        ({"python_model": NoParams(), "artifacts": {"a": "/no/such/file"}}, "does not exist"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((InvalidParameterValue, slipway.SlipwayError), match=message):
        pyfunc.save_model(tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


def test_unpicklable_model(tmp_path: Path) -> None:
    import threading

    class HoldsALock(NoParams):
        def __init__(self) -> None:
            self.lock = threading.Lock()

    with pytest.raises(InvalidParameterValue, match="Cannot serialize the HoldsALock"):
        pyfunc.save_model(tmp_path / "m", HoldsALock())
    assert not (tmp_path / "m").exists()


# -- damaged models --------------------------------------------------------------------------


def test_truncated_python_model_names_the_file(saved: Path) -> None:
    data = (saved / "python_model.pkl").read_bytes()
    (saved / "python_model.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "python_model.pkl"))):
        pyfunc.load_model(str(saved))


def test_missing_artifact_names_it(saved: Path) -> None:
    (saved / "artifacts" / "n.txt").unlink()
    with pytest.raises(InvalidParameterValue, match=r"artifact 'n'.*n\.txt"):
        pyfunc.load_model(str(saved))


def test_no_mlmodel_names_the_file(saved: Path) -> None:
    (saved / "MLmodel").unlink()
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "MLmodel"))):
        pyfunc.load_model(str(saved))


def test_mlmodel_that_is_not_yaml(saved: Path) -> None:
    (saved / "MLmodel").write_text("flavors: {python_function: [")
    with pytest.raises(InvalidParameterValue, match=re.escape(str(saved / "MLmodel"))):
        pyfunc.load_model(str(saved))


@pytest.mark.parametrize(
    ("flavors", "message"),
    [
        ({"sklearn": {"pickled_model": "model.pkl"}}, "no 'python_function' flavor"),
        ({"python_function": {"model_path": "x"}}, "names no loader_module"),
        ({"python_function": {"loader_module": "my.custom.loader"}}, "'my.custom.loader'"),
        (
            {"python_function": {"loader_module": "mlflow.pyfunc.model", "model_code_path": "m"}},
            "models-from-code",
        ),
        (
            {"python_function": {"loader_module": "mlflow.pyfunc.model", "python_model": "../p"}},
            "Invalid path",
        ),
    ],
)
def test_unloadable_mlmodels(tmp_path: Path, flavors: dict[str, Any], message: str) -> None:
    Model(flavors=flavors).save(tmp_path)
    with pytest.raises(InvalidParameterValue, match=message):
        pyfunc.load_model(str(tmp_path))


def test_unwrap_needs_a_python_model(tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    slipway.sklearn.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), tmp_path / "m")
    model = pyfunc.load_model(str(tmp_path / "m"))
    with pytest.raises(InvalidParameterValue, match="needs a custom Python model"):
        model.unwrap_python_model()


def test_log_model_and_register(tracking_dir: Path, n_file: Path, frame: pd.DataFrame) -> None:
    from slipway.registry.store import clear_registry_store_cache

    try:
        with slipway.start_run():
            info = slipway.pyfunc.log_model(
                "custom",
                AddN(),
                artifacts={"n": str(n_file)},
                registered_model_name="adder",
                input_example=frame,
            )
        assert info.registered_model_version == 1
        assert info.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.model"
        for uri in (info.model_uri, "models:/adder/1", "models:/adder/latest"):
            pd.testing.assert_frame_equal(slipway.pyfunc.load_model(uri).predict(frame), frame + 10)
    finally:
        clear_registry_store_cache()
