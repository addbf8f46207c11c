"""DeploymentRecorder against a real embedded registry and a real ``slipway server``: what it
records, how lineage shows it, and that a broken registry never reaches serving."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import slipway
from slipway.entities.registry import DeploymentStatus
from slipway.registry import RegistryClient
from slipway.serving.deployments import DeploymentRecorder, registered_name

from ._models import ServingModels

SERVER_URL = "http://10.1.2.3:8080"


@dataclass(frozen=True)
class Served:
    """What a served model tells the recorder (the attributes LoadedModel has)."""

    name: str
    uri: str
    version: str | None


@pytest.fixture
def models(tmp_path: Path) -> ServingModels:
    return ServingModels(tmp_path)


@pytest.fixture
def iris(models: ServingModels) -> Served:
    version = models.register_constant("iris", 1.0, alias="champion")
    return Served("iris", "models:/iris@champion", version.version)


@pytest.fixture
def recorder(models: ServingModels) -> Iterator[DeploymentRecorder]:
    rec = DeploymentRecorder(SERVER_URL + "/", models.tracking_uri)
    yield rec
    rec.close()


def test_started_records_a_running_deployment_with_details(
    models: ServingModels, iris: Served, recorder: DeploymentRecorder
) -> None:
    recorder.started(iris)
    assert recorder.flush(10)
    [dep] = models.registry.deployments("iris", iris.version)
    assert dep.status == DeploymentStatus.RUNNING
    assert dep.endpoint == f"{SERVER_URL}/v2/models/iris"
    assert dep.end_time is None
    assert dep.details["pid"] == os.getpid()
    assert dep.details["host"] == socket.gethostname()
    assert dep.details["uri"] == "models:/iris@champion"
    assert dep.details["endpoint_name"] == "iris"
    assert dep.details["started_by"]
    assert recorder.running == {("iris", "models:/iris@champion", "1"): dep.deployment_id}
    events = [e.action for e in models.registry.audit_log("iris", iris.version)]
    assert events[-1] == "deploy"


def test_a_loaded_model_is_recorded_under_its_registered_name(
    models: ServingModels, recorder: DeploymentRecorder
) -> None:
    from slipway.serving.batching import BatchConfig
    from slipway.serving.loaded import LoadedModel

    models.register_constant("iris", 1.0)
    models.register_constant("iris", 2.0, alias="champion")
    loaded = LoadedModel.load(
        "flowers", "models:/iris@champion", BatchConfig(), models.tracking_uri
    )
    try:
        recorder.started(loaded)
        recorder.stopped(loaded)
        assert recorder.flush(10)
    finally:
        asyncio.run(loaded.close())
    [dep] = models.registry.deployments("iris")
    assert dep.version == "2"
    assert dep.endpoint == f"{SERVER_URL}/v2/models/flowers"
    assert dep.status == DeploymentStatus.STOPPED


def test_started_twice_records_once(
    models: ServingModels, iris: Served, recorder: DeploymentRecorder
) -> None:
    recorder.started(iris)
    recorder.started(iris)
    assert recorder.flush(10)
    assert len(models.registry.deployments("iris")) == 1


def test_stopped_and_failed_end_the_deployment(
    models: ServingModels, iris: Served, recorder: DeploymentRecorder
) -> None:
    v2 = models.register_constant("iris", 2.0)
    second = Served("iris-b", "models:/iris/2", v2.version)
    recorder.started(iris)
    recorder.started(second)
    recorder.stopped(iris)
    recorder.stopped(second, failed=True)
    assert recorder.flush(10)
    by_version = {d.version: d for d in models.registry.deployments("iris")}
    assert by_version["1"].status == DeploymentStatus.STOPPED
    assert by_version["2"].status == DeploymentStatus.FAILED
    assert by_version["1"].end_time is not None
    assert by_version["1"].end_time >= by_version["1"].start_time
    assert recorder.running == {}


def test_hot_reload_moves_the_deployment_to_the_new_version(
    models: ServingModels, iris: Served, recorder: DeploymentRecorder
) -> None:
    recorder.started(iris)
    v2 = models.register_constant("iris", 2.0)
    models.set_alias("iris", "champion", v2.version)
    reloaded = Served("iris", "models:/iris@champion", v2.version)
    recorder.started(reloaded)
    recorder.stopped(iris)
    assert recorder.flush(10)
    running = models.registry.deployments("iris", running_only=True)
    assert [d.version for d in running] == ["2"]


def test_close_ends_what_still_runs_and_is_idempotent(models: ServingModels, iris: Served) -> None:
    rec = DeploymentRecorder(SERVER_URL, models.tracking_uri)
    rec.started(iris)
    rec.close()
    rec.close()
    rec.started(iris)  # after close: ignored, not an error
    assert rec.flush(0.01)  # nothing left to wait for
    [dep] = models.registry.deployments("iris")
    assert dep.status == DeploymentStatus.STOPPED


def test_close_failed_marks_failed(models: ServingModels, iris: Served) -> None:
    rec = DeploymentRecorder(SERVER_URL, models.tracking_uri)
    rec.started(iris)
    rec.close(failed=True)
    [dep] = models.registry.deployments("iris")
    assert dep.status == DeploymentStatus.FAILED


def test_models_outside_the_registry_are_not_recorded(
    models: ServingModels, iris: Served, recorder: DeploymentRecorder, tmp_path: Path
) -> None:
    local = ServingModels.save_constant(tmp_path / "local-model", 3.0)
    recorder.started(Served("local", str(local), None))
    recorder.started(Served("run", "runs:/abc/model", None))
    recorder.started(Served("logged", "models:/m-0123456789abcdef", None))
    assert recorder.flush(10)
    assert recorder.running == {}
    assert models.registry.deployments() == []


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/iris@champion", "iris"),
        ("models:/iris/3", "iris"),
        ("models:/iris/Production", "iris"),
        ("models:/m-0123456789abcdef", None),
        ("models:/", None),
        ("runs:/abc/model", None),
        ("/tmp/model", None),
    ],
)
def test_registered_name(uri: str, expected: str | None) -> None:
    assert registered_name(uri) == expected


def test_lineage_shows_the_deployment(
    tracking_dir: Path, models: ServingModels, iris: Served, recorder: DeploymentRecorder
) -> None:
    assert Path(models.tracking_uri) == tracking_dir  # slipway.lineage reads this store
    recorder.started(iris)
    assert recorder.flush(10)
    graph = slipway.lineage("models:/iris@champion")
    [node] = graph.of_kind("deployment")
    assert node.attributes["endpoint"] == f"{SERVER_URL}/v2/models/iris"
    assert node.attributes["status"] == "RUNNING"
    assert any(
        e.source == "model_version:iris/1"
        and e.target == node.node_id
        and e.relation == "deployed_as"
        for e in graph.edges
    )
    assert graph.of_kind("run"), "the version's training run is in the graph too"


# -- through slipway server ---------------------------------------------------------------------


@pytest.fixture
def server(rest_server: Any, models: ServingModels, tmp_path: Path) -> Iterator[str]:
    """``slipway server`` on the store ``models`` wrote, mounted on the session's server."""
    from slipway.server import ServerSettings, create_app

    app = create_app(
        ServerSettings(
            backend_store_uri=models.tracking_uri,
            artifacts_destination=str(tmp_path / "proxied"),
        )
    )
    rest_server.front.app = app
    yield rest_server.url
    rest_server.front.app = None
    app.state.context.close()


