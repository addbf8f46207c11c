"""Starting trial processes: :func:`start_trial` returns a :class:`TrialProcess` that says
when the trial is done, stops it, and reads its result.

Processes come from a fork server of our own (``multiprocessing.forkserver``): a small
single-threaded process that imported Optuna, Slipway's stores and cloudpickle once and forks a
child per trial, so a trial starts in milliseconds and the coordinator, which runs threads, is
never forked. The job goes to the fork server directly, not through ``multiprocessing.Process``,
so a child never re-imports the coordinator's ``__main__`` (a script calling ``tune()`` at top
level would otherwise start again in every trial). Where there is no fork server (or
``SLIPWAY_TRIAL_LAUNCHER=subprocess``), a trial is a new interpreter running
:mod:`slipway.tuning.worker`: slower to start, same behaviour.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import weakref
from multiprocessing.connection import wait
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.tuning.worker import TrialJob
from slipway.utils.forkserver import PreloadedForkServer, choose_launcher, close_fd

LAUNCHER_ENV = "SLIPWAY_TRIAL_LAUNCHER"
"""``forkserver`` (the default where the platform has one) or ``subprocess``."""

KILL_GRACE_SECONDS = 2.0
PRELOAD = (
    "optuna",
    "cloudpickle",
    "slipway.tuning.worker",
    "slipway.tuning.journal",
    "slipway.tuning.command",
    "slipway.tuning.store.sql",
    "slipway.tuning.store.rest",
    "slipway.tracking.store.sql",
    "slipway.tracking.store.rest",
    "slipway.tuning._preload",
)
"""What the fork server imports once, so that no trial pays for it."""

_FORK_SERVER = PreloadedForkServer(PRELOAD)
_start_lock = threading.Lock()
"""Held while the fork server starts with the study's settings in the environment."""


def _server() -> Any:
    return _FORK_SERVER.get()


def launcher() -> str:
    """``forkserver`` or ``subprocess``: how trials start (see :data:`LAUNCHER_ENV`)."""
    return choose_launcher(LAUNCHER_ENV)


def warm_up(tracking_uri: str | None = None, study_name: str | None = None) -> None:
    """Start the fork server now, so the first trial does not wait for its imports; with
    ``tracking_uri`` (and ``study_name``) it opens that store before forking trials (see
    :mod:`slipway.tuning._preload`). A fork server already running stays as it is."""
    if launcher() != "forkserver":
        return
    from slipway.tuning import _preload

    server = _server()
    with _start_lock:
        saved = {k: os.environ.get(k) for k in (_preload.URI_ENV, _preload.STUDY_ENV)}
        try:  # the fork server takes this process's environment when it starts
            if tracking_uri:
                os.environ[_preload.URI_ENV] = tracking_uri
            if study_name:
                os.environ[_preload.STUDY_ENV] = study_name
            server.ensure_running()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


class TrialProcess:
    """A trial's process as the coordinator sees it; ``sentinel`` is readable once it ended."""

    def __init__(self, job: TrialJob, workdir: str) -> None:
        self.job = job
        self.started = time.monotonic()
        self.ended: float | None = None
        self.killed: str | None = None
        self._code: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        if launcher() == "forkserver":
            from multiprocessing import forkserver

            data = pickle.dumps({"sys_path": list(sys.path), "dir": os.getcwd()})
            data += pickle.dumps(job)
            status_r, data_w = _server().connect_to_new_process([])
            self.sentinel = status_r
            self._finalizer = weakref.finalize(self, close_fd, status_r)
            try:
                with open(data_w, "wb", closefd=True) as stream:
                    stream.write(data)
                self.pid = forkserver.read_signed(status_r)
            except (OSError, EOFError) as exc:
                self._finalizer()
                raise InvalidParameterValue(f"could not start the trial's process: {exc}") from exc
        else:
            path = os.path.join(workdir, f"job-{os.getpid()}-{id(job)}.pickle")
            with open(path, "wb") as stream:
                pickle.dump(job, stream)
            self._popen = subprocess.Popen(
                [sys.executable, "-m", "slipway.tuning.worker", path],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**job.env, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
            self.pid = self._popen.pid
            self.sentinel = os.pidfd_open(self.pid)
            self._finalizer = weakref.finalize(self, close_fd, self.sentinel)

    def poll(self) -> int | None:
        """The exit status once the process ended (``-signal`` when killed), else None."""
        if self._code is None:
            if self._popen is not None:
                self._code = self._popen.poll()
            elif wait([self.sentinel], 0):
                from multiprocessing import forkserver

                try:
                    self._code = forkserver.read_signed(self.sentinel)
                except (OSError, EOFError):
                    self._code = 255
            if self._code is not None:
                self.ended = time.monotonic()
                _signal_group(self.pid, signal.SIGKILL, alone=False)  # what the trial left
                self._finalizer()
        return self._code

    def kill(self, reason: str) -> None:
        """Stop the trial: SIGTERM to its process group, SIGKILL after a grace period."""
        if self.poll() is not None:
            return
        self.killed = reason
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        _signal_group(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)

    @property
    def duration(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def result(self) -> dict[str, Any]:
        """What the trial wrote, or a FAIL saying how its process ended."""
        code = self.poll()
        data: Any = None
        try:
            with open(self.job.result_path, encoding="utf-8") as stream:
                data = json.load(stream)
        except (OSError, ValueError):
            data = None
        if self.killed is not None:
            error = "timed out" if self.killed == "timeout" else self.killed
            return {"state": "FAIL", "error": error, "killed": self.killed}
        if isinstance(data, dict) and data.get("state"):
            return data
        if code is None:
            ending = "is still running"
        elif code < 0:
            ending = f"was killed by signal {-code}"
        else:
            ending = f"exited with code {code} without a result"
        return {"state": "FAIL", "error": f"the trial's process {ending}"}


def _signal_group(pid: int, sig: int, alone: bool = True) -> None:
    """``sig`` to the trial's process group; with ``alone``, to the trial's process when it
    has no group yet (never once it ended: its pid may belong to another process by then)."""
    try:
        os.killpg(pid, sig)
        return
    except ProcessLookupError:
        if not alone:
            return
    except PermissionError:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


__all__ = ["LAUNCHER_ENV", "TrialProcess", "launcher", "warm_up"]
