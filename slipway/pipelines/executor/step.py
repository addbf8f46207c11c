"""One step attempt in a process of its own: :func:`start_step` starts it, the returned
:class:`StepProcess` says when it is done, stops it, and reads its :class:`StepResult`.

Processes come from a fork server (``multiprocessing.forkserver``): a small single-threaded
process that imported Slipway, cloudpickle and the tracking stores once, and forks a child for
each step. That keeps a step's start in the milliseconds without ever forking the orchestrator,
which runs threads. The step goes to the fork server directly rather than through
``multiprocessing.Process``, so the child never re-imports the orchestrator's ``__main__``
(a user's script would run again in every step). The component's function travels pickled by
value with cloudpickle, so functions of ``__main__`` or of a file loaded under a made-up module
name work.

Where no fork server can be had (or ``SLIPWAY_STEP_LAUNCHER=subprocess``), a step is a new
interpreter (:func:`slipway.pipelines.executor._child.run_job_file`): slower to start, same
behaviour.

The step's process gets the orchestrator's environment as it is when the step starts, the
component's ``env`` over it, and ``SLIPWAY_TRACKING_URI``, ``SLIPWAY_PIPELINE_RUN_ID``,
``SLIPWAY_PIPELINE_TASK`` (the task instance id), ``SLIPWAY_PIPELINE_ATTEMPT`` and
``SLIPWAY_STEP_RUN_ID`` (the attempt's tracking run, for programs the step starts). Inside the
component the step's run is the active run, so ``slipway.log_metric`` logs to it.

Each step runs in a session of its own: :meth:`StepProcess.kill` signals the whole process
group, so processes the component started end with it, and what is left of the group when the
step ends is killed too.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import os
import pickle
import signal
import sys
import threading
import time
import types
import weakref
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Protocol

from slipway.exceptions import (
    InvalidParameterValue,
    NotImplementedFeature,
    TemporarilyUnavailable,
)
from slipway.pipelines.component import Component
from slipway.pipelines.executor import _child
from slipway.utils.forkserver import (
    PreloadedForkServer,
    choose_launcher,
    close_fd,
    read_exit_status,
)

LAUNCHER_ENV = "SLIPWAY_STEP_LAUNCHER"
"""``forkserver`` (the default where the platform has one) or ``subprocess``."""

KILL_GRACE_SECONDS = 2.0
"""How long :meth:`StepProcess.kill` waits after SIGTERM before SIGKILL."""

PRELOAD = (
    "slipway",
    "slipway.pipelines",
    "slipway.pipelines.artifacts",
    "slipway.pipelines.executor._child",
    "slipway.pipelines.executor.step",
    "slipway.tracking.fluent",
    "slipway.tracking.store.sql",
    "slipway.tracking.store.rest",
    "slipway.artifacts",
    "cloudpickle",
    "slipway.pipelines.executor._preload",
)
"""What the fork server imports once, so that no step pays for it (``_preload`` also warms the
tracking store up)."""


@dataclass
class StepSpec:
    """Everything one attempt of a step needs."""

    pipeline_run_id: str
    task_id: str
    component: Component
    parameters: dict[str, Any]
    """Resolved parameter inputs (JSON values; a PipelineStatus for a TASK_FINAL_STATUS
    input)."""
    input_artifacts: dict[str, Any]
    """Artifact references by input name (a list of them for a collected input)."""
    output_uris: dict[str, str]
    """Where each output artifact is to be stored."""
    run_id: str
    """The tracking run of this attempt (it exists and is RUNNING)."""
    tracking_uri: str
    workdir: str
    """A fresh local folder of this attempt: logs, the result file, staging."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables for the step, over the orchestrator's own."""
    attempt: int = 1
    artifact_cache_dir: str | None = None
    """Where remote input artifacts are cached by digest
    (:func:`slipway.pipelines.artifacts.default_cache_dir` when None)."""


@dataclass
class StepResult:
    """How an attempt ended."""

    ok: bool
    parameters: dict[str, Any]
    """Output parameters by output name (``Output`` for a single return value)."""
    artifacts: dict[str, dict[str, Any]]
    """Output artifact references (uri, digest, type, metadata)."""
    error: str | None
    """One line for the UI, None when ok."""
    traceback: str | None
    exit_code: int | None
    """The process's exit status (negative: the signal that ended it)."""
    timed_out: bool = False
    cancelled: bool = False
    stdout_path: str | None = None
    stderr_path: str | None = None
    pid: int | None = None
    duration: float = 0.0
    log_upload_error: str | None = None
    """Why the logs did not reach the step's run, where the node running it uploaded them."""


