"""Bad input through the SDK: every mistake gets a SlipwayError subclass with the right error
code, HTTP status and a message that tells a person what was wrong, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import slipway
from slipway import ActiveRun, Metric, Param, RunStatus, RunTag, SlipwayClient
from slipway.exceptions import (
    ExperimentNotFound,
    InvalidFilter,
    InvalidParameterValue,
    RunNotFound,
    SlipwayError,
)
from slipway.tracking import fluent

UNKNOWN_RUN = "deadbeef" * 4


@pytest.fixture
def run(tracking_dir: Path) -> Iterator[ActiveRun]:
    with slipway.start_run() as active:
        yield active


@pytest.fixture
def client(tracking_dir: Path) -> SlipwayClient:
    """The fluent API's own client: its reads see what the fluent calls buffered."""
    return fluent.get_client()


def _fails(
    call: Callable[[], Any],
    fragment: str,
    code: str = "INVALID_PARAMETER_VALUE",
    status: int = 400,
) -> SlipwayError:
    with pytest.raises(SlipwayError) as info:
        call()
    err = info.value
    assert err.error_code == code, err
    assert err.http_status == status, err
    assert fragment in err.message, err.message
    assert err.to_dict()["message"] == err.message
    return err


# -- wrong types ---------------------------------------------------------------------------

WRONG_TYPES = [
    pytest.param(
        lambda: slipway.log_metric("x", "abc"),
        "Got invalid value 'abc' for metric 'x'",
        id="metric-str",
    ),
    pytest.param(
        lambda: slipway.log_metric("x", True),
        "Got invalid value True for metric 'x'",
        id="metric-bool",
    ),
    pytest.param(
        lambda: slipway.log_metric("x", None),
        "Got invalid value None for metric 'x'",
        id="metric-none",
    ),
    pytest.param(
        lambda: slipway.log_metric("x", [1.0]),
        "valid double (64-bit floating point)",
        id="metric-list",
    ),
    pytest.param(
        lambda: slipway.log_metrics({"x": "1"}),
        "Got invalid value '1' for metric 'x'",
        id="metrics-str",
    ),
    pytest.param(
        lambda: slipway.log_metrics([("x", 1.0)]),
        "log_metrics expects a dict, got list",
        id="metrics-not-dict",
    ),
    pytest.param(
        lambda: slipway.log_metric(3, 1.0),
        "Metric key must be a string, got int",
        id="metric-key-int",
    ),
    pytest.param(
        lambda: slipway.log_param(1, "a"), "Param key must be a string, got int", id="param-key-int"
    ),
    pytest.param(
        lambda: slipway.log_param(None, "a"),
        "Param key must be a string, got NoneType",
        id="param-key-none",
    ),
    pytest.param(
        lambda: slipway.log_params([("a", 1)]),
        "log_params expects a dict, got list",
        id="params-list",
    ),
    pytest.param(
        lambda: slipway.log_params("a=1"), "log_params expects a dict, got str", id="params-str"
    ),
    pytest.param(
        lambda: slipway.set_tag(5, "a"), "Tag key must be a string, got int", id="tag-key-int"
    ),
    pytest.param(
        lambda: slipway.set_tags(["a"]), "set_tags expects a dict, got list", id="tags-list"
    ),
    pytest.param(
        lambda: slipway.log_metric("x", 1.0, step="a"),
        "Got invalid step 'a' for metric 'x'",
        id="step-str",
    ),
    pytest.param(
        lambda: slipway.log_metric("x", 1.0, step=1.5),
        "Step must be a valid long (64-bit integer)",
        id="step-float",
    ),
    pytest.param(
        lambda: slipway.log_metric("x", 1.0, step=True), "Got invalid step True", id="step-bool"
    ),
    pytest.param(
        lambda: slipway.log_metric("x", 1.0, timestamp=-1),
        "Got invalid timestamp -1 for metric 'x'",
        id="timestamp-negative",
    ),
    pytest.param(
        lambda: slipway.log_metric("x", 1.0, timestamp="now"),
        "Timestamp must be a non-negative long",
        id="timestamp-str",
    ),
    pytest.param(
        lambda: slipway.log_metric("x", 1.0, timestamp=1.5),
        "Got invalid timestamp 1.5",
        id="timestamp-float",
    ),
]


