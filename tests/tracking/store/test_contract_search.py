"""``search_runs`` of the tracking store contract, on every backend of the ``store`` fixture
(SQLite, PostgreSQL, and the REST store on a live server): filters (valid and invalid),
order_by, page tokens, view types and result limits."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from slipway.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
    ViewType,
)
from slipway.exceptions import InvalidFilter, InvalidParameterValue
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.sql import SqlTrackingStore

CONTEXT = DatasetInput.CONTEXT_TAG


@dataclass
class Spec:
    name: str
    user: str
    status: RunStatus
    start: int
    end: int | None
    metrics: list[tuple[str, float, int]] = field(default_factory=list)  # key, value, step
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[tuple[str, str, str]] = field(default_factory=list)  # name, digest, context


MNIST = ("mnist", "aaa111")
IMDB = ("imdb", "bbb222")

SPECS = [
    Spec(
        "alpha-one",
        "alice",
        RunStatus.FINISHED,
        1000,
        2000,
        metrics=[("loss", 2.0, 0), ("loss", 0.5, 1), ("acc", 0.9, 1), ("val-loss", 0.3, 1)],
        params={"lr": "0.1", "model": "CNN", "batch size": "32"},
        tags={"team": "Vision", "my key": "x y", "dash-key": "d1"},
        datasets=[(*MNIST, "training")],
    ),
    Spec(
        "alpha-two",
        "alice",
        RunStatus.FAILED,
        2000,
        3000,
        metrics=[("loss", 0.25, 0), ("acc", 0.95, 0), ("val-loss", 0.6, 0)],
        params={"lr": "0.01", "model": "cnn"},
        tags={"team": "vision"},
        datasets=[(*MNIST, "eval")],
    ),
    Spec(
        "beta",
        "bob",
        RunStatus.RUNNING,
        3000,
        None,
        metrics=[("loss", 1.0, 0)],
        params={"lr": "0.1", "model": "RNN", "note": "it's"},
        tags={"team": "NLP", "my key": "z"},
        datasets=[(*IMDB, "training")],
    ),
    Spec(
        "gamma",
        "bob",
        RunStatus.KILLED,
        4000,
        4500,
        metrics=[("loss", math.inf, 0), ("acc", -math.inf, 0)],
        params={"model": "RNN"},
        tags={"team": "nlp"},
    ),
    Spec(
        "delta",
        "bob",
        RunStatus.FINISHED,
        5000,
        6000,
        metrics=[("acc", 0.5, 0)],
        params={"lr": "0.001"},
    ),
    Spec(
        "epsilon",
        "carol",
        RunStatus.FINISHED,
        6000,
        7000,
        metrics=[("loss", math.nan, 0)],
    ),
]
DELETED = Spec(
    "zeta-deleted",
    "bob",
    RunStatus.FINISHED,
    500,
    600,
    metrics=[("loss", 0.5, 0)],
    params={"lr": "0.1"},
    tags={"team": "Vision"},
    datasets=[(*MNIST, "training")],
)
ACTIVE = {s.name for s in SPECS}


@dataclass
class World:
    store: AbstractTrackingStore
    experiment_id: str
    other_experiment_id: str
    ids: dict[str, str]  # run name -> run id
    mount: Callable[[], object] = lambda: None  # makes the world's store reachable


def _log(store: AbstractTrackingStore, experiment_id: str, spec: Spec) -> str:
    run = store.create_run(
        experiment_id,
        user_id=spec.user,
        start_time=spec.start,
        tags=[RunTag(k, v) for k, v in spec.tags.items()],
        run_name=spec.name,
    )
    run_id = run.info.run_id
    store.log_batch(
        run_id,
        metrics=[Metric(k, v, spec.start + step, step) for k, v, step in spec.metrics],
        params=[Param(k, v) for k, v in spec.params.items()],
    )
    if spec.datasets:
        store.log_inputs(
            run_id,
            [
                DatasetInput(
                    Dataset(name, digest, "local", '{"uri": "/data"}'),
                    (InputTag(CONTEXT, context),),
                )
                for name, digest, context in spec.datasets
            ],
        )
    store.update_run_info(run_id, spec.status, end_time=spec.end)
    return run_id


def _populate(store: AbstractTrackingStore) -> World:
    eid = store.create_experiment("search")
    ids = {spec.name: _log(store, eid, spec) for spec in SPECS}
    ids[DELETED.name] = _log(store, eid, DELETED)
    store.delete_run(ids[DELETED.name])
    other = store.create_experiment("other")
    ids["other-run"] = _log(
        store,
        other,
        Spec(
            "other-run",
            "alice",
            RunStatus.FINISHED,
            800,
            900,
            metrics=[("loss", 0.5, 0)],
            params={"lr": "0.1"},
            tags={"team": "Vision"},
        ),
    )
    return World(store, eid, other, ids)


@pytest.fixture
def world(store: AbstractTrackingStore) -> World:
    """Six active runs (``SPECS``) and one deleted run in an experiment, plus a run in another
    experiment that no search of the first one may return; for tests that change them."""
    return _populate(store)


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "rest"])
def shared_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The same runs as ``world``, built once per backend for the read-only searches.

    On PostgreSQL they live in a database of their own, next to the session's test database,
    because the ``store`` fixture wipes that one before every test. For ``rest`` a server app of
    their own is kept, and ``shared`` mounts it on the session's tracking server for each test
    (other tests mount theirs in between)."""
    folder = tmp_path_factory.mktemp("search")
    cleanups: list[Callable[[], object]] = []
    mount: Callable[[], object] = lambda: None  # noqa: E731
    store: AbstractTrackingStore
    if request.param == "rest":
        from slipway.server import ServerSettings, create_app
        from slipway.tracking.store.rest import RestTrackingStore
        from slipway.tracking.store.rest.http import HttpConfig

        server = request.getfixturevalue("rest_server")
        app = create_app(
            ServerSettings(
                backend_store_uri=str(folder / "server"),
                artifacts_destination=str(folder / "artifacts"),
            )
        )

        def mount() -> None:
            server.front.app = app

        mount()
        store = RestTrackingStore(
            server.url,
            HttpConfig(max_retries=1, backoff_factor=0.01, timeout=30),
            spool_dir=folder / "spool",
        )
        cleanups.append(app.state.context.close)
        cleanups.append(lambda: setattr(server.front, "app", None))
    elif request.param == "postgresql":
        session_url = make_url(request.getfixturevalue("postgres_database"))
        url = session_url.set(drivername="postgresql+psycopg")
        name = f"{url.database}_search"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        drop = text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with admin.connect() as conn:
            conn.execute(drop)
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop_database() -> None:
            with admin.connect() as conn:
                conn.execute(drop)
            admin.dispose()

        cleanups.append(drop_database)
        uri = session_url.set(database=name).render_as_string(hide_password=False)
        store = SqlTrackingStore(uri, str(folder / "artifacts"))
    else:
        store = SqlTrackingStore(f"sqlite:///{folder / 'store.db'}", str(folder / "artifacts"))
    try:
        world = _populate(store)
        world.mount = mount
        yield world
    finally:
        mount()  # closing a REST store may still talk to its server
        store.close()
        for cleanup in reversed(cleanups):
            cleanup()


