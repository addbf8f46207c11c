"""``launch()``: run a training script or function on N workers, tracked and restartable: local
processes under PyTorch's elastic agent, or Ray actors on a cluster (``on="ray"``, see
:mod:`.ray_launcher`).

The order matters and is the contract: everything that can be refused (arguments, more workers
than the machine or the cluster holds, a port in use, an unreachable cluster) is refused before
the job's run exists; then the run is created, the workers start with its id in their
environment, and whatever happens after (success, a failure past the restarts, the timeout,
Ctrl-C, an error in the launcher itself) ends the run with the matching status, after the
workers' logs are uploaded to it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipway.entities import RunStatus
from slipway.exceptions import InvalidParameterValue
from slipway.tracking import uri as uris
from slipway.tracking.client import SlipwayClient
from slipway.training import env
from slipway.training.bookkeeping import Books, JobInfo, RunRequest, open_books
from slipway.training.tracking import JobRun, resolve_experiment_id
from slipway.training.worker import PARENT_PID_ENV

__all__ = ["MASTER_ADDR", "TARGETS", "TrainingResult", "launch"]

MASTER_ADDR = "127.0.0.1"
DEFAULT_SYSTEM_METRICS_INTERVAL = 10.0
DEFAULT_PLACEMENT_TIMEOUT = 60.0
TARGETS = ("local", "ray")
_LAUNCH_LOCK = threading.Lock()
"""Launches in one process take turns: the workers' settings travel in this process's
environment while the agent starts them."""


@dataclass(frozen=True)
class TrainingResult:
    """How a job ended.

    Attributes:
        run_id: the job's run.
        status: ``FINISHED``, ``FAILED`` or ``KILLED``.
        restarts: how many times the workers were restarted.
        return_values: what the function returned, by rank (empty for a script, and when the
            job failed).
        failed_rank: the rank that failed first, when the job failed because a worker did.
        error: why the job failed, when it did.
    """

    run_id: str
    status: str
    restarts: int
    return_values: dict[int, Any] = field(default_factory=dict)
    failed_rank: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == str(RunStatus.FINISHED)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameterValue(f"Invalid {name} {value!r}: use an integer >= {minimum}")
    return value


def _check_seconds(name: str, value: object, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterValue(f"Invalid {name} {value!r}: use a number of seconds")
    number = float(value)
    if number < 0 or (number == 0 and not allow_zero) or number != number:
        raise InvalidParameterValue(
            f"Invalid {name} {value!r}: use a number of seconds {'>= 0' if allow_zero else '> 0'}"
        )
    return number


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((MASTER_ADDR, 0))
        return int(sock.getsockname()[1])


def _check_port(port: int, flag: str) -> int:
    if not 1 <= port <= 65535:
        raise InvalidParameterValue(f"Invalid {flag} {port}: use 1 to 65535 (or 0 for a free one)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((MASTER_ADDR, port))
        except OSError:
            raise InvalidParameterValue(
                f"Port {port} on {MASTER_ADDR} is in use: pick another {flag}, or leave it out "
                "to use a free one"
            ) from None
    return port


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@dataclass(frozen=True)
class _Entrypoint:
    """What each worker runs, in the agent's terms, and how the run describes it."""

    target: str | Callable[..., Any]
    args: tuple[Any, ...]
    params: dict[str, str]
    source: str
    is_function: bool
    script: str | None = None
    """The script's absolute path (where the Ray workers find it)."""
    script_args: tuple[str, ...] = ()
    payload: bytes | None = None
    """The pickled ``(fn, args, kwargs)`` of a function."""


def _entrypoint(
    entrypoint: Callable[..., Any] | str | os.PathLike[str],
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
) -> _Entrypoint:
    if callable(entrypoint):
        import cloudpickle

        from slipway.training.worker import call_function

        name = (
            f"{getattr(entrypoint, '__module__', '?')}.{getattr(entrypoint, '__qualname__', '?')}"
        )
        try:
            payload = cloudpickle.dumps((entrypoint, tuple(args), dict(kwargs or {})))
        except Exception as exc:
            raise InvalidParameterValue(
                f"Cannot send {name} and its arguments to the workers: {exc}"
            ) from None
        return _Entrypoint(
            call_function, (payload,), {"function": name}, name, True, payload=payload
        )
    if kwargs:
        raise InvalidParameterValue("kwargs go with a function; a script takes args only")
    script = os.fspath(entrypoint)
    if not Path(script).is_file():
        raise InvalidParameterValue(f"No such training script: {script!r}")
    script_args = [str(a) for a in args]
    from slipway.training import worker

    return _Entrypoint(
        sys.executable,
        ("-u", worker.__file__, script, *script_args),
        {"script": script, "script_args": shlex.join(script_args)},
        script,
        False,
        script=os.path.abspath(script),
        script_args=tuple(script_args),
    )


