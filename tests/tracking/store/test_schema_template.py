"""New SQLite databases filled from the schema template: the same schema as the migrations give,
every store working on it, a bad or unreachable cache falling back to the migrations, racing
processes, and the switch that turns it off."""

from __future__ import annotations

import multiprocessing
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from slipway.entities import Metric, ViewType
from slipway.entities.pipelines import PipelineRun, PipelineRunStatus
from slipway.pipelines.store.sql import SqlPipelineStore
from slipway.registry.store.sql import SqlRegistryStore
from slipway.tracking.store.sql import SqlTrackingStore, schema_template
from slipway.tracking.store.sql import engine as sql_engine
from slipway.tuning.store.sql import SqlTuningStore


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own, with the template switched on."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(schema_template.CACHE_DIR_ENV, str(folder))
    monkeypatch.delenv(schema_template.TEMPLATE_ENV, raising=False)
    return folder


def _schema_of(conn: sqlite3.Connection) -> dict[str, Any]:
    """Everything about a database's schema that a migration decides, with the SQL's
    whitespace normalised."""
    objects = [
        (kind, name, table, re.sub(r"\s+", " ", sql).strip() if sql else sql)
        for kind, name, table, sql in conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        )
    ]
    pragmas = {
        p: conn.execute(f"PRAGMA {p}").fetchone()[0]
        for p in ("user_version", "application_id", "page_size", "encoding", "auto_vacuum")
    }
    return {
        "objects": objects,
        "revision": conn.execute("SELECT version_num FROM alembic_version").fetchall(),
        **pragmas,
    }


