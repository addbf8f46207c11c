"""The experiment half of the tracking store contract, on every backend of the ``store``
fixture."""

from __future__ import annotations

import contextlib
import time

import pytest

from slipway.entities import Experiment, ExperimentTag, LifecycleStage, ViewType
from slipway.exceptions import (
    ExperimentNotFound,
    InvalidFilter,
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    SlipwayError,
)
from slipway.tracking.store.base import AbstractTrackingStore


def _names(experiments: list[Experiment]) -> list[str]:
    return [e.name for e in experiments]


# -- the Default experiment ---------------------------------------------------------------


def test_default_experiment_exists(store: AbstractTrackingStore) -> None:
    default = store.get_experiment("0")
    assert default.experiment_id == "0"
    assert default.name == "Default"
    assert default.lifecycle_stage == LifecycleStage.ACTIVE
    assert default.artifact_location.endswith("/0")
    assert store.get_experiment_by_name("Default") == default


def test_default_experiment_cannot_be_deleted(store: AbstractTrackingStore) -> None:
    with pytest.raises(InvalidParameterValue):
        store.delete_experiment("0")
    assert store.get_experiment("0").lifecycle_stage == LifecycleStage.ACTIVE


# -- create / get ----------------------------------------------------------------------------


def test_create_and_get(store: AbstractTrackingStore) -> None:
    before = int(time.time() * 1000)
    eid = store.create_experiment("first", tags=[ExperimentTag("team", "vision")])
    after = int(time.time() * 1000)
    assert isinstance(eid, str)
    assert eid != "0"
    exp = store.get_experiment(eid)
    assert exp.experiment_id == eid
    assert exp.name == "first"
    assert exp.lifecycle_stage == LifecycleStage.ACTIVE
    assert exp.tags == {"team": "vision"}
    assert exp.creation_time is not None
    assert before <= exp.creation_time <= after
    assert exp.last_update_time == exp.creation_time
    assert exp.artifact_location.rstrip("/").endswith(f"/{eid}")
    assert store.get_experiment_by_name("first") == exp


def test_create_with_artifact_location(store: AbstractTrackingStore, tmp_path) -> None:
    location = (tmp_path / "elsewhere").as_uri()
    eid = store.create_experiment("located", artifact_location=location)
    assert store.get_experiment(eid).artifact_location == location


def test_create_refuses_runs_uri_as_artifact_location(store: AbstractTrackingStore) -> None:
    with pytest.raises(InvalidParameterValue, match="runs"):
        store.create_experiment("x", artifact_location="runs:/abc/model")
    assert store.get_experiment_by_name("x") is None


def test_ids_are_distinct(store: AbstractTrackingStore) -> None:
    ids = [store.create_experiment(f"e{i}") for i in range(5)]
    assert len(set(ids)) == 5
    assert "0" not in ids
    assert [store.get_experiment(i).name for i in ids] == [f"e{i}" for i in range(5)]


def test_duplicate_name_rejected(store: AbstractTrackingStore) -> None:
    store.create_experiment("dup")
    with pytest.raises(ResourceAlreadyExists) as info:
        store.create_experiment("dup")
    assert info.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert info.value.http_status == 400
    assert "dup" in info.value.message


