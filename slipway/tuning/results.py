"""What a study gives back: :class:`Study`, its trials (:class:`TrialResult`) and the best.

Built from the study's Optuna trials (which carry, in their system attributes, the id of the
tracking run of each trial and why a failed one failed), so a finished study, one still running
elsewhere and one read back later with :func:`slipway.tuning.load_study` look the same.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from slipway.tuning.spec import TuneSpec

RUN_ID_ATTR = "slipway:run_id"
"""The system attribute of an Optuna trial holding its tracking run's id."""
FAIL_REASON_ATTR = "fail_reason"
"""Where Optuna itself keeps why a trial failed."""
INTERRUPTED_ATTR = "slipway:interrupted"
"""Set on trials that failed because the study was stopped, not because of the objective."""


@dataclass(frozen=True)
class TrialResult:
    """One trial: ``state`` is ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``;
    ``value`` the objective's value (a pruned trial's last intermediate value, as in Optuna);
    ``duration`` in seconds."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run_id: str | None = None
    duration: float | None = None
    error: str | None = None
    intermediate_values: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_optuna(cls, trial: Any) -> TrialResult:
        duration = None
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        attrs = trial.system_attrs
        return cls(
            number=trial.number,
            state=trial.state.name,
            value=trial.value,
            params=dict(trial.params),
            run_id=attrs.get(RUN_ID_ATTR),
            duration=duration,
            error=attrs.get(FAIL_REASON_ATTR) if trial.state.name == "FAIL" else None,
            intermediate_values=dict(trial.intermediate_values),
        )


def better(direction: str, value: float, than: float | None) -> bool:
    if than is None:
        return True
    return value > than if direction == "maximize" else value < than


@dataclass
class Study:
    """A study's state: its trials and the best one.

    Attributes:
        name: the study's name (run it again under that name to resume it).
        run_id: the study's tracking run; every trial is a child run of it.
        experiment_id: where the runs are.
        spec: the study's specification.
        trials: every trial, by number.
        stop_reason: why the last session stopped (``n_trials``, ``timeout``,
            ``max_failed_trials``, ``goal``, ``interrupted``), None while unknown.
    """

    name: str
    run_id: str
    experiment_id: str
    spec: TuneSpec
    trials: list[TrialResult]
    stop_reason: str | None = None

    @property
    def direction(self) -> str:
        return self.spec.direction

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def best_trial(self) -> TrialResult | None:
        """The completed trial with the best value (the first of equals); None before any
        trial completed."""
        best: TrialResult | None = None
        for trial in self.trials:
            if (
                trial.state == "COMPLETE"
                and trial.value is not None
                and better(self.direction, trial.value, best.value if best else None)
            ):
                best = trial
        return best

    @property
    def best_params(self) -> dict[str, Any]:
        best = self.best_trial
        return dict(best.params) if best else {}

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return best.value if best else None

    def counts(self) -> dict[str, int]:
        """How many trials are in each state."""
        return dict(Counter(trial.state for trial in self.trials))

    def __repr__(self) -> str:
        counts = ", ".join(f"{k.lower()}={v}" for k, v in sorted(self.counts().items()))
        return f"<Study {self.name!r} {counts or 'no trials'} best={self.best_value}>"


__all__ = ["Study", "TrialResult"]
