"""Approvals, the audit log, deployments and lineage through :class:`RestRegistryStore`
against the live server: the actor it names, the errors that come back as Slipway's classes,
and the raw forms of ``/api/2.0/slipway/lineage``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from slipway.entities import Dataset, DatasetInput, InputTag, RunTag
from slipway.entities.registry import (
    PIPELINE_RUN_TAG,
    PIPELINE_STEP_TAG,
    DeploymentStatus,
    RequestStatus,
    TransitionTarget,
)
from slipway.exceptions import (
    InvalidParameterValue,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
    TemporarilyUnavailable,
)
from slipway.registry.store.rest import RestRegistryStore
from slipway.server.context import ServerContext
from slipway.tracking.store.rest.http import HttpConfig

from .conftest import LiveServer, free_port

ALIAS = TransitionTarget.ALIAS
STAGE = TransitionTarget.STAGE


@pytest.fixture
def store(live_server: LiveServer) -> Iterator[RestRegistryStore]:
    rest = RestRegistryStore(live_server.url, HttpConfig(max_retries=0, timeout=30))
    yield rest
    rest.close()


def context(server: LiveServer) -> ServerContext:
    ctx = server.app.state.context
    assert isinstance(ctx, ServerContext)
    return ctx


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def versioned(live_server: LiveServer, store: RestRegistryStore) -> tuple[str, str]:
    """A registered model with two versions from one run: (name, run id)."""
    run = context(live_server).store.create_run("0", run_name="registry")
    name = unique()
    store.create_registered_model(name, actor="alice")
    for path in ("a", "b"):
        store.create_model_version(
            name, f"{run.info.artifact_uri}/{path}", run.info.run_id, actor="alice"
        )
    return name, run.info.run_id


def test_policies(store: RestRegistryStore, versioned: tuple[str, str]) -> None:
    name, _ = versioned
    policy = store.set_approval_policy(name, ALIAS, "champion", actor="alice")
    assert (policy.name, policy.target_kind, policy.target) == (name, ALIAS, "champion")
    assert policy.allow_self_approval is False
    assert policy.created_by == "alice"
    store.set_approval_policy(name, STAGE, "production", allow_self_approval=True)
    listed = {(p.target_kind, p.target): p for p in store.list_approval_policies(name)}
    assert set(listed) == {(ALIAS, "champion"), (STAGE, "Production")}
    assert listed[(STAGE, "Production")].allow_self_approval is True

    with pytest.raises(PermissionDenied):
        store.set_registered_model_alias(name, "champion", "1", actor="alice")
    with pytest.raises(PermissionDenied):
        store.transition_model_version_stage(name, "1", "Production", actor="alice")
    # Unprotected targets move freely.
    store.set_registered_model_alias(name, "challenger", "1", actor="alice")
    assert store.transition_model_version_stage(name, "1", "Staging").current_stage == "Staging"

    store.delete_approval_policy(name, ALIAS, "champion", actor="alice")
    store.set_registered_model_alias(name, "champion", "1", actor="alice")
    assert store.get_model_version_by_alias(name, "champion").version == "1"
    assert [p.target for p in store.list_approval_policies(name)] == ["Production"]

    with pytest.raises(InvalidParameterValue):
        store.set_approval_policy(name, ALIAS, "latest")
    with pytest.raises(ResourceDoesNotExist):
        store.set_approval_policy(unique(), ALIAS, "champion")


def test_request_approve_reject_cancel(
    store: RestRegistryStore, versioned: tuple[str, str]
) -> None:
    name, _ = versioned
    store.set_approval_policy(name, ALIAS, "champion", actor="alice")
    request = store.request_transition(
        name, "2", ALIAS, "champion", comment="better", actor="alice"
    )
    assert request.status is RequestStatus.PENDING
    assert (request.requested_by, request.comment, request.version) == ("alice", "better", "2")
    assert store.get_transition_request(request.request_id) == request

    with pytest.raises(PermissionDenied):
        store.decide_transition_request(request.request_id, approve=True, actor="alice")
    approved = store.decide_transition_request(
        request.request_id, approve=True, comment="ok", actor="bob"
    )
    assert approved.status is RequestStatus.APPROVED
    assert (approved.decided_by, approved.decision_comment) == ("bob", "ok")
    assert approved.decided_timestamp is not None
    assert store.get_model_version_by_alias(name, "champion").version == "2"
    with pytest.raises(ResourceConflict):
        store.decide_transition_request(request.request_id, approve=False, actor="bob")
    with pytest.raises(ResourceConflict):
        store.cancel_transition_request(request.request_id, actor="alice")

    rejected = store.request_transition(name, "1", ALIAS, "champion", actor="carol")
    rejected = store.decide_transition_request(rejected.request_id, approve=False, actor="bob")
    assert rejected.status is RequestStatus.REJECTED
    assert store.get_model_version_by_alias(name, "champion").version == "2"

    withdrawn = store.request_transition(name, "1", STAGE, "staging", actor="carol")
    assert withdrawn.target == "Staging"
    cancelled = store.cancel_transition_request(withdrawn.request_id, actor="carol")
    assert cancelled.status is RequestStatus.CANCELLED

    everything = store.list_transition_requests(name)
    assert [r.request_id for r in everything] == [
        withdrawn.request_id,
        rejected.request_id,
        request.request_id,
    ]
    assert [r.request_id for r in store.list_transition_requests(name, version="2")] == [
        request.request_id
    ]
    assert [
        r.request_id for r in store.list_transition_requests(name, status=RequestStatus.REJECTED)
    ] == [rejected.request_id]
    assert store.list_transition_requests(unique()) == []
    with pytest.raises(ResourceDoesNotExist):
        store.get_transition_request("no-such-request")


def test_self_approval_when_the_policy_allows_it(
    store: RestRegistryStore, versioned: tuple[str, str]
) -> None:
    name, _ = versioned
    store.transition_model_version_stage(name, "1", "Production")
    store.set_approval_policy(name, STAGE, "Production", allow_self_approval=True)
    request = store.request_transition(
        name, "2", STAGE, "production", archive_existing_versions=True, actor="dave"
    )
    assert request.archive_existing_versions is True
    approved = store.decide_transition_request(request.request_id, approve=True, actor="dave")
    assert approved.status is RequestStatus.APPROVED
    assert store.get_model_version(name, "2").current_stage == "Production"
    assert store.get_model_version(name, "1").current_stage == "Archived"


def test_audit_log(
    store: RestRegistryStore, versioned: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = versioned
    monkeypatch.setenv("SLIPWAY_USER", "zoë")  # no actor given: the process's user
    store.set_registered_model_alias(name, "staging-candidate", "2")
    store.delete_model_version(name, "1", actor="erin")

    events = store.list_audit_events(name)
    assert [(e.action, e.actor, e.version) for e in events] == [
        ("create_model", "alice", None),
        ("create_version", "alice", "1"),
        ("create_version", "alice", "2"),
        ("set_alias", "zoë", "2"),
        ("delete_version", "erin", "1"),
    ]
    assert events[3].details.get("alias") == "staging-candidate"
    assert all(e.timestamp > 0 for e in events)
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)
    assert [e.action for e in store.list_audit_events(name, version="2")] == [
        "create_version",
        "set_alias",
    ]
    assert len(store.list_audit_events(name, max_results=2)) == 2
    # The log outlives the model.
    store.delete_registered_model(name, actor="erin")
    assert store.list_audit_events(name)[-1].action == "delete_model"


def test_deployments(store: RestRegistryStore, versioned: tuple[str, str]) -> None:
    name, _ = versioned
    first = store.record_deployment(
        name, "1", "http://127.0.0.1:8080", details={"workers": 2, "tags": ["a"]}, actor="ops"
    )
    assert first.status is DeploymentStatus.RUNNING
    assert first.details == {"workers": 2, "tags": ["a"]}
    assert first.end_time is None
    second = store.record_deployment(name, "2", "http://127.0.0.1:8081")

    ended = store.end_deployment(first.deployment_id, DeploymentStatus.FAILED)
    assert ended.status is DeploymentStatus.FAILED
    assert ended.end_time is not None
    assert {d.deployment_id for d in store.list_deployments(name)} == {
        first.deployment_id,
        second.deployment_id,
    }
    assert [d.deployment_id for d in store.list_deployments(name, running_only=True)] == [
        second.deployment_id
    ]
    assert [d.deployment_id for d in store.list_deployments(name, version="1")] == [
        first.deployment_id
    ]
    with pytest.raises(ResourceDoesNotExist):
        store.record_deployment(name, "9", "http://x")
    with pytest.raises(ResourceDoesNotExist):
        store.end_deployment("no-such-deployment")
    assert any(e.action == "deploy" and e.actor == "ops" for e in store.list_audit_events(name))


@pytest.fixture
def lineage_model(live_server: LiveServer, store: RestRegistryStore) -> tuple[str, str, str]:
    """A version from a run that read a dataset as a pipeline step: (name, run id, digest)."""
    tracking = context(live_server).store
    run = tracking.create_run("0", run_name="train")
    digest = uuid.uuid4().hex[:8]
    tracking.log_inputs(
        run.info.run_id,
        [
            DatasetInput(
                Dataset(unique("iris"), digest, "local", '{"uri": "/data/iris.csv"}'),
                (InputTag(DatasetInput.CONTEXT_TAG, "train"),),
            )
        ],
    )
    tracking.set_tag(run.info.run_id, RunTag(PIPELINE_RUN_TAG, "pipe-1"))
    tracking.set_tag(run.info.run_id, RunTag(PIPELINE_STEP_TAG, "train"))
    name = unique()
    store.create_registered_model(name)
    store.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
    store.set_registered_model_alias(name, "champion", "1")
    store.record_deployment(name, "1", "http://127.0.0.1:9000")
    return name, run.info.run_id, digest


def test_model_version_lineage(
    store: RestRegistryStore, lineage_model: tuple[str, str, str]
) -> None:
    name, run_id, digest = lineage_model
    graph = store.get_model_version_lineage(name, "1")
    assert graph.root == f"model_version:{name}/1"
    kinds = {n.kind for n in graph.nodes}
    assert {"model_version", "run", "dataset", "deployment"} <= kinds
    assert graph.node(f"run:{run_id}") is not None
    datasets = graph.of_kind("dataset")
    assert len(datasets) == 1
    assert digest in datasets[0].node_id
    node_ids = {n.node_id for n in graph.nodes}
    assert all(e.source in node_ids and e.target in node_ids for e in graph.edges)
    assert any(e.relation == "produced" for e in graph.edges)


def test_dataset_lineage(store: RestRegistryStore, lineage_model: tuple[str, str, str]) -> None:
    name, run_id, digest = lineage_model
    dataset_name = next(
        n.label for n in store.get_model_version_lineage(name, "1").of_kind("dataset")
    )
    graph = store.get_dataset_lineage(dataset_name.split("@")[0], digest)
    assert graph.node(f"run:{run_id}") is not None
    assert any(n.node_id == f"model_version:{name}/1" for n in graph.of_kind("model_version"))


def test_lineage_by_alias_and_uri(
    live_server: LiveServer, store: RestRegistryStore, lineage_model: tuple[str, str, str]
) -> None:
    name, _, _ = lineage_model
    expected = store.get_model_version_lineage(name, "1")
    url = f"{live_server.url}/api/2.0/slipway/lineage"
    for params in (
        {"name": name, "alias": "champion"},
        {"uri": f"models:/{name}@champion"},
        {"uri": f"models:/{name}/1"},
        {"uri": f"models:/{name}/latest"},
    ):
        answer = httpx.get(url, params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["lineage"]["root"] == expected.root, params
    store.transition_model_version_stage(name, "1", "Staging")
    staged = httpx.get(url, params={"uri": f"models:/{name}/staging"}, timeout=30)
    assert staged.json()["lineage"]["root"] == expected.root
    missing = httpx.get(url, params={"uri": f"models:/{name}/production"}, timeout=30)
    assert missing.status_code == 404


def test_errors_come_back_as_slipway_classes(
    store: RestRegistryStore, versioned: tuple[str, str]
) -> None:
    name, run_id = versioned
    with pytest.raises(ResourceAlreadyExists):
        store.create_registered_model(name)
    with pytest.raises(ResourceDoesNotExist):
        store.get_model_version(name, "42")
    with pytest.raises(InvalidParameterValue, match="must be an integer"):
        store.get_model_version(name, "x")
    with pytest.raises(InvalidParameterValue):
        store.create_model_version(name, "/etc/passwd", run_id)


def test_writes_fail_loudly_when_the_server_is_away() -> None:
    away = RestRegistryStore(
        f"http://127.0.0.1:{free_port()}", HttpConfig(max_retries=0, connect_timeout=2)
    )
    try:
        with pytest.raises(TemporarilyUnavailable):
            away.create_registered_model("m")
        with pytest.raises(TemporarilyUnavailable):
            away.set_registered_model_alias("m", "a", "1")
    finally:
        away.close()
