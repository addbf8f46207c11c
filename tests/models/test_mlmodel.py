"""The MLmodel file: what is written, what is read back, what MLflow makes of it, and clear
errors for files that are missing, corrupt or truncated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import slipway
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.models import Model, ModelSignature
from slipway.models.mlmodel import MLMODEL_FILE, model_file
from slipway.models.signature import ColSpec, Schema


def _signature() -> ModelSignature:
    return ModelSignature(
        inputs=Schema([ColSpec("double", "a"), ColSpec("string", "b")]),
        outputs=Schema([ColSpec("long")]),
    )


def _model() -> Model:
    model = Model(artifact_path="model", run_id="abc123", signature=_signature())
    model.add_flavor("python_function", loader_module="mlflow.sklearn", model_path="model.pkl")
    model.add_flavor("sklearn", pickled_model="model.pkl", code=None)
    model.metadata = {"team": "ml"}
    model.model_size_bytes = 1234
    return model


def test_fields_are_written_as_mlflow_writes_them(tmp_path: Path) -> None:
    model = _model()
    model.save(tmp_path)
    body = yaml.safe_load((tmp_path / MLMODEL_FILE).read_text())
    assert re.fullmatch(r"[0-9a-f]{32}", body["model_uuid"])
    # str() of a naive UTC datetime, as MLflow writes it
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?", body["utc_time_created"])
    assert body["artifact_path"] == "model"
    assert body["run_id"] == "abc123"
    assert body["model_size_bytes"] == 1234
    assert body["metadata"] == {"team": "ml"}
    assert body["slipway_version"] == slipway.__version__
    assert body["signature"] == _signature().to_dict()
    assert body["flavors"]["sklearn"] == {"pickled_model": "model.pkl"}  # None left out
    assert "mlflow_version" not in body
    assert "databricks_runtime" not in body
    assert "saved_input_example_info" not in body  # None fields are left out


def test_every_save_gets_a_new_uuid() -> None:
    assert Model().model_uuid != Model().model_uuid


def test_round_trip(tmp_path: Path) -> None:
    model = _model()
    model.save(tmp_path / MLMODEL_FILE)
    loaded = Model.load(tmp_path)
    assert loaded == model
    assert loaded.signature == _signature()
    assert Model.load(tmp_path / MLMODEL_FILE).model_uuid == model.model_uuid


def test_unknown_keys_survive_a_round_trip(tmp_path: Path) -> None:
    body = {
        "flavors": {"python_function": {"loader_module": "mlflow.sklearn"}},
        "mlflow_version": "3.17.2",
        "model_id": None,
        "is_signature_from_type_hint": False,
    }
    (tmp_path / MLMODEL_FILE).write_text(yaml.safe_dump(body))
    loaded = Model.load(tmp_path)
    assert loaded.extra["mlflow_version"] == "3.17.2"
    out = tmp_path / "out"
    out.mkdir()
    loaded.save(out)
    again = yaml.safe_load((out / MLMODEL_FILE).read_text())
    assert again["mlflow_version"] == "3.17.2"
    assert again["is_signature_from_type_hint"] is False


def test_flavor_conf_names_the_flavors_the_model_has() -> None:
    model = _model()
    assert model.flavor_conf("sklearn")["pickled_model"] == "model.pkl"
    with pytest.raises(InvalidParameterValue, match=r"no 'pytorch' flavor.*python_function"):
        model.flavor_conf("pytorch")


def test_mlflow_reads_the_file(tmp_path: Path) -> None:
    from mlflow.models import Model as MlflowModel

    model = _model()
    model.save(tmp_path)
    theirs = MlflowModel.load(str(tmp_path))
    assert theirs.flavors == model.flavors
    assert theirs.model_uuid == model.model_uuid
    assert theirs.utc_time_created == model.utc_time_created
    assert theirs.run_id == "abc123"
    assert theirs.signature.to_dict() == model.signature.to_dict()  # type: ignore[union-attr]
    assert theirs.metadata == {"team": "ml"}


def test_missing_path_is_resource_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ResourceDoesNotExist, match="does not exist"):
        Model.load(tmp_path / "nowhere")


def test_directory_without_mlmodel_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"x")
    with pytest.raises(InvalidParameterValue, match=re.escape(str(tmp_path / MLMODEL_FILE))):
        Model.load(tmp_path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("flavors: {python_function: [unclosed", "Cannot read model file"),
        ("", "not a YAML mapping"),
        ("- a\n- b\n", "not a YAML mapping"),
        ("artifact_path: model\n", "lists no flavors"),
        ("flavors: [1, 2]\n", "'flavors' must map"),
        ("flavors: {python_function: {}}\nsignature: {inputs: '[not json'}\n", "is invalid"),
        ("flavors: {python_function: {}}\nmodel_size_bytes: big\n", "model_size_bytes"),
        ("\x00\x01binary", "Cannot read model file"),
    ],
)
def test_corrupt_or_truncated_files_name_the_file(
    tmp_path: Path, content: str, reason: str
) -> None:
    (tmp_path / MLMODEL_FILE).write_text(content)
    with pytest.raises(InvalidParameterValue) as info:
        Model.load(tmp_path)
    assert str(tmp_path / MLMODEL_FILE) in info.value.message
    assert reason in info.value.message


def test_a_truncated_copy_of_a_real_file(tmp_path: Path) -> None:
    _model().save(tmp_path)
    text = (tmp_path / MLMODEL_FILE).read_text()
    (tmp_path / MLMODEL_FILE).write_text(text[: len(text) // 3])
    with pytest.raises(InvalidParameterValue, match=re.escape(str(tmp_path / MLMODEL_FILE))):
        Model.load(tmp_path)


def test_model_file_stays_inside_the_model(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"x")
    assert model_file(tmp_path, "model.pkl", "model file") == (tmp_path / "model.pkl").resolve()
    with pytest.raises(InvalidParameterValue, match="Invalid path"):
        model_file(tmp_path, "../outside.pkl", "model file")
    with pytest.raises(InvalidParameterValue, match=re.escape(str(tmp_path / "gone.pkl"))):
        model_file(tmp_path, "gone.pkl", "model file")
    with pytest.raises(InvalidParameterValue, match="does not name the model file"):
        model_file(tmp_path, None, "model file")
