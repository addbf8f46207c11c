"""Inside a step's process: run one attempt of a component and leave its result in a file.

The process starts its own session (so that killing the step's process group reaches whatever
the component started), sends file descriptors 1 and 2 to log files in the attempt's work
folder (so C code and subprocesses are captured too, and a step printing gigabytes never
blocks on a pipe), takes the orchestrator's environment, makes the step's tracking run the
active run, builds the artifact arguments, calls the function, checks what it returned, stores
the output artifacts, flushes the logging it did and writes ``result.json``.

The run is never ended here (the orchestrator records how the attempt ended), which is why the
process leaves with ``os._exit``: the fluent API's exit hook would mark the run FINISHED.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, NoReturn

from slipway.entities import RunStatus
from slipway.entities.run import Run, RunData, RunInfo, RunInputs
from slipway.exceptions import InvalidParameterValue
from slipway.tracking import fluent

JOB_FILE = "job.pickle"
RESULT_FILE = "result.json"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
ERROR_LIMIT = 500
"""The most characters of the one-line error shown in the UI."""

EXIT_FAILED = 1
EXIT_TERMINATED = 128 + signal.SIGTERM
GUARDIAN_GRACE_SECONDS = 2.0
"""How long a step whose guardian ended has, after SIGTERM, before its group is killed."""


class StepTerminated(BaseException):
    """Raised in the step's main thread by SIGTERM, so that ``finally`` blocks run and the
    metrics logged so far are flushed before the orchestrator's SIGKILL."""


class OutputMismatch(InvalidParameterValue):
    """A component returned something other than its declared outputs."""


@dataclass
class StepJob:
    """What reaches a new step process: the orchestrator's environment (applied before
    anything of the step is unpickled, so imports see it) and the step, pickled by value with
    cloudpickle."""

    payload: bytes
    workdir: str
    """The attempt's folder on the machine running it (the pickled step's own ``workdir`` is
    replaced by it: a Ray node makes its own)."""
    env: dict[str, str]
    sys_path: list[str]
    guardian_pid: int | None = None
    """A process whose end ends the step (its process group is killed): the Ray worker that
    started it, which Ray may kill without telling the step."""
    cwd: str | None = None
    """The step's working directory, when not the one it inherits (a Ray node's copy of a
    shipped working directory)."""

    def _bootstrap(self, parent_sentinel: int | None = None) -> int:
        """The entry point multiprocessing's fork server calls in the forked child; returns
        the exit status."""
        if parent_sentinel is not None:
            with contextlib.suppress(OSError):
                os.close(parent_sentinel)
        return run_job(self)