@dataclass(frozen=True)
class _Tracking:
    """Where the job's run goes: the store (as the workers name it), its experiment, and the
    fluent API's active run in this process, which becomes the job run's parent."""

    uri: str
    client: SlipwayClient
    experiment_id: str
    parent_run_id: str | None


def _tracking(tracking_uri: str | None, experiment_name: str | None) -> _Tracking:
    uri = uris.absolute_uri(tracking_uri or uris.get_tracking_uri())
    client = SlipwayClient(uri)
    experiment_id = resolve_experiment_id(client, experiment_name, tracking_uri is None)
    return _Tracking(uri, client, experiment_id, _parent_run_id(tracking_uri))


def _parent_run_id(tracking_uri: str | None) -> str | None:
    """The fluent API's active run in this process, when the job goes to its store: the job
    run becomes its child."""
    if tracking_uri is not None:
        return None
    from slipway.tracking import fluent

    active = fluent.active_run()
    return active.info.run_id if active is not None else None


def _job_env(
    run_id: str, artifact_uri: str, experiment_id: str, uri: str, backend: str, interval: float
) -> dict[str, str]:
    """Slipway's variables for every worker of the job (see :mod:`.env`)."""
    return {
        "SLIPWAY_TRACKING_URI": uri,
        "SLIPWAY_RUN_ID": run_id,
        "SLIPWAY_EXPERIMENT_ID": experiment_id,
        env.JOB_RUN_ID_ENV: run_id,
        env.ARTIFACT_URI_ENV: artifact_uri,
        env.BACKEND_ENV: backend,
        env.SYSTEM_METRICS_ENV: f"{interval:g}",
    }


