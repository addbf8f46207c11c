"""Approval policies and transition requests on every registry backend."""

from __future__ import annotations

import threading

import pytest

from slipway.entities.registry import RequestStatus, TransitionTarget
from slipway.exceptions import (
    InvalidParameterValue,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
)
from slipway.registry.store.base import AbstractRegistryStore

ALIAS, STAGE = TransitionTarget.ALIAS, TransitionTarget.STAGE


@pytest.fixture
def iris(registry_store: AbstractRegistryStore) -> AbstractRegistryStore:
    """``iris`` versions 1 and 2; moving alias ``champion`` or stage Production needs
    approval."""
    registry_store.create_registered_model("iris")
    for _ in range(2):
        registry_store.create_model_version("iris", "s3://bucket/model")
    registry_store.set_approval_policy("iris", ALIAS, "champion", actor="admin")
    registry_store.set_approval_policy("iris", STAGE, "production", actor="admin")
    return registry_store


def test_policies_are_listed_canonical(iris: AbstractRegistryStore) -> None:
    policies = iris.list_approval_policies("iris")
    assert [(p.target_kind, p.target, p.allow_self_approval) for p in policies] == [
        (ALIAS, "champion", False),
        (STAGE, "Production", False),
    ]
    assert all(p.name == "iris" and p.created_by == "admin" for p in policies)
    assert all(p.creation_timestamp > 0 for p in policies)
    replaced = iris.set_approval_policy("iris", ALIAS, "champion", allow_self_approval=True)
    assert replaced.allow_self_approval is True
    assert len(iris.list_approval_policies("iris")) == 2


def test_bad_policies(iris: AbstractRegistryStore) -> None:
    with pytest.raises(ResourceDoesNotExist):
        iris.set_approval_policy("nope", ALIAS, "champion")
    with pytest.raises(ResourceDoesNotExist):
        iris.list_approval_policies("nope")
    with pytest.raises(InvalidParameterValue, match="Invalid Model Version stage"):
        iris.set_approval_policy("iris", STAGE, "prod")
    with pytest.raises(InvalidParameterValue, match="reserved"):
        iris.set_approval_policy("iris", ALIAS, "latest")
    with pytest.raises(InvalidParameterValue, match="Invalid alias name"):
        iris.set_approval_policy("iris", ALIAS, "bad alias")
    with pytest.raises(InvalidParameterValue, match="target kind"):
        iris.set_approval_policy("iris", "branch", "main")  # type: ignore[arg-type]


def test_protected_targets_refuse_direct_moves(iris: AbstractRegistryStore) -> None:
    with pytest.raises(PermissionDenied, match="requires an approved transition request"):
        iris.set_registered_model_alias("iris", "champion", "1")
    with pytest.raises(PermissionDenied, match="use request_transition"):
        iris.transition_model_version_stage("iris", "1", "PRODUCTION")
    with pytest.raises(PermissionDenied):
        iris.delete_registered_model_alias("iris", "champion")
    assert iris.get_registered_model("iris").aliases == []
    assert iris.get_model_version("iris", "1").current_stage == "None"
    # other targets are free
    iris.set_registered_model_alias("iris", "challenger", "1")
    assert iris.transition_model_version_stage("iris", "1", "Staging").current_stage == "Staging"


def test_approve_moves_alias(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "2", ALIAS, "champion", comment="better", actor="al")
    assert len(request.request_id) == 32
    int(request.request_id, 16)  # a uuid hex string
    assert request.status is RequestStatus.PENDING
    assert (request.requested_by, request.comment, request.version) == ("al", "better", "2")
    assert iris.get_registered_model("iris").aliases == []  # nothing moves before approval

    decided = iris.decide_transition_request(request.request_id, True, "ok", actor="bo")

    assert decided.status is RequestStatus.APPROVED
    assert (decided.decided_by, decided.decision_comment) == ("bo", "ok")
    assert decided.decided_timestamp is not None
    assert iris.get_model_version_by_alias("iris", "champion").version == "2"
    assert iris.get_transition_request(request.request_id) == decided


