"""Small real models for the serving tests, saved with Slipway's flavors, logged to runs of an
embedded store in a temporary folder, and registered as versions with aliases.

Every model reads the numeric columns ``a``, ``b``, ``c`` (doubles; see :func:`features`) and
has a signature, so the server checks requests the way it would in production::

    models = ServingModels(tmp_path)
    v1 = models.register_constant("iris", 1.0, alias="champion")
    v2 = models.register_sklearn("iris")
    models.set_alias("iris", "champion", v2.version)
    endpoint_uri = models.uri("iris", alias="champion")   # "models:/iris@champion"

* :class:`Constant` answers the same number for every row: the answer tells which version
  served a request. It can be told to sleep (a slow model) or to raise (a broken one).
* :meth:`ServingModels.register_sklearn` registers a LogisticRegression fitted on random data.
* :meth:`ServingModels.register_broken` registers a model whose pickle is truncated: it is a
  valid registry entry that fails to load.

The classes of this module are pickled by value, so a model loads in any process (a server
started as a subprocess, several workers) without this test module being importable there.
Import this module from the test modules that need it (it holds no pytest fixtures).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd

from slipway.entities.registry import ModelVersion
from slipway.flavors import pyfunc
from slipway.flavors import sklearn as sk_flavor
from slipway.models.signature import infer_signature
from slipway.registry import RegistryClient
from slipway.tracking.client import SlipwayClient

FEATURES = ("a", "b", "c")
"""The input columns of every model here."""

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def features(rows: int = 4, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows of valid input: random doubles in columns ``a``, ``b``, ``c``."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=list(FEATURES))


class Constant(pyfunc.PythonModel):
    """Answers ``value`` for every input row (plus the ``offset`` param when one is sent).

    Args:
        value: the answer; give each version its own so a test can tell who answered.
        sleep_s: seconds to sleep in every ``predict`` call (a slow model).
        fail: when set, ``predict`` raises ``RuntimeError(fail)`` (a model that breaks on
            every request, though it loads fine).
    """

    def __init__(self, value: float, sleep_s: float = 0.0, fail: str | None = None) -> None:
        self.value = value
        self.sleep_s = sleep_s
        self.fail = fail

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail is not None:
            raise RuntimeError(self.fail)
        offset = float((params or {}).get("offset", 0.0))
        return np.full(len(model_input), self.value + offset)


class ServingModels:
    """An embedded tracking store and registry under ``root``, and helpers that save, log and
    register small models in it.

    Args:
        root: an empty folder (a pytest ``tmp_path``); the store goes in ``root/tracking``.

    Attributes:
        tracking_uri: the store's tracking URI; pass it to the serving code under test.
        registry: a :class:`RegistryClient` on that store.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tracking_uri = str(self.root / "tracking")
        self.tracking = SlipwayClient(self.tracking_uri)
        self.registry = RegistryClient(self.tracking_uri)
        self._experiment_id = self.tracking.create_experiment("serving-tests")

    # -- registering ----------------------------------------------------------------------------

    def register_constant(
        self,
        name: str,
        value: float,
        *,
        sleep_s: float = 0.0,
        fail: str | None = None,
        alias: str | None = None,
    ) -> ModelVersion:
        """Register a :class:`Constant` model as a new version of ``name`` (pointing ``alias``
        at it when given). Its signature takes an optional double param ``offset``."""
        return self._log_and_register(
            name, alias, lambda path: self.save_constant(path, value, sleep_s=sleep_s, fail=fail)
        )

    def register_sklearn(
        self, name: str, *, seed: int = 0, alias: str | None = None
    ) -> ModelVersion:
        """Register a LogisticRegression (two classes, fitted on random data drawn with
        ``seed``) as a new version of ``name``."""
        return self._log_and_register(name, alias, lambda path: self.save_sklearn(path, seed))

    def register_broken(self, name: str, *, alias: str | None = None) -> ModelVersion:
        """Register a model whose ``python_model.pkl`` is cut in half: the registry accepts it,
        and loading it fails with ``InvalidParameterValue``."""

        def save(path: Path) -> None:
            self.save_constant(path, -1.0)
            pickled = path / pyfunc.PYTHON_MODEL_FILE
            data = pickled.read_bytes()
            pickled.write_bytes(data[: len(data) // 2])

        return self._log_and_register(name, alias, save)

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        self.registry.set_alias(name, alias, version)

    @staticmethod
    def uri(name: str, *, alias: str | None = None, version: str | int | None = None) -> str:
        """``models:/name@alias``, ``models:/name/<version>``, or ``models:/name/latest``."""
        if alias is not None:
            return f"models:/{name}@{alias}"
        return f"models:/{name}/{version if version is not None else 'latest'}"

    # -- saving (no store involved) ---------------------------------------------------------------

    @staticmethod
    def save_constant(
        path: Path, value: float, *, sleep_s: float = 0.0, fail: str | None = None
    ) -> Path:
        """Save a :class:`Constant` model directory at ``path``."""
        example = features(2)
        signature = infer_signature(example, np.zeros(2), params={"offset": 0.0})
        pyfunc.save_model(path, Constant(value, sleep_s=sleep_s, fail=fail), signature=signature)
        return path

    @staticmethod
    def save_sklearn(path: Path, seed: int = 0) -> Path:
        """Save a LogisticRegression fitted on 64 random rows at ``path``."""
        from sklearn.linear_model import LogisticRegression

        X = features(64, seed)
        y = (X["a"] + X["b"] > 0).astype(int)
        model = LogisticRegression().fit(X, y)
        sk_flavor.save_model(
            model, path, signature=infer_signature(X, model.predict(X)), input_example=X.head(2)
        )
        return path

    def _log_and_register(self, name: str, alias: str | None, save: Any) -> ModelVersion:
        run = self.tracking.create_run(self._experiment_id, run_name=f"train-{name}")
        run_id = run.info.run_id
        with tempfile.TemporaryDirectory(prefix="slipway-test-model-") as tmp:
            local = Path(tmp) / "model"
            save(local)
            self.tracking.log_artifacts(run_id, local, "model")
        self.tracking.set_terminated(run_id)
        version = self.registry.register_model(f"runs:/{run_id}/model", name)
        if alias is not None:
            self.set_alias(name, alias, version.version)
        return version


__all__ = ["FEATURES", "Constant", "ServingModels", "features"]
