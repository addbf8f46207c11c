"""Shared fixtures: stores on real SQLite files and a real PostgreSQL server.

PostgreSQL comes from ``SLIPWAY_TEST_POSTGRES_URI`` (default: the server on 127.0.0.1:5432,
database ``test``). When it cannot be reached the PostgreSQL tests fail; set
``SLIPWAY_TEST_SKIP_POSTGRES=1`` to skip them on a machine that has no server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from slipway.tracking import fluent
from slipway.tracking import uri as uris
from slipway.tracking.store.sql import SqlTrackingStore

POSTGRES_URI = os.environ.get(
    "SLIPWAY_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test session (and xdist worker), dropped at the end."""
    if os.environ.get("SLIPWAY_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("SLIPWAY_TEST_SKIP_POSTGRES=1: PostgreSQL tests skipped on request")
    admin_uri = make_url(POSTGRES_URI).set(drivername="postgresql+psycopg")
    name = f"slipway_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:6]}"
    try:
        admin = create_engine(admin_uri, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URI} is unreachable ({exc.__class__.__name__}: {exc}). "
            "Start it, point SLIPWAY_TEST_POSTGRES_URI at one, or set "
            "SLIPWAY_TEST_SKIP_POSTGRES=1 to skip these tests.",
            pytrace=False,
        )
    yield (
        admin_uri.set(database=name)
        .render_as_string(hide_password=False)
        .replace("postgresql+psycopg://", "postgresql://")
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_postgres(uri: str) -> None:
    engine = create_engine(make_url(uri).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def db_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URI for each backend in ``BACKENDS`` (parametrise indirectly,
    or use the ``store`` fixture, which is parametrised already)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    uri: str = request.getfixturevalue("postgres_database")
    _reset_postgres(uri)
    return uri


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlTrackingStore]:
    """A new SqlTrackingStore on an empty database, once per backend."""
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        uri = request.getfixturevalue("postgres_database")
        _reset_postgres(uri)
    s = SqlTrackingStore(uri, str(tmp_path / "artifacts"))
    yield s
    s.close()


@pytest.fixture
def tracking_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fluent API pointed at a fresh folder store, with no run or experiment left over."""
    folder = tmp_path / "tracking"
    monkeypatch.chdir(tmp_path)
    for var in (
        "SLIPWAY_TRACKING_URI",
        "SLIPWAY_EXPERIMENT_ID",
        "SLIPWAY_EXPERIMENT_NAME",
        "SLIPWAY_RUN_ID",
        "SLIPWAY_ARTIFACT_ROOT",
        "SLIPWAY_ASYNC_LOGGING",
    ):
        monkeypatch.delenv(var, raising=False)
    fluent.set_tracking_uri(str(folder))
    yield folder
    while fluent.active_run() is not None:
        fluent.end_run()
    fluent.set_tracking_uri(None)
    fluent.set_async_logging(True)
    with fluent._clients_lock:
        for client in fluent._clients.values():
            if client._async is not None:
                client._async.close()
        fluent._clients.clear()
    uris.clear_store_cache()
