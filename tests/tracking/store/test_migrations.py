"""Schema migrations: the head revision, first opening, reopening, and concurrent openers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from slipway.entities import Experiment, ViewType
from slipway.tracking.store.sql import SqlTrackingStore
from slipway.tracking.store.sql import engine as sql_engine

MIGRATIONS = Path(sql_engine.__file__).parent / "migrations"
TABLES = {
    "experiments",
    "experiment_tags",
    "runs",
    "params",
    "tags",
    "metrics",
    "latest_metrics",
    "datasets",
    "dataset_inputs",
    "input_tags",
    "alembic_version",
}
BACKENDS = ["sqlite", "postgresql"]


def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def _engine(uri: str):  # type: ignore[no-untyped-def]
    url = make_url(uri)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url)


def _version(uri: str) -> list[str]:
    engine = _engine(uri)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def _tables(uri: str) -> set[str]:
    engine = _engine(uri)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_schema_head_matches_the_scripts() -> None:
    script = _script()
    heads = script.get_heads()
    assert heads == [sql_engine.SCHEMA_HEAD], "update SCHEMA_HEAD with each new migration"
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None  # one linear history down to the base
    assert all(len(r.nextrev) <= 1 for r in revisions)


@pytest.mark.parametrize("db_uri", BACKENDS, indirect=True)
def test_new_database_gets_the_schema(db_uri: str, tmp_path: Path) -> None:
    assert _tables(db_uri) == set()
    store = SqlTrackingStore(db_uri, str(tmp_path / "artifacts"))
    try:
        assert _tables(db_uri) >= TABLES
        assert _version(db_uri) == [sql_engine.SCHEMA_HEAD]
        default = store.get_experiment(Experiment.DEFAULT_EXPERIMENT_ID)
        assert default.name == Experiment.DEFAULT_EXPERIMENT_NAME
    finally:
        store.close()


@pytest.mark.parametrize("db_uri", BACKENDS, indirect=True)
def test_reopening_does_not_migrate_again(
    db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = SqlTrackingStore(db_uri, str(tmp_path / "artifacts"))
    eid = first.create_experiment("kept")
    first.close()

    def no_upgrade(*args: object, **kwargs: object) -> None:
        raise AssertionError("migrations ran on an up-to-date database")

    monkeypatch.setattr(command, "upgrade", no_upgrade)
    again = SqlTrackingStore(db_uri, str(tmp_path / "artifacts"))
    try:
        assert again.get_experiment(eid).name == "kept"
        assert len(again.search_experiments(view_type=ViewType.ALL)) == 2
        assert _version(db_uri) == [sql_engine.SCHEMA_HEAD]
    finally:
        again.close()


@pytest.mark.parametrize("db_uri", BACKENDS, indirect=True)
def test_database_at_base_revision_is_migrated(db_uri: str, tmp_path: Path) -> None:
    # A database stamped at no revision yet: the version table exists but is empty.
    engine = _engine(db_uri)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    engine.dispose()
    store = SqlTrackingStore(db_uri, str(tmp_path / "artifacts"))
    try:
        assert _version(db_uri) == [sql_engine.SCHEMA_HEAD]
        assert _tables(db_uri) >= TABLES | {"unrelated"}
        eid = store.create_experiment("after-migration")
        assert store.get_experiment(eid).name == "after-migration"
    finally:
        store.close()


@pytest.mark.parametrize("db_uri", BACKENDS, indirect=True)
def test_database_at_older_revision_is_migrated(db_uri: str, tmp_path: Path) -> None:
    """A database that an older release migrated (the revision below head, or none at all
    while there is one migration) is brought up to head, keeping its data."""
    older = _script().get_revision(sql_engine.SCHEMA_HEAD).down_revision
    assert older is None or isinstance(older, str)
    engine = _engine(db_uri)
    if older is not None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, older)
            conn.execute(
                text(
                    "INSERT INTO experiments (experiment_id, name, artifact_location, "
                    "lifecycle_stage, creation_time, last_update_time) "
                    "VALUES (7, 'from-before', '/old', 'active', 1, 1)"
                )
            )
        assert _version(db_uri) == [older]
    engine.dispose()
    store = SqlTrackingStore(db_uri, str(tmp_path / "artifacts"))
    try:
        assert _version(db_uri) == [sql_engine.SCHEMA_HEAD]
        assert _tables(db_uri) >= TABLES
        if older is not None:
            assert store.get_experiment("7").name == "from-before"
        run = store.create_run("0", run_name="after-migration")
        assert store.get_run(run.info.run_id).info.run_name == "after-migration"
    finally:
        store.close()


def _open_store(uri: str, root: str, barrier: object, results: object) -> None:
    """In a fresh process: wait for the others, open the store, report what it sees."""
    try:
        barrier.wait(timeout=60)  # type: ignore[attr-defined]
        store = SqlTrackingStore(uri, root)
        default = store.get_experiment("0")
        store.close()
        results.put(("ok", default.name))  # type: ignore[attr-defined]
    except BaseException as exc:  # report anything, the parent asserts
        results.put(("error", f"{type(exc).__name__}: {exc}"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("db_uri", BACKENDS, indirect=True)
def test_concurrent_first_open(db_uri: str, tmp_path: Path) -> None:
    """Four processes open the same new database at once: one migrates, all succeed, and the
    Default experiment exists exactly once."""
    uri = db_uri
    root = str(tmp_path / "artifacts")
    ctx = multiprocessing.get_context("spawn")
    n = 4
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=_open_store, args=(uri, root, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * n
    assert outcomes == [("ok", "Default")] * n, outcomes

    store = SqlTrackingStore(uri, root)
    try:
        everything = store.search_experiments(view_type=ViewType.ALL)
        assert [(e.experiment_id, e.name) for e in everything] == [("0", "Default")]
    finally:
        store.close()
    assert _version(uri) == [sql_engine.SCHEMA_HEAD]
