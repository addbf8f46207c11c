"""What every part of :class:`~slipway.registry.store.sql.SqlRegistryStore` shares: the engine
(the tracking store's), read and write transactions, and lookups that run inside them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, insert, select, update

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.registry.store.sql import tables as t
from slipway.registry.validation import MAX_VERSION_NUMBER, parse_version, validate_model_name
from slipway.tracking.store.sql import engine as sql_engine
from slipway.tracking.store.sql.store import SqlTrackingStore
from slipway.utils.user import current_user

T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


class SqlRegistryBase:
    """The registry's tables live in the tracking store's database, on its engine: a version's
    source is checked against its run, and lineage joins runs, in the same database."""

    def __init__(self, tracking: SqlTrackingStore) -> None:
        self.tracking = tracking
        self.engine = tracking.engine

    def _read(self) -> Connection:
        sql_engine.pid_guard(self.engine)
        return self.engine.connect()

    def _write(self, work: Callable[[Connection], T]) -> T:
        sql_engine.pid_guard(self.engine)
        return sql_engine.run_write(self.engine, work)


# ---------------------------------------------------------------------------------------------
# Lookups inside a transaction


def model_row(conn: Connection, name: str, *, lock: bool = False) -> Row[Any]:
    """The registered model's row; RESOURCE_DOES_NOT_EXIST if there is none. ``lock`` takes a
    row lock (``SELECT ... FOR UPDATE``) where the database has them."""
    validate_model_name(name)
    query = select(t.registered_models).where(t.registered_models.c.name == name)
    if lock and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise ResourceDoesNotExist(f"Registered Model with name={name} not found")
    return row


def version_number(name: str, version: object) -> int:
    """The integer of ``version``; a number no row can hold is reported not found."""
    number = parse_version(version)
    if not 0 < number <= MAX_VERSION_NUMBER:
        raise ResourceDoesNotExist(f"Model Version (name={name}, version={version}) not found")
    return number


def version_row(conn: Connection, name: str, version: object) -> Row[Any]:
    """The model version's row; RESOURCE_DOES_NOT_EXIST for an unknown model or version."""
    validate_model_name(name)
    number = version_number(name, version)
    row = conn.execute(
        select(t.versions).where(t.versions.c.name == name, t.versions.c.version == number)
    ).first()
    if row is None:
        model_row(conn, name)  # an unknown model says so
        raise ResourceDoesNotExist(f"Model Version (name={name}, version={version}) not found")
    return row


def touch_model(conn: Connection, name: str, now: int) -> None:
    conn.execute(
        update(t.registered_models)
        .where(t.registered_models.c.name == name)
        .values(last_updated_time=now)
    )


def record(
    conn: Connection,
    action: str,
    name: str,
    version: int | str | None = None,
    actor: str | None = None,
    **details: Any,
) -> None:
    """Append one event to the audit log, in the caller's transaction (so an event is
    recorded exactly when its change is)."""
    conn.execute(
        insert(t.audit).values(
            timestamp=now_ms(),
            actor=actor or current_user(),
            action=action,
            name=name,
            version=int(version) if version is not None else None,
            details=json.dumps({k: v for k, v in details.items() if v is not None}),
        )
    )


def dump_details(details: dict[str, object] | None) -> str:
    """``details`` as JSON text; INVALID_PARAMETER_VALUE if it is not JSON-serialisable."""
    if details is None:
        return "{}"
    if not isinstance(details, dict):
        raise InvalidParameterValue(f"details must be a dict, got {type(details).__name__}")
    try:
        return json.dumps(details)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"details must be JSON-serialisable: {exc}") from None