@pytest.mark.parametrize(("call", "fragment"), WRONG_TYPES)
def test_wrong_types(run: ActiveRun, call: Callable[[], Any], fragment: str) -> None:
    err = _fails(call, fragment)
    assert isinstance(err, InvalidParameterValue)


@pytest.mark.parametrize("synchronous", [True, False])
def test_wrong_types_are_caught_at_the_call_in_both_modes(
    run: ActiveRun, synchronous: bool
) -> None:
    _fails(lambda: slipway.log_metric("x", "abc", synchronous=synchronous), "invalid value 'abc'")
    _fails(lambda: slipway.log_param("p" * 251, "v", synchronous=synchronous), "is 251 characters")
    slipway.flush()  # nothing bad was buffered
    assert SlipwayClient().get_run(run.info.run_id).data.metrics == {}


# -- sizes -----------------------------------------------------------------------------------

LONG_KEY = "k" * 251

SIZES = [
    pytest.param(
        lambda: slipway.log_metric(LONG_KEY, 1.0), "Metric key 'kkkk", id="metric-key-251"
    ),
    pytest.param(lambda: slipway.log_param(LONG_KEY, "v"), "Param key 'kkkk", id="param-key-251"),
    pytest.param(lambda: slipway.set_tag(LONG_KEY, "v"), "Tag key 'kkkk", id="tag-key-251"),
    pytest.param(
        lambda: slipway.log_param("p", "v" * 6001),
        "had length 6001, which exceeded length limit of 6000 (param 'p')",
        id="param-value-6001",
    ),
    pytest.param(
        lambda: slipway.set_tag("t", "v" * 8001),
        "had length 8001, which exceeded length limit of 8000 (tag 't')",
        id="tag-value-8001",
    ),
]


@pytest.mark.parametrize(("call", "fragment"), SIZES)
def test_too_long(run: ActiveRun, call: Callable[[], Any], fragment: str) -> None:
    err = _fails(call, fragment)
    if "key" in fragment:
        assert "is 251 characters long; the limit is 250" in err.message


def test_longest_accepted_values(run: ActiveRun, client: SlipwayClient) -> None:
    slipway.log_metric("k" * 250, 1.0)
    slipway.log_param("p", "v" * 6000)
    slipway.set_tag("t", "v" * 8000)
    data = client.get_run(run.info.run_id).data
    assert data.metrics == {"k" * 250: 1.0}
    assert len(data.params["p"]) == 6000
    assert len(data.tags["t"]) == 8000


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param(
            {"metrics": [Metric("m", 1.0, 1, i) for i in range(1001)]},
            "at most 1000 metrics. Got 1001 metrics",
            id="1001-metrics",
        ),
        pytest.param(
            {"params": [Param(f"p{i}", "v") for i in range(101)]},
            "at most 100 params. Got 101 params",
            id="101-params",
        ),
        pytest.param(
            {"tags": [RunTag(f"t{i}", "v") for i in range(101)]},
            "at most 100 tags. Got 101 tags",
            id="101-tags",
        ),
        pytest.param(
            {"params": [Param("d", "1"), Param("d", "2")]},
            "Duplicate parameter keys have been submitted: ['d']",
            id="duplicate-params",
        ),
        pytest.param(
            {"params": [Param("d", "1"), Param("d", "1")]},
            "only one param value per param key",
            id="duplicate-params-same-value",
        ),
    ],
)
def test_bad_batches(client: SlipwayClient, kwargs: dict[str, Any], fragment: str) -> None:
    run_id = client.create_run("0").info.run_id
    _fails(lambda: client.log_batch(run_id, **kwargs), fragment)
    data = client.get_run(run_id).data
    assert data.metrics == {}
    assert data.params == {}


def test_largest_accepted_batch(client: SlipwayClient) -> None:
    run_id = client.create_run("0").info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("m", 1.0, 1, i) for i in range(1000)],
        params=[Param(f"p{i}", "v") for i in range(100)],
        tags=[RunTag(f"t{i}", "v") for i in range(100)],
    )
    assert len(client.get_metric_history(run_id, "m")) == 1000


