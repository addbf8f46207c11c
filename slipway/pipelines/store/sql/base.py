"""What every part of :class:`~slipway.pipelines.store.sql.SqlPipelineStore` shares: the engine
(the tracking store's), read and write transactions, and the checks that turn a bad value into
``INVALID_PARAMETER_VALUE`` before it reaches the database (where it would be a driver error,
different on each backend, or a silently truncated string)."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from slipway.entities.pipelines import PipelineRunStatus, StepStatus
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.pipelines.store.sql import tables as t
from slipway.tracking.store.sql import engine as sql_engine
from slipway.tracking.store.sql.store import SqlTrackingStore

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def now_ms() -> int:
    return int(time.time() * 1000)


class SqlPipelineBase:
    """The pipeline tables live in the tracking store's database, on its engine: a pipeline
    run is a tracking run, and its row references the run's."""

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


def not_found(run_id: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Pipeline run '{run_id}' not found")


def check_run_exists(conn: Connection, run_id: str) -> None:
    """RESOURCE_DOES_NOT_EXIST unless the pipeline run is recorded."""
    found = conn.execute(
        select(t.pipeline_runs.c.run_id).where(t.pipeline_runs.c.run_id == run_id)
    ).first()
    if found is None:
        raise not_found(run_id)


# ---------------------------------------------------------------------------------------------
# Values


def dump_json(value: object, name: str) -> str:
    """``value`` (a dict) as JSON text. NaN and infinities are refused, as they are on the
    wire, so that every backend accepts the same values."""
    if not isinstance(value, dict):
        raise InvalidParameterValue(f"'{name}' must be a dict, got {type(value).__name__}")
    try:
        return _encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"'{name}' must be JSON-serialisable: {exc}") from None


def load_json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def text(value: object, name: str, max_length: int) -> str:
    """A required, non-empty string of at most ``max_length`` characters."""
    if not isinstance(value, str) or not value:
        raise InvalidParameterValue(f"Missing value for required parameter '{name}'.")
    if len(value) > max_length:
        raise InvalidParameterValue(
            f"'{name}' exceeds the maximum length of {max_length} characters"
        )
    return value


def identifier(value: object, name: str) -> str:
    """A non-empty string naming something to look up (an unknown one is not found later)."""
    if not isinstance(value, str) or not value:
        raise InvalidParameterValue(f"Invalid {name} {value!r}: expected a non-empty string")
    return value


def optional_text(value: object, name: str, max_length: int | None = None) -> str | None:
    """None, or a string of at most ``max_length`` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameterValue(f"'{name}' must be a string, got {type(value).__name__}")
    if max_length is not None and len(value) > max_length:
        raise InvalidParameterValue(
            f"'{name}' exceeds the maximum length of {max_length} characters"
        )
    return value


def integer(value: object, name: str, minimum: int = 0) -> int:
    """An integer (booleans are not) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValue(f"'{name}' must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidParameterValue(f"'{name}' must be at least {minimum}, got {value}")
    return value


def optional_integer(value: object, name: str, minimum: int = 0) -> int | None:
    return None if value is None else integer(value, name, minimum)


def _member(value: object, kind: type[E], what: str) -> E:
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(str(m.value) for m in kind)
        raise InvalidParameterValue(f"Invalid {what} {value!r}: use one of {names}") from None


def run_status(value: object) -> PipelineRunStatus:
    """``value`` as a pipeline run status; INVALID_PARAMETER_VALUE naming the choices."""
    return _member(value, PipelineRunStatus, "pipeline run status")


def step_status(value: object) -> StepStatus:
    return _member(value, StepStatus, "step status")
