"""What an objective gets: :class:`Trial`, one set of parameters to evaluate, and
:class:`TrialPruned`, raised to stop a trial the pruner gave up on.

A trial runs in a trial worker, a process apart from the study's (see
:mod:`slipway.tuning.runner`). ``trial.params`` holds the values the sampler chose (in the
coordinator, before the trial started); ``trial.report(value, step)`` records an intermediate
value both in the study (for the pruner, across processes) and as the metric
history of the study's metric on the trial's run; ``trial.should_prune()`` asks the study's
pruner. The Optuna trial behind them is opened on the first report, so an objective that
reports nothing never touches the study's journal.

``suggest_float``, ``suggest_int`` and ``suggest_categorical`` return the chosen value of a
parameter of the search space, so an objective written for Optuna runs unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from slipway.exceptions import InvalidParameterValue


class TrialPruned(Exception):
    """Raise it in an objective to end the trial as pruned (``trial.should_prune()`` said
    so). Optuna's own ``optuna.TrialPruned`` works the same."""


class Trial:
    """One trial of a study, as its objective sees it.

    Attributes:
        number: the trial's number in the study (0, 1, ...; it goes on across resumes).
        params: the value of every parameter of the search space.
        run_id: the trial's tracking run (the active run while the objective runs).
        study_name: the study's name.
    """

    def __init__(
        self,
        number: int,
        params: dict[str, Any],
        run_id: str | Callable[[], str],
        study_name: str,
        report: Callable[[float, int], None],
        should_prune: Callable[[], bool],
    ) -> None:
        self.number = number
        self.params = dict(params)
        self._run_id = run_id
        self.study_name = study_name
        self._report = report
        self._should_prune = should_prune
        self._steps: set[int] = set()
        self.last_step: int | None = None

    def __repr__(self) -> str:
        return f"<Trial {self.number} of {self.study_name!r} params={self.params}>"

    @property
    def run_id(self) -> str:
        """The trial's run (the trial may start a moment before the run is recorded: this
        waits for it)."""
        return self._run_id if isinstance(self._run_id, str) else self._run_id()

    def report(self, value: float, step: int) -> None:
        """Record ``value`` as the objective's intermediate value at ``step``.

        Raises:
            InvalidParameterValue: ``value`` is not a number, ``step`` is not a non-negative
                integer or was reported already in this trial.
        """
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidParameterValue(
                f"trial.report: value must be a number, got {value!r}"
            ) from None
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidParameterValue(
                f"trial.report: step must be a non-negative integer, got {step!r}"
            )
        if step in self._steps:
            raise InvalidParameterValue(
                f"trial.report: step {step} was already reported in trial {self.number}"
            )
        self._report(number, step)
        self._steps.add(step)
        self.last_step = step if self.last_step is None else max(self.last_step, step)

    def should_prune(self) -> bool:
        """Whether the study's pruner would stop this trial now, given what it reported.
        Raise :class:`TrialPruned` when it says so."""
        if not self._steps:
            return False
        return self._should_prune()

    # -- Optuna's names, for objectives written for it -------------------------------------

    def _chosen(self, name: str) -> Any:
        if name not in self.params:
            known = ", ".join(sorted(self.params))
            raise InvalidParameterValue(
                f"parameter {name!r} is not in the study's search space (it has: {known}); "
                "declare it in the space"
            )
        return self.params[name]

    def suggest_float(self, name: str, *_args: Any, **_kwargs: Any) -> float:
        return float(self._chosen(name))

    def suggest_int(self, name: str, *_args: Any, **_kwargs: Any) -> int:
        return int(self._chosen(name))

    def suggest_categorical(self, name: str, _choices: Sequence[Any] = (), **_kwargs: Any) -> Any:
        return self._chosen(name)


__all__ = ["Trial", "TrialPruned"]
