"""What the tests of the pytorch, onnx, xgboost and lightgbm flavors share: reading and editing
``MLmodel``, the real mlflow package, and logging a model to a run, registering it and loading
it back by every kind of model URI."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import slipway
import slipway.registry
from slipway.flavors.pyfunc import PyFuncModel
from slipway.models import ModelInfo
from slipway.registry.store import clear_registry_store_cache

MLFLOW_WARNINGS = [
    # MLflow's advice about type hints, raised from inside mlflow (also when it is imported).
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
    # MLflow's input-example code compares a pandas Index with a range, which pandas 3 warns
    # about.
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:mlflow.*"),
]
"""Warning filters for modules that use the mlflow package."""


def read_mlmodel(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((path / "MLmodel").read_text())
    return body


def write_mlmodel(path: Path, body: dict[str, Any]) -> None:
    (path / "MLmodel").write_text(yaml.safe_dump(body))


def set_flavor_entry(path: Path, flavor: str, key: str, value: Any) -> None:
    """Change one entry of one flavor in the ``MLmodel`` at ``path``."""
    body = read_mlmodel(path)
    body["flavors"][flavor][key] = value
    write_mlmodel(path, body)


def import_mlflow(flavor: str) -> Any:
    """The mlflow package with ``mlflow.pyfunc`` and ``mlflow.<flavor>`` imported (inside a
    test or fixture, where the module's warning filters apply)."""
    mlflow = importlib.import_module("mlflow")
    importlib.import_module("mlflow.pyfunc")
    importlib.import_module(f"mlflow.{flavor}")
    return mlflow


def requirement_lines(path: Path) -> list[str]:
    return (path / "requirements.txt").read_text().splitlines()


def log_register_and_load(
    flavor: ModuleType, model: Any, name: str, **save_options: Any
) -> tuple[ModelInfo, dict[str, PyFuncModel]]:
    """Log ``model`` with ``flavor`` to a new run of the fluent API's store, registered as
    version 1 of ``name``; alias ``champion`` set to it with ``slipway.registry.set_alias``;
    and the model loaded back through pyfunc by its ``runs:/`` URI, its version and its alias.
    """
    try:
        with slipway.start_run():
            info = flavor.log_model(model, "model", registered_model_name=name, **save_options)
        assert info.registered_model_version == 1
        slipway.registry.set_alias(name, "champion", 1)
        uris = (info.model_uri, f"models:/{name}/1", f"models:/{name}@champion")
        return info, {uri: slipway.pyfunc.load_model(uri) for uri in uris}
    finally:
        clear_registry_store_cache()
