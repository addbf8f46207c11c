"""Registered models on every registry backend: create, get, update, rename, delete, tags."""

from __future__ import annotations

import time

import pytest

from slipway.entities import Run
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from slipway.registry.store.base import AbstractRegistryStore

from ..conftest import model_source


def test_create_and_get(registry_store: AbstractRegistryStore) -> None:
    before = int(time.time() * 1000)
    created = registry_store.create_registered_model(
        "iris", tags=[("team", "ml"), ("empty", "")], description="flowers"
    )
    assert created.name == "iris"
    assert created.description == "flowers"
    assert created.tags == {"team": "ml", "empty": ""}
    assert created.latest_versions == []
    assert created.aliases == []
    assert before <= created.creation_timestamp == created.last_updated_timestamp
    assert registry_store.get_registered_model("iris") == created


def test_duplicate_name_is_refused(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    with pytest.raises(ResourceAlreadyExists, match=r"Registered Model \(name=iris\) already"):
        registry_store.create_registered_model("iris")


def test_unknown_model(registry_store: AbstractRegistryStore) -> None:
    with pytest.raises(ResourceDoesNotExist, match="Registered Model with name=nope not found"):
        registry_store.get_registered_model("nope")
    for call in (
        lambda: registry_store.update_registered_model("nope", "x"),
        lambda: registry_store.rename_registered_model("nope", "other"),
        lambda: registry_store.delete_registered_model("nope"),
        lambda: registry_store.set_registered_model_tag("nope", "k", "v"),
        lambda: registry_store.get_latest_versions("nope"),
    ):
        with pytest.raises(ResourceDoesNotExist):
            call()


@pytest.mark.parametrize("name", ["", "   ", "a/b", "a:b", "..", ".", "a/../b", "x" * 257])
def test_bad_names_are_refused(registry_store: AbstractRegistryStore, name: str) -> None:
    with pytest.raises(InvalidParameterValue):
        registry_store.create_registered_model(name)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", "v", "key"),
        ("k" * 251, "v", "maximum length of 250"),
        ("ok", "v" * 5001, "maximum length of 5000"),
        ("../etc", "v", "must not resolve"),
        ("bad!key", "v", "Names may only contain"),
    ],
)
def test_bad_tags_are_refused(
    registry_store: AbstractRegistryStore, key: str, value: str, message: str
) -> None:
    registry_store.create_registered_model("iris")
    with pytest.raises(InvalidParameterValue, match=message):
        registry_store.set_registered_model_tag("iris", key, value)
    with pytest.raises(InvalidParameterValue, match=message):
        registry_store.create_registered_model("other", tags=[(key, value)])
    assert registry_store.get_registered_model("iris").tags == {}


