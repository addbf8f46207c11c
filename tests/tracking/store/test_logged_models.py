"""Logged models at the store level, on SQLite and PostgreSQL: create, get, finalize, delete,
params, tags, metric points, run outputs and inputs, search (filters, datasets, order, pages),
and the migration that adds their tables to an existing database."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from slipway.entities import (
    LifecycleStage,
    LoggedModelInput,
    LoggedModelMetric,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    RunTag,
)
from slipway.exceptions import (
    ExperimentNotFound,
    InvalidParameterValue,
    ResourceDoesNotExist,
    RunNotFound,
)
from slipway.tracking.store.logged_models import (
    AbstractLoggedModelStore,
    parse_logged_model_filter,
)
from slipway.tracking.store.sql import SqlTrackingStore
from slipway.tracking.store.sql import engine as sql_engine

MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
# Logged models live in the SQL store (the server serves them over HTTP, tested in
# tests/server); the REST store does not offer this interface, so it is not parametrised in.
STORE_BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def models(store: Any) -> Any:
    """The shared ``store`` fixture, on the backends that keep logged models."""
    assert isinstance(store, AbstractLoggedModelStore)
    return store


@pytest.fixture
def exp(models: Any) -> str:
    return str(models.create_experiment("logged-models"))


def new_model(models: Any, exp: str, **kwargs: Any) -> Any:
    return models.create_logged_model(exp, **kwargs)


def point(model_id: str, key: str, value: float, step: int = 0, **kwargs: Any) -> Any:
    timestamp = kwargs.pop("timestamp", 1000 + step)
    return LoggedModelMetric(model_id, key, value, timestamp, step, **kwargs)


def ids(page: Any) -> list[str]:
    return [m.model_id for m in page]


# -- create and get -------------------------------------------------------------------------------


def test_create_gives_a_pending_model_under_the_experiment_location(models: Any, exp: str) -> None:
    run = models.create_run(exp)
    before = int(time.time() * 1000)
    model = new_model(
        models,
        exp,
        name="clf",
        source_run_id=run.info.run_id,
        tags=[LoggedModelTag("team", "ml"), LoggedModelTag("mlflow.source.name", "train.py")],
        params=[LoggedModelParameter("alpha", "0.5")],
        model_type="classifier",
    )
    assert MODEL_ID.match(model.model_id)
    assert model.experiment_id == exp
    assert model.name == "clf"
    assert model.status is LoggedModelStatus.PENDING
    location = models.get_experiment(exp).artifact_location
    assert model.artifact_location == f"{location}/models/{model.model_id}/artifacts"
    assert before <= model.creation_timestamp == model.last_updated_timestamp
    assert model.source_run_id == run.info.run_id
    assert model.model_type == "classifier"
    assert model.tags == {"mlflow.source.name": "train.py", "team": "ml"}
    assert model.params == {"alpha": "0.5"}
    assert model.metrics == []
    assert model.lifecycle_stage is LifecycleStage.ACTIVE
    assert model.model_uri == f"models:/{model.model_id}"
    assert models.get_logged_model(model.model_id) == model


def test_create_without_a_name_generates_one(models: Any, exp: str) -> None:
    first, second = new_model(models, exp), new_model(models, exp)
    assert first.name
    assert second.name
    assert first.model_id != second.model_id
    assert first.source_run_id is None
    assert first.model_type is None


@pytest.mark.parametrize("name", ["", "a/b", "a:b", "a.b", "50%", 'x"', "it's", "n" * 501])
def test_create_refuses_bad_names(models: Any, exp: str, name: str) -> None:
    with pytest.raises(InvalidParameterValue):
        new_model(models, exp, name=name)


def test_create_refuses_missing_or_deleted_experiments_and_unknown_runs(
    models: Any, exp: str
) -> None:
    with pytest.raises(ExperimentNotFound):
        models.create_logged_model("98765")
    with pytest.raises(ExperimentNotFound):
        models.create_logged_model("not-a-number")
    with pytest.raises(RunNotFound):
        new_model(models, exp, source_run_id="0" * 32)
    models.delete_experiment(exp)
    with pytest.raises(InvalidParameterValue, match="active"):
        new_model(models, exp)


def test_create_checks_keys_and_values(models: Any, exp: str) -> None:
    with pytest.raises(InvalidParameterValue):
        new_model(models, exp, tags=[LoggedModelTag("../up", "x")])
    with pytest.raises(InvalidParameterValue):
        new_model(models, exp, params=[LoggedModelParameter("", "x")])
    with pytest.raises(InvalidParameterValue, match="Duplicate"):
        new_model(
            models, exp, params=[LoggedModelParameter("a", "1"), LoggedModelParameter("a", "2")]
        )
    with pytest.raises(InvalidParameterValue, match="limit"):
        new_model(models, exp, tags=[LoggedModelTag("big", "x" * 70000)])
    assert models.search_logged_models([exp]) == []  # nothing was half-created
    big = new_model(models, exp, params=[LoggedModelParameter("config", "y" * 20000)])
    assert models.get_logged_model(big.model_id).params["config"] == "y" * 20000


def test_get_unknown_model(models: Any) -> None:
    with pytest.raises(ResourceDoesNotExist, match="m-nothing"):
        models.get_logged_model("m-nothing")


# -- finalize and delete --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (LoggedModelStatus.READY, LoggedModelStatus.READY),
        ("LOGGED_MODEL_UPLOAD_FAILED", LoggedModelStatus.FAILED),
        ("ready", LoggedModelStatus.READY),
        (2, LoggedModelStatus.READY),
        (1, LoggedModelStatus.PENDING),
    ],
)
def test_finalize_sets_the_status(models: Any, exp: str, given: Any, expected: Any) -> None:
    model = new_model(models, exp)
    time.sleep(0.005)
    done = models.finalize_logged_model(model.model_id, given)
    assert done.status is expected
    assert done.last_updated_timestamp > model.last_updated_timestamp
    assert models.get_logged_model(model.model_id).status is expected


@pytest.mark.parametrize("status", [0, "UNSPECIFIED", "DONE", 7, None, True])
def test_finalize_refuses_unknown_statuses(models: Any, exp: str, status: Any) -> None:
    model = new_model(models, exp)
    with pytest.raises(InvalidParameterValue):
        models.finalize_logged_model(model.model_id, status)
    assert models.get_logged_model(model.model_id).status is LoggedModelStatus.PENDING


def test_deleted_models_are_hidden_and_frozen(models: Any, exp: str) -> None:
    model = new_model(models, exp, name="gone")
    kept = new_model(models, exp, name="kept")
    models.delete_logged_model(model.model_id)
    with pytest.raises(ResourceDoesNotExist):
        models.get_logged_model(model.model_id)
    deleted = models.get_logged_model(model.model_id, allow_deleted=True)
    assert deleted.lifecycle_stage is LifecycleStage.DELETED
    assert ids(models.search_logged_models([exp])) == [kept.model_id]
    for change in (
        lambda: models.finalize_logged_model(model.model_id, LoggedModelStatus.READY),
        lambda: models.set_logged_model_tags(model.model_id, [LoggedModelTag("a", "b")]),
        lambda: models.log_logged_model_params(model.model_id, [LoggedModelParameter("a", "b")]),
        lambda: models.delete_logged_model(model.model_id),
    ):
        with pytest.raises(ResourceDoesNotExist):
            change()


# -- params and tags ----------------------------------------------------------------------------


def test_params_are_added_and_cannot_change(models: Any, exp: str) -> None:
    model = new_model(models, exp, params=[LoggedModelParameter("a", "1")])
    models.log_logged_model_params(
        model.model_id, [LoggedModelParameter("a", "1"), LoggedModelParameter("b", "2")]
    )
    assert models.get_logged_model(model.model_id).params == {"a": "1", "b": "2"}
    with pytest.raises(InvalidParameterValue, match="Changing param values"):
        models.log_logged_model_params(
            model.model_id, [LoggedModelParameter("c", "3"), LoggedModelParameter("a", "9")]
        )
    assert models.get_logged_model(model.model_id).params == {"a": "1", "b": "2"}
    models.log_logged_model_params(model.model_id, [])
    many = [LoggedModelParameter(f"p{i:04d}", str(i)) for i in range(1500)]
    models.log_logged_model_params(model.model_id, many)
    assert len(models.get_logged_model(model.model_id).params) == 1502
    with pytest.raises(ResourceDoesNotExist):
        models.log_logged_model_params("m-missing", [LoggedModelParameter("a", "1")])


def test_tags_are_set_overwritten_and_deleted(models: Any, exp: str) -> None:
    model = new_model(models, exp, tags=[LoggedModelTag("a", "1")])
    models.set_logged_model_tags(
        model.model_id,
        [LoggedModelTag("a", "2"), LoggedModelTag("b/c d", "x"), LoggedModelTag("b/c d", "y")],
    )
    assert models.get_logged_model(model.model_id).tags == {"a": "2", "b/c d": "y"}
    models.delete_logged_model_tag(model.model_id, "b/c d")
    assert models.get_logged_model(model.model_id).tags == {"a": "2"}
    with pytest.raises(ResourceDoesNotExist, match="No tag"):
        models.delete_logged_model_tag(model.model_id, "b/c d")
    with pytest.raises(ResourceDoesNotExist):
        models.set_logged_model_tags("m-missing", [LoggedModelTag("a", "1")])
    with pytest.raises(InvalidParameterValue):
        models.set_logged_model_tags(model.model_id, [LoggedModelTag("ok", 5)])


# -- metric points --------------------------------------------------------------------------------


def test_metric_points_belong_to_models_and_repeat_once(models: Any, exp: str) -> None:
    run = models.create_run(exp)
    a, b = new_model(models, exp), new_model(models, exp)
    run_id = run.info.run_id
    points = [
        point(a.model_id, "acc", 0.5, step=1),
        point(a.model_id, "acc", 0.7, step=2, dataset_name="eval", dataset_digest="d1"),
        point(a.model_id, "loss", math.nan, step=2),
        point(b.model_id, "acc", 0.9, step=1, run_id=run_id),
    ]
    models.log_logged_model_metrics(run_id, points)
    models.log_logged_model_metrics(run_id, points[:2])  # the same points again: kept once
    got = models.get_logged_model(a.model_id).metrics
    assert [(m.key, m.step, m.dataset_name, m.dataset_digest, m.run_id) for m in got] == [
        ("acc", 1, None, None, run_id),
        ("acc", 2, "eval", "d1", run_id),
        ("loss", 2, None, None, run_id),
    ]
    assert got[0].value == 0.5
    assert math.isnan(got[2].value)
    assert got[1].to_dict() == {
        "key": "acc",
        "value": 0.7,
        "timestamp": 1002,
        "step": 2,
        "dataset_name": "eval",
        "dataset_digest": "d1",
        "model_id": a.model_id,
        "run_id": run_id,
    }
    assert [m.value for m in models.get_logged_model(b.model_id).metrics] == [0.9]


def test_metric_points_are_checked(models: Any, exp: str) -> None:
    run = models.create_run(exp)
    run_id = run.info.run_id
    model = new_model(models, exp)
    for bad in (
        point(model.model_id, "", 1.0),
        point(model.model_id, "k", "high"),  # type: ignore[arg-type]
        point(model.model_id, "k", 1.0, timestamp=-1),
        point(model.model_id, "k", 1.0, run_id="another"),
    ):
        with pytest.raises(InvalidParameterValue):
            models.log_logged_model_metrics(run_id, [bad])
    with pytest.raises(ResourceDoesNotExist):
        models.log_logged_model_metrics(run_id, [point("m-missing", "k", 1.0)])
    with pytest.raises(RunNotFound):
        models.log_logged_model_metrics("f" * 32, [point(model.model_id, "k", 1.0)])
    models.delete_run(run_id)
    with pytest.raises(InvalidParameterValue, match="active"):
        models.log_logged_model_metrics(run_id, [point(model.model_id, "k", 1.0)])
    assert models.get_logged_model(model.model_id).metrics == []


# -- run outputs and inputs ------------------------------------------------------------------------


def test_runs_record_the_models_they_produce_and_use(models: Any, exp: str) -> None:
    run = models.create_run(exp)
    run_id = run.info.run_id
    first, second = new_model(models, exp), new_model(models, exp)
    models.log_outputs(run_id, [LoggedModelOutput(first.model_id, 3)])
    models.log_outputs(run_id, [LoggedModelOutput(second.model_id)])
    models.log_outputs(run_id, [LoggedModelOutput(first.model_id, 3)])  # again: kept once
    outputs = models.get_model_outputs(run_id)
    assert sorted(outputs, key=lambda o: o.model_id) == sorted(
        [LoggedModelOutput(first.model_id, 3), LoggedModelOutput(second.model_id, 0)],
        key=lambda o: o.model_id,
    )
    models.log_model_inputs(run_id, [LoggedModelInput(second.model_id)])
    assert models.get_model_inputs(run_id) == [LoggedModelInput(second.model_id)]
    assert models.get_model_outputs(models.create_run(exp).info.run_id) == []
    models.log_outputs(run_id, [])


def test_run_outputs_need_an_active_run_and_a_model(models: Any, exp: str) -> None:
    run = models.create_run(exp)
    model = new_model(models, exp)
    with pytest.raises(ResourceDoesNotExist, match="m-missing"):
        models.log_outputs(run.info.run_id, [LoggedModelOutput("m-missing", 0)])
    with pytest.raises(RunNotFound):
        models.log_outputs("0" * 32, [LoggedModelOutput(model.model_id, 0)])
    with pytest.raises(RunNotFound):
        models.get_model_outputs("0" * 32)
    with pytest.raises(InvalidParameterValue):
        models.log_outputs(run.info.run_id, [LoggedModelOutput(model.model_id, "x")])
    models.delete_run(run.info.run_id)
    with pytest.raises(InvalidParameterValue, match="active"):
        models.log_outputs(run.info.run_id, [LoggedModelOutput(model.model_id, 0)])
    assert models.get_model_outputs(run.info.run_id) == []


# -- search -----------------------------------------------------------------------------------


@pytest.fixture
def catalog(models: Any, exp: str) -> dict[str, Any]:
    """Four models in ``exp`` (created a few ms apart) and one in another experiment."""
    run = models.create_run(exp, tags=[RunTag("k", "v")])
    run_id = run.info.run_id
    made = {}
    for name, alpha, team, acc in (
        ("alpha", "0.1", "ml", 0.7),
        ("beta", "0.2", "ml", 0.9),
        ("gamma", "0.3", "data", None),
        ("delta", "0.4", "Data", 0.8),
    ):
        made[name] = new_model(
            models,
            exp,
            name=name,
            source_run_id=run_id,
            params=[LoggedModelParameter("alpha", alpha)],
            tags=[LoggedModelTag("team", team)],
        )
        if acc is not None:
            models.log_logged_model_metrics(
                run_id,
                [
                    point(made[name].model_id, "acc", acc - 0.5, step=1),
                    point(
                        made[name].model_id,
                        "acc",
                        acc,
                        step=2,
                        dataset_name="eval",
                        dataset_digest="e1",
                    ),
                ],
            )
        time.sleep(0.003)
    models.finalize_logged_model(made["beta"].model_id, LoggedModelStatus.READY)
    models.finalize_logged_model(made["delta"].model_id, LoggedModelStatus.FAILED)
    other = models.create_experiment("elsewhere")
    made["other"] = new_model(models, other, name="alpha")
    made["other_experiment"] = other
    return made


def names(page: Any) -> list[str]:
    return [m.name for m in page]


def test_search_is_scoped_to_experiments_newest_first(
    models: Any, exp: str, catalog: dict[str, Any]
) -> None:
    assert names(models.search_logged_models([exp])) == ["delta", "gamma", "beta", "alpha"]
    both = models.search_logged_models([exp, catalog["other_experiment"]])
    assert len(both) == 5
    assert names(models.search_logged_models([catalog["other_experiment"]])) == ["alpha"]
    assert models.search_logged_models([]) == []
    assert models.search_logged_models(["424242"]) == []
    found = models.search_logged_models([exp], filter_string="name = 'beta'")
    assert found == [models.get_logged_model(catalog["beta"].model_id)]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'alpha'", ["alpha"]),
        ("attributes.name != 'alpha'", ["delta", "gamma", "beta"]),
        ("name LIKE '%a'", ["delta", "gamma", "beta", "alpha"]),
        ("name LIKE 'a%'", ["alpha"]),
        ("name IN ('beta', 'gamma')", ["gamma", "beta"]),
        ("name NOT IN ('beta', 'gamma')", ["delta", "alpha"]),
        ("status = 'READY'", ["beta"]),
        ("status = 'LOGGED_MODEL_UPLOAD_FAILED'", ["delta"]),
        ("status IN ('PENDING', 'READY')", ["gamma", "beta", "alpha"]),
        ("tags.team = 'ml'", ["beta", "alpha"]),
        ("tags.team ILIKE 'data'", ["delta", "gamma"]),
        ("tags.team LIKE 'd%'", ["gamma"]),
        ("params.alpha = '0.3'", ["gamma"]),
        ("params.alpha IN ('0.1', '0.4') and tags.team = 'ml'", ["alpha"]),
        ("metrics.acc >= 0.8", ["delta", "beta"]),
        ("metrics.acc < 0.25", ["alpha"]),
        ("metrics.missing > 0", []),
        ("tags.nothing = 'x'", []),
        ("creation_timestamp > 0", ["delta", "gamma", "beta", "alpha"]),
        ("creation_time < 1000", []),
        ("creation_timestamp < 1e30", ["delta", "gamma", "beta", "alpha"]),
        (
            "creation_timestamp > -1e30 and creation_timestamp != 0.5",
            ["delta", "gamma", "beta", "alpha"],
        ),
        ("last_updated_timestamp = 12.5", []),
        ("model_type = 'x'", []),
    ],
)
def test_search_filters(
    models: Any, exp: str, catalog: dict[str, Any], filter_string: str, expected: list[str]
) -> None:
    assert names(models.search_logged_models([exp], filter_string=filter_string)) == expected


def test_search_filters_on_ids_and_runs(models: Any, exp: str, catalog: dict[str, Any]) -> None:
    beta = catalog["beta"]
    by_id = models.search_logged_models([exp], filter_string=f"model_id = '{beta.model_id}'")
    assert ids(by_id) == [beta.model_id]
    by_run = models.search_logged_models(
        [exp], filter_string=f"source_run_id = '{beta.source_run_id}' and name = 'beta'"
    )
    assert ids(by_run) == [beta.model_id]
    by_experiment = models.search_logged_models(
        [exp, catalog["other_experiment"]], filter_string=f"experiment_id = '{exp}'"
    )
    assert len(by_experiment) == 4


def test_search_on_datasets(models: Any, exp: str, catalog: dict[str, Any]) -> None:
    on_eval = [{"dataset_name": "eval"}]
    assert names(models.search_logged_models([exp], datasets=on_eval)) == [
        "delta",
        "beta",
        "alpha",
    ]
    # acc >= 0.3 holds for every model at step 1, but only delta and beta on "eval"
    assert len(models.search_logged_models([exp], filter_string="metrics.acc >= 0.3")) == 3
    got = models.search_logged_models([exp], filter_string="metrics.acc >= 0.75", datasets=on_eval)
    assert names(got) == ["delta", "beta"]
    wrong_digest = [{"dataset_name": "eval", "dataset_digest": "nope"}]
    assert models.search_logged_models([exp], datasets=wrong_digest) == []
    with pytest.raises(InvalidParameterValue, match="dataset_name"):
        models.search_logged_models([exp], datasets=[{"dataset_digest": "e1"}])


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ([{"field_name": "name"}], ["alpha", "beta", "delta", "gamma"]),
        ([{"field_name": "name", "ascending": False}], ["gamma", "delta", "beta", "alpha"]),
        (["name DESC"], ["gamma", "delta", "beta", "alpha"]),
        ([{"field_name": "creation_timestamp"}], ["alpha", "beta", "gamma", "delta"]),
        (
            [{"field_name": "creation_time", "ascending": False}],
            ["delta", "gamma", "beta", "alpha"],
        ),
        # the latest point (step 2) counts; a model without the metric comes last
        ([{"field_name": "metrics.acc"}], ["alpha", "delta", "beta", "gamma"]),
        ([{"field_name": "metrics.acc", "ascending": False}], ["beta", "delta", "alpha", "gamma"]),
        (
            [{"field_name": "metrics.acc", "ascending": False, "dataset_name": "other"}],
            ["delta", "gamma", "beta", "alpha"],
        ),
        ([{"field_name": "status"}, {"field_name": "name"}], ["delta", "alpha", "gamma", "beta"]),
    ],
)
def test_search_order(
    models: Any, exp: str, catalog: dict[str, Any], order_by: Any, expected: list[str]
) -> None:
    assert names(models.search_logged_models([exp], order_by=order_by)) == expected


def test_search_pages(models: Any, exp: str, catalog: dict[str, Any]) -> None:
    order = [{"field_name": "name"}]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = models.search_logged_models([exp], max_results=3, order_by=order, page_token=token)
        seen += names(page)
        pages += 1
        token = page.token
        if not token:
            break
    assert (seen, pages) == (["alpha", "beta", "delta", "gamma"], 2)
    first = models.search_logged_models([exp], max_results=2, order_by=order)
    with pytest.raises(InvalidParameterValue, match="another search"):
        models.search_logged_models([exp], max_results=2, page_token=first.token)
    with pytest.raises(InvalidParameterValue, match="page token"):
        models.search_logged_models([exp], page_token="not-a-token")
    assert len(models.search_logged_models([exp], max_results=4)) == 4
    assert models.search_logged_models([exp], max_results=4).token is None


@pytest.mark.parametrize(
    "bad",
    [
        {"filter_string": "name = 'a' OR name = 'b'"},
        {"filter_string": "metrics.acc = 'high'"},
        {"filter_string": "tags.team > 3"},
        {"filter_string": "name > 'a'"},
        {"filter_string": "unknown = 'x'"},
        {"filter_string": "datasets.name = 'x'"},
        {"filter_string": "creation_timestamp LIKE '1%'"},
        {"order_by": [{"field_name": "params.alpha"}]},
        {"order_by": [{"field_name": "bogus"}]},
        {"order_by": [{"field_name": "name", "dataset_name": "eval"}]},
        {"order_by": [{"ascending": True}]},
        {"order_by": ["name sideways"]},
        {"max_results": 0},
        {"max_results": 50001},
    ],
)
def test_search_refuses_bad_requests(
    models: Any, exp: str, catalog: dict[str, Any], bad: dict[str, Any]
) -> None:
    with pytest.raises(InvalidParameterValue):
        models.search_logged_models([exp], **bad)


def test_filter_grammar_normalises_names() -> None:
    parsed = parse_logged_model_filter(
        "attr.creation_time > 5 and status IN ('ready', 'LOGGED_MODEL_PENDING') "
        "and tags.`a b` = 'x'"
    )
    assert [(c.kind, c.key, c.op, c.value) for c in parsed] == [
        ("attribute", "creation_timestamp", ">", 5.0),
        ("attribute", "status", "IN", ("READY", "PENDING")),
        ("tag", "a b", "=", "x"),
    ]
    assert parse_logged_model_filter("  ") == []


# -- the migration --------------------------------------------------------------------------------

LOGGED_MODEL_TABLES = {
    "logged_models",
    "logged_model_params",
    "logged_model_tags",
    "logged_model_metrics",
    "logged_model_runs",
}


@pytest.fixture
def engine_for(db_uri: str) -> Iterator[Any]:
    url = make_url(db_uri)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("db_uri", ["sqlite", "postgresql"], indirect=True)
def test_a_database_at_0001_gains_the_tables_and_keeps_its_data(
    db_uri: str, engine_for: Any, tmp_path: Path
) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(sql_engine.__file__).parent / "migrations"))
    with engine_for.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            text(
                "INSERT INTO experiments (experiment_id, name, artifact_location, "
                "lifecycle_stage, creation_time, last_update_time) "
                "VALUES (7, 'old', '/old/7', 'active', 1, 1)"
            )
        )
    assert not LOGGED_MODEL_TABLES & set(inspect(engine_for).get_table_names())
    store = SqlTrackingStore(db_uri, str(tmp_path / "artifacts"))
    try:
        assert set(inspect(engine_for).get_table_names()) >= LOGGED_MODEL_TABLES
        with engine_for.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == sql_engine.SCHEMA_HEAD
        assert store.get_experiment("7").name == "old"
        model = store.create_logged_model("7", name="after")
        assert model.artifact_location == f"/old/7/models/{model.model_id}/artifacts"
    finally:
        store.close()
