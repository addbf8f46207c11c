"""Model versions on every registry backend: numbering, get, update, delete, tags, and
concurrent creation."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from slipway.entities import Run
from slipway.entities.registry import ModelVersionStatus
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.registry.store.base import AbstractRegistryStore
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.rest import RestTrackingStore

from ..conftest import model_source


def test_create_version_fields(registry_store: AbstractRegistryStore, run: Run) -> None:
    registry_store.create_registered_model("iris")
    source = model_source(run)
    created = registry_store.create_model_version(
        "iris",
        source,
        run_id=run.info.run_id,
        tags=[("framework", "sklearn"), ("note", "")],
        run_link="http://ui/run",
        description="first",
        actor="alice",
    )
    assert created.name == "iris"
    assert created.version == "1"
    assert created.source == source
    assert created.run_id == run.info.run_id
    assert created.run_link == "http://ui/run"
    assert created.description == "first"
    assert created.status is ModelVersionStatus.READY
    assert created.current_stage == "None"
    assert created.tags == {"framework": "sklearn", "note": ""}
    assert created.aliases == []
    assert created.user_id == "alice"
    assert created.creation_timestamp == created.last_updated_timestamp
    assert registry_store.get_model_version("iris", "1") == created
    assert registry_store.get_model_version("iris", 1) == created  # type: ignore[arg-type]
    assert registry_store.get_model_version_download_uri("iris", "1") == source
    model = registry_store.get_registered_model("iris")
    assert model.last_updated_timestamp >= created.creation_timestamp


def test_numbers_are_never_reused(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    registry_store.create_registered_model("other")
    numbers = [registry_store.create_model_version("iris", "s3://b/m").version for _ in range(3)]
    assert numbers == ["1", "2", "3"]
    assert registry_store.create_model_version("other", "s3://b/m").version == "1"
    registry_store.delete_model_version("iris", "3")
    registry_store.delete_model_version("iris", "2")
    assert registry_store.create_model_version("iris", "s3://b/m").version == "4"


def test_version_on_unknown_model(registry_store: AbstractRegistryStore) -> None:
    with pytest.raises(ResourceDoesNotExist, match="Registered Model with name=nope not found"):
        registry_store.create_model_version("nope", "s3://b/m")
    with pytest.raises(ResourceDoesNotExist, match="Registered Model with name=nope not found"):
        registry_store.get_model_version("nope", "1")


@pytest.mark.parametrize("version", ["abc", "1.5", "", "1e3", " ", "one"])
def test_non_integer_version(registry_store: AbstractRegistryStore, version: str) -> None:
    registry_store.create_registered_model("iris")
    with pytest.raises(
        InvalidParameterValue,
        match=f"Parameter 'version' must be an integer, got '{version}'|Missing value",
    ):
        registry_store.get_model_version("iris", version)


@pytest.mark.parametrize("version", ["2", "0", "-1", "99999999999999999999"])
def test_unknown_version(registry_store: AbstractRegistryStore, version: str) -> None:
    registry_store.create_registered_model("iris")
    registry_store.create_model_version("iris", "s3://b/m")
    message = rf"Model Version \(name=iris, version={version}\) not found"
    for call in (
        lambda: registry_store.get_model_version("iris", version),
        lambda: registry_store.update_model_version("iris", version, "d"),
        lambda: registry_store.delete_model_version("iris", version),
        lambda: registry_store.set_model_version_tag("iris", version, "k", "v"),
        lambda: registry_store.get_model_version_download_uri("iris", version),
        lambda: registry_store.transition_model_version_stage("iris", version, "Staging"),
    ):
        with pytest.raises(ResourceDoesNotExist, match=message):
            call()


def test_update_description(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    created = registry_store.create_model_version("iris", "s3://b/m", description="a")
    time.sleep(0.002)
    updated = registry_store.update_model_version("iris", "1", "b")
    assert updated.description == "b"
    assert updated.last_updated_timestamp > created.last_updated_timestamp
    assert registry_store.update_model_version("iris", "1", None).description is None


def test_delete_version(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    registry_store.create_model_version("iris", "s3://b/m", tags=[("k", "v")])
    registry_store.create_model_version("iris", "s3://b/m")
    registry_store.set_registered_model_alias("iris", "champion", "1")
    registry_store.set_registered_model_alias("iris", "challenger", "2")
    registry_store.delete_model_version("iris", "1")
    with pytest.raises(ResourceDoesNotExist):
        registry_store.get_model_version("iris", "1")
    model = registry_store.get_registered_model("iris")
    assert [(a.alias, a.version) for a in model.aliases] == [("challenger", "2")]
    assert [v.version for v in model.latest_versions] == ["2"]
    with pytest.raises(InvalidParameterValue, match="alias champion not found"):
        registry_store.get_model_version_by_alias("iris", "champion")
    with pytest.raises(ResourceDoesNotExist):
        registry_store.delete_model_version("iris", "1")


def test_version_tags(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    registry_store.create_model_version("iris", "s3://b/m", tags=[("a", "1")])
    registry_store.set_model_version_tag("iris", "1", "a", "2")
    registry_store.set_model_version_tag("iris", "1", "b", "")
    assert registry_store.get_model_version("iris", "1").tags == {"a": "2", "b": ""}
    registry_store.delete_model_version_tag("iris", "1", "a")
    registry_store.delete_model_version_tag("iris", "1", "missing")
    assert registry_store.get_model_version("iris", "1").tags == {"b": ""}
    with pytest.raises(InvalidParameterValue, match="maximum length of 5000"):
        registry_store.set_model_version_tag("iris", "1", "c", "x" * 5001)
    with pytest.raises(InvalidParameterValue, match="maximum length of 250"):
        registry_store.create_model_version("iris", "s3://b/m", tags=[("k" * 251, "v")])
    with pytest.raises(InvalidParameterValue, match="Tag value cannot be None"):
        registry_store.set_model_version_tag("iris", "1", "c", None)  # type: ignore[arg-type]


def test_run_id_comes_from_a_runs_uri(registry_store: AbstractRegistryStore, run: Run) -> None:
    registry_store.create_registered_model("iris")
    created = registry_store.create_model_version("iris", f"runs:/{run.info.run_id}/model")
    assert created.run_id == run.info.run_id
    assert registry_store.get_model_version_download_uri("iris", "1") == created.source


def test_copy_from_another_version(registry_store: AbstractRegistryStore, run: Run) -> None:
    registry_store.create_registered_model("src")
    registry_store.create_registered_model("dst")
    original = registry_store.create_model_version("src", model_source(run), run_id=run.info.run_id)
    registry_store.set_registered_model_alias("src", "champion", "1")
    for uri in ("models:/src/1", "models:/src@champion", "models:/src/latest"):
        copied = registry_store.create_model_version("dst", uri)
        assert copied.source == "models:/src/1"  # pinned to the version it named
        assert copied.run_id == run.info.run_id
        dst_uri = registry_store.get_model_version_download_uri("dst", copied.version)
        assert dst_uri == original.source
    with pytest.raises(InvalidParameterValue, match="Unable to fetch model"):
        registry_store.create_model_version("dst", "models:/src/7")
    with pytest.raises(InvalidParameterValue, match="Unable to fetch model"):
        registry_store.create_model_version("dst", "models:/nope/1")
    with pytest.raises(InvalidParameterValue, match="Unable to fetch model"):
        registry_store.create_model_version("dst", "models:/src/Production")


def test_concurrent_creation_gets_distinct_numbers(
    registry_store: AbstractRegistryStore,
) -> None:
    registry_store.create_registered_model("iris")
    threads, per_thread = 6, 5
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def create() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                version = registry_store.create_model_version("iris", "s3://b/m").version
                with lock:
                    numbers.append(version)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=create) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert sorted(int(n) for n in numbers) == list(range(1, threads * per_thread + 1))


def test_model_id_fills_the_run(
    registry_store: AbstractRegistryStore, tracking_store: AbstractTrackingStore, run: Run
) -> None:
    model = _logged_model(tracking_store, run)
    registry_store.create_registered_model("iris")
    source = f"{model.artifact_location}/MLmodel"
    created = registry_store.create_model_version("iris", source, model_id=model.model_id)
    assert created.model_id == model.model_id
    assert created.run_id == run.info.run_id
    by_id = registry_store.create_model_version("iris", f"models:/{model.model_id}")
    assert by_id.run_id == run.info.run_id
    assert registry_store.get_model_version_download_uri("iris", by_id.version) == (
        model.artifact_location
    )
    with pytest.raises(InvalidParameterValue, match="no logged model"):
        registry_store.create_model_version("iris", "models:/m-0123456789abcdef")


def _logged_model(tracking_store: AbstractTrackingStore, run: Run) -> SimpleNamespace:
    """A logged model of ``run``: through the store where it offers logged models, else (the
    REST store does not yet) through the server's own ``/logged-models`` endpoint."""
    create = getattr(tracking_store, "create_logged_model", None)
    if create is not None:
        made = create("0", name="clf", source_run_id=run.info.run_id)
        return SimpleNamespace(model_id=made.model_id, artifact_location=made.artifact_location)
    assert isinstance(tracking_store, RestTrackingStore)
    answer = tracking_store.transport.call(
        "POST",
        "logged-models",
        {"experiment_id": "0", "name": "clf", "source_run_id": run.info.run_id},
    )
    info = answer["model"]["info"]
    return SimpleNamespace(model_id=info["model_id"], artifact_location=info["artifact_uri"])