def launch(
    entrypoint: Callable[..., Any] | str | os.PathLike[str],
    workers: int = 1,
    backend: str = "auto",
    max_restarts: int = 0,
    args: Sequence[Any] = (),
    experiment_name: str | None = None,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    *,
    kwargs: Mapping[str, Any] | None = None,
    master_port: int = 0,
    timeout: float | None = None,
    force: bool = False,
    system_metrics_interval: float = DEFAULT_SYSTEM_METRICS_INTERVAL,
    quiet: bool = False,
    on: str = "local",
    ray_address: str | None = None,
    resources_per_worker: Mapping[str, float] | None = None,
    placement_strategy: str = "PACK",
    placement_timeout: float = DEFAULT_PLACEMENT_TIMEOUT,
    working_dir: str | os.PathLike[str] | None = None,
) -> TrainingResult:
    """Run ``entrypoint`` on ``workers`` processes with torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``...), as one tracked run: local processes under PyTorch's
    elastic agent, or one Ray actor per rank on a cluster (``on="ray"``).

    Args:
        entrypoint: a script path (run like ``python SCRIPT ARGS``) or a function (sent to
            the workers with cloudpickle; each calls it with ``args`` and ``kwargs``).
        workers: processes to start; locally at most one per CPU (gloo) or GPU (nccl) unless
            ``force``; on Ray, as many as the cluster holds.
        backend: ``auto`` (nccl with CUDA, else gloo; on Ray nccl when the workers ask for
            GPUs), ``gloo`` or ``nccl``; the workers find it in
            ``slipway.training.backend()``.
        max_restarts: times all workers are restarted after one fails (on Ray, also after
            a node is lost); the script resumes from its last checkpoint.
        args: the script's command-line arguments, or the function's positional arguments.
        experiment_name: the experiment of the job's run (created when missing); the active
            one when omitted.
        run_name: the run's name.
        tracking_uri: where the run goes; the tracking URI in effect when omitted. On Ray
            every node must reach it (a server, a database, or a folder they share).
        kwargs: the function's keyword arguments.
        master_port: locally, the rendezvous port on 127.0.0.1 (``MASTER_PORT``) of the first
            attempt; 0 picks a free one. Every restart gets a new store on a free port. On
            Ray, rank 0's actor picks a free port on its node.
        timeout: seconds the whole job may take; past it every worker is stopped and the run
            FAILED (a hung collective ends this way).
        force: start more workers than this machine holds (local only).
        system_metrics_interval: seconds between per-rank system metric samples; 0 for none.
        quiet: do not copy the workers' output to this process's console.
        on: ``local`` or ``ray``.
        ray_address: the Ray cluster (``auto``, ``host:port``, ``ray://host:port``); a local
            Ray instance when omitted and ``RAY_ADDRESS`` is not set.
        resources_per_worker: what each worker's actor reserves on Ray, e.g.
            ``{"CPU": 2, "GPU": 1}``; 1 CPU (and 1 GPU with nccl) when omitted.
        placement_strategy: how Ray spreads the workers over nodes: ``PACK`` (as few nodes as
            possible), ``SPREAD``, ``STRICT_PACK`` (one node) or ``STRICT_SPREAD`` (one
            worker per node).
        placement_timeout: seconds to wait on Ray for the workers' resources to be free.
        working_dir: on Ray, a folder of this machine shipped to every node (zipped once
            into Ray's object store, at most 256 MiB, without ``.git``, virtual environments,
            caches and ``.slipway``): the workers run in their node's copy of it, so a script
            inside it and the modules and files next to it need not exist on the nodes.

    Returns:
        The :class:`TrainingResult`; a failed job is a result with status FAILED, not an
        exception.

    Raises:
        InvalidParameterValue: for bad arguments, too many workers for the machine or the
            cluster, or a port in use (before any run is created).
        TemporarilyUnavailable: the Ray cluster does not answer, or has no room free within
            ``placement_timeout`` (before any run is created).
        KeyboardInterrupt: on Ctrl-C, after the workers are stopped and the run marked KILLED.
    """
    workers = _check_int("workers", workers, 1)
    max_restarts = _check_int("max_restarts", max_restarts, 0)
    _check_int("master_port", master_port, 0)
    if timeout is not None:
        timeout = _check_seconds("timeout", timeout, allow_zero=False)
    interval = _check_seconds("system_metrics_interval", system_metrics_interval, True)
    if on not in TARGETS:
        raise InvalidParameterValue(f"Unknown target on={on!r}: use one of {', '.join(TARGETS)}")
    if on == "ray":
        if master_port:
            raise InvalidParameterValue(
                "master_port is for local jobs: on Ray, rank 0's actor picks a free port on "
                "its node"
            )
        if force:
            raise InvalidParameterValue(
                "force is for local jobs: on Ray, the cluster's resources decide"
            )
        from slipway.training.ray_launcher import RayPlan, launch_on_ray

        plan = RayPlan.checked(
            workers=workers,
            backend=backend,
            max_restarts=max_restarts,
            timeout=timeout,
            quiet=quiet,
            address=ray_address,
            resources=resources_per_worker,
            strategy=placement_strategy,
            placement_timeout=_check_seconds("placement_timeout", placement_timeout, False),
            working_dir=working_dir,
        )
        target = _entrypoint(entrypoint, args, kwargs)
        return launch_on_ray(
            plan,
            target,
            lambda: _tracking(tracking_uri, experiment_name),
            run_name,
            interval,
        )
    ray_only = {
        "ray_address": ray_address is not None,
        "resources_per_worker": resources_per_worker is not None,
        "placement_strategy": placement_strategy != "PACK",
        "placement_timeout": placement_timeout != DEFAULT_PLACEMENT_TIMEOUT,
        "working_dir": working_dir is not None,
    }
    given = [name for name, set_ in ray_only.items() if set_]
    if given:
        raise InvalidParameterValue(f"{', '.join(given)} go with on='ray'")
    uri = uris.absolute_uri(tracking_uri or uris.get_tracking_uri())
    parent_run_id = _parent_run_id(tracking_uri)
    books = open_books(uri)  # opens the store while torch is imported here
    try:
        chosen_backend = env.resolve_backend(backend)
        env.check_capacity(workers, chosen_backend, force)
        port = _check_port(master_port, "master_port") if master_port else _free_port()
        target = _entrypoint(entrypoint, args, kwargs)
        params = job_params(workers, chosen_backend, max_restarts, target, timeout)
        request = RunRequest(
            experiment_name, tracking_uri is None, run_name, params, target.source, parent_run_id
        )
        with _LAUNCH_LOCK:
            job = books.create(request)
    except BaseException:
        books.abort()
        raise
    with _LAUNCH_LOCK:
        worker_env = _job_env(
            job.run_id, job.artifact_uri, job.experiment_id, uri, chosen_backend, interval
        )
        if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
            worker_env["OMP_NUM_THREADS"] = "1"  # as torchrun does: no oversubscribed cores
        worker_env[PARENT_PID_ENV] = str(os.getpid())  # no worker outlives a killed launcher
        with _environment(worker_env):
            return _supervise(books, job, target, workers, max_restarts, port, timeout, quiet)


