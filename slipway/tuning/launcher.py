"""Starting trial worker processes: :class:`WorkerProcess` starts one long-lived worker (see
:mod:`slipway.tuning.worker`), holds the connection trials go over, says when the process
ended and how, and stops it.

Processes come from a fork server of our own (``multiprocessing.forkserver``): a small
single-threaded process that imported Slipway's stores and cloudpickle once and forks a
child per worker, so a worker starts in milliseconds and the coordinator, which runs threads,
is never forked. The job goes to the fork server directly, not through
``multiprocessing.Process``, so a child never re-imports the coordinator's ``__main__`` (a
script calling ``tune()`` at top level would otherwise start again in every worker). Where there
is no fork server (or ``SLIPWAY_TRIAL_LAUNCHER=subprocess``), a worker is a new interpreter
running :mod:`slipway.tuning.worker`: slower to start, same behaviour.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from multiprocessing.connection import Connection, wait
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.tuning.worker import WorkerJob
from slipway.utils.forkserver import (
    PreloadedForkServer,
    choose_launcher,
    close_fd,
    read_exit_status,
)

LAUNCHER_ENV = "SLIPWAY_TRIAL_LAUNCHER"
"""``forkserver`` (the default where the platform has one) or ``subprocess``."""

KILL_GRACE_SECONDS = 2.0
PRELOAD = (
    "cloudpickle",
    "slipway.tuning.worker",
    "slipway.tuning.runner",
    "slipway.tuning.command",
)
"""What the fork server imports once, so that no worker pays for it, with the stores of the
study's tracking URI (:data:`SQL_STORES` or :data:`REST_STORES`). Not Optuna: a worker imports
it when a trial first reports or asks the pruner, so the fork server is ready sooner and a study
whose objective reports nothing never loads it in its workers."""
SQL_STORES = ("slipway.tuning.store.sql", "slipway.tracking.store.sql")
REST_STORES = ("slipway.tuning.store.rest", "slipway.tracking.store.rest")
WARM = ("slipway.tuning._preload",)


def preload_for(tracking_uri: str | None) -> list[str]:
    """The fork server's imports for a study kept at ``tracking_uri``."""
    stores: tuple[str, ...]
    if tracking_uri is None:
        stores = SQL_STORES + REST_STORES
    elif tracking_uri.startswith(("http://", "https://")):
        stores = REST_STORES
    else:
        stores = SQL_STORES
    return [*PRELOAD, *stores, *WARM]


_FORK_SERVER = PreloadedForkServer(preload_for(None))
_start_lock = threading.Lock()
"""Held while the fork server starts with the study's settings in the environment."""


def _server() -> Any:
    return _FORK_SERVER.get()


def launcher() -> str:
    """``forkserver`` or ``subprocess``: how workers start (see :data:`LAUNCHER_ENV`)."""
    return choose_launcher(LAUNCHER_ENV)


def warm_up(tracking_uri: str | None = None, study_name: str | None = None) -> None:
    """Start the fork server now, so the first worker does not wait for its imports; with
    ``tracking_uri`` (and ``study_name``) it opens that store before forking workers (see
    :mod:`slipway.tuning._preload`). A fork server already running stays as it is."""
    if launcher() != "forkserver":
        return
    from slipway.tuning import _preload

    server = _server()
    with _start_lock:
        saved = {k: os.environ.get(k) for k in (_preload.URI_ENV, _preload.STUDY_ENV)}
        try:  # the fork server takes this process's environment when it starts
            # What this study needs (a fork server already running keeps what it imported).
            server.set_forkserver_preload(preload_for(tracking_uri))
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


class WorkerProcess:
    """A worker process as the coordinator sees it: ``conn`` carries trials and results,
    ``sentinel`` is readable once the process ended."""

    def __init__(self, job: WorkerJob) -> None:
        self.killed: str | None = None
        self._code: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        parent, child = multiprocessing.Pipe(duplex=True)
        self.conn: Connection = parent
        try:
            if launcher() == "forkserver":
                self._fork(job, child)
            else:
                self._spawn(job, child)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()

    def _fork(self, job: WorkerJob, child: Connection) -> None:
        preparation = {"sys_path": list(sys.path), "dir": os.getcwd()}
        try:
            status_r, self.pid = _FORK_SERVER.start(preparation, job, [child.fileno()])
        except (OSError, EOFError) as exc:
            raise InvalidParameterValue(f"could not start a trial worker: {exc}") from exc
        self.sentinel = status_r
        self._finalizer = weakref.finalize(self, close_fd, status_r)

    def _spawn(self, job: WorkerJob, child: Connection) -> None:
        fd, path = tempfile.mkstemp(prefix="slipway-worker-", suffix=".pickle")
        with os.fdopen(fd, "wb") as stream:
            pickle.dump(job, stream)
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "slipway.tuning.worker", path, str(child.fileno())],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(child.fileno(),),
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
                self._code = read_exit_status(self.sentinel)
            if self._code is not None:
                _signal_group(self.pid, signal.SIGKILL, alone=False)  # what its trials left
                self._finalizer()
                self.conn.close()
        return self._code

    def join(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` for the process to end; its exit status, or None."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self._popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(min(left, 0.05))
            else:
                wait([self.sentinel], left)
        return self._code

    def terminate(self, reason: str) -> None:
        """SIGTERM to the worker's process group: the running trial stops (see
        :class:`~slipway.tuning.runner.TrialTerminated`) and the worker ends."""
        if self.poll() is None:
            self.killed = reason
            _signal_group(self.pid, signal.SIGTERM)

    def finish_kill(self, deadline: float) -> None:
        """After :meth:`terminate`: wait until ``deadline`` (monotonic), then SIGKILL."""
        if self.join(max(0.0, deadline - time.monotonic())) is None:
            _signal_group(self.pid, signal.SIGKILL)
            self.join(KILL_GRACE_SECONDS)

    def kill(self, reason: str) -> None:
        """Stop the worker and what it started: SIGTERM to its process group, SIGKILL after
        a grace period."""
        self.terminate(reason)
        self.finish_kill(time.monotonic() + KILL_GRACE_SECONDS)

    def ask_to_stop(self) -> None:
        """Tell an idle worker to leave (see :meth:`stop`)."""
        if self.poll() is None:
            with contextlib.suppress(OSError):
                self.conn.send(("stop",))

    def stop(self) -> None:
        """End an idle worker: it leaves when asked to; what is left of its group goes."""
        self.ask_to_stop()
        if self.join(KILL_GRACE_SECONDS) is None:
            _signal_group(self.pid, signal.SIGKILL)
            self.join(KILL_GRACE_SECONDS)
        self.conn.close()

    def ending(self) -> str:
        """How the process ended, for the error of the trial it was running."""
        code = self.poll()
        if code is None:
            return "is still running"
        if code < 0:
            return f"was killed by signal {-code}"
        return f"exited with code {code} without a result"


def _signal_group(pid: int, sig: int, alone: bool = True) -> None:
    """``sig`` to the worker's process group; with ``alone``, to the worker's process when it
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


__all__ = ["LAUNCHER_ENV", "WorkerProcess", "launcher", "warm_up"]
