"""Inside a trial's process: evaluate one set of parameters and leave the outcome in a file.

The process starts its own session (so stopping the trial's process group also stops what the
objective started), takes the coordinator's environment, makes the trial's run the fluent
API's active run (``slipway.log_metric`` in the objective lands there), calls the objective,
or runs the trial command (:mod:`slipway.tuning.command`), and writes a small JSON result:
``state`` (``COMPLETE``, ``PRUNED`` or ``FAIL``), ``value``, ``error``, ``traceback``.

The trial's run and its Optuna trial are never ended here: the coordinator tells the study and
ends the run, also when this process dies without a word. That is why the process leaves with
``os._exit`` (the fluent API's exit hook would mark the run FINISHED).

Run as ``python -m slipway.tuning.worker JOB_FILE`` where no fork server can be had.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from slipway.entities import Run, RunData, RunInfo, RunInputs, RunStatus
from slipway.exceptions import SlipwayError
from slipway.tracking import fluent
from slipway.tuning.spec import PrunerSpec
from slipway.tuning.trial import Trial, TrialPruned

ERROR_LIMIT = 500
"""The most characters of the one-line error kept on the run."""
RUN_ID_TIMEOUT = 120.0


class TrialTerminated(BaseException):
    """Raised in the trial's main thread by SIGTERM, so ``finally`` blocks run and what was
    logged is flushed before the coordinator's SIGKILL."""


@dataclass
class TrialTask:
    """One trial, as its process needs it (pickled by value with cloudpickle, so objectives
    defined in ``__main__`` or a notebook travel too)."""

    study_name: str
    trial_id: int
    number: int
    params: dict[str, Any]
    run_id_file: str
    """Where the coordinator writes the trial's run id: it records the run while this
    process starts (see :meth:`get_run_id`)."""
    tracking_uri: str
    metric: str
    pruner: PrunerSpec
    objective: Callable[[Trial], Any] | None = None
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    metric_strategy: str = "latest"
    additional_metrics: tuple[str, ...] = ()
    workdir: str = "."
    _run_id: str | None = None

    def get_run_id(self, timeout: float = RUN_ID_TIMEOUT) -> str:
        """The trial's run id, waiting for the coordinator to record the run if it has not
        yet (it does so while this process starts; most objectives never wait)."""
        if self._run_id is None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with open(self.run_id_file, encoding="utf-8") as stream:
                        self._run_id = stream.read().strip()
                    break
                except FileNotFoundError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"the coordinator did not record the trial's run within {timeout:g} s"
                        ) from None
                    time.sleep(0.001)
        return self._run_id


@dataclass
class TrialJob:
    """What reaches a new trial process: the environment (applied before the task is
    unpickled, so imports see it), the task and where to write the result."""

    payload: bytes
    result_path: str
    env: dict[str, str] = field(default_factory=dict)

    def _bootstrap(self, parent_sentinel: int | None = None) -> int:
        """The entry point the fork server calls in the new child; returns the exit status."""
        if parent_sentinel is not None:
            with contextlib.suppress(OSError):
                os.close(parent_sentinel)
        return run_job(self)