@pytest.fixture
def shared(shared_world: World) -> World:
    shared_world.mount()
    return shared_world


def _names(runs: list[Run]) -> list[str]:
    return [r.info.run_name for r in runs]


# -- valid filters ---------------------------------------------------------------------------

FILTERS = [
    # metrics: every numeric operator, on the latest value only
    pytest.param("metrics.loss = 0.5", {"alpha-one"}, id="metric-eq"),
    pytest.param("metrics.loss == 0.25", {"alpha-two"}, id="metric-eqeq"),
    pytest.param("metrics.acc != 0.9", {"alpha-two", "gamma", "delta"}, id="metric-ne"),
    pytest.param("metrics.acc <> 0.9", {"alpha-two", "gamma", "delta"}, id="metric-ltgt"),
    pytest.param("metrics.loss > 0.5", {"beta", "gamma"}, id="metric-gt"),
    pytest.param("metrics.loss >= 0.5", {"alpha-one", "beta", "gamma"}, id="metric-ge"),
    pytest.param("metrics.loss < 0.5", {"alpha-two"}, id="metric-lt"),
    pytest.param("metrics.loss <= 0.5", {"alpha-one", "alpha-two"}, id="metric-le"),
    pytest.param("metrics.loss > 1.5", {"gamma"}, id="metric-history-ignored"),
    pytest.param("metrics.loss >= 1e309", {"gamma"}, id="metric-plus-inf"),
    pytest.param("metrics.acc < -1e300", {"gamma"}, id="metric-minus-inf"),
    pytest.param("metrics.acc > -1", {"alpha-one", "alpha-two", "delta"}, id="metric-negative"),
    pytest.param("metrics.acc >= .9", {"alpha-one", "alpha-two"}, id="metric-leading-dot"),
    pytest.param("metrics.loss < 0", set(), id="metric-none"),
    pytest.param("metrics.missing > 0", set(), id="metric-missing-key"),
    pytest.param("metric.loss = 1", {"beta"}, id="metric-singular-prefix"),
    pytest.param("metrics.val-loss < 0.5", {"alpha-one"}, id="metric-dash-key"),
    pytest.param("metrics.`val-loss` < 0.5", {"alpha-one"}, id="metric-backtick-key"),
    pytest.param('metrics."val-loss" > 0.5', {"alpha-two"}, id="metric-dquote-key"),
    pytest.param("metrics.loss>0.4", {"alpha-one", "beta", "gamma"}, id="metric-no-spaces"),
    # params
    pytest.param("params.lr = '0.1'", {"alpha-one", "beta"}, id="param-eq"),
    pytest.param("params.lr != '0.1'", {"alpha-two", "delta"}, id="param-ne"),
    pytest.param("params.model LIKE 'C%'", {"alpha-one"}, id="param-like-case-sensitive"),
    pytest.param("params.model LIKE '%NN'", {"alpha-one", "beta", "gamma"}, id="param-like"),
    pytest.param("params.model LIKE '_NN'", {"alpha-one", "beta", "gamma"}, id="param-like-_"),
    pytest.param("params.model like 'cnn'", {"alpha-two"}, id="param-like-lowercase-op"),
    pytest.param("params.model ILIKE 'c%'", {"alpha-one", "alpha-two"}, id="param-ilike"),
    pytest.param(
        "params.model ILIKE '%NN'", {"alpha-one", "alpha-two", "beta", "gamma"}, id="param-ilike-2"
    ),
    pytest.param("params.lr IN ('0.1', '0.001')", {"alpha-one", "beta", "delta"}, id="param-in"),
    pytest.param("params.lr NOT IN ('0.1')", {"alpha-two", "delta"}, id="param-not-in"),
    pytest.param("params.lr not in ('0.1', '0.01')", {"delta"}, id="param-not-in-lowercase"),
    pytest.param('params.model = "CNN"', {"alpha-one"}, id="param-dquote-value"),
    pytest.param("params.note = 'it''s'", {"beta"}, id="param-doubled-quote"),
    pytest.param('params.note = "it\'s"', {"beta"}, id="param-quote-in-dquotes"),
    pytest.param("params.`batch size` = '32'", {"alpha-one"}, id="param-backtick-space"),
    pytest.param("params.\"batch size\" = '32'", {"alpha-one"}, id="param-dquote-space"),
    pytest.param("parameter.model = 'RNN'", {"beta", "gamma"}, id="param-parameter-prefix"),
    pytest.param("params.model = 'rnn'", set(), id="param-eq-case-sensitive"),
    # tags
    pytest.param("tags.team = 'vision'", {"alpha-two"}, id="tag-eq"),
    pytest.param("tags.team != 'NLP'", {"alpha-one", "alpha-two", "gamma"}, id="tag-ne"),
    pytest.param("tags.team LIKE 'V%'", {"alpha-one"}, id="tag-like"),
    pytest.param("tags.team LIKE 'v%'", {"alpha-two"}, id="tag-like-lower"),
    pytest.param("tags.team ILIKE 'V%'", {"alpha-one", "alpha-two"}, id="tag-ilike"),
    pytest.param("tags.team ILIKE 'nlp'", {"beta", "gamma"}, id="tag-ilike-exact"),
    pytest.param("tags.team IN ('NLP', 'vision')", {"alpha-two", "beta"}, id="tag-in"),
    pytest.param("tags.team NOT IN ('NLP', 'nlp')", {"alpha-one", "alpha-two"}, id="tag-not-in"),
    pytest.param("tags.\"my key\" = 'x y'", {"alpha-one"}, id="tag-dquote-key"),
    pytest.param("tags.`my key` LIKE '%'", {"alpha-one", "beta"}, id="tag-backtick-key"),
    pytest.param("tags.`dash-key` = 'd1'", {"alpha-one"}, id="tag-backtick-dash"),
    pytest.param("tags.dash-key = 'd1'", {"alpha-one"}, id="tag-bare-dash"),
    pytest.param("tags.mlflow.runName = 'beta'", {"beta"}, id="tag-dotted-key"),
    pytest.param("tag.team = 'nlp'", {"gamma"}, id="tag-singular-prefix"),
    # attributes
    pytest.param("attributes.status = 'FINISHED'", {"alpha-one", "delta", "epsilon"}, id="status"),
    pytest.param("attributes.status != 'FINISHED'", {"alpha-two", "beta", "gamma"}, id="status-ne"),
    pytest.param(
        "attributes.status IN ('FAILED', 'KILLED')", {"alpha-two", "gamma"}, id="status-in"
    ),
    pytest.param(
        "attributes.status NOT IN ('FINISHED', 'RUNNING')",
        {"alpha-two", "gamma"},
        id="status-not-in",
    ),
    pytest.param("status = 'RUNNING'", {"beta"}, id="status-unprefixed"),
    pytest.param("run.status = 'KILLED'", {"gamma"}, id="status-run-prefix"),
    pytest.param(
        "attr.status LIKE 'F%'", {"alpha-one", "alpha-two", "delta", "epsilon"}, id="status-like"
    ),
    pytest.param("attributes.run_name = 'beta'", {"beta"}, id="run-name"),
    pytest.param(
        "attributes.run_name LIKE 'alpha%'", {"alpha-one", "alpha-two"}, id="run-name-like"
    ),
    pytest.param("attributes.run_name LIKE 'ALPHA%'", set(), id="run-name-like-case-sensitive"),
    pytest.param(
        "attributes.run_name ILIKE 'ALPHA%'", {"alpha-one", "alpha-two"}, id="run-name-ilike"
    ),
    pytest.param("run_name != 'beta'", ACTIVE - {"beta"}, id="run-name-ne"),
    pytest.param("attributes.`run name` = 'gamma'", {"gamma"}, id="run-name-alias"),
    pytest.param("attributes.run_id = '{gamma}'", {"gamma"}, id="run-id"),
    pytest.param(
        "attributes.run_id IN ('{alpha-one}', '{beta}')", {"alpha-one", "beta"}, id="run-id-in"
    ),
    pytest.param(
        "attributes.run_id NOT IN ('{alpha-one}', '{beta}')",
        ACTIVE - {"alpha-one", "beta"},
        id="run-id-not-in",
    ),
    pytest.param(
        "attributes.run_id IN ('{zeta-deleted}', '{other-run}')", set(), id="run-id-outside-view"
    ),
    pytest.param("attributes.run_uuid = '{delta}'", {"delta"}, id="run-uuid-alias"),
    pytest.param("attributes.user_id = 'alice'", {"alpha-one", "alpha-two"}, id="user-id"),
    pytest.param("attributes.artifact_uri LIKE '%{beta}%'", {"beta"}, id="artifact-uri"),
    pytest.param("attributes.lifecycle_stage = 'deleted'", set(), id="lifecycle-stage"),
    pytest.param("attributes.start_time > 3000", {"gamma", "delta", "epsilon"}, id="start-gt"),
    pytest.param(
        "attributes.start_time >= 3000", {"beta", "gamma", "delta", "epsilon"}, id="start-ge"
    ),
    pytest.param("attributes.start_time = 1000", {"alpha-one"}, id="start-eq"),
    pytest.param("attributes.start_time != 1000", ACTIVE - {"alpha-one"}, id="start-ne"),
    pytest.param("attributes.start_time <= 2000", {"alpha-one", "alpha-two"}, id="start-le"),
    pytest.param("attributes.created < 2500", {"alpha-one", "alpha-two"}, id="created-alias"),
    pytest.param("created >= 6000", {"epsilon"}, id="created-unprefixed"),
    pytest.param("attributes.end_time <= 3000", {"alpha-one", "alpha-two"}, id="end-le"),
    pytest.param("attributes.end_time > 4000", {"gamma", "delta", "epsilon"}, id="end-gt"),
    pytest.param("attributes.end_time < 4500", {"alpha-one", "alpha-two"}, id="end-lt"),
    pytest.param(
        "attributes.start_time < 1000.5",
        {"alpha-one"},
        id="start-fraction",
    ),
    pytest.param("attributes.start_time > 1e30", set(), id="start-huge"),
    # datasets
    pytest.param("datasets.name = 'mnist'", {"alpha-one", "alpha-two"}, id="dataset-name"),
    pytest.param("datasets.name != 'mnist'", {"beta"}, id="dataset-name-ne"),
    pytest.param("datasets.name LIKE 'mn%'", {"alpha-one", "alpha-two"}, id="dataset-name-like"),
    pytest.param("datasets.name IN ('imdb', 'cifar')", {"beta"}, id="dataset-name-in"),
    pytest.param("datasets.digest = 'bbb222'", {"beta"}, id="dataset-digest"),
    pytest.param("datasets.context = 'training'", {"alpha-one", "beta"}, id="dataset-context"),
    pytest.param("datasets.context ILIKE 'EVAL'", {"alpha-two"}, id="dataset-context-ilike"),
    pytest.param(
        "dataset.context NOT IN ('eval')", {"alpha-one", "beta"}, id="dataset-context-not-in"
    ),
    # conjunctions
    pytest.param("metrics.loss < 1 and params.lr = '0.1'", {"alpha-one"}, id="and-2"),
    pytest.param(
        "params.model ILIKE 'cnn' AND tags.team = 'vision' and attributes.status = 'FAILED'",
        {"alpha-two"},
        id="and-3",
    ),
    pytest.param(
        "metrics.loss >= 0.5 And datasets.context = 'training'",
        {"alpha-one", "beta"},
        id="and-dataset",
    ),
    pytest.param(
        "attributes.user_id = 'bob' and metrics.acc > 0 and params.lr IN ('0.001') "
        "and attributes.end_time = 6000",
        {"delta"},
        id="and-4",
    ),
    pytest.param("params.lr = '0.1' and params.lr = '0.01'", set(), id="and-contradiction"),
    pytest.param("", ACTIVE, id="empty"),
    pytest.param("   ", ACTIVE, id="blank"),
]