def _schema(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        return {**_schema_of(conn), "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()}
    finally:
        conn.close()


def _open(path: Path) -> None:
    SqlTrackingStore(f"sqlite:///{path}", str(path.parent / "artifacts")).close()


@pytest.fixture
def migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The schema of a database that the migrations built (the template switched off)."""
    with monkeypatch.context() as patch:
        patch.setenv(schema_template.TEMPLATE_ENV, "0")
        _open(tmp_path / "migrated.db")
    return _schema(tmp_path / "migrated.db")


def _templates(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def _forbid_migrations(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_upgrade(*args: object, **kwargs: object) -> None:
        raise AssertionError("the migrations ran although the template was there")

    monkeypatch.setattr(command, "upgrade", no_upgrade)


def test_template_copy_has_the_migrated_schema(
    cache: Path, migrated: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert migrated["revision"] == [(sql_engine.SCHEMA_HEAD,)]
    assert migrated["journal_mode"] == ("wal",)
    assert len(migrated["objects"]) > 20
    assert _templates(cache) == []

    _open(tmp_path / "first.db")  # builds the template, then copies it
    assert _templates(cache) == [schema_template.template_path().name]
    assert _schema(tmp_path / "first.db") == migrated

    _forbid_migrations(monkeypatch)  # from here on only the template can give the schema
    _open(tmp_path / "second.db")
    assert _schema(tmp_path / "second.db") == migrated
    (tmp_path / "empty.db").touch()  # an existing, empty file is a new database too
    _open(tmp_path / "empty.db")
    assert _schema(tmp_path / "empty.db") == migrated

    memory = SqlTrackingStore("sqlite://", str(tmp_path / "artifacts"))
    try:
        with memory.engine.connect() as conn:
            copied = _schema_of(conn.connection.driver_connection)  # type: ignore[arg-type]
        assert copied == {k: v for k, v in migrated.items() if k != "journal_mode"}
        assert memory.get_experiment("0").name == "Default"
    finally:
        memory.close()


def test_every_store_works_on_a_copied_database(cache: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    _open(tmp_path / "warm.db")  # the template exists before this store opens
    tracking = SqlTrackingStore(uri, str(tmp_path / "artifacts"))
    try:
        eid = tracking.create_experiment("exp")
        run = tracking.create_run(eid, run_name="r")
        run_id = run.info.run_id
        tracking.log_metric(run_id, Metric("loss", 0.5, 1, 3))
        assert [m.value for m in tracking.get_metric_history(run_id, "loss")] == [0.5]
        names = {e.name for e in tracking.search_experiments(view_type=ViewType.ALL)}
        assert names == {"Default", "exp"}

        registry = SqlRegistryStore(tracking)
        registry.create_registered_model("iris")
        version = registry.create_model_version("iris", f"{run.info.artifact_uri}/model", run_id)
        assert (version.name, version.version) == ("iris", "1")

        pipelines = SqlPipelineStore(tracking)
        created = pipelines.create_pipeline_run(
            PipelineRun(run_id, eid, "train", PipelineRunStatus.RUNNING, 1_000)
        )
        assert pipelines.get_pipeline_run(run_id) == created

        tuning = SqlTuningStore(tracking)
        study = tuning.create_study("s", run_id, eid, {"direction": "minimize"})
        assert tuning.get_study("s") == study
        assert tuning.append_journal("s", ['{"n": 0}'])[0] == 1
    finally:
        tracking.close()


@pytest.mark.parametrize(
    "damage", ["truncated", "garbage", "empty", "older revision", "another user's"]
)
def test_a_bad_template_is_rebuilt(
    damage: str, cache: Path, migrated: dict[str, Any], tmp_path: Path
) -> None:
    if damage == "another user's" and os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    _open(tmp_path / "warm.db")
    template = schema_template.template_path()
    good = template.read_bytes()
    if damage == "truncated":
        template.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        template.write_bytes(b"not a database at all" * 500)
    elif damage == "empty":
        template.write_bytes(b"")
    elif damage == "another user's":
        os.chown(template, os.getuid() + 1, -1)
    else:
        conn = sqlite3.connect(template)
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
        conn.commit()
        conn.close()

    _open(tmp_path / "after.db")
    assert _schema(tmp_path / "after.db") == migrated
    assert template.stat().st_uid == os.getuid()
    conn = sqlite3.connect(template)
    try:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        assert _schema_of(conn)["revision"] == [(sql_engine.SCHEMA_HEAD,)]
    finally:
        conn.close()
    assert _templates(cache) == [template.name]  # rebuilt in place, no leftovers


def test_an_unusable_cache_folder_falls_back_to_the_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated: dict[str, Any]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder's parent should be")
    monkeypatch.setenv(schema_template.CACHE_DIR_ENV, str(blocker / "cache"))
    monkeypatch.delenv(schema_template.TEMPLATE_ENV, raising=False)
    _open(tmp_path / "store.db")
    assert _schema(tmp_path / "store.db") == migrated
    assert blocker.read_text().startswith("a file")


def _open_two(own: str, shared: str, root: str, barrier: Any, results: Any) -> None:
    """In a fresh process: wait for the others, then open a database of its own (the template
    builds race) and the shared one (the first opens race)."""
    try:
        barrier.wait(timeout=60)
        names = []
        for uri in (own, shared):
            store = SqlTrackingStore(uri, root)
            names.append(store.get_experiment("0").name)
            store.close()
        results.put(("ok", names))
    except BaseException as exc:  # report anything, the parent asserts
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_processes_opening_new_databases_at_once(
    cache: Path, migrated: dict[str, Any], tmp_path: Path
) -> None:
    n = 4
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    shared = tmp_path / "shared.db"
    root = str(tmp_path / "artifacts")
    procs = [
        ctx.Process(
            target=_open_two,
            args=(
                f"sqlite:///{tmp_path / f'own{i}.db'}",
                f"sqlite:///{shared}",
                root,
                barrier,
                results,
            ),
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
    assert outcomes == [("ok", ["Default", "Default"])] * n, outcomes
    assert [p.exitcode for p in procs] == [0] * n

    for path in [shared, *(tmp_path / f"own{i}.db" for i in range(n))]:
        assert _schema(path) == migrated, path
    store = SqlTrackingStore(f"sqlite:///{shared}", root)
    try:
        everything = store.search_experiments(view_type=ViewType.ALL)
        assert [(e.experiment_id, e.name) for e in everything] == [("0", "Default")]
    finally:
        store.close()
    assert _templates(cache) == [schema_template.template_path().name]


@pytest.mark.parametrize("value", ["0", "off"])
def test_switched_off_runs_the_migrations(
    value: str,
    cache: Path,
    migrated: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(schema_template.TEMPLATE_ENV, value)
    _open(tmp_path / "store.db")
    assert _schema(tmp_path / "store.db") == migrated
    assert not cache.exists()


@pytest.mark.parametrize("db_uri", ["postgresql"], indirect=True)
def test_other_databases_run_the_migrations(db_uri: str, cache: Path, tmp_path: Path) -> None:
    store = SqlTrackingStore(db_uri, str(tmp_path / "artifacts"))
    try:
        assert store.get_experiment("0").name == "Default"
    finally:
        store.close()
    assert not cache.exists()