def test_duplicate_name_of_deleted_experiment_rejected(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("gone")
    store.delete_experiment(eid)
    with pytest.raises(ResourceAlreadyExists):
        store.create_experiment("gone")


INVALID_NAMES: dict[str, object] = {
    "empty": "",
    "blank": "   ",
    "none": None,
    "int": 42,
    "too-long": "x" * 501,
}


def test_invalid_names_rejected(store: AbstractTrackingStore) -> None:
    outcome = {}
    for label, name in INVALID_NAMES.items():
        try:
            store.create_experiment(name)  # type: ignore[arg-type]
        except SlipwayError as exc:
            outcome[label] = exc.error_code
        else:
            outcome[label] = "created"
    assert outcome == dict.fromkeys(INVALID_NAMES, "INVALID_PARAMETER_VALUE")
    assert len(store.search_experiments(view_type=ViewType.ALL)) == 1


def test_name_of_500_characters_accepted(store: AbstractTrackingStore) -> None:
    name = "n" * 500
    eid = store.create_experiment(name)
    assert store.get_experiment(eid).name == name


def test_get_unknown_experiment(store: AbstractTrackingStore) -> None:
    # Ids that no row has, including ones beyond any integer column's range.
    ids = ["12345", "abc", "not-a-number", "2147483648", "99999999999", "9" * 25]
    outcome = {}
    for eid in ids:
        try:
            store.get_experiment(eid)
        except ExperimentNotFound as exc:
            outcome[eid] = (exc.error_code, exc.http_status)
        except Exception as exc:
            outcome[eid] = type(exc).__name__
        else:
            outcome[eid] = "found"
    assert outcome == dict.fromkeys(ids, ("RESOURCE_DOES_NOT_EXIST", 404))


def test_search_runs_of_unknown_experiments(store: AbstractTrackingStore) -> None:
    # Either nothing found or ExperimentNotFound, but never a database driver's error.
    outcome = {}
    for eid in ["12345", "2147483648", "99999999999", "9" * 25]:
        try:
            outcome[eid] = "empty" if store.search_runs([eid]) == [] else "found runs"
        except ExperimentNotFound:
            outcome[eid] = "not found"
        except Exception as exc:
            outcome[eid] = type(exc).__name__
    assert set(outcome.values()) <= {"empty", "not found"}, outcome


def test_get_unknown_name_is_none(store: AbstractTrackingStore) -> None:
    assert store.get_experiment_by_name("nobody") is None


def test_get_by_name_is_case_sensitive(store: AbstractTrackingStore) -> None:
    store.create_experiment("MixedCase")
    assert store.get_experiment_by_name("mixedcase") is None
    found = store.get_experiment_by_name("MixedCase")
    assert found is not None
    assert found.name == "MixedCase"


# -- rename ----------------------------------------------------------------------------------


def test_rename(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("old")
    store.rename_experiment(eid, "new")
    assert store.get_experiment(eid).name == "new"
    assert store.get_experiment_by_name("old") is None
    assert store.get_experiment_by_name("new").experiment_id == eid  # type: ignore[union-attr]


def test_rename_to_same_name_is_noop(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("same")
    store.rename_experiment(eid, "same")
    assert store.get_experiment(eid).name == "same"


def test_rename_to_taken_name_rejected(store: AbstractTrackingStore) -> None:
    store.create_experiment("a")
    eid = store.create_experiment("b")
    with pytest.raises(ResourceAlreadyExists):
        store.rename_experiment(eid, "a")
    assert store.get_experiment(eid).name == "b"


def test_rename_deleted_rejected(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("a")
    store.delete_experiment(eid)
    with pytest.raises(InvalidParameterValue):
        store.rename_experiment(eid, "z")
    assert store.get_experiment(eid).name == "a"


def test_rename_unknown_and_invalid(store: AbstractTrackingStore) -> None:
    with pytest.raises(ExperimentNotFound):
        store.rename_experiment("4242", "z")
    eid = store.create_experiment("a")
    with pytest.raises(InvalidParameterValue):
        store.rename_experiment(eid, "")


# -- delete / restore ------------------------------------------------------------------------


def test_delete_and_restore(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("doomed")
    run_ids = [store.create_run(eid).info.run_id for _ in range(2)]
    store.delete_experiment(eid)
    exp = store.get_experiment(eid)
    assert exp.lifecycle_stage == LifecycleStage.DELETED
    assert store.get_experiment_by_name("doomed") == exp
    assert {store.get_run(r).info.lifecycle_stage for r in run_ids} == {LifecycleStage.DELETED}

    store.restore_experiment(eid)
    assert store.get_experiment(eid).lifecycle_stage == LifecycleStage.ACTIVE
    assert {store.get_run(r).info.lifecycle_stage for r in run_ids} == {LifecycleStage.ACTIVE}


def test_restore_keeps_runs_deleted_before(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("e")
    kept = store.create_run(eid).info.run_id
    earlier = store.create_run(eid).info.run_id
    store.delete_run(earlier)
    time.sleep(0.005)  # a later millisecond than the run's deletion
    store.delete_experiment(eid)
    store.restore_experiment(eid)
    assert store.get_run(kept).info.lifecycle_stage == LifecycleStage.ACTIVE
    assert store.get_run(earlier).info.lifecycle_stage == LifecycleStage.DELETED


def test_restore_keeps_run_deleted_in_same_millisecond(
    store: AbstractTrackingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    eid = store.create_experiment("e")
    earlier = store.create_run(eid).info.run_id
    with monkeypatch.context() as frozen:
        frozen.setattr(time, "time", lambda: 1_700_000_000.0)
        store.delete_run(earlier)
        store.delete_experiment(eid)
    store.restore_experiment(eid)
    assert store.get_run(earlier).info.lifecycle_stage == LifecycleStage.DELETED


def test_second_delete_does_not_strand_runs(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("twice")
    run_id = store.create_run(eid).info.run_id
    store.delete_experiment(eid)
    time.sleep(0.005)
    with contextlib.suppress(SlipwayError):  # refusing a second delete is fine too
        store.delete_experiment(eid)
    store.restore_experiment(eid)
    assert store.get_run(run_id).info.lifecycle_stage == LifecycleStage.ACTIVE


def test_restore_active_rejected(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("alive")
    with pytest.raises(InvalidParameterValue):
        store.restore_experiment(eid)


def test_delete_and_restore_unknown(store: AbstractTrackingStore) -> None:
    with pytest.raises(ExperimentNotFound):
        store.delete_experiment("4242")
    with pytest.raises(ExperimentNotFound):
        store.restore_experiment("4242")


def test_no_runs_in_deleted_experiment(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("e")
    store.delete_experiment(eid)
    with pytest.raises(InvalidParameterValue):
        store.create_run(eid)
    assert len(store.search_runs([eid], run_view_type=ViewType.ALL)) == 0


# -- tags ------------------------------------------------------------------------------------


def test_experiment_tags(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("tagged", tags=[ExperimentTag("a", "1")])
    store.set_experiment_tag(eid, ExperimentTag("b", "2"))
    store.set_experiment_tag(eid, ExperimentTag("a", "overwritten"))
    assert store.get_experiment(eid).tags == {"a": "overwritten", "b": "2"}
    store.delete_experiment_tag(eid, "a")
    assert store.get_experiment(eid).tags == {"b": "2"}
    with pytest.raises(ResourceDoesNotExist):
        store.delete_experiment_tag(eid, "a")


def test_experiment_tag_value_limit(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("e")
    store.set_experiment_tag(eid, ExperimentTag("ok", "v" * 5000))
    with pytest.raises(InvalidParameterValue):
        store.set_experiment_tag(eid, ExperimentTag("big", "v" * 5001))
    assert store.get_experiment(eid).tags == {"ok": "v" * 5000}
    with pytest.raises(InvalidParameterValue):
        store.create_experiment("f", tags=[ExperimentTag("big", "v" * 5001)])
    assert store.get_experiment_by_name("f") is None


def test_experiment_tag_invalid_key(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("e")
    with pytest.raises(InvalidParameterValue):
        store.set_experiment_tag(eid, ExperimentTag("../up", "v"))
    assert store.get_experiment(eid).tags == {}


def test_experiment_tags_on_deleted_experiment_rejected(store: AbstractTrackingStore) -> None:
    eid = store.create_experiment("e", tags=[ExperimentTag("a", "1")])
    store.delete_experiment(eid)
    with pytest.raises(InvalidParameterValue):
        store.set_experiment_tag(eid, ExperimentTag("b", "2"))
    with pytest.raises(InvalidParameterValue):
        store.delete_experiment_tag(eid, "a")
    assert store.get_experiment(eid).tags == {"a": "1"}


def test_experiment_tag_on_unknown_experiment(store: AbstractTrackingStore) -> None:
    with pytest.raises(ExperimentNotFound):
        store.set_experiment_tag("4242", ExperimentTag("a", "1"))


# -- search ----------------------------------------------------------------------------------


@pytest.fixture
def experiments(store: AbstractTrackingStore) -> dict[str, str]:
    """Four experiments besides Default: one deleted, with tags to filter on."""
    ids = {}
    for name, tags in [
        ("vision-cnn", {"team": "Vision"}),
        ("vision-vit", {"team": "vision"}),
        ("nlp-bert", {"team": "nlp", "prod": "yes"}),
        ("old-thing", {}),
    ]:
        ids[name] = store.create_experiment(
            name, tags=[ExperimentTag(k, v) for k, v in tags.items()]
        )
        time.sleep(0.002)  # distinct creation times
    store.delete_experiment(ids["old-thing"])
    return ids


def test_search_experiments_view_type(
    store: AbstractTrackingStore, experiments: dict[str, str]
) -> None:
    found = {
        view: set(_names(store.search_experiments(view_type=view)))
        for view in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL)
    }
    active = {"Default", "vision-cnn", "vision-vit", "nlp-bert"}
    assert found == {
        ViewType.ACTIVE_ONLY: active,
        ViewType.DELETED_ONLY: {"old-thing"},
        ViewType.ALL: active | {"old-thing"},
    }


EXPERIMENT_FILTERS: dict[str, set[str]] = {
    "name = 'nlp-bert'": {"nlp-bert"},
    "name != 'nlp-bert'": {"Default", "vision-cnn", "vision-vit"},
    "name LIKE 'vision-%'": {"vision-cnn", "vision-vit"},
    "name LIKE 'VISION%'": set(),
    "name ILIKE 'VISION%'": {"vision-cnn", "vision-vit"},
    "attributes.name = 'Default'": {"Default"},
    "tags.team = 'vision'": {"vision-vit"},
    "tags.team ILIKE 'vision'": {"vision-cnn", "vision-vit"},
    "tags.team LIKE 'V%'": {"vision-cnn"},
    "tags.team IN ('nlp', 'Vision')": {"vision-cnn", "nlp-bert"},
    "tags.team NOT IN ('nlp')": {"vision-cnn", "vision-vit"},
    "tags.prod = 'yes' and name LIKE 'nlp%'": {"nlp-bert"},
    "name IN ('vision-cnn', 'old-thing')": {"vision-cnn"},
    "creation_time > 0": {"Default", "vision-cnn", "vision-vit", "nlp-bert"},
}


def test_search_experiments_filter(
    store: AbstractTrackingStore, experiments: dict[str, str]
) -> None:
    found = {f: set(_names(store.search_experiments(filter_string=f))) for f in EXPERIMENT_FILTERS}
    assert found == EXPERIMENT_FILTERS


def test_search_experiments_filter_on_creation_time(
    store: AbstractTrackingStore, experiments: dict[str, str]
) -> None:
    cut = store.get_experiment(experiments["vision-vit"]).creation_time
    found = store.search_experiments(filter_string=f"creation_time >= {cut}")
    assert set(_names(found)) == {"vision-vit", "nlp-bert"}


def test_search_experiments_invalid_requests(store: AbstractTrackingStore) -> None:
    requests: dict[str, dict[str, object]] = {
        "filter on metrics": {"filter_string": "metrics.loss > 1"},
        "filter on params": {"filter_string": "params.x = 'a'"},
        "filter on run status": {"filter_string": "status = 'RUNNING'"},
        "numeric operator on name": {"filter_string": "name > 'a'"},
        "missing value": {"filter_string": "name = "},
        "order by metric": {"order_by": ["metrics.loss"]},
        "order by tag": {"order_by": ["tags.team"]},
        "bad direction": {"order_by": ["name SIDEWAYS"]},
        "unknown order key": {"order_by": ["nope"]},
        "max_results 0": {"max_results": 0},
        "max_results -1": {"max_results": -1},
        "max_results 50001": {"max_results": 50_001},
        "bad page token": {"page_token": "definitely not a token"},
    }
    outcome = {}
    for name, kwargs in requests.items():
        try:
            store.search_experiments(**kwargs)  # type: ignore[arg-type]
        except SlipwayError as exc:
            outcome[name] = exc.error_code
        else:
            outcome[name] = "accepted"
    assert outcome == dict.fromkeys(requests, "INVALID_PARAMETER_VALUE")
    with pytest.raises(InvalidFilter):
        store.search_experiments(filter_string="metrics.loss > 1")


def test_search_experiments_max_results_limit(store: AbstractTrackingStore) -> None:
    found = store.search_experiments(max_results=50_000)
    assert _names(found) == ["Default"]
    assert found.token is None


def test_search_experiments_order(
    store: AbstractTrackingStore, experiments: dict[str, str]
) -> None:
    by_name = store.search_experiments(order_by=["name ASC"])
    assert _names(by_name) == ["Default", "nlp-bert", "vision-cnn", "vision-vit"]
    by_name_desc = store.search_experiments(order_by=["name DESC"])
    assert _names(by_name_desc) == ["vision-vit", "vision-cnn", "nlp-bert", "Default"]
    newest_first = store.search_experiments()
    assert _names(newest_first) == ["nlp-bert", "vision-vit", "vision-cnn", "Default"]
    oldest_first = store.search_experiments(order_by=["creation_time ASC"])
    assert _names(oldest_first) == ["Default", "vision-cnn", "vision-vit", "nlp-bert"]


def test_search_experiments_pages(
    store: AbstractTrackingStore, experiments: dict[str, str]
) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = store.search_experiments(
            view_type=ViewType.ALL, max_results=2, order_by=["name"], page_token=token
        )
        assert len(page) <= 2
        seen += _names(page)
        pages += 1
        token = page.token
        if token is None:
            break
    assert pages == 3
    assert seen == sorted(["Default", "vision-cnn", "vision-vit", "nlp-bert", "old-thing"])