@pytest.mark.parametrize(("filter_string", "expected"), FILTERS)
def test_filter(shared: World, filter_string: str, expected: set[str]) -> None:
    filter_string = filter_string.format_map(shared.ids) if "{" in filter_string else filter_string
    found = shared.store.search_runs([shared.experiment_id], filter_string)
    assert set(_names(found)) == expected
    assert len(found) == len(expected)


def test_no_filter(shared: World) -> None:
    assert set(_names(shared.store.search_runs([shared.experiment_id], None))) == ACTIVE


def test_search_returns_complete_runs(shared: World) -> None:
    (run,) = shared.store.search_runs([shared.experiment_id], "run_name = 'alpha-one'")
    assert run == shared.store.get_run(shared.ids["alpha-one"])
    assert run.data.metrics == {"loss": 0.5, "acc": 0.9, "val-loss": 0.3}
    assert run.data.params == {"lr": "0.1", "model": "CNN", "batch size": "32"}
    assert run.data.tags["team"] == "Vision"
    assert run.info.status == RunStatus.FINISHED
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["mnist"]


def test_search_several_experiments(shared: World) -> None:
    both = [shared.experiment_id, shared.other_experiment_id]
    found = shared.store.search_runs(both, "params.lr = '0.1'")
    assert set(_names(found)) == {"alpha-one", "beta", "other-run"}
    assert _names(shared.store.search_runs([shared.other_experiment_id])) == ["other-run"]
    assert shared.store.search_runs([], "params.lr = '0.1'") == []
    assert shared.store.search_runs(["4242"]) == []