def job_params(
    workers: int, backend: str, max_restarts: int, target: _Entrypoint, timeout: float | None
) -> dict[str, str]:
    """The job run's params, the same whatever runs the workers."""
    params = {"nproc": str(workers), "backend": backend, "max_restarts": str(max_restarts)}
    params.update(target.params)
    if timeout is not None:
        params["timeout"] = f"{timeout:g}"
    return params


def _supervise(
    books: Books,
    job: JobInfo,
    target: _Entrypoint,
    workers: int,
    max_restarts: int,
    port: int,
    timeout: float | None,
    quiet: bool,
) -> TrainingResult:
    from slipway.training.agent import (
        AgentOutcome,
        AgentPlan,
        JobInterrupted,
        JobTimedOut,
        run_agent,
    )

    log_dir = Path(tempfile.mkdtemp(prefix="slipway-train-"))
    plan = AgentPlan(
        entrypoint=target.target,
        args=target.args,
        nproc=workers,
        max_restarts=max_restarts,
        master_addr=MASTER_ADDR,
        master_port=port,
        log_dir=log_dir,
        tee=not quiet,
        timeout=timeout,
        rendezvous_id=job.run_id,
    )
    outcome = AgentOutcome(False)
    status = RunStatus.FAILED
    failed_rank: int | None = None
    error: str | None = None
    interrupted: BaseException | None = None
    try:
        try:
            outcome = run_agent(plan)
        except JobTimedOut as exc:
            error = f"Stopped the workers: {exc}"
        except JobInterrupted as exc:
            status, error = RunStatus.KILLED, f"Stopped the workers: {exc}"
            interrupted = (
                KeyboardInterrupt() if exc.signum == signal.SIGINT else SystemExit(128 + exc.signum)
            )
        except KeyboardInterrupt as exc:
            status, error, interrupted = RunStatus.KILLED, "Stopped by Ctrl-C", exc
        except Exception as exc:
            error = f"The launcher failed: {type(exc).__name__}: {exc}"
            interrupted = exc
        else:
            if outcome.succeeded:
                status = RunStatus.FINISHED
            else:
                root = outcome.root_failure()
                if root is not None:
                    failed_rank, error = root.rank, root.describe()
    finally:
        _wrap_up(books, outcome, status, failed_rank, error, log_dir)
    if interrupted is not None:
        raise interrupted
    values: dict[int, Any] = {}
    if outcome.succeeded and target.is_function:
        import cloudpickle

        values = {
            rank: cloudpickle.loads(outcome.return_values[rank])
            for rank in sorted(outcome.return_values)
        }
    return TrainingResult(
        run_id=job.run_id,
        status=str(status),
        restarts=outcome.restarts,
        return_values=values,
        failed_rank=failed_rank,
        error=error,
    )


def _wrap_up(
    books: Books,
    outcome: Any,
    status: RunStatus,
    failed_rank: int | None,
    error: str | None,
    log_dir: Path,
) -> None:
    """Upload the logs, then end the run; a problem with the logs must not leave the run
    RUNNING, so it is reported and the run still ends."""
    try:
        books.finish(outcome.attempts, status, outcome.restarts, failed_rank, error)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)


def finish_job(
    job: JobRun,
    status: RunStatus,
    restarts: int,
    failed_rank: int | None,
    error: str | None,
    tracking_uri: str | None = None,
) -> None:
    """End the job's run with ``status``, the restarts, the failure and the newest checkpoint's
    step (a checkpoint index that cannot be read is reported, and the run still ends)."""
    step = None
    where = {env.ARTIFACT_URI_ENV: job.artifact_uri}
    if tracking_uri is not None:
        where["SLIPWAY_TRACKING_URI"] = tracking_uri
    try:
        from slipway.training.checkpoints import latest_checkpoint_step

        with _environment(where):
            step = latest_checkpoint_step()
    except Exception as exc:
        print(f"slipway: could not read the checkpoint index: {exc}", file=sys.stderr)
    job.finish(status, restarts, failed_rank, error, step)