def test_approve_moves_stage_and_archives(iris: AbstractRegistryStore) -> None:
    first = iris.request_transition("iris", "1", STAGE, "production", actor="al")
    iris.decide_transition_request(first.request_id, True, actor="bo")
    second = iris.request_transition(
        "iris", "2", STAGE, "Production", archive_existing_versions=True, actor="al"
    )
    assert second.target == "Production"
    assert second.archive_existing_versions is True
    iris.decide_transition_request(second.request_id, True, actor="bo")
    stages = [(v.version, v.current_stage) for v in iris.get_latest_versions("iris")]
    assert stages == [("2", "Production"), ("1", "Archived")]


def test_leaving_a_protected_target_needs_approval_too(iris: AbstractRegistryStore) -> None:
    """Moving the Production version out, or deleting the version that holds ``champion``,
    changes a protected target as much as moving into it does."""
    for target_kind, target in ((STAGE, "Production"), (ALIAS, "champion")):
        request = iris.request_transition("iris", "1", target_kind, target, actor="al")
        iris.decide_transition_request(request.request_id, True, actor="bo")
    with pytest.raises(PermissionDenied, match="stage 'Production'"):
        iris.transition_model_version_stage("iris", "1", "Archived")
    with pytest.raises(PermissionDenied):
        iris.delete_model_version("iris", "1")
    assert iris.get_model_version("iris", "1").current_stage == "Production"
    assert iris.get_model_version_by_alias("iris", "champion").version == "1"
    iris.delete_model_version("iris", "2")  # holds nothing protected
    assert [v.version for v in iris.search_model_versions("name = 'iris'")] == ["1"]


def test_reject_leaves_things_as_they_are(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "1", ALIAS, "champion", actor="al")
    rejected = iris.decide_transition_request(request.request_id, False, "no", actor="al")
    assert rejected.status is RequestStatus.REJECTED
    assert iris.get_registered_model("iris").aliases == []


def test_only_pending_requests_can_be_decided(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "1", ALIAS, "champion", actor="al")
    iris.decide_transition_request(request.request_id, True, actor="bo")
    with pytest.raises(ResourceConflict, match="is APPROVED"):
        iris.decide_transition_request(request.request_id, False, actor="bo")
    with pytest.raises(ResourceConflict, match="is APPROVED"):
        iris.cancel_transition_request(request.request_id, actor="al")
    with pytest.raises(ResourceDoesNotExist, match="not found"):
        iris.decide_transition_request("0" * 32, True, actor="bo")
    with pytest.raises(ResourceDoesNotExist):
        iris.get_transition_request("f" * 32)