def test_one_bad_entry_writes_nothing(run: ActiveRun, client: SlipwayClient) -> None:
    run_id = run.info.run_id
    _fails(lambda: slipway.log_params({"ok": 1, LONG_KEY: 2}), "is 251 characters")
    _fails(lambda: slipway.log_metrics({"ok": 1.0, "bad": "x"}), "invalid value 'x'")
    _fails(
        lambda: client.log_batch(
            run_id, metrics=[Metric("ok", 1.0, 1, 0), Metric("no", 1.0, -5, 0)]
        ),
        "Got invalid timestamp -5",
    )
    slipway.flush()
    data = client.get_run(run_id).data
    assert data.metrics == {}
    assert data.params == {}


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["../etc", "a/../b", "/abs", ".", "..", "a//b", "a/./b", "trailing/"]
)
@pytest.mark.parametrize(
    ("log", "kind"),
    [
        (lambda k: slipway.log_metric(k, 1.0), "metric"),
        (lambda k: slipway.log_param(k, "v"), "param"),
        (lambda k: slipway.set_tag(k, "v"), "tag"),
    ],
    ids=["metric", "param", "tag"],
)
def test_path_like_keys_are_refused(
    run: ActiveRun, key: str, log: Callable[[str], Any], kind: str
) -> None:
    err = _fails(lambda: log(key), f"Invalid {kind} name: {key!r}")
    assert "must not resolve to other names" in err.message


@pytest.mark.parametrize("key", ["bad*char", "semi;colon", "new\nline", "quote'", "a\\b"])
def test_keys_with_odd_characters_are_refused(run: ActiveRun, key: str) -> None:
    err = _fails(lambda: slipway.log_metric(key, 1.0), f"Invalid metric name: {key!r}")
    assert "may only contain alphanumerics" in err.message


def test_empty_keys_are_refused(run: ActiveRun) -> None:
    _fails(lambda: slipway.log_metric("", 1.0), "Metric key must not be empty")
    _fails(lambda: slipway.log_param("", 1), "Param key must not be empty")
    _fails(lambda: slipway.set_tag("", 1), "Tag key must not be empty")


def test_unusual_but_valid_keys_are_accepted(run: ActiveRun, client: SlipwayClient) -> None:
    keys = ["with space", "a/b/c", "dots.and-dashes_", "ünïcode", "x" * 250]
    slipway.log_metrics(dict.fromkeys(keys, 1.0))
    assert set(client.get_run(run.info.run_id).data.metrics) == set(keys)


# -- unknown and deleted things --------------------------------------------------------------


def test_unknown_run_id(client: SlipwayClient) -> None:
    err = _fails(
        lambda: client.get_run(UNKNOWN_RUN),
        f"Run with id={UNKNOWN_RUN} not found",
        code="RESOURCE_DOES_NOT_EXIST",
        status=404,
    )
    assert isinstance(err, RunNotFound)
    for call in (
        lambda: client.log_metric(UNKNOWN_RUN, "m", 1.0),
        lambda: client.log_param(UNKNOWN_RUN, "p", "v"),
        lambda: client.set_tag(UNKNOWN_RUN, "t", "v"),
        lambda: client.set_terminated(UNKNOWN_RUN),
        lambda: client.get_metric_history(UNKNOWN_RUN, "m"),
        lambda: client.list_artifacts(UNKNOWN_RUN),
    ):
        _fails(call, UNKNOWN_RUN, code="RESOURCE_DOES_NOT_EXIST", status=404)


def test_malformed_run_id(client: SlipwayClient) -> None:
    _fails(lambda: client.get_run(123), "Invalid run ID: 123")  # type: ignore[arg-type]


def test_resume_unknown_run(tracking_dir: Path) -> None:
    _fails(
        lambda: slipway.start_run(run_id=UNKNOWN_RUN),
        "not found",
        code="RESOURCE_DOES_NOT_EXIST",
        status=404,
    )
    assert slipway.active_run() is None


def test_unknown_experiment_id(tracking_dir: Path, client: SlipwayClient) -> None:
    fragment = "No Experiment with id=424242 exists"
    for call in (
        lambda: client.get_experiment("424242"),
        lambda: client.create_run("424242"),
        lambda: slipway.set_experiment(experiment_id="424242"),
        lambda: slipway.start_run(experiment_id="424242"),
        lambda: slipway.search_runs(["424242"]),
    ):
        err = _fails(call, fragment, code="RESOURCE_DOES_NOT_EXIST", status=404)
        assert isinstance(err, ExperimentNotFound)
    assert slipway.active_run() is None
    _fails(lambda: client.get_experiment("../x"), "Invalid experiment ID: '../x'")