def one_line(exc: BaseException) -> str:
    """``"ValueError: boom"``: the exception's type and message on one line, at most
    :data:`ERROR_LIMIT` characters."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the component's own frames on (this module's frames left out)."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__ and tb.tb_next:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


# -- process setup --------------------------------------------------------------------------


def _own_session() -> None:
    with contextlib.suppress(OSError):  # already a session leader (start_new_session)
        os.setsid()


def _redirect_output(workdir: str) -> None:
    """Point fds 1 and 2 at the log files and give Python fresh streams on them."""
    for fd, name in ((1, STDOUT_FILE), (2, STDERR_FILE)):
        target = os.open(os.path.join(workdir, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    _flush_streams()  # whatever the fork server had buffered goes to the old target
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process
    raise StepTerminated("terminated by the orchestrator")


def _apply_environment(env: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(env)


def _write_result(workdir: str, result: dict[str, Any]) -> None:
    path = os.path.join(workdir, RESULT_FILE)
    temporary = path + ".partial"
    try:
        text = json.dumps(result, allow_nan=True)
    except (TypeError, ValueError) as exc:  # never expected: outputs were checked as JSON
        text = json.dumps(
            {"ok": False, "error": f"cannot record the step's result: {exc}", "exit_code": 1}
        )
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed, or None
            stream.flush()


def _outlive_guardian(pid: int) -> None:
    """Stop this step's process group once process ``pid`` has ended: SIGTERM (the step
    records what it can), SIGKILL after the grace the orchestrator would give."""

    def watch() -> None:
        import select

        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd (not Linux), or the guardian is gone
            while _alive(pid):
                time.sleep(1.0)
        else:
            select.select([fd], [], [])
        group = os.getpgrp()
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGTERM)
        time.sleep(GUARDIAN_GRACE_SECONDS)
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)

    import threading

    threading.Thread(target=watch, name="slipway-step-guardian", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def run_job(job: StepJob) -> int:
    """Run the step described by ``job`` in this (new) process and return its exit status."""
    _own_session()
    _redirect_output(job.workdir)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _apply_environment(job.env)
    if job.cwd is not None:
        os.chdir(job.cwd)
    if job.guardian_pid is not None:
        _outlive_guardian(job.guardian_pid)
    result: dict[str, Any]
    try:
        import cloudpickle

        spec = cloudpickle.loads(job.payload)
    except BaseException as exc:
        traceback.print_exc()
        result = {
            "ok": False,
            "error": f"cannot load the component in the step process: {one_line(exc)}",
            "traceback": "".join(traceback.format_exception(exc)),
            "exit_code": EXIT_FAILED,
        }
    else:
        spec.workdir = job.workdir
        result = execute(spec)
    try:
        _write_result(job.workdir, result)
    except BaseException:
        traceback.print_exc()
    _flush_streams()
    return int(result.get("exit_code") or 0)


# -- the attempt ----------------------------------------------------------------------------


def _failure(exc: BaseException, exit_code: int = EXIT_FAILED) -> dict[str, Any]:
    return {
        "ok": False,
        "error": one_line(exc),
        "traceback": _user_traceback(exc),
        "exit_code": exit_code,
    }


def _exit_failure(exc: SystemExit) -> dict[str, Any]:
    code = exc.code
    if code is None or code == 0:
        error, status = "the component called sys.exit(0) before returning", EXIT_FAILED
    elif isinstance(code, int):
        error, status = f"exited with code {code}", code & 0xFF or EXIT_FAILED
    else:
        error, status = f"exited: {' '.join(str(code).split())[:ERROR_LIMIT]}", EXIT_FAILED
    return {"ok": False, "error": error, "traceback": _user_traceback(exc), "exit_code": status}


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``np.float64(1.5)`` -> ``1.5``)."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def check_returns(spec: Any, value: Any) -> dict[str, Any]:
    """The output parameters of a component's return value, checked against its declared
    outputs (an int for a float output becomes a float).

    Raises:
        OutputMismatch: naming the output whose value has another type.
    """
    from slipway.pipelines import types as ty
    from slipway.pipelines.component import SINGLE_OUTPUT

    def checked(name: str, item: Any, ptype: ty.ParamType) -> Any:
        item = _plain(item)
        if item is None and not ptype.optional and ptype.name != ty.ANY:
            raise OutputMismatch(
                f"output '{name}': returned None, declared "
                f"{ty.TYPE_WORDS.get(ptype.name, ptype.name)}"
            )
        if item is not None and ptype.name not in (ty.ANY, ty.TASK_FINAL_STATUS):
            got = ty.type_of_value(item)
            if not ty.assignable(got, ptype.name) or got == ty.ANY:
                raise OutputMismatch(
                    f"output '{name}': returned {type(item).__name__}, declared "
                    f"{ty.TYPE_WORDS.get(ptype.name, ptype.name)}"
                )
        try:
            return ty.check_value(item, ptype, f"output '{name}'")
        except InvalidParameterValue as exc:
            raise OutputMismatch(exc.message) from None

    if spec.returns == "none":
        if value is not None:
            raise OutputMismatch(
                f"returned {type(value).__name__}, declared no return value (-> None)"
            )
        return {}
    if spec.returns == "single":
        out = spec.outputs[SINGLE_OUTPUT]
        return {SINGLE_OUTPUT: checked(SINGLE_OUTPUT, value, out.param)}
    names = [name for name, out in spec.outputs.items() if out.kind == "parameter"]
    if not isinstance(value, tuple) or len(value) != len(names):
        got = f"a tuple of {len(value)}" if isinstance(value, tuple) else type(value).__name__
        raise OutputMismatch(
            f"returned {got}, declared a NamedTuple of {len(names)} ({', '.join(names)})"
        )
    return {
        name: checked(name, item, spec.outputs[name].param)
        for name, item in zip(names, value, strict=True)
    }


class StepActiveRun(fluent.ActiveRun):
    """The step's run as the fluent API's active run, read from the store only when something
    asks for its info, data or inputs. Logging needs only the run's id, so a step that logs
    nothing never opens the tracking store, and one that does skips the round trips of
    ``start_run`` (the orchestrator created the run RUNNING already)."""

    def __init__(self, run_id: str) -> None:  # no super().__init__: nothing is read yet
        self.step_run_id = run_id
        self._loaded: Run | None = None

    def _load(self) -> Run:
        if self._loaded is None:
            self._loaded = fluent.get_client().get_run(self.step_run_id)
        return self._loaded

    @property
    def info(self) -> RunInfo:
        return self._load().info

    @info.setter
    def info(self, value: RunInfo) -> None:
        self._load().info = value

    @property
    def data(self) -> RunData:
        return self._load().data

    @data.setter
    def data(self, value: RunData) -> None:
        self._load().data = value

    @property
    def inputs(self) -> RunInputs:
        return self._load().inputs

    @inputs.setter
    def inputs(self, value: RunInputs) -> None:
        self._load().inputs = value

    def __repr__(self) -> str:
        return f"<ActiveRun {self.step_run_id} (pipeline step)>"


def _activate_run(run_id: str) -> StepActiveRun:
    """Make the step's run the active run, without a store round trip."""
    active = StepActiveRun(run_id)
    fluent.push_active_run(active)
    return active


