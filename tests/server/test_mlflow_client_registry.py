"""The official ``mlflow.MlflowClient`` model registry API, unchanged, against the live Slipway
server: registered models, versions, tags, aliases, legacy stages, copying, and a model logged
with ``mlflow.sklearn`` registered and loaded back by alias."""

from __future__ import annotations

import uuid
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException

pytestmark = [
    # Stages and get_latest_versions are deprecated in MLflow 3; they must still work.
    pytest.mark.filterwarnings("ignore:.*deprecated.*:FutureWarning"),
    # MLflow's advice about type hints and signatures, raised from inside mlflow.
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
]


def unique(prefix: str = "reg") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return str(exc.value.error_code)


@pytest.fixture
def run_source(mlflow_client: Any) -> tuple[str, str]:
    """A finished run with a tiny file at ``model/MLmodel``: (run id, source URI)."""
    with mlflow.start_run() as run:
        mlflow.log_text("flavors: {}\n", "model/MLmodel")
    return run.info.run_id, f"{run.info.artifact_uri}/model"


def test_registered_model_crud(mlflow_client: Any) -> None:
    client = mlflow_client
    name = unique()
    created = client.create_registered_model(name, tags={"team": "vision"}, description="first")
    assert created.name == name
    assert created.tags == {"team": "vision"}
    assert created.description == "first"
    assert created.creation_timestamp > 0

    with pytest.raises(MlflowException) as exc:
        client.create_registered_model(name)
    assert code(exc) == "RESOURCE_ALREADY_EXISTS"

    assert client.update_registered_model(name, description="second").description == "second"
    client.set_registered_model_tag(name, "stage", "dev")
    client.delete_registered_model_tag(name, "team")
    assert client.get_registered_model(name).tags == {"stage": "dev"}

    new_name = unique("renamed")
    client.rename_registered_model(name, new_name)
    assert client.get_registered_model(new_name).tags == {"stage": "dev"}
    with pytest.raises(MlflowException) as exc:
        client.get_registered_model(name)
    assert code(exc) == "RESOURCE_DOES_NOT_EXIST"

    client.delete_registered_model(new_name)
    with pytest.raises(MlflowException) as exc:
        client.get_registered_model(new_name)
    assert code(exc) == "RESOURCE_DOES_NOT_EXIST"


