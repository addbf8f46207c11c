"""Searching registered models and model versions on every registry backend: MLflow's filter
grammar, ordering, paging and limits."""

from __future__ import annotations

import time

import pytest

from slipway.exceptions import InvalidParameterValue
from slipway.registry.store.base import AbstractRegistryStore


def _names(found: object) -> list[str]:
    return [m.name for m in found]  # type: ignore[attr-defined]


@pytest.fixture
def models(registry_store: AbstractRegistryStore) -> AbstractRegistryStore:
    """Five models created in this order, with tags; plus one prompt."""
    for name, tags in [
        ("fraud-a", {"team": "risk", "model type": "tree"}),
        ("fraud-b", {"team": "risk"}),
        ("Fraud-C", {"team": "growth"}),
        ("churn", {"team": "growth", "model type": "linear"}),
        ("iris_1", {}),
    ]:
        registry_store.create_registered_model(name, tags=list(tags.items()))
        time.sleep(0.002)
    registry_store.create_registered_model("my-prompt", tags=[("mlflow.prompt.is_prompt", "true")])
    return registry_store


MODEL_FILTERS: list[tuple[str | None, list[str]]] = [
    (None, ["Fraud-C", "churn", "fraud-a", "fraud-b", "iris_1"]),
    ("", ["Fraud-C", "churn", "fraud-a", "fraud-b", "iris_1"]),
    ("name = 'churn'", ["churn"]),
    ("name != 'churn'", ["Fraud-C", "fraud-a", "fraud-b", "iris_1"]),
    ("name LIKE 'fraud-%'", ["fraud-a", "fraud-b"]),
    ("name ILIKE 'fraud-%'", ["Fraud-C", "fraud-a", "fraud-b"]),
    ("name LIKE 'iris\\_1'", ["iris_1"]),
    ("name LIKE 'fraud-_'", ["fraud-a", "fraud-b"]),
    ("tags.team = 'risk'", ["fraud-a", "fraud-b"]),
    ("tags.team != 'risk'", ["Fraud-C", "churn"]),
    ("tags.`model type` = 'tree'", ["fraud-a"]),
    ("tags.\"model type\" LIKE '%e%'", ["churn", "fraud-a"]),
    ("tags.team ILIKE 'GROW%' AND name ILIKE 'f%'", ["Fraud-C"]),
    ("name IN ('churn', 'iris_1')", ["churn", "iris_1"]),
    ("tags.mlflow.prompt.is_prompt = 'true'", ["my-prompt"]),
    (
        "tags.`mlflow.prompt.is_prompt` != 'true'",
        ["Fraud-C", "churn", "fraud-a", "fraud-b", "iris_1"],
    ),
]


def test_model_filters(models: AbstractRegistryStore) -> None:
    # One test for every case: the cases share one set of models, built once per backend.
    for filter_string, expected in MODEL_FILTERS:
        found = _names(models.search_registered_models(filter_string))
        assert found == expected, filter_string


def test_model_order_by(models: AbstractRegistryStore) -> None:
    search = models.search_registered_models
    assert _names(search(order_by=["name DESC"])) == [
        "iris_1", "fraud-b", "fraud-a", "churn", "Fraud-C"
    ]  # fmt: skip
    assert _names(search(order_by=["timestamp DESC"])) == [
        "iris_1", "churn", "Fraud-C", "fraud-b", "fraud-a"
    ]  # fmt: skip
    assert _names(search(order_by=["creation_timestamp"])) == [
        "fraud-a", "fraud-b", "Fraud-C", "churn", "iris_1"
    ]  # fmt: skip
    models.update_registered_model("fraud-a", "touched")
    assert _names(search(order_by=["last_updated_timestamp DESC"]))[0] == "fraud-a"


def test_model_paging(models: AbstractRegistryStore) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = models.search_registered_models(max_results=2, page_token=token)
        seen += _names(page)
        pages += 1
        token = page.token
        if not token:
            break
    assert pages == 3
    assert seen == ["Fraud-C", "churn", "fraud-a", "fraud-b", "iris_1"]
    exact = models.search_registered_models(max_results=5)
    assert len(exact) == 5
    assert exact.token is None


BAD_MODEL_SEARCHES: list[tuple[dict[str, object], str]] = [
    ({"max_results": 1001}, "at most 1000"),
    ({"max_results": 0}, "positive integer"),
    ({"filter_string": "name = "}, "Invalid filter"),
    ({"filter_string": "name = 'a' OR name = 'b'"}, "OR is not supported"),
    ({"filter_string": "version_number = 1"}, "invalid search key 'version_number'"),
    ({"filter_string": "metrics.x > 1"}, "invalid entity type"),
    ({"filter_string": "name > 'a'"}, "operator '>' is not allowed"),
    ({"filter_string": "tags.x IN ('a')"}, "operator 'IN' is not allowed"),
    ({"filter_string": "name = 5"}, "expected a quoted string"),
    ({"order_by": ["version_number"]}, "invalid order_by key 'version_number'"),
    ({"order_by": ["name UP"]}, "expected ASC or DESC"),
    ({"order_by": ["name", "name DESC"]}, "more than once"),
    ({"page_token": "not-a-token"}, "Invalid page token"),
]


