"""Schedules: create, get (by id or name), list, update, delete, and the compare-and-set that
lets schedulers run side by side without starting a due run twice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, false, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from slipway.entities.pipelines import Schedule
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from slipway.pipelines.store.sql import base as b
from slipway.pipelines.store.sql import tables as t


def schedule_of(row: Mapping[Any, Any]) -> Schedule:
    return Schedule(
        schedule_id=row["schedule_id"],
        name=row["name"],
        source=row["source"],
        cron=row["cron"],
        parameters=b.load_json(row["parameters"]),
        experiment_id=row["experiment_id"],
        paused=bool(row["paused"]),
        created_time=row["created_time"],
        next_run_time=row["next_run_time"],
        last_run_time=row["last_run_time"],
        last_run_id=row["last_run_id"],
        user_id=row["user_id"],
    )


def _values(schedule: Schedule) -> dict[str, Any]:
    if not isinstance(schedule, Schedule):
        raise InvalidParameterValue(f"Expected a Schedule, got {type(schedule).__name__}")
    if not isinstance(schedule.paused, bool):
        raise InvalidParameterValue(f"'paused' must be true or false, got {schedule.paused!r}")
    return {
        "schedule_id": b.text(schedule.schedule_id, "schedule_id", t.ID_LENGTH),
        "name": b.text(schedule.name, "name", t.NAME_LENGTH),
        "source": b.text(schedule.source, "source", 1 << 16),
        "cron": b.text(schedule.cron, "cron", 256),
        "parameters": b.dump_json(schedule.parameters, "parameters"),
        "experiment_id": b.optional_text(schedule.experiment_id, "experiment_id", 32),
        "paused": schedule.paused,
        "created_time": b.integer(schedule.created_time, "created_time") or b.now_ms(),
        "next_run_time": b.optional_integer(schedule.next_run_time, "next_run_time"),
        "last_run_time": b.optional_integer(schedule.last_run_time, "last_run_time"),
        "last_run_id": b.optional_text(schedule.last_run_id, "last_run_id", t.ID_LENGTH),
        "user_id": b.optional_text(schedule.user_id, "user_id", 256),
    }


def _not_found(schedule_id: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Schedule '{schedule_id}' not found")


def _load(conn: Connection, schedule_id: str) -> Schedule:
    row = conn.execute(select(t.schedules).where(t.schedules.c.schedule_id == schedule_id)).first()
    if row is None:
        raise _not_found(schedule_id)
    return schedule_of(row._mapping)


def _taken(conn: Connection, schedule_id: str, name: str) -> ResourceAlreadyExists | None:
    c = t.schedules.c
    rows = conn.execute(
        select(c.schedule_id, c.name).where(or_(c.schedule_id == schedule_id, c.name == name))
    ).all()
    if any(row.schedule_id == schedule_id for row in rows):
        return ResourceAlreadyExists(f"Schedule '{schedule_id}' already exists")
    if rows:
        return ResourceAlreadyExists(f"A schedule named '{name}' already exists")
    return None


class SqlPipelineSchedules(b.SqlPipelineBase):
    def create_schedule(self, schedule: Schedule) -> Schedule:
        values = _values(schedule)
        schedule_id, name = values["schedule_id"], values["name"]

        def work(conn: Connection) -> Schedule:
            taken = _taken(conn, schedule_id, name)
            if taken is not None:
                raise taken
            conn.execute(insert(t.schedules).values(**values))
            return _load(conn, schedule_id)

        try:
            return self._write(work)
        except IntegrityError:  # created by another writer since the check
            with self._read() as conn:
                taken = _taken(conn, schedule_id, name)
            raise (
                taken or ResourceAlreadyExists(f"Schedule '{schedule_id}' already exists")
            ) from None

    def get_schedule(self, schedule_id: str) -> Schedule:
        b.identifier(schedule_id, "schedule id")
        c = t.schedules.c
        with self._read() as conn:
            row = conn.execute(select(t.schedules).where(c.schedule_id == schedule_id)).first()
            if row is None:
                row = conn.execute(select(t.schedules).where(c.name == schedule_id)).first()
        if row is None:
            raise _not_found(schedule_id)
        return schedule_of(row._mapping)

    def list_schedules(self) -> list[Schedule]:
        with self._read() as conn:
            rows = conn.execute(select(t.schedules).order_by(t.schedules.c.name)).all()
        return [schedule_of(row._mapping) for row in rows]

    def update_schedule(
        self,
        schedule_id: str,
        *,
        paused: bool | None = None,
        next_run_time: int | None = None,
        last_run_time: int | None = None,
        last_run_id: str | None = None,
    ) -> Schedule:
        b.identifier(schedule_id, "schedule id")
        values: dict[str, Any] = {}
        if paused is not None:
            if not isinstance(paused, bool):
                raise InvalidParameterValue(f"'paused' must be true or false, got {paused!r}")
            values["paused"] = paused
        if next_run_time is not None:
            values["next_run_time"] = b.integer(next_run_time, "next_run_time")
        if last_run_time is not None:
            values["last_run_time"] = b.integer(last_run_time, "last_run_time")
        if last_run_id is not None:
            values["last_run_id"] = b.optional_text(last_run_id, "last_run_id", t.ID_LENGTH)

        def work(conn: Connection) -> Schedule:
            if values:
                conn.execute(
                    update(t.schedules)
                    .where(t.schedules.c.schedule_id == schedule_id)
                    .values(**values)
                )
            return _load(conn, schedule_id)

        return self._write(work)

    def claim_schedule_run(self, schedule_id: str, due_time: int, next_run_time: int) -> bool:
        """One conditional UPDATE: of two schedulers claiming the same due time, the database
        lets exactly one match the row (the other sees the new ``next_run_time``)."""
        b.identifier(schedule_id, "schedule id")
        due = b.integer(due_time, "due_time")
        following = b.integer(next_run_time, "next_run_time")
        c = t.schedules.c

        def work(conn: Connection) -> bool:
            claimed = conn.execute(
                update(t.schedules)
                .where(c.schedule_id == schedule_id, c.next_run_time == due, c.paused == false())
                .values(next_run_time=following)
            )
            if claimed.rowcount == 1:
                return True
            _load(conn, schedule_id)  # an unknown schedule says so
            return False

        return self._write(work)

    def delete_schedule(self, schedule_id: str) -> None:
        b.identifier(schedule_id, "schedule id")

        def work(conn: Connection) -> None:
            gone = conn.execute(delete(t.schedules).where(t.schedules.c.schedule_id == schedule_id))
            if not gone.rowcount:
                raise _not_found(schedule_id)

        self._write(work)
