"""The registry's audit log on every registry backend."""

from __future__ import annotations

import itertools

import pytest

from slipway.entities.registry import TransitionTarget
from slipway.exceptions import InvalidParameterValue
from slipway.registry.store.base import AbstractRegistryStore
from slipway.utils.user import USER_ENV


def _actions(events: list) -> list[tuple[str, str | None]]:  # type: ignore[type-arg]
    return [(e.action, e.version) for e in events]


def test_every_mutation_of_interest_is_recorded(registry_store: AbstractRegistryStore) -> None:
    store = registry_store
    store.create_registered_model("iris", actor="ann")
    store.create_model_version("iris", "s3://bucket/m", actor="ann")
    store.create_model_version("iris", "s3://bucket/m", actor="ann")
    store.set_registered_model_alias("iris", "challenger", "1", actor="bob")
    store.delete_registered_model_alias("iris", "challenger", actor="bob")
    store.transition_model_version_stage("iris", "1", "staging", actor="bob")
    store.set_approval_policy("iris", TransitionTarget.ALIAS, "champion", actor="admin")
    request = store.request_transition("iris", "2", TransitionTarget.ALIAS, "champion", actor="ann")
    store.decide_transition_request(request.request_id, True, "lgtm", actor="bob")
    other = store.request_transition("iris", "1", TransitionTarget.STAGE, "Production", actor="ann")
    store.cancel_transition_request(other.request_id, actor="ann")
    third = store.request_transition("iris", "1", TransitionTarget.ALIAS, "champion", actor="ann")
    store.decide_transition_request(third.request_id, False, actor="bob")
    store.delete_approval_policy("iris", TransitionTarget.ALIAS, "champion", actor="admin")
    deployment = store.record_deployment("iris", "2", "http://serve:8080", actor="ops")
    store.end_deployment(deployment.deployment_id)
    store.delete_model_version("iris", "1", actor="ann")
    store.rename_registered_model("iris", "flowers", actor="ann")
    store.delete_registered_model("flowers", actor="ann")

    events = store.list_audit_events()
    assert _actions(events) == [
        ("create_model", None),
        ("create_version", "1"),
        ("create_version", "2"),
        ("set_alias", "1"),
        ("delete_alias", "1"),
        ("transition_stage", "1"),
        ("set_policy", None),
        ("request_transition", "2"),
        ("approve", "2"),
        ("set_alias", "2"),
        ("request_transition", "1"),
        ("cancel", "1"),
        ("request_transition", "1"),
        ("reject", "1"),
        ("delete_policy", None),
        ("deploy", "2"),
        ("undeploy", "2"),
        ("delete_version", "1"),
        ("rename_model", None),
        ("delete_model", None),
    ]
    assert [e.actor for e in events[:7]] == ["ann", "ann", "ann", "bob", "bob", "bob", "admin"]
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(events))
    by_action = {e.action: e for e in events}
    assert by_action["transition_stage"].details["stage"] == "Staging"
    assert by_action["delete_alias"].details["alias"] == "challenger"
    approve = by_action["approve"]
    assert approve.details == {"request_id": request.request_id, "comment": "lgtm"}
    assert approve.actor == "bob"
    move = events[9]
    assert move.details["alias"] == "champion"
    assert move.details["request_id"] == request.request_id
    assert move.actor == "bob"
    assert by_action["deploy"].details["deployment_id"] == deployment.deployment_id
    assert by_action["rename_model"].name == "flowers"
    assert by_action["rename_model"].details == {"old_name": "iris"}
    assert by_action["delete_model"].name == "flowers"


def test_actor_defaults_to_the_current_user(
    registry_store: AbstractRegistryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(USER_ENV, "carol")
    registry_store.create_registered_model("iris")
    registry_store.create_model_version("iris", "s3://bucket/m")
    events = registry_store.list_audit_events("iris")
    assert [e.actor for e in events] == ["carol", "carol"]
    assert registry_store.get_model_version("iris", "1").user_id == "carol"


def test_filters_and_limits(registry_store: AbstractRegistryStore) -> None:
    for name in ("a", "b"):
        registry_store.create_registered_model(name)
        for _ in range(3):
            registry_store.create_model_version(name, "s3://bucket/m")
    assert _actions(registry_store.list_audit_events("a", "2")) == [("create_version", "2")]
    assert len(registry_store.list_audit_events("b")) == 4
    newest = registry_store.list_audit_events(max_results=2)
    assert [(e.name, e.version) for e in newest] == [("b", "2"), ("b", "3")]
    assert registry_store.list_audit_events("nope") == []
    with pytest.raises(InvalidParameterValue, match="max_results"):
        registry_store.list_audit_events(max_results=0)
    with pytest.raises(InvalidParameterValue, match="must be an integer"):
        registry_store.list_audit_events("a", "two")


def test_log_outlives_the_model(registry_store: AbstractRegistryStore) -> None:
    registry_store.create_registered_model("iris")
    registry_store.create_model_version("iris", "s3://bucket/m")
    registry_store.delete_registered_model("iris")
    assert _actions(registry_store.list_audit_events("iris")) == [
        ("create_model", None),
        ("create_version", "1"),
        ("delete_model", None),
    ]
    registry_store.create_registered_model("iris")
    assert len(registry_store.list_audit_events("iris")) == 4