def test_search_in_unknown_experiment_name(tracking_dir: Path) -> None:
    err = _fails(
        lambda: slipway.search_runs(["no-such-experiment"]),
        "No experiment named 'no-such-experiment'",
        code="RESOURCE_DOES_NOT_EXIST",
        status=404,
    )
    assert isinstance(err, ExperimentNotFound)


def test_deleted_experiment_cannot_be_made_active(
    tracking_dir: Path, client: SlipwayClient
) -> None:
    exp_id = client.create_experiment("retired")
    client.delete_experiment(exp_id)
    for call in (
        lambda: slipway.set_experiment("retired"),
        lambda: slipway.set_experiment(experiment_id=exp_id),
    ):
        err = _fails(call, "Cannot set a deleted experiment 'retired' as the active experiment")
        assert f"restore {exp_id}" in err.message
    _fails(lambda: slipway.start_run(experiment_id=exp_id), "must be in the 'active' state")
    assert slipway.active_run() is None
    client.restore_experiment(exp_id)
    assert slipway.set_experiment("retired").experiment_id == exp_id


def test_deleted_run(tracking_dir: Path, client: SlipwayClient) -> None:
    run_id = client.create_run("0").info.run_id
    client.delete_run(run_id)
    _fails(lambda: client.log_metric(run_id, "m", 1.0), "must be in the 'active' state")
    _fails(lambda: slipway.start_run(run_id=run_id), f"Cannot start run {run_id}: it is deleted")


def test_experiment_names(client: SlipwayClient) -> None:
    _fails(lambda: client.create_experiment(""), "Invalid experiment name")
    _fails(lambda: client.create_experiment("e" * 501), "501 characters long; the limit is 500")
    client.create_experiment("taken")
    _fails(
        lambda: client.create_experiment("taken"),
        "Experiment 'taken' already exists",
        code="RESOURCE_ALREADY_EXISTS",
        status=400,
    )
    _fails(lambda: client.delete_experiment("0"), "Cannot delete the default experiment")


def test_set_experiment_arguments(tracking_dir: Path) -> None:
    _fails(
        lambda: slipway.set_experiment(), "Pass exactly one of experiment_name and experiment_id"
    )
    _fails(lambda: slipway.set_experiment("", None), "Invalid experiment name")


def test_second_active_run(run: ActiveRun) -> None:
    err = _fails(slipway.start_run, f"Run with UUID {run.info.run_id} is already active")
    assert "nested=True" in err.message


def test_run_names(client: SlipwayClient) -> None:
    _fails(lambda: client.create_run("0", run_name="n" * 251), "Run name is longer than 250")
    run_id = client.create_run("0").info.run_id
    _fails(lambda: client.update_run(run_id, name="n" * 251), "Run name is longer than 250")
    _fails(
        lambda: client.create_run("0", tags={"mlflow.runName": "a"}, run_name="b"),
        "Both 'run_name' argument and 'mlflow.runName' tag are specified",
    )


# -- search ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter_string", "fragment"),
    [
        ("metrics.loss << 3", "got '<' at position 14"),
        ("metrics.loss ~ 3", "unexpected character '~' at position 13"),
        ("metrics.loss < 3 or params.lr = '1'", "OR is not supported"),
        ("foo.bar = 1", "invalid entity type 'foo'"),
        ("params.lr > '1'", "operator '>' is not allowed for params"),
        ("params.lr = 0.1", "expected a quoted string value for param 'lr', got '0.1'"),
        ("metrics.loss > 'abc'", "expected a numeric value for metric 'loss'"),
        ("metrics.loss", "expected a comparison operator"),
        ("metrics.loss <", "expected a value"),
        ("attributes.bogus = 'x'", "invalid attribute key 'bogus'"),
        ("params.lr = 'x", 'unexpected character "\'" at position 12'),
        ("tags.t IN ('a'", "expected ',' or ')'"),
    ],
)
def test_invalid_filter_names_the_problem(
    tracking_dir: Path, filter_string: str, fragment: str
) -> None:
    err = _fails(lambda: slipway.search_runs(filter_string=filter_string), fragment)
    assert isinstance(err, InvalidFilter)
    assert err.message.startswith(f"Invalid filter {filter_string!r}")