def one_line(exc: BaseException) -> str:
    """``"ValueError: boom"`` on one line, at most :data:`ERROR_LIMIT` characters."""
    text = exc.message if isinstance(exc, SlipwayError) else str(exc)
    message = " ".join(text.split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process
    raise TrialTerminated("terminated by the coordinator")


def write_result(path: str, result: dict[str, Any]) -> None:
    temporary = path + ".partial"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(result, stream, allow_nan=True)
    os.replace(temporary, path)


def run_job(job: TrialJob) -> int:
    """Run the trial described by ``job`` in this (new) process; the exit status."""
    with contextlib.suppress(OSError):  # already a session leader
        os.setsid()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    os.environ.clear()
    os.environ.update(job.env)
    result: dict[str, Any]
    try:
        import cloudpickle

        task = cloudpickle.loads(job.payload)
    except BaseException as exc:
        result = {"state": "FAIL", "error": f"cannot load the objective: {one_line(exc)}"}
        result["traceback"] = "".join(traceback.format_exception(exc))
    else:
        result = execute(task)
    try:
        write_result(job.result_path, result)
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return 0


# -- the trial ----------------------------------------------------------------------------------


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
    """The trial's Optuna trial, opened on first use (most objectives that report nothing
    never need it): the study loaded from its journal with the study's pruner."""

    def __init__(self, task: TrialTask) -> None:
        self.task = task
        self._trial: Any = None

    def trial(self) -> Any:
        if self._trial is None:
            import optuna

            from slipway.tuning.journal import open_storage
            from slipway.tuning.samplers import make_pruner
            from slipway.tuning.store import get_tuning_store

            storage = open_storage(get_tuning_store(self.task.tracking_uri), self.task.study_name)
            study = optuna.load_study(
                study_name=self.task.study_name,
                storage=storage,
                sampler=optuna.samplers.RandomSampler(),
                pruner=make_pruner(self.task.pruner),
            )
            self._trial = optuna.trial.Trial(study, self.task.trial_id)
        return self._trial

    def report(self, value: float, step: int, log: bool = True) -> None:
        self.trial().report(value, step)
        if log:
            fluent.get_client().log_metric(
                self.task.get_run_id(), self.task.metric, value, step=step, synchronous=False
            )

    def should_prune(self) -> bool:
        return bool(self.trial().should_prune())


def make_trial(task: TrialTask, link: OptunaLink) -> Trial:
    return Trial(
        task.number, task.params, task.get_run_id, task.study_name, link.report, link.should_prune
    )


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


def _failure(exc: BaseException) -> dict[str, Any]:
    return {
        "state": "FAIL",
        "error": one_line(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _close_logging(active: TrialActiveRun, ok: bool) -> None:
    """End runs the objective started and left open; write what was logged asynchronously."""
    while True:
        top = fluent.active_run()
        if top is None or top is active:
            break
        fluent.end_run(RunStatus.FINISHED if ok else RunStatus.FAILED)
    with fluent._clients_lock:
        clients = list(fluent._clients.values())
    for client in clients:
        client.flush()


def execute(task: TrialTask) -> dict[str, Any]:
    """Evaluate ``task`` here; the outcome as a JSON dict."""
    from optuna.exceptions import TrialPruned as OptunaTrialPruned

    started = time.monotonic()
    link = OptunaLink(task)
    trial = make_trial(task, link)
    active = TrialActiveRun(task)
    fluent._stack().append(active)
    result: dict[str, Any]
    try:
        if task.command is not None:
            from slipway.tuning.command import run_command

            returned: Any = run_command(task, trial, link)
        else:
            assert task.objective is not None
            returned = task.objective(trial)
        value, problem = _value_of(returned)
        if problem is not None:
            result = {"state": "FAIL", "error": problem}
        else:
            result = {"state": "COMPLETE", "value": value}
    except (TrialPruned, OptunaTrialPruned):
        result = {"state": "PRUNED"}
    except TrialTerminated as exc:
        result = _failure(exc)
    except SystemExit as exc:
        result = {"state": "FAIL", "error": f"the objective called sys.exit({exc.code!r})"}
    except BaseException as exc:
        result = _failure(exc)
        if type(exc).__name__ != "TrialCommandFailed":  # its message holds the command's output
            traceback.print_exception(exc, file=sys.stderr)
    try:
        _close_logging(active, result["state"] != "FAIL")
    except BaseException as exc:
        traceback.print_exception(exc, file=sys.stderr)
        if result["state"] != "FAIL":
            result = {
                "state": "FAIL",
                "error": f"logging to the trial's run failed: {one_line(exc)}",
            }
    result["last_step"] = trial.last_step
    result["duration"] = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m slipway.tuning.worker JOB_FILE``: run the pickled job in that file."""
    import pickle

    args = sys.argv[1:] if argv is None else argv
    with open(args[0], "rb") as stream:
        job = pickle.load(stream)  # noqa: S301 - written by our own coordinator
    return run_job(job)


if __name__ == "__main__":  # pragma: no cover - run by the subprocess launcher
    code = main()
    sys.stdout.flush()
    os._exit(code)

__all__ = ["OptunaLink", "TrialJob", "TrialTask", "execute", "run_job"]
