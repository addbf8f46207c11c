"""Database engines for the SQL stores, and schema migrations applied once under a lock.

SQLite is opened in WAL mode with a long busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE`` while holding a per-database lock in this process: threads take turns in
Python (no busy-wait in SQLite), and processes wait on SQLite's write lock at the start of a
transaction, where waiting is safe, rather than failing on a lock upgrade half way through.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable
from slipway.tracking.store.sql import schema_template

SCHEMA_HEAD = "0006"
"""The newest migration; a test checks that it matches the Alembic scripts."""

_SQLITE_BUSY_TIMEOUT_MS = 120_000
_LOCK_RETRIES = 5
T = TypeVar("T")
_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_ENGINE_PIDS: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
_MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sqlite_path(uri: str) -> str | None:
    """The file path of a ``sqlite:///`` URI; None for other databases and in-memory SQLite."""
    if not uri.startswith("sqlite:"):
        return None
    path = uri.split(":///", 1)[1] if ":///" in uri else ""
    path = path.split("?", 1)[0]
    return None if path in ("", ":memory:") else path


def safe_uri(uri: str) -> str:
    """``uri`` with any password hidden, for messages."""
    try:
        return make_url(uri).render_as_string(hide_password=True)
    except Exception:
        return uri.split("@", 1)[-1] if "@" in uri else uri


def create_sql_engine(uri: str) -> Engine:
    """An engine for ``uri`` (``sqlite:///``, ``postgresql://``, ``mysql://``)."""
    scheme = uri.split(":", 1)[0]
    if scheme.startswith("sqlite"):
        return _create_sqlite_engine(uri)
    if scheme in ("postgresql", "postgres"):
        uri = "postgresql+psycopg://" + uri.split("://", 1)[1]
    elif scheme == "mysql":
        uri = "mysql+pymysql://" + uri.split("://", 1)[1]
    elif not scheme.startswith(("postgresql+", "mysql+")):
        raise InvalidParameterValue(
            f"Unsupported database URI scheme {scheme!r}: use sqlite:///, postgresql:// or mysql://"
        )
    try:
        return create_engine(uri, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except ModuleNotFoundError as exc:
        extra = "postgres" if "postgresql" in uri else "mysql"
        raise InvalidParameterValue(
            f"The driver for {scheme} is not installed: pip install 'slipway[{extra}]'"
        ) from exc


def _create_sqlite_engine(uri: str) -> Engine:
    path = sqlite_path(uri)
    if path is None:
        engine = create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidParameterValue(
                f"Cannot create the folder for the tracking database {path!r}: {exc.strerror}"
            ) from exc
        engine = create_engine(
            uri,
            connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=8,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        if path is not None:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA case_sensitive_like = ON")  # LIKE is case-sensitive, as in MLflow
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("slipway_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _write_lock(engine: Engine) -> threading.RLock:
    key = str(engine.url)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.RLock()
        return lock


def run_write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work(conn)`` in one write transaction and return its result.

    On SQLite, writers in this process take turns on a lock and begin IMMEDIATE, so the only
    wait on another process happens at BEGIN (under SQLite's busy timeout). Should the database
    still be locked, the whole transaction is retried: it was rolled back, so nothing is
    written twice.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            return work(conn)
    with _write_lock(engine):
        for attempt in range(_LOCK_RETRIES):
            try:
                with (
                    engine.connect().execution_options(slipway_write=True) as conn,
                    conn.begin(),
                ):
                    return work(conn)
            except OperationalError as exc:
                if "database is locked" not in str(exc) or attempt == _LOCK_RETRIES - 1:
                    if "database is locked" in str(exc):
                        raise TemporarilyUnavailable(
                            "The SQLite database stayed locked by another process; try again"
                        ) from exc
                    raise
                time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Migrations


def current_revision(conn: Connection) -> str | None:
    try:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # no table yet: a new database
        conn.rollback()
        return None


def ensure_schema(engine: Engine) -> None:
    """Bring the database to :data:`SCHEMA_HEAD`, once, under a lock shared by every process.

    A new SQLite database receives a copy of the schema template (the same migrations, run
    once per machine: see :mod:`.schema_template`); any other database, or a template that
    cannot be used, gets the migrations themselves.
    """
    with engine.connect() as conn:
        if current_revision(conn) == SCHEMA_HEAD:
            return
    with _migration_lock(engine):
        with engine.connect() as conn:
            revision = current_revision(conn)
            if revision == SCHEMA_HEAD:
                return  # another process migrated while we waited
        if revision is None and schema_template.fill_new_database(engine, SCHEMA_HEAD, _upgrade):
            with engine.connect() as conn:
                if current_revision(conn) == SCHEMA_HEAD:
                    return
        _upgrade(engine)


def _upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    dialect = engine.dialect.name
    path = sqlite_path(str(engine.url))
    if dialect == "sqlite" and path is not None:
        with open(path + ".migrate-lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif dialect == "postgresql":
        key = int.from_bytes(hashlib.sha256(b"slipway-migrate").digest()[:7], "big")
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    elif dialect == "mysql":
        with engine.connect() as conn:
            conn.execute(text("SELECT GET_LOCK('slipway-migrate', 600)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT RELEASE_LOCK('slipway-migrate')"))
    else:
        yield


def pid_guard(engine: Engine) -> None:
    """Drop pooled connections inherited across ``fork``; the child opens its own."""
    pid = os.getpid()
    owner = _ENGINE_PIDS.get(engine)
    if owner != pid:
        if owner is not None:
            engine.dispose(close=False)
        _ENGINE_PIDS[engine] = pid
