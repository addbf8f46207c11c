"""``SqlTuningStore``: studies and their journals in the tracking store's SQL database.

Why not Optuna's own ``RDBStorage`` in the same database: it keeps its schema version in an
``alembic_version`` table, the very table (and name) the tracking store's migrations use, so one
would overwrite or refuse the other's revision. A journal over tables of our own, created by our
migration 0006, keeps one schema history and lets the REST backend serve the same journal.

Journal appends to a study take turns on the study row: the transaction first bumps
``log_count`` (an UPDATE, which holds the row's lock until commit on PostgreSQL and MySQL; on
SQLite every write transaction is exclusive), then inserts the entries under the numbers it
reserved. A later append waits for the earlier one to commit, so a reader, whatever its
moment, sees entries 0..n-1 with no gap: Optuna's replay reads "from the number I have seen"
and must never skip one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from slipway.exceptions import ResourceAlreadyExists, ResourceConflict, ResourceDoesNotExist
from slipway.tracking.store.sql import engine as sql_engine
from slipway.tracking.store.sql.store import SqlTrackingStore
from slipway.tuning.store import validation as check
from slipway.tuning.store.base import AbstractTuningStore, StudyRecord
from slipway.tuning.store.sql import tables as t

T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


def _record(row: Row[Any]) -> StudyRecord:
    return StudyRecord(
        name=row.name,
        run_id=row.run_id,
        experiment_id=row.experiment_id,
        spec=check.load_spec(row.spec),
        created_time=int(row.created_time),
        log_count=int(row.log_count),
        lease_owner=row.lease_owner,
        lease_expires=int(row.lease_expires) if row.lease_expires is not None else None,
    )


def _not_found(name: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Study '{name}' not found")


class SqlTuningStore(AbstractTuningStore):
    """The tuning store on SQLAlchemy (SQLite, PostgreSQL, MySQL).

    Args:
        tracking: the tracking store whose database (and engine) the tuning tables share;
            opening it has brought the schema, tuning tables included, up to date. Closing
            this store leaves the tracking store open: it owns the engine.
    """

    def __init__(self, tracking: SqlTrackingStore) -> None:
        self.tracking = tracking
        self.engine = tracking.engine
        self._ids: dict[str, str] = {}
        """Study name to study id: a study's id never changes, and every journal call needs
        it (one query fewer per call; a deleted study is noticed and forgotten)."""

    def __repr__(self) -> str:
        return f"SqlTuningStore({self.tracking!r})"

    def _read(self) -> Connection:
        sql_engine.pid_guard(self.engine)
        return self.engine.connect()

    def _write(self, work: Callable[[Connection], T]) -> T:
        sql_engine.pid_guard(self.engine)
        return sql_engine.run_write(self.engine, work)

    @staticmethod
    def _row(conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(select(t.studies).where(t.studies.c.name == name)).first()
        if row is None:
            raise _not_found(name)
        return row

    def _study_id(self, conn: Connection, name: str) -> str:
        study_id = self._ids.get(name)
        if study_id is None:
            study_id = self._ids[name] = str(self._row(conn, name).study_id)
        return study_id

    # -- studies ------------------------------------------------------------------------------

    def create_study(
        self, name: str, run_id: str, experiment_id: str, spec: dict[str, Any]
    ) -> StudyRecord:
        check.study_name(name)
        text = check.spec_text(spec)
        values = {
            "study_id": uuid.uuid4().hex,
            "name": name,
            "run_id": str(run_id),
            "experiment_id": str(experiment_id),
            "spec": text,
            "created_time": now_ms(),
            "log_count": 0,
        }

        def work(conn: Connection) -> StudyRecord:
            if conn.execute(select(t.studies.c.name).where(t.studies.c.name == name)).first():
                raise ResourceAlreadyExists(f"Study '{name}' already exists")
            conn.execute(insert(t.studies).values(**values))
            return _record(self._row(conn, name))

        try:
            return self._write(work)
        except IntegrityError:  # a concurrent create of the same name won
            raise ResourceAlreadyExists(f"Study '{name}' already exists") from None

    def get_study(self, name: str) -> StudyRecord:
        check.study_name(name)
        with self._read() as conn:
            return _record(self._row(conn, name))

    def list_studies(self) -> list[StudyRecord]:
        query = select(t.studies).order_by(t.studies.c.created_time.desc(), t.studies.c.name)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def delete_study(self, name: str) -> None:
        """Forget the study and its journal (its runs stay)."""
        check.study_name(name)

        def work(conn: Connection) -> None:
            row = self._row(conn, name)
            conn.execute(delete(t.journal).where(t.journal.c.study_id == row.study_id))
            conn.execute(delete(t.studies).where(t.studies.c.study_id == row.study_id))

        self._ids.pop(name, None)
        self._write(work)

    # -- the journal ----------------------------------------------------------------------------

    def read_journal(self, name: str, log_number_from: int = 0) -> list[str]:
        check.study_name(name)
        start = check.log_number(log_number_from)
        with self._read() as conn:
            study_id = self._study_id(conn, name)
            entries = list(conn.execute(self._entries(study_id, start)).scalars())
            if not entries and start == 0:
                self._check_exists(conn, name)
            return entries

    @staticmethod
    def _entries(study_id: str, start: int) -> Any:
        return (
            select(t.journal.c.entry)
            .where(t.journal.c.study_id == study_id, t.journal.c.seq >= start)
            .order_by(t.journal.c.seq)
        )

    def _check_exists(self, conn: Connection, name: str) -> None:
        """Nothing was found: make sure the cached id is still the study's (it may have been
        deleted, or deleted and created again, since)."""
        self._ids.pop(name, None)
        self._study_id(conn, name)

    def append_journal(
        self, name: str, entries: list[str], log_number_from: int | None = None
    ) -> tuple[int, list[str]]:
        check.study_name(name)
        check.journal_entries(entries)
        start = None if log_number_from is None else check.log_number(log_number_from)

        def work(conn: Connection) -> tuple[int, list[str]]:
            study_id = self._study_id(conn, name)
            # The UPDATE takes the row's lock until commit: appends to this study take turns.
            bump = (
                update(t.studies)
                .where(t.studies.c.study_id == study_id)
                .values(log_count=t.studies.c.log_count + len(entries))
            )
            if conn.dialect.update_returning:
                end = conn.execute(bump.returning(t.studies.c.log_count)).scalar()
            else:
                conn.execute(bump)
                end = conn.execute(
                    select(t.studies.c.log_count).where(t.studies.c.study_id == study_id)
                ).scalar()
            if end is None:  # deleted since its id was cached
                self._ids.pop(name, None)
                raise _not_found(name)
            first = int(end) - len(entries)
            conn.execute(
                insert(t.journal),
                [
                    {"study_id": study_id, "seq": first + i, "entry": entry}
                    for i, entry in enumerate(entries)
                ],
            )
            if start is None:
                return int(end), []
            return int(end), list(conn.execute(self._entries(study_id, start)).scalars())

        return self._write(work)

    # -- leases ---------------------------------------------------------------------------------

    def claim_study(
        self, name: str, owner: str, ttl_ms: int, stale_owner: str | None = None
    ) -> StudyRecord:
        check.study_name(name)
        check.owner(owner)
        check.ttl(ttl_ms)

        def work(conn: Connection) -> StudyRecord:
            now = now_ms()
            free = [
                t.studies.c.lease_owner.is_(None),
                t.studies.c.lease_owner == owner,
                t.studies.c.lease_expires < now,
            ]
            if stale_owner:
                free.append(t.studies.c.lease_owner == stale_owner)
            claimed = conn.execute(
                update(t.studies)
                .where(t.studies.c.name == name, or_(*free))
                .values(lease_owner=owner, lease_expires=now + ttl_ms)
            ).rowcount
            row = self._row(conn, name)
            if not claimed:
                left = max(0, int(row.lease_expires or 0) - now) / 1000
                raise ResourceConflict(
                    f"Study '{name}' is being run by {row.lease_owner} (its claim runs out in "
                    f"{left:.0f} s unless renewed); stop that process or wait for it"
                )
            return _record(row)

        return self._write(work)

    def release_study(self, name: str, owner: str) -> None:
        check.study_name(name)
        check.owner(owner)
        self._write(
            lambda conn: conn.execute(
                update(t.studies)
                .where(t.studies.c.name == name, t.studies.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires=None)
            )
        )


__all__ = ["SqlTuningStore"]
