"""The scheduler: starts the runs of due schedules.

Every ``poll_seconds`` it reads the schedules; for each one that is not paused and whose
``next_run_time`` has come, it computes the following fire time and *claims* the due one with
the store's compare-and-set (:meth:`~AbstractPipelineStore.claim_schedule_run`). Only the
scheduler whose claim wins starts the run, so several servers (each with its scheduler) over one
database start each fire once. The run is ``slipway pipelines run SOURCE --schedule-id ID`` in a
detached process (its own session, so stopping the scheduler leaves it running) whose output
goes to a log file; the run records the schedule's id and tells the schedule its run id.

The next fire time counts from *now*, not from the missed one: a scheduler that was down over
several fires starts one run when it comes back, not a burst. The scheduler never imports the
pipeline files itself (they run in the child), so a broken file cannot take it down.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from slipway.entities.pipelines import Schedule
from slipway.exceptions import SlipwayError
from slipway.pipelines.cron import next_fire
from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.tracking import uri as uris

DEFAULT_POLL_SECONDS = 15.0
LOG_FOLDER = "scheduler-logs"

log = logging.getLogger("slipway.pipelines.scheduler")


@dataclass(frozen=True, slots=True)
class Launch:
    """A run the scheduler started."""

    schedule_id: str
    name: str
    due_time: int
    pid: int
    log_path: str
    command: tuple[str, ...]


def slipway_command() -> list[str]:
    """How to start the ``slipway`` command line with this interpreter: ``python -m slipway``
    where the package has a ``__main__``, else the console script's entry function."""
    if importlib.util.find_spec("slipway.__main__") is not None:
        return [sys.executable, "-m", "slipway"]
    return [sys.executable, "-c", "from slipway.cli import main; main()"]


