"""The job run's bookkeeping, in a helper process forked beside the launcher where that is safe.

Starting a local job costs the launcher two imports that do not depend on each other: torch
(the elastic agent) and the tracking store (SQLAlchemy, for the run). Done one after the other
they add up; a helper forked when the launch starts imports and opens the store on another
core while the launcher imports torch, so the store costs the job almost no time:

* the helper creates the run only when the launcher says so, after every check has passed:
  a refused job still leaves no run behind;
* it uploads the workers' logs and ends the run when the launcher says how the job ended;
* if the launcher dies without saying (SIGKILL), the helper ends the run FAILED rather than
  leave it RUNNING for ever. It ignores Ctrl-C and SIGTERM, which the launcher handles.

Forking is only safe in a process that runs no other thread and has not opened a store yet
(a store's connections must never be shared across a fork), on Linux: the command line's
case. Anywhere else, :class:`InProcessBooks` does the same work in the launcher's process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slipway.entities import RunStatus
from slipway.exceptions import SlipwayError
from slipway.training.logs import AttemptLogs

__all__ = ["Books", "ForkedBooks", "InProcessBooks", "JobInfo", "RunRequest", "open_books"]

_STORE_MODULE = "slipway.tracking.store.sql.store"
LAUNCHER_DIED = "The launcher died before the job ended"


@dataclass(frozen=True)
class RunRequest:
    """The job run to create."""

    experiment_name: str | None
    fluent_default: bool
    """The experiment is the fluent API's active one when no name is given."""
    run_name: str | None
    params: Mapping[str, str]
    source: str
    parent_run_id: str | None


@dataclass(frozen=True)
class JobInfo:
    """What the workers need to know of the job's run."""

    run_id: str
    artifact_uri: str
    experiment_id: str


class Books:
    """Creates the job's run, then ends it (the launcher calls one of ``finish`` or
    ``abort`` once)."""

    def create(self, request: RunRequest) -> JobInfo:
        raise NotImplementedError

    def finish(
        self,
        attempts: Sequence[AttemptLogs],
        status: RunStatus,
        restarts: int,
        failed_rank: int | None,
        error: str | None,
    ) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """The job will not run: create nothing (more)."""


class InProcessBooks(Books):
    """The bookkeeping in the launcher's own process."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._job: Any = None

    def create(self, request: RunRequest) -> JobInfo:
        from slipway.tracking.client import SlipwayClient
        from slipway.training.tracking import create_job_run, resolve_experiment_id

        client = SlipwayClient(self.tracking_uri)
        experiment_id = resolve_experiment_id(
            client, request.experiment_name, request.fluent_default
        )
        self._job = create_job_run(
            client,
            experiment_id,
            request.run_name,
            request.params,
            request.source,
            request.parent_run_id,
        )
        return JobInfo(self._job.run_id, self._job.artifact_uri, experiment_id)

    def finish(
        self,
        attempts: Sequence[AttemptLogs],
        status: RunStatus,
        restarts: int,
        failed_rank: int | None,
        error: str | None,
    ) -> None:
        from slipway.training.launcher import finish_job

        try:
            self._job.upload_logs(attempts)
        except Exception as exc:
            print(f"slipway: could not upload the worker logs: {exc}", file=sys.stderr)
        finish_job(self._job, status, restarts, failed_rank, error, self.tracking_uri)


def can_fork() -> bool:
    """Whether forking the helper is safe here (see the module)."""
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and threading.active_count() == 1
        and _STORE_MODULE not in sys.modules
    )


def open_books(tracking_uri: str) -> Books:
    """A forked helper where that is safe, else the launcher's own process."""
    if can_fork():
        try:
            return ForkedBooks(tracking_uri)
        except OSError:
            pass  # no process to spare: do it here
    return InProcessBooks(tracking_uri)


class ForkedBooks(Books):
    """The bookkeeping in a forked helper, driven over a pipe (see the module)."""

    def __init__(self, tracking_uri: str) -> None:
        from multiprocessing.connection import Pipe

        ours, theirs = Pipe()
        for stream in (sys.stdout, sys.stderr):  # or the helper would print it all again
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the helper
            ours.close()
            code = 1
            try:
                code = _serve(theirs, tracking_uri)
            finally:
                os._exit(code)
        theirs.close()
        self._pid = pid
        self._conn = ours
        self._done = False

    def _ask(self, message: tuple[Any, ...]) -> Any:
        try:
            self._conn.send(message)
            kind, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._reap()
            raise SlipwayError(f"The job's bookkeeping process is gone: {exc}") from None
        if kind == "error":
            self._reap()
            raise value
        return value

    def create(self, request: RunRequest) -> JobInfo:
        info: JobInfo = self._ask(("create", request))
        return info

    def finish(
        self,
        attempts: Sequence[AttemptLogs],
        status: RunStatus,
        restarts: int,
        failed_rank: int | None,
        error: str | None,
    ) -> None:
        try:
            self._ask(("finish", list(attempts), str(status), restarts, failed_rank, error))
        finally:
            self._reap()

    def abort(self) -> None:
        if self._done:
            return
        with contextlib.suppress(OSError):  # gone already
            self._conn.send(("abort",))
        self._reap()

    def _reap(self) -> None:
        if self._done:
            return
        self._done = True
        self._conn.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)


def _serve(conn: Any, tracking_uri: str) -> int:
    """The helper: open the store now, then do what the launcher asks until it is done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    books = InProcessBooks(tracking_uri)
    opened: BaseException | None = None
    try:
        from slipway.tracking.client import SlipwayClient

        SlipwayClient(tracking_uri).store  # noqa: B018 (opens the store: the slow part)
    except BaseException as exc:  # reported when the run is asked for
        opened = exc
    created = False
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            if created:
                books.finish([], RunStatus.FAILED, 0, None, LAUNCHER_DIED)
            return 1
        kind = message[0]
        if kind == "abort":
            return 0
        try:
            if kind == "create":
                if opened is not None:
                    raise opened
                reply: Any = books.create(message[1])
                created = True
            else:
                attempts, status, restarts, failed_rank, error = message[1:]
                books.finish(attempts, RunStatus(status), restarts, failed_rank, error)
                reply = None
        except BaseException as exc:
            conn.send(("error", _sendable(exc)))
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        conn.send(("ok", reply))
        if kind == "finish":
            return 0


def _sendable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`SlipwayError` that says the same."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 (our own bytes, just made)
    except Exception:
        return SlipwayError(f"{type(exc).__name__}: {exc}")
    return exc