def test_like_escapes_wildcards_with_a_backslash(store: AbstractTrackingStore) -> None:
    for value in ["a_b", "axb", "a\\xb", "50%", "500"]:
        run_id = store.create_run("0", run_name=f"v{len(value)}").info.run_id
        store.log_param(run_id, Param("x", value))

    def values(filter_string: str) -> set[str]:
        return {r.data.params["x"] for r in store.search_runs(["0"], filter_string)}

    # In the filter text a backslash is itself escaped: 'a\\_b' is the pattern a\_b.
    assert {
        "like _": values("params.x LIKE 'a\\\\_b'"),
        "like %": values("params.x LIKE '50\\\\%'"),
        "ilike _": values("params.x ILIKE 'A\\\\_B'"),
    } == {"like _": {"a_b"}, "like %": {"50%"}, "ilike _": {"a_b"}}


# -- invalid filters -------------------------------------------------------------------------

INVALID_FILTERS = [
    pytest.param("metrics.loss << 1", "'<'", id="double-operator"),
    pytest.param("metrics.loss > 'abc'", "'abc'", id="metric-string-value"),
    pytest.param("params.lr > '1'", "'>'", id="param-numeric-operator"),
    pytest.param("params.lr = 0.1", "0.1", id="param-unquoted-value"),
    pytest.param("foo.bar = 1", "'foo'", id="unknown-entity"),
    pytest.param("attributes.nope = 'x'", "'nope'", id="unknown-attribute"),
    pytest.param("datasets.size = 'x'", "'size'", id="unknown-dataset-key"),
    pytest.param("metrics.a > 1 or metrics.b < 2", "OR", id="or"),
    pytest.param("metrics.a >", "value", id="missing-value"),
    pytest.param("metrics.a", "operator", id="missing-operator"),
    pytest.param("metrics.a > 1 and", "identifier", id="trailing-and"),
    pytest.param("metrics.a > 1 metrics.b < 2", "'metrics.b'", id="missing-and"),
    pytest.param("params.x IN 'a'", "'a'", id="in-without-list"),
    pytest.param("params.x IN ()", "')'", id="in-empty-list"),
    pytest.param("params.x IN ('a' 'b')", "'b'", id="in-missing-comma"),
    pytest.param("params.x IN ('a', 1)", "'1'", id="in-number"),
    pytest.param("params.x NOT LIKE 'a'", "'LIKE'", id="not-like"),
    pytest.param("params.x = 'abc", "position 11", id="unterminated-quote"),
    pytest.param("tags.\"abc = 'x'", "position 5", id="unterminated-dquote"),
    pytest.param("tags.`abc = 'x'", "position 5", id="unterminated-backtick"),
    pytest.param("metrics.loss LIKE '1'", "'LIKE'", id="metric-like"),
    pytest.param("metrics.loss IN (1, 2)", "'1'", id="metric-in"),
    pytest.param("attributes.start_time = 'abc'", "'abc'", id="start-time-string"),
    pytest.param("attributes.status >= 'A'", "'>='", id="status-numeric-operator"),
    pytest.param("datasets.name < 'a'", "'<'", id="dataset-numeric-operator"),
    pytest.param("metrics.loss > 1 $", "'$'", id="stray-character"),
    pytest.param("params.x = 'a' && params.y = 'b'", "'&'", id="ampersands"),
    pytest.param("tags. = 'x'", "'='", id="empty-key"),
    pytest.param("= 1", "'='", id="no-identifier"),
    pytest.param("metrics.loss > 1.2.3", "'1'", id="bad-number"),
]


