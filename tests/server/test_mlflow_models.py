"""Models through the live server with the official MLflow client: sklearn autologging and
``log_model`` / ``pyfunc.load_model`` round trips, every byte through the artifact proxy.

MLflow 3 logs models as "logged models", so besides the tracking routes (runs, log-batch,
log-inputs) these tests need ``/api/2.0/mlflow/logged-models`` (create, get, search, finalize)
and ``/api/2.0/mlflow/runs/outputs`` on the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import LiveServer

pytestmark = [
    # MLflow's advice about type hints and signatures, raised from inside mlflow.
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
    # MLflow's sklearn autologging still passes the argument scikit-learn 1.9 renamed.
    pytest.mark.filterwarnings("ignore:.*`y_pred` was renamed to `y_proba`:FutureWarning"),
]


@pytest.fixture
def mlflow(mlflow_client: Any) -> Any:
    import mlflow

    return mlflow


@pytest.fixture
def data() -> tuple[Any, Any]:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(120, 4))
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(int)
    return features, labels


def stored_files(server: LiveServer) -> set[str]:
    root = Path(server.settings.artifacts_destination or "")
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_log_model_and_load_it_back(
    mlflow: Any, live_server: LiveServer, data: tuple[Any, Any]
) -> None:
    from sklearn.linear_model import LogisticRegression

    features, labels = data
    model = LogisticRegression(C=0.5, max_iter=200).fit(features, labels)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=features[:3])

    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    again = mlflow.sklearn.load_model(info.model_uri)
    np.testing.assert_array_equal(again.predict_proba(features), model.predict_proba(features))

    # The model's files live in the server's artifact destination, sent through the proxy.
    files = stored_files(live_server)
    assert any(name.endswith("/MLmodel") for name in files)
    assert any(name.endswith(("/model.skops", "/model.pkl")) for name in files)


def test_autolog_records_a_complete_run(
    mlflow: Any, mlflow_client: Any, data: tuple[Any, Any]
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    features, labels = data
    mlflow.sklearn.autolog(log_input_examples=True, silent=True)
    try:
        with mlflow.start_run() as run:
            model = RandomForestClassifier(n_estimators=7, max_depth=3, random_state=0)
            model.fit(features, labels)
    finally:
        mlflow.sklearn.autolog(disable=True)

    finished = mlflow_client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params["n_estimators"] == "7"
    assert finished.data.params["max_depth"] == "3"
    assert 0.5 <= finished.data.metrics["training_accuracy_score"] <= 1.0
    assert "training_f1_score" in finished.data.metrics
    assert finished.data.tags["estimator_name"] == "RandomForestClassifier"

    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
