"""Where a study's trials run: a :class:`TrialPool` of long-lived workers, as many as the
study's parallelism, each running one trial at a time and many trials in turn.

The coordinator asks a pool to :meth:`~TrialPool.start` a trial (its number, Optuna id and
parameters), tells it the trial's run once recorded (:meth:`~TrialPool.record_run`, from the
recorder thread), and collects outcomes with :meth:`~TrialPool.wait`. A trial that takes its
worker down (``os._exit``, a segfault, SIGKILL) fails alone: its outcome says how the worker
ended, and the pool starts a new worker for the next trial. :class:`LocalPool` runs workers as
processes of this machine (:mod:`slipway.tuning.launcher`);
:class:`~slipway.tuning.ray_workers.RayPool` as Ray actors.
"""

from __future__ import annotations

import abc
import contextlib
import os
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.tuning.launcher import KILL_GRACE_SECONDS, WorkerProcess
from slipway.tuning.runner import StudyTask
from slipway.tuning.spec import TuneSpec
from slipway.tuning.worker import WorkerJob

Outcome = dict[str, Any]
"""A trial's outcome (see :mod:`slipway.tuning.runner`); ``tags`` holds tags for its run."""


class TrialPool(abc.ABC):
    """Long-lived trial workers, ``size`` of them."""

    size: int

    @abc.abstractmethod
    def start(self, number: int, trial: dict[str, Any]) -> None:
        """Run ``trial`` (``trial_id``, ``number``, ``params``) on a free worker (the caller
        starts no more trials than ``size`` at once)."""

    @abc.abstractmethod
    def record_run(self, number: int, run_id: str) -> None:
        """The run of trial ``number`` (recorded while it starts); safe from any thread."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> list[tuple[int, Outcome]]:
        """Wait up to ``timeout`` seconds for trials to end; the ones that did."""

    @abc.abstractmethod
    def kill(self, number: int, reason: str) -> None:
        """Stop trial ``number`` now (its worker goes; a new one takes its place)."""

    def kill_all(self, numbers: list[int], reason: str) -> None:
        """Stop the trials ``numbers`` (all at once where the pool can)."""
        for number in numbers:
            self.kill(number, reason)

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every worker."""