# -- launching ------------------------------------------------------------------------------


class _Child(Protocol):
    pid: int
    sentinel: int

    def poll(self) -> int | None: ...

    def close(self) -> None: ...


class _ForkServerChild:
    """A child of the fork server. Its pid comes first on the status pipe, its exit status
    (``-signal`` when killed) later; the pipe's read end is the sentinel."""

    def __init__(self, job: _child.StepJob) -> None:
        preparation: dict[str, Any] = {"sys_path": job.sys_path}
        with contextlib.suppress(OSError):  # a deleted working folder: the server's is used
            preparation["dir"] = os.getcwd()
        try:
            status_r, self.pid = _FORK_SERVER.start(preparation, job)
        except (OSError, EOFError) as exc:
            raise TemporarilyUnavailable(f"could not start the step's process: {exc}") from exc
        self.sentinel = status_r
        self._finalizer = weakref.finalize(self, close_fd, status_r)
        self._returncode: int | None = None

    def poll(self) -> int | None:
        if self._returncode is None and wait([self.sentinel], 0):
            self._returncode = read_exit_status(self.sentinel)  # 255: the server went away
        return self._returncode

    def close(self) -> None:
        self._finalizer()


class _SubprocessChild:
    """A new interpreter running the child module; the sentinel is a pidfd (Linux)."""

    def __init__(self, job: _child.StepJob) -> None:
        import subprocess

        if not hasattr(os, "pidfd_open"):
            raise NotImplementedFeature(
                f"{LAUNCHER_ENV}=subprocess needs os.pidfd_open (Linux 5.3 or later)"
            )
        with open(os.path.join(job.workdir, _child.JOB_FILE), "wb") as stream:
            pickle.dump(job, stream)
        entry = "import sys; from slipway.pipelines.executor._child import run_job_file; "
        argv = [sys.executable, "-c", entry + "run_job_file(sys.argv[1])", job.workdir]
        self._popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**job.env, "PYTHONPATH": os.pathsep.join(p for p in job.sys_path if p)},
        )
        self.pid = self._popen.pid
        self.sentinel = os.pidfd_open(self.pid)
        self._finalizer = weakref.finalize(self, close_fd, self.sentinel)

    def poll(self) -> int | None:
        return self._popen.poll()

    def close(self) -> None:
        self._finalizer()


_FORK_SERVER = PreloadedForkServer(PRELOAD)
"""This process's fork server for steps (its own, apart from multiprocessing's shared one, so
that its preloaded modules are ours)."""


def _server() -> Any:
    return _FORK_SERVER.get()


def _launcher() -> str:
    return choose_launcher(LAUNCHER_ENV)


def warm_up() -> None:
    """Start the fork server now (it imports its modules in the background), so that the
    first step does not wait for it."""
    if _launcher() == "forkserver":
        _server().ensure_running()


def _importable_by_name(module: types.ModuleType) -> bool:
    """Whether the import system would find ``module`` again by its name (a file loaded with
    ``spec_from_file_location`` under a made-up name would not)."""
    name = module.__name__
    if name == "__main__":
        return False
    spec = getattr(module, "__spec__", None)
    if spec is None:
        return False
    parent, _, _ = name.rpartition(".")
    path = None
    if parent:
        package = sys.modules.get(parent)
        path = getattr(package, "__path__", None)
        if path is None:
            return False
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            found = find_spec(name, path)
        except (ImportError, ValueError, TypeError, AttributeError):
            continue
        if found is not None:
            return bool(found.origin == spec.origin)
    return isinstance(spec.loader, importlib.machinery.BuiltinImporter)


def _register_by_value(component: Component) -> None:
    import cloudpickle

    module = sys.modules.get(getattr(component.python_func, "__module__", "") or "")
    if module is not None and not _importable_by_name(module):
        with contextlib.suppress(ValueError):  # not in sys.modules under that name after all
            cloudpickle.register_pickle_by_value(module)


def _payload(spec: StepSpec) -> bytes:
    import cloudpickle

    _register_by_value(spec.component)
    try:
        data: bytes = cloudpickle.dumps(spec)
    except Exception as exc:
        raise InvalidParameterValue(
            f"step {spec.task_id}: cannot send component {spec.component.name} to its "
            f"process ({_child.one_line(exc)})"
        ) from exc
    return data


