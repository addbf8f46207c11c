"""The workers' supervisor: PyTorch's elastic agent, the machinery behind ``torchrun``.

:func:`run_agent` starts the agent in this process, with every worker's stdout and stderr
redirected to files (and copied to the console unless quiet). The agent restarts all workers
when one fails, up to ``max_restarts`` times. What is added, through the agent's documented
extension points (a rendezvous handler, a logs spec, an agent subclass):

* a one-machine rendezvous that serves a new store (``MASTER_ADDR:MASTER_PORT``) for every
  attempt, so restarted workers never meet the keys of the ones they replace;
* each attempt's log files recorded as they are laid out, which is also how restarts are
  counted; the files torch leaves open are closed;
* a job-level deadline: once it passes, the monitor raises :class:`JobTimedOut` and the agent
  stops every worker. A hung collective (a rank that never joins an ``all_reduce``) ends this
  way instead of waiting for the process group's own timeout (30 minutes by default).

torch is imported when :func:`run_agent` runs, never at import time.
"""

from __future__ import annotations

import inspect
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipway.training.logs import AttemptLogs
from slipway.training.worker import ERROR_TIME_KEY

__all__ = [
    "AgentOutcome",
    "AgentPlan",
    "JobInterrupted",
    "JobTimedOut",
    "WorkerFailure",
    "run_agent",
]

ROLE = "default"
"""torchrun's role name (``ROLE_NAME`` in the workers)."""
LOG_LINE_PREFIX = "[rank${rank}]:"
HANDLED_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
RENDEZVOUS_TIMEOUT_S = 900


class JobTimedOut(Exception):
    """The job ran past its deadline; the agent stops the workers when this leaves it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the job ran past its timeout of {seconds:g} s")
        self.seconds = seconds


class JobInterrupted(Exception):
    """The launcher got a termination signal (Ctrl-C is SIGINT); the workers were stopped."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@dataclass(frozen=True)
class AgentPlan:
    """What to run and how."""

    entrypoint: str | Callable[..., Any]
    args: tuple[Any, ...]
    nproc: int
    max_restarts: int
    master_addr: str
    master_port: int
    log_dir: Path
    tee: bool = True
    timeout: float | None = None
    shutdown_timeout: int = 10
    monitor_interval: float = 0.1
    rendezvous_id: str = "slipway"


@dataclass(frozen=True)
class WorkerFailure:
    """How one worker ended badly."""

    rank: int
    local_rank: int
    pid: int
    exit_code: int
    signal: str | None
    message: str
    time: float | None
    """When it failed, to the sub-second, if the worker recorded it."""
    has_error_file: bool
    cause: str | None = None
    """How it ended when no exit code says it (on Ray: ``node lost``, ``actor died``...)."""
    stopped: bool = False
    """Stopped by the launcher because another rank failed: a consequence, never the cause."""

    def describe(self) -> str:
        how = self.cause or (
            f"killed by {self.signal}" if self.signal else f"exit code {self.exit_code}"
        )
        return f"rank {self.rank} failed ({how}): {self.message}"


@dataclass
class AgentOutcome:
    """The agent's result: return values by rank, or the failures of the last attempt."""

    succeeded: bool
    return_values: dict[int, Any] = field(default_factory=dict)
    failures: list[WorkerFailure] = field(default_factory=list)
    attempts: list[AttemptLogs] = field(default_factory=list)

    @property
    def restarts(self) -> int:
        return max(0, len(self.attempts) - 1)

    def root_failure(self) -> WorkerFailure | None:
        """The failure that most likely caused the others. Workers the agent stopped with
        SIGTERM are consequences; of the rest, the earliest recorded error wins, and a worker
        that died without recording one (killed, ``os._exit``, a crash in C) beats those that
        did, which are usually its peers noticing it was gone."""
        if not self.failures:
            return None
        candidates = [
            f for f in self.failures if f.signal != "SIGTERM" and not f.stopped
        ] or self.failures
        return min(
            candidates,
            key=lambda f: (f.has_error_file, f.time if f.time is not None else 0.0, f.rank),
        )