@pytest.mark.parametrize(("filter_string", "fragment"), INVALID_FILTERS)
def test_invalid_filter(shared: World, filter_string: str, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        shared.store.search_runs([shared.experiment_id], filter_string)
    err = info.value
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    assert err.http_status == 400
    assert isinstance(err, InvalidParameterValue)
    # The message names the offending token beyond just echoing the filter back.
    detail = err.message.replace(repr(filter_string), "")
    assert fragment in detail, err.message


# -- order_by --------------------------------------------------------------------------------

ORDERS = [
    pytest.param(
        ["metrics.acc ASC"],
        ["gamma", "delta", "alpha-one", "alpha-two", "epsilon", "beta"],
        id="metric-asc",
    ),
    pytest.param(
        ["metrics.acc DESC"],
        ["alpha-two", "alpha-one", "delta", "gamma", "epsilon", "beta"],
        id="metric-desc",
    ),
    pytest.param(
        ["metrics.acc"],
        ["gamma", "delta", "alpha-one", "alpha-two", "epsilon", "beta"],
        id="metric-default-asc",
    ),
    pytest.param(
        ["metrics.loss ASC", "run_name"],
        ["alpha-two", "alpha-one", "beta", "gamma"],
        id="metric-inf-asc",
    ),
    pytest.param(
        ["metrics.loss DESC"], ["gamma", "beta", "alpha-one", "alpha-two"], id="metric-inf-desc"
    ),
    pytest.param(
        ["metrics.`val-loss` desc"],
        ["alpha-two", "alpha-one", "epsilon", "delta", "gamma", "beta"],
        id="metric-quoted-key-lowercase-desc",
    ),
    pytest.param(
        ["params.lr ASC"],
        ["delta", "alpha-two", "beta", "alpha-one", "epsilon", "gamma"],
        id="param-asc",
    ),
    pytest.param(
        ["params.lr DESC"],
        ["beta", "alpha-one", "alpha-two", "delta", "epsilon", "gamma"],
        id="param-desc",
    ),
    pytest.param(
        ["tags.`my key` ASC"],
        ["alpha-one", "beta", "epsilon", "delta", "gamma", "alpha-two"],
        id="tag-asc",
    ),
    pytest.param(
        ['tags."my key" DESC'],
        ["beta", "alpha-one", "epsilon", "delta", "gamma", "alpha-two"],
        id="tag-desc",
    ),
    pytest.param(
        ["attributes.start_time ASC"],
        ["alpha-one", "alpha-two", "beta", "gamma", "delta", "epsilon"],
        id="start-asc",
    ),
    pytest.param(
        ["start_time DESC"],
        ["epsilon", "delta", "gamma", "beta", "alpha-two", "alpha-one"],
        id="start-desc",
    ),
    pytest.param(
        ["attributes.created ASC"],
        ["alpha-one", "alpha-two", "beta", "gamma", "delta", "epsilon"],
        id="created-alias",
    ),
    pytest.param([], ["epsilon", "delta", "gamma", "beta", "alpha-two", "alpha-one"], id="default"),
    pytest.param(
        ["attributes.end_time DESC"],
        ["epsilon", "delta", "gamma", "alpha-two", "alpha-one", "beta"],
        id="end-desc-missing-last",
    ),
    pytest.param(
        ["attributes.end_time ASC"],
        ["alpha-one", "alpha-two", "gamma", "delta", "epsilon", "beta"],
        id="end-asc-missing-last",
    ),
    pytest.param(
        ["attributes.run_name"],
        ["alpha-one", "alpha-two", "beta", "delta", "epsilon", "gamma"],
        id="run-name-asc",
    ),
    pytest.param(
        ["run_name DESC"],
        ["gamma", "epsilon", "delta", "beta", "alpha-two", "alpha-one"],
        id="run-name-desc",
    ),
    pytest.param(
        ["attributes.status ASC"],
        ["alpha-two", "epsilon", "delta", "alpha-one", "gamma", "beta"],
        id="status-ties-by-start-time",
    ),
    pytest.param(
        ["attributes.user_id ASC", "metrics.acc DESC"],
        ["alpha-two", "alpha-one", "delta", "gamma", "beta", "epsilon"],
        id="two-keys",
    ),
]


@pytest.mark.parametrize(("order_by", "expected"), ORDERS)
def test_order_by(shared: World, order_by: list[str], expected: list[str]) -> None:
    found = shared.store.search_runs([shared.experiment_id], order_by=order_by)
    # Cases that list fewer runs check only the head, where the key is present.
    assert _names(found)[: len(expected)] == expected
    assert len(found) == len(ACTIVE)


def test_nan_and_missing_metric_order_is_the_same_on_every_backend(shared: World) -> None:
    # epsilon has loss = NaN and started after delta, which has no loss: either NaN sorts
    # before the missing values or both tie and the later start comes first; epsilon first.
    for direction in ("ASC", "DESC"):
        found = shared.store.search_runs(
            [shared.experiment_id], order_by=[f"metrics.loss {direction}"]
        )
        assert _names(found)[-2:] == ["epsilon", "delta"], direction


def test_order_by_with_filter(shared: World) -> None:
    found = shared.store.search_runs(
        [shared.experiment_id], "params.lr != '0.001'", order_by=["metrics.loss DESC"]
    )
    assert _names(found) == ["beta", "alpha-one", "alpha-two"]


def test_ties_broken_by_start_time_then_run_id(store: AbstractTrackingStore) -> None:
    ids = [store.create_run("0", start_time=100).info.run_id for _ in range(4)]
    later = store.create_run("0", start_time=200).info.run_id
    for run_id in [*ids, later]:
        store.log_metric(run_id, Metric("m", 1.0, 0, 0))
    expected = [later, *sorted(ids)]
    assert [r.info.run_id for r in store.search_runs(["0"])] == expected
    assert [r.info.run_id for r in store.search_runs(["0"], order_by=["metrics.m"])] == expected
    assert [
        r.info.run_id for r in store.search_runs(["0"], order_by=["metrics.m DESC"])
    ] == expected


@pytest.mark.parametrize(
    "order_by",
    [
        "metrics.loss UP",
        "metrics.loss ASC DESC",
        "datasets.name",
        "attributes.nope",
        "foo.bar",
        "",
        "metrics.",
        "= ASC",
    ],
)
def test_invalid_order_by(shared: World, order_by: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        shared.store.search_runs([shared.experiment_id], order_by=[order_by])
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


# -- pages, view types, limits ---------------------------------------------------------------


@pytest.mark.parametrize("order_by", [[], ["metrics.loss DESC"], ["params.lr ASC", "run_name"]])
def test_pages_visit_every_run_once(shared: World, order_by: list[str]) -> None:
    everything = _names(shared.store.search_runs([shared.experiment_id], order_by=order_by))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = shared.store.search_runs(
            [shared.experiment_id], max_results=2, order_by=order_by, page_token=token
        )
        assert len(page) == 2
        seen += _names(page)
        pages += 1
        token = page.token
        if token is None:
            break
        assert isinstance(token, str)
    assert pages == 3
    assert seen == everything
    assert len(set(seen)) == len(ACTIVE)


def test_pages_with_filter(shared: World) -> None:
    first = shared.store.search_runs(
        [shared.experiment_id],
        "attributes.status = 'FINISHED'",
        max_results=2,
        order_by=["start_time"],
    )
    assert _names(first) == ["alpha-one", "delta"]
    rest = shared.store.search_runs(
        [shared.experiment_id],
        "attributes.status = 'FINISHED'",
        max_results=2,
        order_by=["start_time"],
        page_token=first.token,
    )
    assert _names(rest) == ["epsilon"]
    assert rest.token is None


def test_exact_page_has_no_token(shared: World) -> None:
    page = shared.store.search_runs([shared.experiment_id], max_results=len(ACTIVE))
    assert len(page) == len(ACTIVE)
    assert page.token is None


def _token(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "definitely not a token",
        "!!!",
        _token({"offset": -1}),
        _token({"offset": "2"}),
        _token({"nothing": 1}),
        _token([1, 2]),
    ],
    ids=["text", "punctuation", "negative", "string-offset", "no-offset", "list"],
)
def test_bad_page_token(shared: World, token: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        shared.store.search_runs([shared.experiment_id], page_token=token)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (ViewType.ACTIVE_ONLY, ACTIVE),
        (ViewType.DELETED_ONLY, {"zeta-deleted"}),
        (ViewType.ALL, ACTIVE | {"zeta-deleted"}),
        ("ALL", ACTIVE | {"zeta-deleted"}),
        (2, {"zeta-deleted"}),
    ],
    ids=["active", "deleted", "all", "all-by-name", "deleted-by-number"],
)
def test_view_types(shared: World, view: ViewType, expected: set[str]) -> None:
    found = shared.store.search_runs([shared.experiment_id], run_view_type=view)
    assert set(_names(found)) == expected