def test_bad_model_searches(registry_store: AbstractRegistryStore) -> None:
    for kwargs, message in BAD_MODEL_SEARCHES:
        with pytest.raises(InvalidParameterValue, match=message):
            registry_store.search_registered_models(**kwargs)  # type: ignore[arg-type]


@pytest.fixture
def versions(registry_store: AbstractRegistryStore) -> AbstractRegistryStore:
    """``a`` versions 1-3 and ``b`` versions 1-2, with run ids, sources and tags."""
    for name, count in (("a", 3), ("b", 2)):
        registry_store.create_registered_model(name)
        for i in range(1, count + 1):
            registry_store.create_model_version(
                name,
                f"s3://bucket/{name}/v{i}",
                run_id=f"run{name}{i}",
                tags=[("parity", "odd" if i % 2 else "even")],
            )
            time.sleep(0.002)
    return registry_store


def _keys(found: object) -> list[str]:
    return [f"{v.name}/{v.version}" for v in found]  # type: ignore[attr-defined]


VERSION_FILTERS: list[tuple[str, list[str]]] = [
    ("name = 'a'", ["a/1", "a/2", "a/3"]),
    ("name = 'a' AND version_number > 1", ["a/2", "a/3"]),
    ("version_number = 2", ["a/2", "b/2"]),
    ("version_number <= 1", ["a/1", "b/1"]),
    ("version_number != 1 AND name = 'b'", ["b/2"]),
    ("run_id = 'runb2'", ["b/2"]),
    ("run_id IN ('runa1', 'runb1', 'nope')", ["a/1", "b/1"]),
    ("run_id NOT IN ('runa1', 'runa2', 'runa3')", ["b/1", "b/2"]),
    ("source_path = 's3://bucket/a/v2'", ["a/2"]),
    ("source_path LIKE 's3://bucket/b/%'", ["b/1", "b/2"]),
    ("tags.parity = 'even'", ["a/2", "b/2"]),
    ("tags.parity = 'odd' AND name = 'a'", ["a/1", "a/3"]),
    ("name IN ('b')", ["b/1", "b/2"]),
]


def test_version_filters(versions: AbstractRegistryStore) -> None:
    for filter_string, expected in VERSION_FILTERS:
        found = versions.search_model_versions(filter_string, order_by=["name", "version_number"])
        assert _keys(found) == expected, filter_string


def test_version_default_order_is_newest_update_first(versions: AbstractRegistryStore) -> None:
    assert _keys(versions.search_model_versions()) == ["b/2", "b/1", "a/3", "a/2", "a/1"]
    versions.update_model_version("a", "1", "touched")
    assert _keys(versions.search_model_versions())[0] == "a/1"
    assert _keys(versions.search_model_versions(order_by=["version_number DESC"])) == [
        "a/3", "a/2", "b/2", "a/1", "b/1"
    ]  # fmt: skip
    assert _keys(versions.search_model_versions(order_by=["name DESC"])) == [
        "b/2", "b/1", "a/3", "a/2", "a/1"
    ]  # fmt: skip
    by_creation = versions.search_model_versions(order_by=["creation_timestamp ASC"])
    assert _keys(by_creation) == ["a/1", "a/2", "a/3", "b/1", "b/2"]


def test_version_paging(versions: AbstractRegistryStore) -> None:
    first = versions.search_model_versions(max_results=3, order_by=["name", "version_number"])
    assert _keys(first) == ["a/1", "a/2", "a/3"]
    assert first.token
    rest = versions.search_model_versions(
        max_results=3, order_by=["name", "version_number"], page_token=first.token
    )
    assert _keys(rest) == ["b/1", "b/2"]
    assert rest.token is None


BAD_VERSION_SEARCHES: list[tuple[dict[str, object], str]] = [
    ({"max_results": 200_001}, "at most 200000"),
    ({"filter_string": "version_number = '1'"}, "expected an integer value"),
    ({"filter_string": "version_number < 1.5"}, "expected an integer value"),
    ({"filter_string": "version_number LIKE 1"}, "operator 'LIKE' is not allowed"),
    ({"filter_string": "source_path IN ('a')"}, "operator 'IN' is not allowed"),
    ({"filter_string": "status = 'READY'"}, "invalid search key 'status'"),
    ({"order_by": ["run_id"]}, "invalid order_by key 'run_id'"),
]


def test_bad_version_searches(registry_store: AbstractRegistryStore) -> None:
    for kwargs, message in BAD_VERSION_SEARCHES:
        with pytest.raises(InvalidParameterValue, match=message):
            registry_store.search_model_versions(**kwargs)  # type: ignore[arg-type]


def test_prompt_versions_are_left_out(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("p")
    registry_store.create_model_version(
        "p", "s3://bucket/p", tags=[("mlflow.prompt.is_prompt", "true")]
    )
    registry_store.create_model_version("p", "s3://bucket/q")
    assert _keys(registry_store.search_model_versions("name = 'p'")) == ["p/2"]
    prompts = registry_store.search_model_versions("tags.`mlflow.prompt.is_prompt` = 'true'")
    assert _keys(prompts) == ["p/1"]
