"""``slipway models predict`` and ``slipway models dockerfile`` through the CLI, on real models
and a real embedded store. The ``venv`` manager's build is covered in
tests/models/test_env_manager.py; here it only has to refuse clearly before building."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

import slipway
import slipway.cli.models_env  # registers the commands on the models group
from slipway.cli import cli
from slipway.flavors import pyfunc
from slipway.models import infer_signature
from slipway.registry.store import clear_registry_store_cache
from slipway.tracking import uri as uris

ENV_VARS = ("SLIPWAY_TRACKING_URI", "SLIPWAY_ARTIFACT_ROOT", "SLIPWAY_ENV_CACHE", "COLUMNS")


class Tripler(pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input["x"] * 3 + (params or {}).get("offset", 0)


SIGNATURE_FRAME = pd.DataFrame({"x": [1.0]})


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tripler"
    signature = infer_signature(SIGNATURE_FRAME, SIGNATURE_FRAME["x"], params={"offset": 0.0})
    pyfunc.save_model(path, python_model=Tripler(), signature=signature)
    return path


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield str(tmp_path / "tracking")
    slipway.set_tracking_uri(None)
    clear_registry_store_cache()
    uris.clear_store_cache()


def invoke(uri: str, command: str) -> Result:
    return CliRunner().invoke(cli, ["--tracking-uri", uri, *shlex.split(command)])


def refused(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    path = tmp_path / "batch.csv"
    path.write_text("x\n1.0\n2.5\n")
    return path


def test_the_commands_are_in_the_models_group() -> None:
    result = CliRunner().invoke(cli, ["models", "--help"])
    assert result.exit_code == 0
    assert "predict" in result.stdout
    assert "dockerfile" in result.stdout


def test_predict_prints_predictions_json_and_nothing_else(
    uri: str, model: Path, batch: Path
) -> None:
    result = invoke(uri, f"models predict {model} --input {batch}")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"predictions": [3.0, 7.5]}
    assert result.stderr == ""


def test_predict_writes_a_file_with_params(
    uri: str, model: Path, batch: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    result = invoke(uri, f"models predict {model} -i {batch} -o {out} --params '{{\"offset\": 1}}'")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(out.read_text()) == {"predictions": [4.0, 8.5]}


def test_predict_a_registered_model_through_the_tracking_uri(
    uri: str, batch: Path, tmp_path: Path
) -> None:
    slipway.set_tracking_uri(uri)
    with slipway.start_run():
        pyfunc.log_model("model", python_model=Tripler(), registered_model_name="tripler")
    slipway.set_tracking_uri(None)
    result = invoke(uri, f"models predict models:/tripler/1 --input {batch}")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"predictions": [3.0, 7.5]}
    refused(invoke(uri, f"models predict models:/tripler/9 --input {batch}"), "tripler")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ("--input {tmp}/batch.txt", ["unknown extension '.txt'"]),
        ("--input {tmp}/missing.csv", ["missing.csv' does not exist"]),
        ("--input {tmp}/two.json", ["both 'instances' and 'inputs'"]),
        ("--input {tmp}/batch.csv --params '[1]'", ["--params must be a JSON object"]),
        ("--input {tmp}/batch.csv --params '{{oops'", ["--params is not valid JSON"]),
    ],
)
def test_predict_refuses_bad_input_in_one_line(
    uri: str, model: Path, batch: Path, tmp_path: Path, args: str, fragments: list[str]
) -> None:
    (tmp_path / "batch.txt").write_text("x\n1\n")
    (tmp_path / "two.json").write_text('{"instances": [1], "inputs": [1]}')
    result = invoke(uri, f"models predict {model} " + args.format(tmp=tmp_path))
    assert refused(result, *fragments).count("\n") == 1


def test_predict_usage_errors(uri: str, model: Path, batch: Path) -> None:
    missing = invoke(uri, f"models predict {model}")
    assert missing.exit_code == 2
    assert "Missing option '--input'" in missing.stderr
    bad = invoke(uri, f"models predict {model} -i {batch} --env-manager conda")
    assert bad.exit_code == 2
    assert "'conda' is not one of 'local', 'venv'" in bad.stderr


def test_venv_refuses_a_python_it_does_not_have_before_building(
    uri: str, model: Path, batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    other = Path(shutil.copytree(model, tmp_path / "model"))
    (other / "python_env.yaml").write_text("python: 3.99.1\n")
    monkeypatch.setenv("SLIPWAY_ENV_CACHE", str(tmp_path / "envs"))
    result = invoke(uri, f"models predict {other} -i {batch} --env-manager venv")
    refused(result, "asks for Python 3.99", "--env-manager local")
    assert not (tmp_path / "envs").exists()


def test_dockerfile_writes_the_build_context(uri: str, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "image"
    result = invoke(uri, f"models dockerfile {model} -o {out}")
    assert result.exit_code == 0, result.output
    assert f"Wrote {out / 'Dockerfile'}" in result.stdout
    assert (out / "Dockerfile").read_text().startswith("# Serves the model")
    assert (out / "model" / "MLmodel").is_file()
    again = invoke(uri, f"models dockerfile {model} -o {out}")
    refused(again, "Dockerfile' already exists")
    refused(
        invoke(uri, f"models dockerfile {tmp_path / 'nothing'} -o {tmp_path / 'x'}"), "No model"
    )
    assert invoke(uri, f"models dockerfile {model}").exit_code == 2  # -o is required