class LocalPool(TrialPool):
    """Worker processes of this machine, started in the background as soon as the pool is
    made (so they are ready when the study has opened its record and asked for its first
    trials), replaced when one dies."""

    def __init__(self, size: int, job: WorkerJob, ready: int | None = None) -> None:
        """``ready``: how many workers to start at once (default ``size``; the rest start
        when a trial needs them)."""
        self.size = size
        self._ready = size if ready is None else min(size, ready)
        self._job = job
        self._lock = threading.Lock()
        self._idle: list[WorkerProcess] = []
        self._busy: dict[int, WorkerProcess] = {}
        self._run_ids: dict[int, str] = {}
        """Runs recorded before their trial started (trials start in the order of numbers)."""
        self._last_started = -1
        self._start_error: BaseException | None = None
        self._starter = threading.Thread(
            target=self._start_workers, name="study-workers", daemon=True
        )
        self._starter.start()

    def _start_workers(self) -> None:
        try:
            for _ in range(self._ready):
                worker = WorkerProcess(self._job)
                with self._lock:
                    self._idle.append(worker)
        except BaseException as exc:  # raised where a worker is needed
            self._start_error = exc

    def _free_worker(self) -> WorkerProcess:
        self._starter.join()
        with self._lock:
            idle, self._idle = self._idle, []
        worker: WorkerProcess | None = None
        for candidate in idle:
            if worker is None and candidate.poll() is None:
                worker = candidate
            elif candidate.poll() is not None:
                candidate.stop()
            else:
                with self._lock:
                    self._idle.append(candidate)
        if worker is not None:
            return worker
        if self._start_error is not None:
            raise self._start_error
        return WorkerProcess(self._job)

    def start(self, number: int, trial: dict[str, Any]) -> None:
        worker = self._free_worker()
        with self._lock:
            body = dict(trial)
            run_id = self._run_ids.pop(number, None)
            if run_id is not None:
                body["run_id"] = run_id
            self._busy[number] = worker
            self._last_started = max(self._last_started, number)
            with contextlib.suppress(OSError):  # it died meanwhile: wait() finds out how
                worker.conn.send(("trial", body))

    def record_run(self, number: int, run_id: str) -> None:
        with self._lock:
            worker = self._busy.get(number)
            if worker is None:
                if number > self._last_started:  # else it ended already: nobody needs it
                    self._run_ids[number] = run_id
                return
            with contextlib.suppress(OSError):
                worker.conn.send(("run", number, run_id))

    def wait(self, timeout: float) -> list[tuple[int, Outcome]]:
        if not self._busy:
            return []
        handles: dict[Any, int] = {}
        for number, worker in self._busy.items():
            handles[worker.conn] = number
            handles[worker.sentinel] = number
        ended: dict[int, Outcome] = {}
        for handle in wait(list(handles), max(timeout, 0.0)):
            number = handles[handle]
            if number not in ended:
                outcome = self._outcome(number, self._busy[number])
                if outcome is not None:
                    ended[number] = outcome
        for number in ended:
            with self._lock:
                worker = self._busy.pop(number)
            if worker.poll() is None:
                with self._lock:
                    self._idle.append(worker)
        return list(ended.items())

    @staticmethod
    def _outcome(number: int, worker: WorkerProcess) -> Outcome | None:
        """The trial's outcome if its worker sent it or ended, else None."""
        gone = False
        try:
            while worker.conn.poll(0):
                message = worker.conn.recv()
                if message[0] == "result" and message[1] == number:
                    return dict(message[2])
        except (EOFError, OSError):
            gone = True
        if worker.poll() is None:
            if not gone:
                return None
            if worker.join(KILL_GRACE_SECONDS) is None:  # closed its end yet lives on
                worker.kill("lost")
        return {"state": "FAIL", "error": f"the trial's process {worker.ending()}"}

    def kill(self, number: int, reason: str) -> None:
        with self._lock:
            worker = self._busy.pop(number, None)
            self._run_ids.pop(number, None)
        if worker is not None:
            worker.kill(reason)
            worker.conn.close()

    def kill_all(self, numbers: list[int], reason: str) -> None:
        with self._lock:
            workers = [self._busy.pop(n) for n in numbers if n in self._busy]
            for number in numbers:
                self._run_ids.pop(number, None)
        for worker in workers:
            worker.terminate(reason)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        for worker in workers:
            worker.finish_kill(deadline)
            worker.conn.close()

    def close(self) -> None:
        self._starter.join()
        self.kill_all(list(self._busy), "closed")
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.ask_to_stop()
        for worker in idle:
            worker.stop()


def make_pool(
    task: StudyTask,
    spec: TuneSpec,
    *,
    on: str = "local",
    ray_address: str | None = None,
    working_dir: str | None = None,
) -> TrialPool:
    """The workers of the study ``task`` describes: :class:`LocalPool` processes, or Ray
    actors (``on="ray"``, at ``ray_address``, with ``working_dir`` shipped to them); as many as
    ``spec.parallelism``, the first of them started now in the background.

    Raises:
        InvalidParameterValue: the objective cannot be pickled for the workers, or (on Ray) no
            node could hold a trial.
    """
    import cloudpickle

    try:
        payload = cloudpickle.dumps(task)
    except Exception as exc:
        raise InvalidParameterValue(
            f"The objective cannot be sent to a trial worker: {exc}"
        ) from exc
    env = {k: v for k, v in os.environ.items() if k != "SLIPWAY_RUN_ID"}
    env["SLIPWAY_TRACKING_URI"] = task.tracking_uri
    env["SLIPWAY_TUNING_STUDY"] = task.study_name
    size = spec.parallelism
    ready = min(size, spec.total_trials() or size)  # no more workers than trials
    if on == "ray":
        from slipway.tuning.ray_workers import RayPool, ship

        ray_env = {k: v for k, v in env.items() if k.startswith("SLIPWAY_")}
        shipped = ship(working_dir, spec.cwd) if working_dir is not None else None
        return RayPool(size, payload, ray_env, spec.trial_resources, ray_address, ready, shipped)
    return LocalPool(size, WorkerJob(payload, env), ready)


__all__ = ["LocalPool", "Outcome", "TrialPool", "make_pool"]
