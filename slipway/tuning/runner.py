"""Running trials one after another in a trial worker: :class:`TrialRunner` evaluates one set of
parameters at a time and gives the outcome as a small dict: ``state`` (``COMPLETE``,
``PRUNED`` or ``FAIL``), ``value``, ``error``, ``traceback``, ``last_step``, ``duration`` and
``reported`` (whether the trial wrote to the study's journal, so the coordinator knows to read
it before telling the study).

A worker is a long-lived process (see :mod:`slipway.tuning.worker` and
:mod:`slipway.tuning.ray_workers`): the objective is unpickled once, the study's Optuna view
(for ``trial.report`` and the pruner) is opened on the first report and then read
incrementally, and the stores' connections stay open between trials. The objective's module
globals therefore persist from one trial to the next in the same worker, as with Optuna's
``n_jobs`` threads; the environment and the working directory are put back before each trial.

The trial's run is the fluent API's active run while the objective runs (``slipway.log_metric``
lands there). The run and the Optuna trial are never ended here: the coordinator tells the
study and ends the run, also when the worker dies without a word.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slipway.entities import Run, RunData, RunInfo, RunInputs, RunStatus
from slipway.exceptions import SlipwayError
from slipway.tracking import fluent
from slipway.tuning.spec import PrunerSpec
from slipway.tuning.trial import Trial, TrialPruned

ERROR_LIMIT = 500
"""The most characters of the one-line error kept on the run."""
TRIAL_WAIT_SECONDS = 60.0
"""How long a trial's first report waits for the trial to be in the study's journal."""


class TrialTerminated(BaseException):
    """Raised in the worker's main thread by SIGTERM, so ``finally`` blocks run and what was
    logged is flushed before the coordinator's SIGKILL; the worker then ends."""


@dataclass
class StudyTask:
    """What every trial of a study shares, sent once to each worker (pickled by value with
    cloudpickle, so objectives defined in ``__main__`` or a notebook travel too)."""

    study_name: str
    tracking_uri: str
    metric: str
    pruner: PrunerSpec
    objective: Callable[[Trial], Any] | None = None
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    metric_strategy: str = "latest"
    additional_metrics: tuple[str, ...] = ()
    workdir: str = "."


@dataclass
class TrialTask:
    """One trial as the code running it sees it: the study's task, the trial's number, id
    and parameters, and how to get its run's id (the coordinator records the run while the
    trial starts; most objectives never wait for it)."""

    study: StudyTask
    trial_id: int
    number: int
    params: dict[str, Any]
    run_id_source: Callable[[], str]
    _run_id: str | None = None

    def get_run_id(self) -> str:
        if self._run_id is None:
            self._run_id = self.run_id_source()
        return self._run_id