def component_folder(component: Component) -> str | None:
    """The folder of the file that defines ``component`` (None when it has no file)."""
    func = component.python_func
    module = sys.modules.get(getattr(func, "__module__", "") or "")
    file = getattr(module, "__file__", None) or func.__code__.co_filename
    if file and os.path.isfile(file):
        return os.path.dirname(os.path.abspath(file))
    return None


def step_sys_path(folder: str | None) -> list[str]:
    """This process's ``sys.path``, and last ``folder`` (the component file's): modules beside
    a pipeline file (``import helpers``) travel by name, and the loader took that folder off
    ``sys.path`` again once the file was imported."""
    path = list(sys.path)
    if folder and folder not in path and os.path.isdir(folder):
        path.append(folder)
    return path


def _step_sys_path(spec: StepSpec) -> list[str]:
    return step_sys_path(component_folder(spec.component))


def step_variables(spec: StepSpec) -> dict[str, str]:
    """What a step's process gets over the environment it starts in: the component's ``env``
    and the variables naming its pipeline run, task, attempt and tracking run."""
    env = dict(spec.env)
    env["SLIPWAY_TRACKING_URI"] = spec.tracking_uri
    env["SLIPWAY_PIPELINE_RUN_ID"] = spec.pipeline_run_id
    env["SLIPWAY_PIPELINE_TASK"] = spec.task_id
    env["SLIPWAY_PIPELINE_ATTEMPT"] = str(spec.attempt)
    env["SLIPWAY_STEP_RUN_ID"] = spec.run_id
    return env


def _step_env(spec: StepSpec) -> dict[str, str]:
    return {**os.environ, **step_variables(spec)}


def start_step(spec: StepSpec) -> StepProcess:
    """Start one attempt of a step in a new process and return at once.

    Raises:
        InvalidParameterValue: when the component cannot be pickled.
        TemporarilyUnavailable: when the fork server does not start the process.
    """
    job = _child.StepJob(
        _payload(spec), os.path.abspath(spec.workdir), _step_env(spec), _step_sys_path(spec)
    )
    return launch(job, spec.task_id)


def launch(job: _child.StepJob, task_id: str) -> StepProcess:
    """Start the step that ``job`` carries (already pickled) in a new process, its logs and
    result in ``job.workdir``. Ray nodes start their steps here, from the orchestrator's
    payload, with their own environment and ``sys.path``."""
    os.makedirs(job.workdir, exist_ok=True)
    for name in (_child.RESULT_FILE, _child.STDOUT_FILE, _child.STDERR_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(job.workdir, name))
    started = time.monotonic()
    child: _Child
    child = _ForkServerChild(job) if _launcher() == "forkserver" else _SubprocessChild(job)
    return StepProcess(_Where(task_id, job.workdir), child, started)


# -- a running step -------------------------------------------------------------------------