@contextmanager
def _preserved_signal_handlers() -> Iterator[None]:
    """The agent installs its own handlers for termination signals and never puts the old ones
    back; do that, so Ctrl-C behaves as before once the job is over."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for name in HANDLED_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            saved[signum] = signal.getsignal(signum)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def run_agent(plan: AgentPlan) -> AgentOutcome:
    """Run the workers under the elastic agent until they succeed, fail past their restarts,
    time out or are interrupted.

    Raises:
        JobTimedOut: past ``plan.timeout`` (the workers are stopped).
        JobInterrupted: on SIGINT, SIGTERM, SIGHUP or SIGQUIT (the workers are stopped).
    """
    from torch.distributed.elastic.agent.server.api import WorkerSpec
    from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException, Std

    attempts: list[AttemptLogs] = []
    deadline = time.monotonic() + plan.timeout if plan.timeout else None

    class RecordingLogsSpecs(DefaultLogsSpecs):
        """The default layout, remembered attempt by attempt, by global rank."""

        def reify(self, envs: dict[int, dict[str, str]]) -> Any:
            dest = super().reify(envs)
            logs = AttemptLogs(attempt=len(attempts))
            for local_rank, worker_env in envs.items():
                rank = int(worker_env.get("RANK", local_rank))
                if local_rank in dest.stdouts:
                    logs.stdout[rank] = dest.stdouts[local_rank]
                if local_rank in dest.stderrs:
                    logs.stderr[rank] = dest.stderrs[local_rank]
            attempts.append(logs)
            return dest

    class DeadlineAgent(LocalElasticAgent):
        """The local agent, with a job-level deadline checked at every monitoring round."""

        def _monitor_workers(self, worker_group: Any) -> Any:
            if deadline is not None and time.monotonic() >= deadline:
                assert plan.timeout is not None
                raise JobTimedOut(plan.timeout)
            return super()._monitor_workers(worker_group)

        def _shutdown(self, *args: Any, **kwargs: Any) -> None:
            # (death_sig, timeout) in newer torch, (death_sig) in 2.11 and older
            context = getattr(self, "_pcontext", None)
            try:
                super()._shutdown(*args, **kwargs)
            finally:
                _close_log_files(context)

    spec = WorkerSpec(
        role=ROLE,
        local_world_size=plan.nproc,
        entrypoint=plan.entrypoint,
        args=plan.args,
        rdzv_handler=_fresh_store_rendezvous(plan),
        max_restarts=plan.max_restarts,
        monitor_interval=plan.monitor_interval,
    )
    logs_specs = RecordingLogsSpecs(
        log_dir=str(plan.log_dir),
        redirects=Std.ALL,
        tee=Std.ALL if plan.tee else Std.NONE,
    )
    options: dict[str, Any] = {}
    if "shutdown_timeout" in inspect.signature(LocalElasticAgent.__init__).parameters:
        options["shutdown_timeout"] = plan.shutdown_timeout  # not in torch 2.11 and older
    agent = DeadlineAgent(
        spec=spec,
        logs_specs=logs_specs,
        start_method="spawn",
        log_line_prefix_template=LOG_LINE_PREFIX if plan.tee else None,
        **options,
    )
    with _preserved_signal_handlers():
        try:
            result = agent.run()
        except SignalException as exc:
            raise JobInterrupted(int(exc.sigval)) from None
    if not result.is_failed():
        return AgentOutcome(True, return_values=dict(result.return_values), attempts=attempts)
    failures = [_failure(rank, failure) for rank, failure in result.failures.items()]
    return AgentOutcome(False, failures=sorted(failures, key=lambda f: f.rank), attempts=attempts)


def _fresh_store_rendezvous(plan: AgentPlan) -> Any:
    """A one-machine rendezvous whose every round (the first attempt and each restart) serves
    a new, empty TCPStore: the first on ``plan.master_port`` (0: a free port), the next ones
    on free ports. The workers find it as ``MASTER_ADDR:MASTER_PORT`` and use it as their
    store.

    torch's static rendezvous keeps one store for all attempts while the workers no longer
    namespace their keys by attempt, so a restarted worker can read the address a dead one
    published and wait forever to connect to it; a store per attempt cannot hold such keys.
    """
    from datetime import timedelta

    from torch.distributed import PrefixStore, TCPStore  # type: ignore[attr-defined]
    from torch.distributed.elastic.rendezvous import RendezvousHandler, RendezvousInfo
    from torch.distributed.elastic.rendezvous.api import RendezvousStoreInfo

    class FreshStoreRendezvous(RendezvousHandler):
        def __init__(self) -> None:
            self._port = plan.master_port
            self._store: Any = None

        def get_backend(self) -> str:
            return "static"

        @property
        def use_agent_store(self) -> bool:
            return True

        def next_rendezvous(self) -> Any:
            self._store = TCPStore(
                plan.master_addr,
                self._port,
                1,
                True,
                timedelta(seconds=RENDEZVOUS_TIMEOUT_S),
                wait_for_workers=False,
            )
            port = int(self._store.port)
            self._port = 0
            info = RendezvousStoreInfo(plan.master_addr, port)
            return RendezvousInfo(PrefixStore(plan.rendezvous_id, self._store), 0, 1, info)

        def is_closed(self) -> bool:
            return False

        def set_closed(self) -> None:
            return None

        def num_nodes_waiting(self) -> int:
            return 0

        def get_run_id(self) -> str:
            return plan.rendezvous_id

        def shutdown(self) -> bool:
            self._store = None
            return True

    return FreshStoreRendezvous()


def _close_log_files(context: Any) -> None:
    """Close the files a script worker's output was redirected to. torch closes them only for
    workers it had to stop, so every worker that exited by itself would leave two open files
    behind in this process (per attempt): a leak in a long-lived process that launches many
    jobs."""
    handlers = getattr(context, "subprocess_handlers", None) or {}
    for handler in handlers.values():
        for name in ("_stdout", "_stderr"):
            stream = getattr(handler, name, None)
            if stream is not None and not stream.closed:
                stream.close()


def _failure(rank: int, failure: Any) -> WorkerFailure:
    data = failure.error_file_data if isinstance(failure.error_file_data, dict) else {}
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    has_file = bool(data.get("message"))
    signal_name = failure.signal_name() if failure.exitcode < 0 else None
    if not has_file:
        message = f"killed by {signal_name}" if signal_name else "exited without an error message"
    precise = data.get(ERROR_TIME_KEY)
    return WorkerFailure(
        rank=rank,
        local_rank=int(failure.local_rank),
        pid=int(failure.pid),
        exit_code=int(failure.exitcode),
        signal=signal_name,
        message=str(message),
        time=float(precise) if isinstance(precise, int | float) else None,
        has_error_file=has_file,
    )
