"""New SQLite databases copied from a per-machine template instead of replaying every migration.

Running the whole Alembic chain on each new SQLite database costs a noticeable part of a fresh
process's start (importing Alembic, then every migration's batch table rebuilds). The schema is
therefore built once per machine by the very same migrations, into a template database in the
cache folder, and each new database receives a page-for-page copy of it through SQLite's
backup API. The copy is the migrated schema itself, not a re-creation from the ORM metadata,
so the two cannot drift apart.

The template's name is a digest of every file under ``migrations/`` and of the SQLite, Alembic
and SQLAlchemy versions: editing a migration, or upgrading a library that shapes the DDL, makes
a new template. It is built in a temporary file and renamed into place, so processes racing
to build it each end with a complete one. Anything wrong with the template (no cache folder,
a corrupt or foreign file) makes the caller run the migrations as before: the cache may make an
open faster, never make it fail. ``SLIPWAY_SCHEMA_TEMPLATE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

TEMPLATE_ENV = "SLIPWAY_SCHEMA_TEMPLATE"
"""Set to ``0`` (or ``false``, ``no``, ``off``) to run the migrations on every new database."""

CACHE_DIR_ENV = "SLIPWAY_CACHE_DIR"
"""Slipway's per-machine cache folder; else ``$XDG_CACHE_HOME/slipway``, else
``~/.cache/slipway``."""

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_log = logging.getLogger(__name__)


class TemplateUnusable(Exception):
    """The template file is not the migrated schema this code expects."""


def enabled() -> bool:
    """Whether new SQLite databases are filled from the template."""
    value = os.environ.get(TEMPLATE_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """The folder the template lives in (see :data:`CACHE_DIR_ENV`)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(os.path.abspath(os.path.expanduser(configured)))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "slipway"


@functools.cache
def schema_digest() -> str:
    """A digest of what the migrated schema depends on: every migration file's path and bytes
    (compiled caches excluded), and the versions of SQLite, Alembic and SQLAlchemy."""
    import importlib.util

    import sqlalchemy

    digest = hashlib.sha256(b"slipway-sqlite-schema-1\n")
    for path in sorted(_MIGRATIONS_DIR.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        digest.update(path.relative_to(_MIGRATIONS_DIR).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    # Alembic's version, without importing it (the import alone costs more than the copy):
    # its package's __init__ declares the version.
    spec = importlib.util.find_spec("alembic")
    if spec is not None and spec.origin is not None:
        digest.update(hashlib.sha256(Path(spec.origin).read_bytes()).digest())
    for version in (sqlite3.sqlite_version, sqlalchemy.__version__):
        digest.update(version.encode() + b"\0")
    return digest.hexdigest()


def template_path() -> Path:
    """Where the template for the current migrations and libraries is (or will be) kept."""
    return cache_dir() / f"sqlite-schema-{schema_digest()[:32]}.db"


def fill_new_database(engine: Engine, head: str, upgrade: Callable[[Engine], None]) -> bool:
    """Copy the template into ``engine``'s database if that database is new (SQLite, with no
    tables or other objects at all). Returns False when it did nothing, for whatever reason:
    the caller then runs the migrations. The caller holds the migration lock.

    ``head`` is the revision the template must carry; ``upgrade`` migrates an engine's
    database to it, and builds the template when there is none yet.
    """
    if engine.dialect.name != "sqlite" or not enabled():
        return False
    try:
        raw = engine.raw_connection()
        try:
            target = raw.driver_connection
            if not isinstance(target, sqlite3.Connection) or _has_objects(target):
                return False
            source = _open_template(template_path(), head, upgrade)
            try:
                # Atomic on the target: it holds the whole template, or stays empty. A target
                # in WAL mode stays in WAL mode, as its own engine configured it.
                source.backup(target, progress=_stop_when_locked)
            finally:
                source.close()
        finally:
            raw.close()
    except Exception as exc:  # the cache is an optimisation: the migrations still work
        _log.debug("Schema template not used, running the migrations: %s", exc)
        return False
    return True


def _stop_when_locked(status: int, remaining: int, total: int) -> None:
    """Give up (and migrate instead, which reports the lock) when the target stayed locked for
    its whole busy timeout: Python's backup would otherwise retry for ever."""
    if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        raise sqlite3.OperationalError("the new database is locked by another connection")


def _has_objects(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])


def _open_template(path: Path, head: str, upgrade: Callable[[Engine], None]) -> sqlite3.Connection:
    """The template, opened read-only and checked; built first when missing, rebuilt when it
    fails the check."""
    if path.is_file():
        try:
            return _open_checked(path, head)
        except (sqlite3.DatabaseError, TemplateUnusable) as exc:
            _log.debug("Rebuilding the schema template %s: %s", path, exc)
    build_template(path, upgrade)
    return _open_checked(path, head)


def _open_checked(path: Path, head: str) -> sqlite3.Connection:
    if path.stat().st_uid != os.getuid():  # another user's file: it could carry anything
        raise TemplateUnusable("owned by another user")
    conn = sqlite3.connect(
        path.as_uri() + "?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise TemplateUnusable(f"integrity check failed: {check[:3]}")
        revisions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        if revisions != [(head,)]:
            raise TemplateUnusable(f"revision {revisions}, expected {head}")
    except BaseException:
        conn.close()
        raise
    return conn


def build_template(path: Path, upgrade: Callable[[Engine], None]) -> None:
    """Run the migrations on a new database through the same engine set-up as a store's, and
    move the result to ``path`` in one rename (a concurrent builder's rename only replaces one
    complete template with another)."""
    from slipway.tracking.store.sql.engine import create_sql_engine

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sqlite-schema-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        engine = create_sql_engine(f"sqlite:///{tmp}")
        try:
            upgrade(engine)
        finally:
            engine.dispose()  # the last connection checkpoints and removes the WAL
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            # One self-contained file that can be read without a -wal or -shm beside it.
            conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            conn.close()
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