def test_view_type_with_filter(world: World) -> None:
    found = world.store.search_runs(
        [world.experiment_id], "params.lr = '0.1'", run_view_type=ViewType.ALL
    )
    assert set(_names(found)) == {"alpha-one", "beta", "zeta-deleted"}
    restored = world.ids["zeta-deleted"]
    world.store.restore_run(restored)
    assert "zeta-deleted" in _names(world.store.search_runs([world.experiment_id]))


@pytest.mark.parametrize("view", ["SOME", 0, 4, True], ids=["word", "0", "4", "bool"])
def test_invalid_view_type(shared: World, view: object) -> None:
    with pytest.raises(InvalidParameterValue):
        shared.store.search_runs([shared.experiment_id], run_view_type=view)  # type: ignore[arg-type]


def test_max_results_limits(shared: World) -> None:
    found = shared.store.search_runs([shared.experiment_id], max_results=50_000)
    assert set(_names(found)) == ACTIVE
    assert found.token is None
    for bad in (50_001, 0, -1):
        with pytest.raises(InvalidParameterValue) as info:
            shared.store.search_runs([shared.experiment_id], max_results=bad)
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    one = shared.store.search_runs([shared.experiment_id], max_results=1)
    assert _names(one) == ["epsilon"]
    assert one.token is not None
