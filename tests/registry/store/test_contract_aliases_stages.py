"""Aliases and legacy stages on every registry backend."""

from __future__ import annotations

import pytest

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.registry.store.base import AbstractRegistryStore


@pytest.fixture
def iris(registry_store: AbstractRegistryStore) -> AbstractRegistryStore:
    """A model ``iris`` with versions 1, 2 and 3."""
    registry_store.create_registered_model("iris")
    for _ in range(3):
        registry_store.create_model_version("iris", "s3://bucket/model")
    return registry_store


def test_set_move_and_delete_alias(iris: AbstractRegistryStore) -> None:
    iris.set_registered_model_alias("iris", "champion", "1")
    iris.set_registered_model_alias("iris", "challenger", "1")
    assert iris.get_model_version("iris", "1").aliases == ["challenger", "champion"]
    iris.set_registered_model_alias("iris", "champion", "2")  # moves
    assert iris.get_model_version("iris", "1").aliases == ["challenger"]
    assert iris.get_model_version_by_alias("iris", "champion").version == "2"
    assert iris.get_model_version_by_alias("iris", "champion").aliases == ["champion"]
    model = iris.get_registered_model("iris")
    assert [(a.alias, a.version) for a in model.aliases] == [("challenger", "1"), ("champion", "2")]
    iris.delete_registered_model_alias("iris", "champion")
    iris.delete_registered_model_alias("iris", "never-set")  # not an error, as in MLflow
    with pytest.raises(InvalidParameterValue, match="Registered model alias champion not found"):
        iris.get_model_version_by_alias("iris", "champion")
    assert [v.aliases for v in iris.search_model_versions("name = 'iris'")] == [
        [],
        [],
        ["challenger"],
    ]


def test_latest_alias_resolves_to_the_highest_version(iris: AbstractRegistryStore) -> None:
    assert iris.get_model_version_by_alias("iris", "latest").version == "3"
    assert iris.get_model_version_by_alias("iris", "LATEST").version == "3"
    iris.delete_model_version("iris", "3")
    assert iris.get_model_version_by_alias("iris", "latest").version == "2"
    iris.create_registered_model("empty")
    with pytest.raises(ResourceDoesNotExist, match="Latest version not found for model empty"):
        iris.get_model_version_by_alias("empty", "latest")


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("latest", "'latest' alias name"),
        ("Latest", "'latest' alias name"),
        ("v1", "Version alias name 'v1' is reserved"),
        ("V42", "Version alias name 'V42' is reserved"),
        ("", "cannot be empty|Missing value"),
        ("bad alias", "Invalid alias name"),
        ("a.b", "Invalid alias name"),
        ("a/b", "Invalid alias name"),
        ("x" * 256, "maximum length of 255"),
    ],
)
def test_bad_aliases_are_refused(iris: AbstractRegistryStore, alias: str, message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        iris.set_registered_model_alias("iris", alias, "1")
    assert iris.get_registered_model("iris").aliases == []


def test_alias_limits_and_lookalikes_are_accepted(iris: AbstractRegistryStore) -> None:
    for alias in ("x" * 255, "v1a", "latest-good", "va1", "prod_2024-01"):
        iris.set_registered_model_alias("iris", alias, "2")
    assert len(iris.get_model_version("iris", "2").aliases) == 5


def test_alias_on_unknown_version_or_model(iris: AbstractRegistryStore) -> None:
    with pytest.raises(ResourceDoesNotExist, match=r"version=9\) not found"):
        iris.set_registered_model_alias("iris", "champion", "9")
    with pytest.raises(ResourceDoesNotExist, match="name=nope not found"):
        iris.set_registered_model_alias("nope", "champion", "1")
    with pytest.raises(ResourceDoesNotExist, match="name=nope not found"):
        iris.get_model_version_by_alias("nope", "champion")
    with pytest.raises(InvalidParameterValue, match="must be an integer"):
        iris.set_registered_model_alias("iris", "champion", "one")


def test_stage_transitions(iris: AbstractRegistryStore) -> None:
    before = iris.get_model_version("iris", "1")
    moved = iris.transition_model_version_stage("iris", "1", "staging")
    assert moved.current_stage == "Staging"
    assert moved.last_updated_timestamp >= before.last_updated_timestamp
    assert iris.transition_model_version_stage("iris", "1", "PRODUCTION").current_stage == (
        "Production"
    )
    assert iris.transition_model_version_stage("iris", "1", "none").current_stage == "None"
    with pytest.raises(InvalidParameterValue, match="Invalid Model Version stage: prod"):
        iris.transition_model_version_stage("iris", "1", "prod")


def test_archive_existing_versions(iris: AbstractRegistryStore) -> None:
    iris.transition_model_version_stage("iris", "1", "Production")
    iris.transition_model_version_stage("iris", "2", "Production")
    iris.transition_model_version_stage("iris", "3", "Production", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in iris.search_model_versions("name = 'iris'")}
    assert stages == {"1": "Archived", "2": "Archived", "3": "Production"}


@pytest.mark.parametrize("stage", ["None", "Archived", "archived"])
def test_archive_only_for_active_stages(iris: AbstractRegistryStore, stage: str) -> None:
    with pytest.raises(InvalidParameterValue, match="is not an Active stage"):
        iris.transition_model_version_stage("iris", "1", stage, archive_existing_versions=True)
    assert iris.get_model_version("iris", "1").current_stage == "None"