@pytest.mark.parametrize(
    ("order_by", "fragment"),
    [
        ("metrics.loss DESCENDING", "expected ASC or DESC, got 'DESCENDING'"),
        ("attributes.bogus", "invalid order_by attribute 'bogus'"),
    ],
)
def test_invalid_order_by(tracking_dir: Path, order_by: str, fragment: str) -> None:
    err = _fails(lambda: slipway.search_runs(order_by=[order_by]), fragment)
    assert isinstance(err, InvalidFilter)


@pytest.mark.parametrize("view", ["BOGUS", 0, 7, "", True])
def test_bad_view_type(tracking_dir: Path, client: SlipwayClient, view: Any) -> None:
    fragment = f"Invalid view type {view!r}: expected ACTIVE_ONLY, DELETED_ONLY or ALL"
    _fails(lambda: slipway.search_runs(run_view_type=view), fragment)
    _fails(lambda: client.search_runs(["0"], run_view_type=view), fragment)
    _fails(lambda: client.search_experiments(view_type=view), fragment)


def test_bad_search_arguments(tracking_dir: Path, client: SlipwayClient) -> None:
    _fails(
        lambda: slipway.search_runs(output_format="csv"),
        "output_format must be 'list' or 'pandas', got 'csv'",
    )
    _fails(
        lambda: client.search_runs(["0"], max_results=0),
        "Invalid value 0 for parameter 'max_results'",
    )
    _fails(lambda: client.search_runs(["0"], max_results=50_001), "at most 50000")
    _fails(
        lambda: client.search_runs(["0"], page_token="garbage!!"), "Invalid page token 'garbage!!'"
    )


# -- statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["DONE", "finished!", "", 42, True, None])
def test_bad_status_in_set_terminated(client: SlipwayClient, status: Any) -> None:
    run_id = client.create_run("0").info.run_id
    err = _fails(lambda: client.set_terminated(run_id, status), f"Invalid run status {status!r}")
    assert "expected one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED" in err.message
    assert client.get_run(run_id).info.status == RunStatus.RUNNING


def test_status_names_and_numbers_are_accepted(client: SlipwayClient) -> None:
    run_id = client.create_run("0").info.run_id
    assert client.set_terminated(run_id, "killed").status == RunStatus.KILLED
    assert client.set_terminated(run_id, 4).status == RunStatus.FAILED  # MLflow's proto number
    _fails(lambda: client.update_run(run_id, "NOPE"), "Invalid run status 'NOPE'")


# -- artifacts and datasets ---------------------------------------------------------------------


def test_bad_artifact_input(run: ActiveRun, tmp_path: Path) -> None:
    _fails(lambda: slipway.log_artifact(tmp_path / "missing.txt"), "no such file")
    _fails(lambda: slipway.log_artifacts(tmp_path / "missing"), "no such folder")
    _fails(lambda: slipway.log_figure(object(), "f.png"), "pass a matplotlib or plotly figure")
    _fails(lambda: slipway.log_text("x", "../../outside.txt"), "Invalid path")
    _fails(lambda: slipway.get_artifact_uri("../x"), "Invalid path")
    _fails(lambda: slipway.log_input(object(), name="d"), "Cannot log a object as a dataset")


# -- library bugs --------------------------------------------------------------------------------


def test_step_beyond_64_bits_is_refused(run: ActiveRun) -> None:
    _fails(lambda: slipway.log_metric("x", 1.0, step=2**63, synchronous=True), "step")


def test_timestamp_beyond_64_bits_is_refused(run: ActiveRun) -> None:
    _fails(lambda: slipway.log_metric("x", 1.0, timestamp=2**64, synchronous=True), "timestamp")


def test_metric_value_too_large_for_a_double_is_refused(run: ActiveRun) -> None:
    _fails(lambda: slipway.log_metric("x", 10**400), "Got invalid value")


def test_async_writer_errors_always_fail_the_run(tracking_dir: Path) -> None:
    run = slipway.start_run()
    slipway.log_param("p", "1")
    slipway.log_param("p", "2")  # async: valid on its own, refused by the store at flush
    with pytest.raises(SlipwayError, match="Changing param values"):
        slipway.end_run()
    assert SlipwayClient().get_run(run.info.run_id).info.status == RunStatus.FAILED


def test_bad_status_in_end_run_changes_nothing(tracking_dir: Path) -> None:
    run = slipway.start_run()
    _fails(lambda: slipway.end_run("DONE"), "Invalid run status 'DONE'")
    active = slipway.active_run()
    assert active is not None
    assert active.info.run_id == run.info.run_id