def test_recorded_through_the_server_and_shown_by_lineage(
    server: str, models: ServingModels, iris: Served
) -> None:
    rec = DeploymentRecorder(SERVER_URL, server)
    rec.started(iris)
    assert rec.flush(10)
    slipway.set_tracking_uri(server)
    try:
        graph = slipway.lineage("models:/iris@champion")
    finally:
        slipway.set_tracking_uri(None)
    [node] = graph.of_kind("deployment")
    assert node.attributes["status"] == "RUNNING"
    rec.close()
    [dep] = RegistryClient(server).deployments("iris", "1")
    assert dep.status == DeploymentStatus.STOPPED
    assert dep.details["uri"] == "models:/iris@champion"
    # the embedded view of the same store agrees
    assert models.registry.deployments("iris")[0].deployment_id == dep.deployment_id


# -- a registry that fails -------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_registry_never_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLIPWAY_HTTP_MAX_RETRIES", "0")
    monkeypatch.setenv("SLIPWAY_HTTP_CONNECT_TIMEOUT", "1")
    url = f"http://127.0.0.1:{_closed_port()}"  # a new URL: a new store, with these settings
    model = Served("iris", "models:/iris@champion", "1")
    rec = DeploymentRecorder(SERVER_URL, url)
    began = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="slipway.serving.deployments"):
        rec.started(model)  # returns at once: the registry call happens in the background
        took = time.perf_counter() - began
        rec.stopped(model)
        rec.close()
    assert took < 0.5
    assert "Could not update the deployment record" in caplog.text
    assert rec.running == {}


def test_registry_errors_are_logged_and_serving_goes_on(
    models: ServingModels, recorder: DeploymentRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    ghost = Served("ghost", "models:/ghost/7", "7")  # no such registered model
    models.register_constant("iris", 1.0)
    with caplog.at_level(logging.WARNING, logger="slipway.serving.deployments"):
        recorder.started(ghost)
        recorder.started(Served("iris", "models:/iris/1", "1"))
        assert recorder.flush(10)
    assert "ghost" in caplog.text
    assert [d.name for d in models.registry.deployments()] == ["iris"]
