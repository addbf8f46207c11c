"""A trial worker process: a long-lived process that runs trials of one study one after
another, sent to it over a connection by the coordinator (see :mod:`slipway.tuning.pool`).

Messages, pickled by :class:`multiprocessing.connection.Connection`:

* coordinator to worker: ``("trial", {"trial_id", "number", "params"[, "run_id"]})``,
  ``("run", number, run_id)`` (the trial's run, recorded while the trial starts: the worker
  reads it only when the trial first needs it), ``("stop",)``;
* worker to coordinator: ``("result", number, outcome)`` (see :mod:`slipway.tuning.runner`).

The worker starts its own session, so stopping its process group also stops what a trial
started; it ignores SIGINT (Ctrl-C is the coordinator's to handle) and turns SIGTERM into
:class:`~slipway.tuning.runner.TrialTerminated` in the running trial, then ends. It leaves with
``os._exit`` (the fluent API's exit hook must not end runs the coordinator ends).

Run as ``python -m slipway.tuning.worker JOB_FILE FD`` where no fork server can be had.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from slipway.tuning.runner import TrialRunner, TrialTerminated, failure

RUN_ID_TIMEOUT = 120.0
"""How long a trial waits for the coordinator to record its run."""


@dataclass
class WorkerJob:
    """What reaches a new worker process: the environment (applied before the study's task
    is unpickled, so imports see it) and the study's task, pickled by cloudpickle."""

    payload: bytes
    env: dict[str, str] = field(default_factory=dict)

    def _bootstrap(self, parent_sentinel: int | None = None) -> int:
        """The entry point the fork server calls in the new child; returns the exit status.
        The worker's end of the connection is the one descriptor passed along."""
        from multiprocessing import forkserver

        if parent_sentinel is not None:
            with contextlib.suppress(OSError):
                os.close(parent_sentinel)
        fds = forkserver.get_inherited_fds() or []
        return serve(Connection(fds[0]), self)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process
    raise TrialTerminated("terminated by the coordinator")


class _Inbox:
    """The worker's side of the connection: trial messages in order, run ids kept aside
    until the trial they belong to asks for its own."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.run_ids: dict[int, str] = {}

    def _take(self, message: Any) -> Any:
        if isinstance(message, tuple) and message and message[0] == "run":
            self.run_ids[int(message[1])] = str(message[2])
            return None
        return message

    def next(self) -> Any:
        """The next message other than a run id (EOFError once the coordinator is gone)."""
        while True:
            message = self._take(self.conn.recv())
            if message is not None:
                return message

    def run_id(self, number: int, timeout: float = RUN_ID_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while number not in self.run_ids:
            left = deadline - time.monotonic()
            if left <= 0 or not self.conn.poll(left):
                raise TimeoutError(
                    f"the coordinator did not record the trial's run within {timeout:g} s"
                )
            if self._take(self.conn.recv()) is not None:
                raise RuntimeError("a message came while the trial waited for its run's id")
        return self.run_ids[number]

    def forget_before(self, number: int) -> None:
        for old in [n for n in self.run_ids if n < number]:
            del self.run_ids[old]


def serve(conn: Connection, job: WorkerJob) -> int:
    """Run trials sent over ``conn`` until the coordinator says stop or goes away."""
    with contextlib.suppress(OSError):  # already a session leader
        os.setsid()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(job.env)
    inbox = _Inbox(conn)
    try:
        runner: TrialRunner | None = None
        broken: dict[str, Any] | None = None
        try:
            import cloudpickle

            runner = TrialRunner(cloudpickle.loads(job.payload))
        except BaseException as exc:
            broken = failure(exc, "cannot load the objective: ")
        while True:
            try:
                message = inbox.next()
            except EOFError:
                return 0
            if message[0] != "trial":
                return 0
            body = message[1]
            number = int(body["number"])
            inbox.forget_before(number)
            if "run_id" in body:
                inbox.run_ids[number] = str(body["run_id"])
            if runner is None:
                assert broken is not None
                outcome = dict(broken)
            else:
                outcome = runner.run(
                    int(body["trial_id"]),
                    number,
                    dict(body["params"]),
                    partial(inbox.run_id, number),
                )
            _flush_output()
            try:
                conn.send(("result", number, outcome))
            except OSError:  # the coordinator is gone
                return 0
            if runner is not None and runner.terminated:
                return 0
    except TrialTerminated:  # stopped between trials
        return 0
    except BaseException:
        traceback.print_exc()
        _flush_output()
        return 1


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def main(argv: list[str] | None = None) -> int:
    """``python -m slipway.tuning.worker JOB_FILE FD``: serve the pickled job in that file
    over the connection whose descriptor is FD."""
    import pickle

    args = sys.argv[1:] if argv is None else argv
    with open(args[0], "rb") as stream:
        job = pickle.load(stream)  # noqa: S301 - written by our own coordinator
    with contextlib.suppress(OSError):
        os.unlink(args[0])
    return serve(Connection(int(args[1])), job)


if __name__ == "__main__":  # pragma: no cover - run by the subprocess launcher
    code = main()
    _flush_output()
    os._exit(code)

__all__ = ["WorkerJob", "main", "serve"]
