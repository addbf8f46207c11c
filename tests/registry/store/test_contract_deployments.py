"""Deployments on every registry backend."""

from __future__ import annotations

import pytest

from slipway.entities.registry import DeploymentStatus
from slipway.exceptions import InvalidParameterValue, ResourceConflict, ResourceDoesNotExist
from slipway.registry.store.base import AbstractRegistryStore


@pytest.fixture
def iris(registry_store: AbstractRegistryStore) -> AbstractRegistryStore:
    registry_store.create_registered_model("iris")
    for _ in range(2):
        registry_store.create_model_version("iris", "s3://bucket/model")
    return registry_store


def test_record_and_end(iris: AbstractRegistryStore) -> None:
    details = {"replicas": 2, "protocol": ["v2", "mlflow"], "canary": {"weight": 0.1}}
    started = iris.record_deployment("iris", "1", "http://serve:8080", details=details)
    assert len(started.deployment_id) == 32
    assert (started.name, started.version, started.endpoint) == ("iris", "1", "http://serve:8080")
    assert started.status is DeploymentStatus.RUNNING
    assert started.end_time is None
    assert started.details == details
    ended = iris.end_deployment(started.deployment_id)
    assert ended.status is DeploymentStatus.STOPPED
    assert ended.end_time is not None
    assert ended.end_time >= started.start_time
    with pytest.raises(ResourceConflict, match="already STOPPED"):
        iris.end_deployment(started.deployment_id, DeploymentStatus.FAILED)
    failed = iris.end_deployment(
        iris.record_deployment("iris", "2", "local:1").deployment_id, DeploymentStatus.FAILED
    )
    assert failed.status is DeploymentStatus.FAILED


def test_bad_deployments(iris: AbstractRegistryStore) -> None:
    with pytest.raises(ResourceDoesNotExist, match=r"version=7\) not found"):
        iris.record_deployment("iris", "7", "http://x")
    with pytest.raises(ResourceDoesNotExist, match="name=nope not found"):
        iris.record_deployment("nope", "1", "http://x")
    with pytest.raises(InvalidParameterValue, match="endpoint"):
        iris.record_deployment("iris", "1", "")
    with pytest.raises(ResourceDoesNotExist, match="not found"):
        iris.end_deployment("0" * 32)
    running = iris.record_deployment("iris", "1", "http://x")
    with pytest.raises(InvalidParameterValue, match="STOPPED or FAILED"):
        iris.end_deployment(running.deployment_id, DeploymentStatus.RUNNING)
    assert iris.list_deployments(running_only=True) == [running]


def test_list_filters(iris: AbstractRegistryStore) -> None:
    a = iris.record_deployment("iris", "1", "http://a")
    b = iris.record_deployment("iris", "2", "http://b")
    c = iris.record_deployment("iris", "2", "http://c")
    iris.end_deployment(b.deployment_id)
    assert {d.deployment_id for d in iris.list_deployments()} == {
        a.deployment_id,
        b.deployment_id,
        c.deployment_id,
    }
    assert {d.endpoint for d in iris.list_deployments("iris", "2")} == {"http://b", "http://c"}
    running = iris.list_deployments("iris", running_only=True)
    assert {d.endpoint for d in running} == {"http://a", "http://c"}
    assert iris.list_deployments("iris", "2", running_only=True)[0].endpoint == "http://c"
    assert iris.list_deployments("other") == []
    iris.rename_registered_model("iris", "flowers")
    assert len(iris.list_deployments("flowers")) == 3