def test_search_registered_models_with_filters_and_pages(mlflow_client: Any) -> None:
    client = mlflow_client
    stem = unique("search")
    names = [f"{stem}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        client.create_registered_model(name, tags={"parity": "even" if i % 2 == 0 else "odd"})

    found = client.search_registered_models(f"name LIKE '{stem}-%'", order_by=["name DESC"])
    assert [m.name for m in found] == names[::-1]
    assert not found.token
    odd = client.search_registered_models(f"name LIKE '{stem}%' AND tags.parity = 'odd'")
    assert sorted(m.name for m in odd) == names[1::2]

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = client.search_registered_models(
            f"name LIKE '{stem}%'", max_results=2, order_by=["name ASC"], page_token=token
        )
        seen += [m.name for m in page]
        pages += 1
        token = page.token
        if not token:
            break
    assert seen == names
    assert pages == 3


def test_model_versions(mlflow_client: Any, run_source: tuple[str, str]) -> None:
    client = mlflow_client
    run_id, source = run_source
    name = unique()
    client.create_registered_model(name)
    v1 = client.create_model_version(name, source, run_id, tags={"k": "v"}, description="d")
    assert (v1.version, v1.current_stage, v1.status) == ("1", "None", "READY")
    assert v1.source == source
    assert v1.run_id == run_id
    assert v1.tags == {"k": "v"}
    v2 = client.create_model_version(name, source, run_id)
    assert v2.version == "2"

    got = client.get_model_version(name, "1")
    assert (got.description, got.tags) == ("d", {"k": "v"})
    assert client.update_model_version(name, "1", description="new").description == "new"
    client.set_model_version_tag(name, "2", "t", "x")
    client.delete_model_version_tag(name, "1", "k")
    assert client.get_model_version(name, "1").tags == {}
    assert client.get_model_version(name, "2").tags == {"t": "x"}
    assert client.get_model_version_download_uri(name, "1") == source

    found = client.search_model_versions(f"name = '{name}'", order_by=["version_number ASC"])
    assert [v.version for v in found] == ["1", "2"]
    by_run = client.search_model_versions(f"run_id = '{run_id}' AND name = '{name}'")
    assert len(by_run) == 2
    paged = client.search_model_versions(f"name = '{name}'", max_results=1)
    assert len(paged) == 1
    assert paged.token
    rest = client.search_model_versions(f"name = '{name}'", max_results=1, page_token=paged.token)
    assert {paged[0].version, rest[0].version} == {"1", "2"}

    client.delete_model_version(name, "2")
    with pytest.raises(MlflowException) as exc:
        client.get_model_version(name, "2")
    assert code(exc) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        client.get_model_version(name, "two")
    assert code(exc) == "INVALID_PARAMETER_VALUE"
    assert client.create_model_version(name, source, run_id).version == "3"


def test_aliases(mlflow_client: Any, run_source: tuple[str, str]) -> None:
    client = mlflow_client
    run_id, source = run_source
    name = unique()
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source, run_id)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", 2)
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "2"}
    assert client.get_model_version(name, "2").aliases == ["challenger"]

    client.set_registered_model_alias(name, "champion", "2")
    assert sorted(client.get_model_version(name, "2").aliases) == ["challenger", "champion"]
    client.delete_registered_model_alias(name, "challenger")
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    with pytest.raises(MlflowException) as exc:
        client.get_model_version_by_alias(name, "challenger")
    assert code(exc) == "INVALID_PARAMETER_VALUE"  # MLflow's code for an unknown alias
    for reserved in ("latest", "v1"):
        with pytest.raises(MlflowException) as exc:
            client.set_registered_model_alias(name, reserved, "1")
        assert code(exc) == "INVALID_PARAMETER_VALUE"


def test_stages_and_latest_versions(mlflow_client: Any, run_source: tuple[str, str]) -> None:
    client = mlflow_client
    run_id, source = run_source
    name = unique()
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source, run_id)
    assert client.transition_model_version_stage(name, "1", "Production").current_stage == (
        "Production"
    )
    client.transition_model_version_stage(name, "2", "staging")
    moved = client.transition_model_version_stage(
        name, "3", "Production", archive_existing_versions=True
    )
    assert moved.current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"

    latest = client.get_latest_versions(name, stages=["Production"])
    assert [(v.version, v.current_stage) for v in latest] == [("3", "Production")]
    every = client.get_latest_versions(name)
    assert sorted((v.version, v.current_stage) for v in every) == [
        ("1", "Archived"),
        ("2", "Staging"),
        ("3", "Production"),
    ]
    model = client.get_registered_model(name)
    assert sorted(v.version for v in model.latest_versions) == ["1", "2", "3"]


def test_copy_model_version(mlflow_client: Any, run_source: tuple[str, str]) -> None:
    client = mlflow_client
    run_id, source = run_source
    src, dst = unique("src"), unique("dst")
    client.create_registered_model(src)
    client.create_model_version(src, source, run_id)
    client.set_registered_model_alias(src, "champion", "1")

    copied = client.copy_model_version(f"models:/{src}@champion", dst)
    assert (copied.name, copied.version) == (dst, "1")
    assert copied.source == f"models:/{src}/1"
    assert client.get_model_version_download_uri(dst, "1") == source


def test_register_a_logged_model_and_load_it_by_alias(mlflow_client: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    client = mlflow_client
    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 3))
    labels = (features[:, 0] > 0).astype(int)
    model = LogisticRegression(max_iter=200).fit(features, labels)
    with mlflow.start_run() as run:
        # Naming the requirements skips their inference, a slow subprocess.
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])

    name = unique("sk")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert version.version == "1"
    assert client.get_model_version(name, "1").run_id == run.info.run_id
    client.set_registered_model_alias(name, "prod", "1")

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@prod")
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    again = mlflow.sklearn.load_model(f"models:/{name}/1")
    np.testing.assert_array_equal(again.predict(features), model.predict(features))

    # Registering again makes version 2 of the same model.
    assert mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version == "2"