def test_concurrent_approvals_apply_once(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "2", ALIAS, "champion", actor="al")
    outcomes: list[str] = []
    start = threading.Barrier(3)

    def decide(approve: bool) -> None:
        start.wait()
        try:
            iris.decide_transition_request(request.request_id, approve, actor="bo")
            outcomes.append("decided")
        except ResourceConflict:
            outcomes.append("conflict")

    workers = [threading.Thread(target=decide, args=(i % 2 == 0,)) for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(outcomes) == ["conflict", "conflict", "decided"]
    decisions = [e for e in iris.list_audit_events("iris") if e.action in ("approve", "reject")]
    assert len(decisions) == 1
    final = iris.get_transition_request(request.request_id).status
    assert final is (
        RequestStatus.APPROVED if decisions[0].action == "approve" else RequestStatus.REJECTED
    )


def test_self_approval(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "1", ALIAS, "champion", actor="al")
    with pytest.raises(PermissionDenied, match="forbids approving one's own request"):
        iris.decide_transition_request(request.request_id, True, actor="al")
    assert iris.get_transition_request(request.request_id).status is RequestStatus.PENDING
    iris.set_approval_policy("iris", ALIAS, "champion", allow_self_approval=True)
    iris.decide_transition_request(request.request_id, True, actor="al")
    assert iris.get_model_version_by_alias("iris", "champion").version == "1"


def test_request_without_policy_can_be_approved(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "2", ALIAS, "shadow", actor="al")
    iris.decide_transition_request(request.request_id, True, actor="al")
    assert iris.get_model_version_by_alias("iris", "shadow").version == "2"


def test_bad_requests(iris: AbstractRegistryStore) -> None:
    with pytest.raises(ResourceDoesNotExist, match=r"version=9\) not found"):
        iris.request_transition("iris", "9", ALIAS, "champion")
    with pytest.raises(ResourceDoesNotExist, match="name=nope not found"):
        iris.request_transition("nope", "1", ALIAS, "champion")
    with pytest.raises(InvalidParameterValue, match="is not an Active stage"):
        iris.request_transition("iris", "1", STAGE, "Archived", archive_existing_versions=True)
    with pytest.raises(InvalidParameterValue, match="not to aliases"):
        iris.request_transition("iris", "1", ALIAS, "champion", archive_existing_versions=True)
    with pytest.raises(InvalidParameterValue, match="reserved"):
        iris.request_transition("iris", "1", ALIAS, "v2")
    first = iris.request_transition("iris", "1", ALIAS, "champion", actor="al")
    with pytest.raises(ResourceAlreadyExists, match=first.request_id):
        iris.request_transition("iris", "1", ALIAS, "champion", actor="al")


def test_cancel_only_by_requester(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "1", STAGE, "Production", actor="al")
    with pytest.raises(PermissionDenied, match="Only the requester"):
        iris.cancel_transition_request(request.request_id, actor="bo")
    cancelled = iris.cancel_transition_request(request.request_id, actor="al")
    assert cancelled.status is RequestStatus.CANCELLED
    with pytest.raises(ResourceConflict, match="is CANCELLED"):
        iris.decide_transition_request(request.request_id, True, actor="bo")
    assert iris.get_model_version("iris", "1").current_stage == "None"


def test_approving_a_request_for_a_deleted_version(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "2", ALIAS, "champion", actor="al")
    iris.delete_model_version("iris", "2")  # it holds nothing protected yet
    with pytest.raises(ResourceDoesNotExist, match="no longer exists"):
        iris.decide_transition_request(request.request_id, True, actor="bo")
    assert iris.get_transition_request(request.request_id).status is RequestStatus.PENDING
    rejected = iris.decide_transition_request(request.request_id, False, actor="bo")
    assert rejected.status is RequestStatus.REJECTED


def test_list_requests(iris: AbstractRegistryStore) -> None:
    a = iris.request_transition("iris", "1", ALIAS, "champion", actor="al")
    b = iris.request_transition("iris", "2", STAGE, "Production", actor="al")
    c = iris.request_transition("iris", "2", ALIAS, "champion", actor="al")
    iris.decide_transition_request(b.request_id, False, actor="bo")

    def ids(found: list) -> list[str]:  # type: ignore[type-arg]
        return [r.request_id for r in found]

    assert ids(iris.list_transition_requests()) == [c.request_id, b.request_id, a.request_id]
    assert ids(iris.list_transition_requests("iris", "2")) == [c.request_id, b.request_id]
    pending = iris.list_transition_requests(status=RequestStatus.PENDING)
    assert ids(pending) == [c.request_id, a.request_id]
    assert ids(iris.list_transition_requests("iris", status=RequestStatus.REJECTED)) == [
        b.request_id
    ]
    assert iris.list_transition_requests("other") == []
    assert iris.list_transition_requests("iris", "0") == []
    with pytest.raises(InvalidParameterValue, match="Invalid request status"):
        iris.list_transition_requests(status="DONE")  # type: ignore[arg-type]


def test_rename_and_delete_carry_policies_and_requests(iris: AbstractRegistryStore) -> None:
    request = iris.request_transition("iris", "1", ALIAS, "champion", actor="al")
    iris.rename_registered_model("iris", "flowers")
    assert len(iris.list_approval_policies("flowers")) == 2
    moved = iris.get_transition_request(request.request_id)
    assert moved.name == "flowers"
    with pytest.raises(PermissionDenied):
        iris.set_registered_model_alias("flowers", "champion", "1")
    iris.decide_transition_request(request.request_id, True, actor="bo")
    assert iris.get_model_version_by_alias("flowers", "champion").version == "1"

    pending = iris.request_transition("flowers", "2", ALIAS, "champion", actor="al")
    iris.delete_registered_model("flowers")
    with pytest.raises(ResourceDoesNotExist):
        iris.get_transition_request(pending.request_id)
    iris.create_registered_model("flowers")
    assert iris.list_approval_policies("flowers") == []