def _close_logging(active_run: StepActiveRun, ok: bool) -> None:
    """End the runs the component started and left open, and write everything logged
    asynchronously; the step's own run stays as it is."""
    while True:
        top = fluent.active_run()
        if top is None or top is active_run:
            break
        fluent.end_run(RunStatus.FINISHED if ok else RunStatus.FAILED)
    fluent.flush_open_clients()


class DistributedStepFailed(RuntimeError):
    """A worker of a distributed step failed (the message names the rank and its error)."""


def _distributed(func: Any, kwargs: dict[str, Any], workers: int, backend: str) -> Any:
    """Run ``func(**kwargs)`` on ``workers`` processes under the training launcher; its job
    run becomes a child of the step's (active) run. Rank 0's return value is the result."""
    from slipway import training

    result = training.launch(func, workers=workers, backend=backend, kwargs=kwargs, quiet=True)
    if not result.succeeded:
        raise DistributedStepFailed(
            f"rank {result.failed_rank} of {workers} failed: {result.error or result.status}"
        )
    return result.return_values.get(0)


def execute(spec: Any) -> dict[str, Any]:
    """Run one attempt of ``spec`` (a ``StepSpec``) here; the result as a JSON dict.

    An exception of the component reads ``"ValueError: boom"``; what the step machinery finds
    wrong around it (a missing input, a wrong return type, an output not written) reads as its
    own message, without a traceback into the machinery."""
    from slipway.exceptions import SlipwayError
    from slipway.pipelines import artifacts as arts

    started = time.monotonic()
    func = spec.component.python_func
    cspec = spec.component.spec
    result: dict[str, Any] = {"ok": False, "parameters": {}, "artifacts": {}}
    active_run = None
    in_component = False
    try:
        active_run = _activate_run(spec.run_id)
        kwargs: dict[str, Any] = dict(spec.parameters)
        kwargs.update(
            arts.build_inputs(
                cspec,
                spec.input_artifacts,
                cache_dir=spec.artifact_cache_dir,
                tracking_uri=spec.tracking_uri,
                scratch_dir=os.path.join(spec.workdir, "inputs"),
            )
        )
        slots = arts.build_outputs(cspec, spec.output_uris, os.path.join(spec.workdir, "staging"))
        kwargs.update({name: slot.artifact for name, slot in slots.items()})
        in_component = True
        if cspec.options.workers > 1:
            value = _distributed(func, kwargs, cspec.options.workers, cspec.options.backend)
        else:
            value = func(**kwargs)
        in_component = False
        result["parameters"] = check_returns(cspec, value)
        result["artifacts"] = {
            name: arts.finish_output(slot, spec.tracking_uri) for name, slot in slots.items()
        }
        result.update(ok=True, error=None, traceback=None, exit_code=0)
    except SystemExit as exc:
        result.update(_exit_failure(exc))
    except StepTerminated as exc:
        result.update(_failure(exc, EXIT_TERMINATED))
    except SlipwayError as exc:
        if in_component:
            result.update(_failure(exc))
        else:
            message = " ".join(exc.message.split())
            result.update(error=message[:ERROR_LIMIT], traceback=None, exit_code=EXIT_FAILED)
        traceback.print_exception(exc, file=sys.stderr)
    except BaseException as exc:
        result.update(_failure(exc))
        traceback.print_exception(exc, file=sys.stderr)
    if active_run is not None:
        try:
            _close_logging(active_run, bool(result["ok"]))
        except BaseException as exc:  # the outputs stand; what was logged did not all land
            traceback.print_exception(exc, file=sys.stderr)
            if result["ok"]:
                result.update(
                    ok=False,
                    error=f"logging to the step's run failed: {one_line(exc)}",
                    traceback=_user_traceback(exc),
                    exit_code=EXIT_FAILED,
                )
    if not result["ok"]:
        result["parameters"], result["artifacts"] = {}, {}
    result["duration"] = time.monotonic() - started
    return result


def run_job_file(workdir: str) -> NoReturn:
    """The entry point of the subprocess launcher (``python -c``): run the job its parent
    pickled into ``workdir`` and leave with its exit status, without the exit hooks (the fluent
    API's would end the step's run)."""
    import pickle

    with open(os.path.join(workdir, JOB_FILE), "rb") as stream:
        job = pickle.load(stream)  # noqa: S301 - written by this process's parent
    os._exit(job._bootstrap())


__all__ = [
    "JOB_FILE",
    "RESULT_FILE",
    "STDERR_FILE",
    "STDOUT_FILE",
    "OutputMismatch",
    "StepJob",
    "StepTerminated",
    "check_returns",
    "execute",
    "one_line",
    "run_job",
    "run_job_file",
]