def default_log_dir(tracking_uri: str) -> Path:
    """``<store folder>/scheduler-logs`` for a SQLite store (a folder or ``sqlite:///``
    URI), else ``<temp>/slipway-scheduler``."""
    db_uri, _root = uris.resolve(tracking_uri)
    if db_uri.startswith("sqlite:///"):
        path = db_uri[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:":
            return Path(path).absolute().parent / LOG_FOLDER
    return Path(tempfile.gettempdir()) / "slipway-scheduler"


def run_command(run_tracking_uri: str, schedule: Schedule) -> list[str]:
    """The command line that runs one fire of ``schedule``. Parameters travel as one JSON
    object, so each keeps its exact type (a string that reads like a number stays a string)."""
    command = [
        *slipway_command(),
        "--tracking-uri",
        run_tracking_uri,
        "pipelines",
        "run",
        schedule.source,
        "--schedule-id",
        schedule.schedule_id,
    ]
    if schedule.parameters:
        command += ["--params-json", json.dumps(schedule.parameters, sort_keys=True)]
    if schedule.experiment_id:
        command += ["--experiment-id", schedule.experiment_id]
    return command


class Scheduler:
    """Starts the runs of due schedules of the store at ``tracking_uri``.

    Args:
        tracking_uri: the store whose schedules it reads (a folder, database URI or server
            URL; default: the tracking URI in effect).
        poll_seconds: how often it looks for due schedules.
        run_tracking_uri: the tracking URI the runs record to (default: ``tracking_uri``;
            ``slipway server`` passes its own URL so runs use its artifact settings).
        log_dir: where each run's output goes (default: :func:`default_log_dir`).
        clock: seconds since the epoch (tests move time).

    ``start()`` polls in a daemon thread until ``stop()``; ``run_forever()`` polls in the
    calling thread until ``stop()`` or Ctrl-C; ``poll_once()`` does one round.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        *,
        run_tracking_uri: str | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not poll_seconds > 0:
            raise ValueError(f"poll_seconds must be above 0, got {poll_seconds!r}")
        self.tracking_uri = uris.absolute_uri(tracking_uri or uris.get_tracking_uri())
        self.run_tracking_uri = uris.absolute_uri(run_tracking_uri or self.tracking_uri)
        self.poll_seconds = float(poll_seconds)
        self.log_dir = Path(log_dir) if log_dir is not None else default_log_dir(self.tracking_uri)
        self.launched: list[Launch] = []
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._warned: set[tuple[str, str]] = set()

    # -- one round -------------------------------------------------------------------------------

    @property
    def store(self) -> AbstractPipelineStore:
        from slipway.pipelines.store import get_pipeline_store

        return get_pipeline_store(self.tracking_uri)

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def poll_once(self, now_ms: int | None = None) -> list[Launch]:
        """Start the run of every due schedule this scheduler wins the claim for."""
        self._reap()
        now = self.now_ms() if now_ms is None else now_ms
        started: list[Launch] = []
        store = self.store
        for schedule in store.list_schedules():
            if schedule.paused:
                continue
            try:
                launch = self._consider(store, schedule, now)
            except (SlipwayError, OSError) as exc:
                reason = exc.message if isinstance(exc, SlipwayError) else str(exc)
                self._warn_once(schedule, f"schedule {schedule.name}: {reason}")
                continue
            if launch is not None:
                started.append(launch)
        return started

    def _consider(
        self, store: AbstractPipelineStore, schedule: Schedule, now: int
    ) -> Launch | None:
        due = schedule.next_run_time
        if due is None:  # made without a fire time (not by the CLI): start counting now
            store.update_schedule(schedule.schedule_id, next_run_time=next_fire(schedule.cron, now))
            return None
        if due > now:
            return None
        following = next_fire(schedule.cron, now)
        if not store.claim_schedule_run(schedule.schedule_id, due, following):
            return None  # another scheduler started it, or it was paused meanwhile
        launch = self._launch(schedule, due, now)
        store.update_schedule(schedule.schedule_id, last_run_time=now)
        return launch

    def _launch(self, schedule: Schedule, due: int, now: int) -> Launch:
        command = run_command(self.run_tracking_uri, schedule)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now / 1000))
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", schedule.name) or "schedule"
        log_path = self.log_dir / f"{safe}-{stamp}-{schedule.schedule_id[:8]}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "ab") as out:
            out.write(f"$ {' '.join(command)}\n".encode())
            out.flush()
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # detached: Ctrl-C on the scheduler leaves it running
                close_fds=True,
            )
        self._children.append(child)
        launch = Launch(
            schedule.schedule_id, schedule.name, due, child.pid, str(log_path), tuple(command)
        )
        self.launched.append(launch)
        log.info("Started schedule %s (pid %d), log %s", schedule.name, child.pid, log_path)
        return launch

    def _reap(self) -> None:
        """Collect the exit status of finished runs (no zombies in a long-lived server)."""
        self._children = [c for c in self._children if c.poll() is None]

    def _warn_once(self, schedule: Schedule, message: str) -> None:
        key = (schedule.schedule_id, message)
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    # -- the loop --------------------------------------------------------------------------------

    def _safe_poll(self) -> None:
        try:
            self.poll_once()
        except Exception as exc:  # a store that is briefly unreachable must not end the loop
            log.warning("Scheduler poll failed: %s", getattr(exc, "message", None) or exc)

    def run_forever(self) -> None:
        """Poll until :meth:`stop` (from another thread) or Ctrl-C."""
        self._stop.clear()
        while not self._stop.is_set():
            self._safe_poll()
            self._stop.wait(self.poll_seconds)

    def start(self) -> Scheduler:
        """Poll in a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run_forever, name="slipway-scheduler", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop polling (runs already started go on)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def wait_children(self, timeout: float | None = None) -> None:
        """Wait for the runs this scheduler started to end (tests use this)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for child in list(self._children):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            child.wait(left)
        self._reap()

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = [
    "DEFAULT_POLL_SECONDS",
    "Launch",
    "Scheduler",
    "default_log_dir",
    "run_command",
    "slipway_command",
]