def _signal_group(pid: int, sig: int, leader_running: bool) -> None:
    """Send ``sig`` to the step's process group. Until the step has made its group (the first
    thing it does) only the step itself can receive it; once the step is known to have ended
    its pid may belong to another process, so then only the group is signalled."""
    try:
        os.killpg(pid, sig)
        return
    except ProcessLookupError:
        pass
    except PermissionError:
        return
    if leader_running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _group_alive(pid: int) -> bool:
    """Whether a live process is left in group ``pid``. Zombies do not count: a container
    whose first process never reaps them would keep a group "alive" for nothing."""
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not os.path.isdir("/proc/self"):
        return True
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stream:
                    fields = stream.read().rsplit(b")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if len(fields) > 2 and int(fields[2]) == pid and fields[0] not in (b"Z", b"X"):
                return True
    return False


@dataclass(frozen=True)
class _Where:
    """Which step a process runs and the folder of its logs and result."""

    task_id: str
    workdir: str


class StepProcess:
    """A step attempt's process, as the orchestrator sees it."""

    def __init__(self, spec: StepSpec | _Where, child: _Child, started: float) -> None:
        self.spec = spec
        self.pid = child.pid
        self.sentinel = child.sentinel
        """Readable once the step has ended: for ``multiprocessing.connection.wait``."""
        self._child = child
        self._started = started
        self._ended: float | None = None
        self._killed: str | None = None
        self._killed_at: float | None = None
        self._result: StepResult | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<StepProcess {self.spec.task_id} pid={self.pid}>"

    def _poll(self) -> int | None:
        with self._lock:
            code = self._child.poll()
            if code is not None and self._ended is None:
                self._ended = time.monotonic()
                if self._killed is None:  # (a kill gives the rest of the group its grace)
                    self._kill_leftovers()  # at once: the group id is the step's pid
            return code

    def done(self) -> bool:
        """Whether the step's process has ended (never blocks)."""
        return self._poll() is not None

    def _wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            code = self._poll()
            if code is not None:
                return code
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wait([self.sentinel], min(left, 0.05))

    def kill(self, reason: str, wait: bool = True) -> None:
        """Stop the step: SIGTERM to its process group, SIGKILL to what is left after
        :data:`KILL_GRACE_SECONDS`. ``reason`` (``"timeout"`` or ``"cancel"``) shows in the
        result. A step that had already ended keeps its own result.

        ``wait=False`` only sends SIGTERM and returns, so that many steps can be told at once;
        a later ``kill(reason)`` finishes the job, the grace counted from that SIGTERM."""
        if reason not in ("timeout", "cancel"):
            raise InvalidParameterValue(
                f"kill reason must be 'timeout' or 'cancel', got {reason!r}"
            )
        if self._poll() is not None:
            return
        if self._killed is None or self._killed_at is None:
            self._killed, self._killed_at = reason, time.monotonic()
            _signal_group(self.pid, signal.SIGTERM, leader_running=True)
        if not wait:
            return
        deadline = self._killed_at + KILL_GRACE_SECONDS
        if self._wait(deadline - time.monotonic()) is None:
            _signal_group(self.pid, signal.SIGKILL, leader_running=True)
            self._wait(1.0)
        while time.monotonic() < deadline and _group_alive(self.pid):
            time.sleep(0.02)  # what the step started gets the rest of the grace too
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """Whatever the step started and left running in its process group goes with it."""
        if _group_alive(self.pid):
            _signal_group(self.pid, signal.SIGKILL, leader_running=False)

    def result(self) -> StepResult:
        """How the attempt ended (waits for the process if it is still running). A missing or
        unreadable result file becomes an error saying how the process ended."""
        if self._result is not None:
            return self._result
        code = self._poll()
        while code is None:
            wait([self.sentinel], 1.0)
            code = self._poll()
        self._child.close()
        self._result = self._read_result(code)
        return self._result

    def _read_result(self, code: int) -> StepResult:
        workdir = self.spec.workdir
        ended = self._ended if self._ended is not None else time.monotonic()
        result = StepResult(
            ok=False,
            parameters={},
            artifacts={},
            error=None,
            traceback=None,
            exit_code=code,
            stdout_path=os.path.join(workdir, _child.STDOUT_FILE),
            stderr_path=os.path.join(workdir, _child.STDERR_FILE),
            pid=self.pid,
            duration=ended - self._started,
        )
        data, problem = _load_result_file(os.path.join(workdir, _child.RESULT_FILE))
        if self._killed is not None:
            result.timed_out = self._killed == "timeout"
            result.cancelled = self._killed == "cancel"
            if result.timed_out:
                elapsed = (self._killed_at or ended) - self._started
                result.error = f"timed out after {elapsed:.1f} s"
            else:
                result.error = "cancelled"
            result.traceback = data.get("traceback") if data else None
            return result
        if data is not None:
            ok = bool(data.get("ok")) and code == 0
            result.ok = ok
            result.error = None if ok else str(data.get("error") or _ending(code))
            result.traceback = data.get("traceback")
            if ok:
                result.parameters = dict(data.get("parameters") or {})
                result.artifacts = dict(data.get("artifacts") or {})
            return result
        result.error = problem if code == 0 else _ending(code)
        return result


def _ending(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with code {code}"


def _load_result_file(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """The result the step wrote, or why there is none."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        return None, "the step's process ended without writing its result"
    except (OSError, ValueError) as exc:
        return None, f"the step's result file is unreadable ({exc})"
    if not isinstance(data, dict):
        return None, "the step's result file is unreadable (not a JSON object)"
    return data, None


__all__ = [
    "KILL_GRACE_SECONDS",
    "LAUNCHER_ENV",
    "StepProcess",
    "StepResult",
    "StepSpec",
    "component_folder",
    "launch",
    "start_step",
    "step_sys_path",
    "step_variables",
    "warm_up",
]
