"""Run status, lifecycle stage and view type, with MLflow's names and wire numbers."""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    """A run's state; the wire names and numbers are MLflow's."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminated(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)

    @classmethod
    def parse(cls, value: str | int | RunStatus) -> RunStatus:
        """Accept a name (any case) or MLflow's proto number; refuse anything else."""
        from slipway.exceptions import InvalidParameterValue

        if isinstance(value, RunStatus):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            for status, number in _STATUS_NUMBERS.items():
                if number == value:
                    return status
        elif isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise InvalidParameterValue(
            f"Invalid run status {value!r}: expected one of {', '.join(cls.__members__)}"
        )


_STATUS_NUMBERS = {
    RunStatus.RUNNING: 1,
    RunStatus.SCHEDULED: 2,
    RunStatus.FINISHED: 3,
    RunStatus.FAILED: 4,
    RunStatus.KILLED: 5,
}


class LifecycleStage(enum.StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


class ViewType(enum.IntEnum):
    """Which lifecycle stages a search returns (MLflow's numbers)."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    @classmethod
    def parse(cls, value: str | int | ViewType | None) -> ViewType:
        from slipway.exceptions import InvalidParameterValue

        if value is None:
            return cls.ACTIVE_ONLY
        if isinstance(value, ViewType):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2, 3):
            return cls(value)
        if isinstance(value, str):
            name = value.strip().upper()
            if name in cls.__members__:
                return cls[name]
            if name.isdigit() and int(name) in (1, 2, 3):
                return cls(int(name))
        raise InvalidParameterValue(
            f"Invalid view type {value!r}: expected ACTIVE_ONLY, DELETED_ONLY or ALL"
        )

    def stages(self) -> tuple[LifecycleStage, ...]:
        if self is ViewType.ACTIVE_ONLY:
            return (LifecycleStage.ACTIVE,)
        if self is ViewType.DELETED_ONLY:
            return (LifecycleStage.DELETED,)
        return (LifecycleStage.ACTIVE, LifecycleStage.DELETED)