def one_line(exc: BaseException) -> str:
    """``"ValueError: boom"`` on one line, at most :data:`ERROR_LIMIT` characters."""
    text = exc.message if isinstance(exc, SlipwayError) else str(exc)
    message = " ".join(text.split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."


def failure(exc: BaseException, prefix: str = "") -> dict[str, Any]:
    return {
        "state": "FAIL",
        "error": prefix + one_line(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


class TrialActiveRun(fluent.ActiveRun):
    """The trial's run as the fluent API's active run, read from the store only when
    something asks for its info or data: logging needs only its id (the coordinator created
    it RUNNING already)."""

    def __init__(self, task: TrialTask) -> None:  # no super().__init__: nothing is read yet
        self.task = task
        self._loaded: Run | None = None

    def _load(self) -> Run:
        if self._loaded is None:
            self._loaded = fluent.get_client().get_run(self.task.get_run_id())
        return self._loaded

    @property
    def info(self) -> RunInfo:  # type: ignore[override]
        return self._load().info

    @property
    def data(self) -> RunData:  # type: ignore[override]
        return self._load().data

    @property
    def inputs(self) -> RunInputs:  # type: ignore[override]
        return self._load().inputs

    def __repr__(self) -> str:
        return f"<ActiveRun {self.task.get_run_id()} (tuning trial)>"


class OptunaLink:
    """The trial's Optuna trial, opened on first use (an objective that reports nothing never
    needs it) on the worker's view of the study."""

    def __init__(self, task: TrialTask, study: Callable[[], Any]) -> None:
        self.task = task
        self._study = study
        self._trial: Any = None

    @property
    def opened(self) -> bool:
        return self._trial is not None

    def trial(self) -> Any:
        if self._trial is None:
            import optuna

            study = self._study()
            deadline = time.monotonic() + TRIAL_WAIT_SECONDS
            while self._trial is None:
                try:
                    self._trial = optuna.trial.Trial(study, self.task.trial_id)
                except KeyError:  # the coordinator writes the trial just after handing it out
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"trial {self.task.number} is not in the study's journal"
                        ) from None
                    time.sleep(0.002)
        return self._trial

    def report(self, value: float, step: int, log: bool = True) -> None:
        self.trial().report(value, step)
        if log:
            fluent.get_client().log_metric(
                self.task.get_run_id(), self.task.study.metric, value, step=step, synchronous=False
            )

    def should_prune(self) -> bool:
        return bool(self.trial().should_prune())


def _optuna_pruned(exc: BaseException) -> bool:
    """Whether ``exc`` is Optuna's own ``TrialPruned`` (an objective written for Optuna may
    raise it; Optuna is not imported for a study whose trials never needed it)."""
    exceptions = sys.modules.get("optuna.exceptions")
    pruned = getattr(exceptions, "TrialPruned", None)
    return isinstance(pruned, type) and isinstance(exc, pruned)


def _value_of(returned: Any) -> tuple[float | None, str | None]:
    """The objective's value as a float, or why it is not one."""
    if isinstance(returned, bool):
        return None, f"objective returned {returned!r}, not a number"
    try:
        value = float(returned)
    except (TypeError, ValueError):
        return None, f"objective returned {returned!r}, not a number"
    if math.isnan(value):
        return None, "objective returned nan"
    return value, None


def _close_logging(active: TrialActiveRun, depth: int, ok: bool) -> None:
    """Take the trial's run off the fluent API's stack, ending the runs the objective started
    and left open; write what was logged asynchronously."""
    stack = fluent._stack()
    error: BaseException | None = None
    while len(stack) > depth:
        top = stack[-1]
        if top is active:
            stack.pop()
            continue
        try:
            fluent.end_run(RunStatus.FINISHED if ok else RunStatus.FAILED)
        except BaseException as exc:  # the next trial must start on a clean stack
            error = error or exc
            if stack and stack[-1] is top:
                stack.pop()
    with fluent._clients_lock:
        clients = list(fluent._clients.values())
    for client in clients:
        client.flush()
    if error is not None:
        raise error


class TrialRunner:
    """Runs the trials of one study in this process, one at a time."""

    def __init__(self, study: StudyTask) -> None:
        self.study = study
        self.terminated = False
        """Set once SIGTERM stopped a trial: the worker must end."""
        self._optuna: Any = None
        self._environ = dict(os.environ)
        self._cwd = os.getcwd()

    def optuna_study(self) -> Any:
        """The worker's view of the study with its pruner, opened once and then read
        incrementally (every read asks the store: the pruner must see every value)."""
        if self._optuna is None:
            import optuna

            from slipway.tuning.journal import open_storage
            from slipway.tuning.samplers import make_pruner
            from slipway.tuning.store import get_tuning_store

            storage = open_storage(get_tuning_store(self.study.tracking_uri), self.study.study_name)
            self._optuna = optuna.load_study(
                study_name=self.study.study_name,
                storage=storage,
                sampler=optuna.samplers.RandomSampler(),
                pruner=make_pruner(self.study.pruner),
            )
        return self._optuna

    def _restore(self) -> None:
        """The environment and folder the worker started with (a trial may change them)."""
        if os.environ != self._environ:
            os.environ.clear()
            os.environ.update(self._environ)
        try:
            if os.getcwd() != self._cwd:
                os.chdir(self._cwd)
        except OSError:
            os.chdir(self._cwd)

    def run(
        self, trial_id: int, number: int, params: dict[str, Any], run_id: Callable[[], str]
    ) -> dict[str, Any]:
        """Evaluate one trial here; the outcome as a dict (see the module's docs)."""
        self._restore()
        task = TrialTask(self.study, trial_id, number, params, run_id)
        return execute(task, OptunaLink(task, self.optuna_study), self)


def execute(task: TrialTask, link: OptunaLink, runner: TrialRunner | None = None) -> dict[str, Any]:
    """Evaluate ``task``; the outcome as a dict."""
    started = time.monotonic()
    trial = Trial(
        task.number,
        task.params,
        task.get_run_id,
        task.study.study_name,
        link.report,
        link.should_prune,
    )
    active = TrialActiveRun(task)
    depth = len(fluent._stack())
    fluent._stack().append(active)
    result: dict[str, Any]
    try:
        if task.study.command is not None:
            from slipway.tuning.command import run_command

            returned: Any = run_command(task, trial, link)
        else:
            assert task.study.objective is not None
            returned = task.study.objective(trial)
        value, problem = _value_of(returned)
        if problem is not None:
            result = {"state": "FAIL", "error": problem}
        else:
            result = {"state": "COMPLETE", "value": value}
    except TrialPruned:
        result = {"state": "PRUNED"}
    except TrialTerminated as exc:
        result = failure(exc)
        if runner is not None:
            runner.terminated = True
    except SystemExit as exc:
        result = {"state": "FAIL", "error": f"the objective called sys.exit({exc.code!r})"}
    except BaseException as exc:
        result = {"state": "PRUNED"} if _optuna_pruned(exc) else failure(exc)
        if (
            result["state"] == "FAIL" and type(exc).__name__ != "TrialCommandFailed"
        ):  # its message holds the command's output
            traceback.print_exception(exc, file=sys.stderr)
    try:
        _close_logging(active, depth, result["state"] != "FAIL")
    except BaseException as exc:
        traceback.print_exception(exc, file=sys.stderr)
        if result["state"] != "FAIL":
            result = {
                "state": "FAIL",
                "error": f"logging to the trial's run failed: {one_line(exc)}",
            }
    result["last_step"] = trial.last_step
    result["reported"] = link.opened
    result["duration"] = time.monotonic() - started
    return result


__all__ = [
    "OptunaLink",
    "StudyTask",
    "TrialRunner",
    "TrialTask",
    "TrialTerminated",
    "execute",
    "failure",
    "one_line",
]