def test_tag_limits_are_accepted(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    key, value = "k" * 250, "v" * 5000
    registry_store.set_registered_model_tag("iris", key, value)
    registry_store.set_registered_model_tag("iris", "mlflow.note:x y/z", "")
    assert registry_store.get_registered_model("iris").tags == {key: value, "mlflow.note:x y/z": ""}


def test_set_overwrite_and_delete_tags(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris", tags=[("a", "1")])
    registry_store.set_registered_model_tag("iris", "a", "2")
    registry_store.set_registered_model_tag("iris", "b", "3")
    assert registry_store.get_registered_model("iris").tags == {"a": "2", "b": "3"}
    registry_store.delete_registered_model_tag("iris", "a")
    registry_store.delete_registered_model_tag("iris", "never-set")  # not an error, as in MLflow
    assert registry_store.get_registered_model("iris").tags == {"b": "3"}


def test_update_description_moves_last_updated(registry_store: AbstractRegistryStore) -> None:
    created = registry_store.create_registered_model("iris", description="old")
    time.sleep(0.002)
    updated = registry_store.update_registered_model("iris", "new")
    assert updated.description == "new"
    assert updated.last_updated_timestamp > created.last_updated_timestamp
    assert updated.creation_timestamp == created.creation_timestamp
    assert registry_store.update_registered_model("iris", None).description is None


def test_rename_moves_everything(registry_store: AbstractRegistryStore, run: Run) -> None:
    registry_store.create_registered_model("old", tags=[("team", "ml")])
    for _ in range(2):
        registry_store.create_model_version("old", model_source(run), run_id=run.info.run_id)
    registry_store.set_model_version_tag("old", "1", "k", "v")
    registry_store.set_registered_model_alias("old", "champion", "2")
    registry_store.transition_model_version_stage("old", "1", "Staging")

    renamed = registry_store.rename_registered_model("old", "new")

    assert renamed.name == "new"
    assert renamed.tags == {"team": "ml"}
    assert [(a.alias, a.version) for a in renamed.aliases] == [("champion", "2")]
    assert {(v.version, v.current_stage) for v in renamed.latest_versions} == {
        ("1", "Staging"),
        ("2", "None"),
    }
    assert registry_store.get_model_version("new", "1").tags == {"k": "v"}
    assert registry_store.get_model_version_by_alias("new", "champion").version == "2"
    with pytest.raises(ResourceDoesNotExist):
        registry_store.get_registered_model("old")
    # numbering continues after a rename
    assert registry_store.create_model_version("new", "s3://bucket/m").version == "3"


def test_rename_to_an_existing_name_is_refused(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("a")
    registry_store.create_registered_model("b")
    with pytest.raises(ResourceAlreadyExists, match=r"\(name=b\) already exists"):
        registry_store.rename_registered_model("a", "b")
    with pytest.raises(InvalidParameterValue, match="new_name"):
        registry_store.rename_registered_model("a", "")
    assert registry_store.get_registered_model("a").name == "a"
    assert registry_store.rename_registered_model("a", "a").name == "a"


def test_delete_removes_model_and_versions(registry_store: AbstractRegistryStore, run: Run) -> None:
    registry_store.create_registered_model("iris", tags=[("a", "b")])
    registry_store.create_model_version("iris", model_source(run), run_id=run.info.run_id)
    registry_store.set_registered_model_alias("iris", "champion", "1")
    registry_store.delete_registered_model("iris")
    with pytest.raises(ResourceDoesNotExist):
        registry_store.get_registered_model("iris")
    with pytest.raises(ResourceDoesNotExist):
        registry_store.get_model_version("iris", "1")
    assert list(registry_store.search_model_versions("name = 'iris'")) == []
    # the name is free again, with fresh numbering, tags and aliases
    again = registry_store.create_registered_model("iris")
    assert again.tags == {}
    assert again.aliases == []
    assert registry_store.create_model_version("iris", "s3://b/m").version == "1"


def test_latest_versions_newest_per_stage(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    for _ in range(5):
        registry_store.create_model_version("iris", "s3://bucket/model")
    registry_store.transition_model_version_stage("iris", "1", "Production")
    registry_store.transition_model_version_stage("iris", "2", "production")
    registry_store.transition_model_version_stage("iris", "3", "STAGING")
    registry_store.transition_model_version_stage("iris", "4", "archived")

    latest = registry_store.get_latest_versions("iris")
    assert [(v.current_stage, v.version) for v in latest] == [
        ("None", "5"),
        ("Staging", "3"),
        ("Production", "2"),
        ("Archived", "4"),
    ]
    assert registry_store.get_latest_versions("iris", []) == latest
    only = registry_store.get_latest_versions("iris", ["production", "Staging"])
    assert [(v.current_stage, v.version) for v in only] == [("Staging", "3"), ("Production", "2")]
    model = registry_store.get_registered_model("iris")
    assert [v.version for v in model.latest_versions] == ["5", "3", "2", "4"]
    with pytest.raises(InvalidParameterValue, match="Invalid Model Version stage: Prod"):
        registry_store.get_latest_versions("iris", ["Prod"])
    registry_store.delete_model_version("iris", "2")
    production = registry_store.get_latest_versions("iris", ["Production"])
    assert [v.version for v in production] == ["1"]
