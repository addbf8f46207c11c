"""Source checks through ``create_model_version`` on every registry backend: the CVE shapes
are refused whatever the version's tags say, and nothing is registered when they are."""

from __future__ import annotations

import pytest

from slipway.entities import Run
from slipway.exceptions import InvalidParameterValue
from slipway.registry.store.base import AbstractRegistryStore

from ..conftest import model_source

ATTACKS = [
    "/etc/passwd",
    "/etc/",
    "file:///etc/",
    "file:///etc/passwd",
    "//proc/self/root",
    "file://attacker/etc/passwd",
    "{root}/../../../../../../etc",
    "{root}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc",
    "{root}/%252e%252e/%252e%252e/%252e%252e/etc",
    "{root}/model%00/../../etc",
    "{root}\\..\\..\\..\\etc",
    "s3://bucket/models/../../../other",
    "http://host:5000/api/2.0/mlflow-artifacts/artifacts/../../../../",
    "mlflow-artifacts://host:5000/..%2f..%2f..%2f..%2f",
    "https://host/a?p=../../../etc",
    "dbfs:/databricks/etc",
    "runs:/{run_id}/../../../etc",
]

PROMPT_TAGS = [("mlflow.prompt.is_prompt", "true"), ("mlflow.prompt.text", "hi")]


def test_attack_shapes_are_refused(registry_store: AbstractRegistryStore, run: Run) -> None:
    registry_store.create_registered_model("iris")
    root = run.info.artifact_uri
    for template in ATTACKS:
        source = template.format(root=root, run_id=run.info.run_id)
        for tags in ([], PROMPT_TAGS):
            with pytest.raises(InvalidParameterValue, match="source") as info:
                registry_store.create_model_version(
                    "iris", source, run_id=run.info.run_id, tags=tags
                )
            assert "Invalid model version source" in info.value.message, source
    assert list(registry_store.search_model_versions("name = 'iris'")) == []
    assert registry_store.create_model_version("iris", "s3://bucket/ok").version == "1"


def test_local_source_needs_its_run(registry_store: AbstractRegistryStore, run: Run) -> None:
    registry_store.create_registered_model("iris")
    source = model_source(run)
    with pytest.raises(InvalidParameterValue, match="Invalid model version source"):
        registry_store.create_model_version("iris", source, tags=PROMPT_TAGS)
    with pytest.raises(InvalidParameterValue, match="Invalid model version source"):
        registry_store.create_model_version("iris", source, run_id="f" * 32)
    created = registry_store.create_model_version("iris", source, run_id=run.info.run_id)
    assert created.source == source


def test_legitimate_sources(registry_store: AbstractRegistryStore, run: Run) -> None:
    registry_store.create_registered_model("iris")
    for source in (
        f"runs:/{run.info.run_id}/model",
        "s3://bucket/path/model",
        "gs://bucket/model",
        "https://models.example.com/iris/1",
        "models:/iris/1",
    ):
        created = registry_store.create_model_version("iris", source, run_id=run.info.run_id)
        assert created.run_id == run.info.run_id
    assert len(registry_store.search_model_versions("name = 'iris'")) == 5
