"""``launch()``: run a training script or function on N local workers, tracked and restartable.

The order matters and is the contract: everything that can be refused (arguments, more workers
than the machine holds, a port in use) is refused before the job's run exists; then the run
is created, the workers start with its id in their environment, and whatever happens after
(success, a failure past the restarts, the timeout, Ctrl-C, an error in the launcher itself)
ends the run with the matching status, after the workers' logs are uploaded to it.
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
from slipway.training.tracking import JobRun, create_job_run, resolve_experiment_id

__all__ = ["MASTER_ADDR", "TrainingResult", "launch"]

MASTER_ADDR = "127.0.0.1"
DEFAULT_SYSTEM_METRICS_INTERVAL = 10.0
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


def _worker_tracking_uri(uri: str) -> str:
    """``uri`` as the workers should see it: a bare folder made absolute, so it names the same
    store from any working directory."""
    if "://" in uri or uri.startswith("sqlite:"):
        return uri
    return str(Path(uri).expanduser().absolute())


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
        return _Entrypoint(call_function, (payload,), {"function": name}, name, True)
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
    )


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
) -> TrainingResult:
    """Run ``entrypoint`` on ``workers`` local processes under PyTorch's elastic agent, with
    torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...), as one tracked run.

    Args:
        entrypoint: a script path (run like ``python SCRIPT ARGS``) or a function (sent to
            the workers with cloudpickle; each calls it with ``args`` and ``kwargs``).
        workers: processes to start; at most one per CPU (gloo) or GPU (nccl) unless ``force``.
        backend: ``auto`` (nccl with CUDA, else gloo), ``gloo`` or ``nccl``; the workers find it
            in ``slipway.training.backend()``.
        max_restarts: times all workers are restarted after one fails; the script resumes
            from its last checkpoint.
        args: the script's command-line arguments, or the function's positional arguments.
        experiment_name: the experiment of the job's run (created when missing); the active
            one when omitted.
        run_name: the run's name.
        tracking_uri: where the run goes; the tracking URI in effect when omitted.
        kwargs: the function's keyword arguments.
        master_port: the rendezvous port on 127.0.0.1 (``MASTER_PORT``) of the first
            attempt; 0 picks a free one. Every restart gets a new store on a free port.
        timeout: seconds the whole job may take; past it every worker is stopped and the run
            FAILED (a hung collective ends this way).
        force: start more workers than the machine holds.
        system_metrics_interval: seconds between per-rank system metric samples; 0 for none.
        quiet: do not copy the workers' output to this process's console.

    Returns:
        The :class:`TrainingResult`; a failed job is a result with status FAILED, not an
        exception.

    Raises:
        InvalidParameterValue: for bad arguments, too many workers or a port in use (before
            any run is created).
        KeyboardInterrupt: on Ctrl-C, after the workers are stopped and the run marked KILLED.
    """
    workers = _check_int("workers", workers, 1)
    max_restarts = _check_int("max_restarts", max_restarts, 0)
    _check_int("master_port", master_port, 0)
    if timeout is not None:
        timeout = _check_seconds("timeout", timeout, allow_zero=False)
    interval = _check_seconds("system_metrics_interval", system_metrics_interval, True)
    chosen_backend = env.resolve_backend(backend)
    env.check_capacity(workers, chosen_backend, force)
    port = _check_port(master_port, "master_port") if master_port else _free_port()
    target = _entrypoint(entrypoint, args, kwargs)

    uri = _worker_tracking_uri(tracking_uri or uris.get_tracking_uri())
    client = SlipwayClient(uri)
    fluent_default = tracking_uri is None
    experiment_id = resolve_experiment_id(client, experiment_name, fluent_default)
    parent = None
    if fluent_default:
        from slipway.tracking import fluent

        active = fluent.active_run()
        parent = active.info.run_id if active is not None else None
    params = {"nproc": str(workers), "backend": chosen_backend, "max_restarts": str(max_restarts)}
    params.update(target.params)
    if timeout is not None:
        params["timeout"] = f"{timeout:g}"
    with _LAUNCH_LOCK:
        job = create_job_run(client, experiment_id, run_name, params, target.source, parent)
        worker_env = {
            "SLIPWAY_TRACKING_URI": uri,
            "SLIPWAY_RUN_ID": job.run_id,
            "SLIPWAY_EXPERIMENT_ID": experiment_id,
            env.JOB_RUN_ID_ENV: job.run_id,
            env.ARTIFACT_URI_ENV: job.artifact_uri,
            env.BACKEND_ENV: chosen_backend,
            env.SYSTEM_METRICS_ENV: f"{interval:g}",
        }
        if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
            worker_env["OMP_NUM_THREADS"] = "1"  # as torchrun does: no oversubscribed cores
        with _environment(worker_env):
            return _supervise(job, target, workers, max_restarts, port, timeout, quiet)


def _supervise(
    job: JobRun,
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
        _wrap_up(job, outcome, status, failed_rank, error, log_dir)
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
    job: JobRun,
    outcome: Any,
    status: RunStatus,
    failed_rank: int | None,
    error: str | None,
    log_dir: Path,
) -> None:
    """Upload the logs, then end the run; a problem with the logs must not leave the run
    RUNNING, so it is reported and the run still ends."""
    try:
        job.upload_logs(outcome.attempts)
    except Exception as exc:
        print(f"slipway: could not upload the worker logs: {exc}", file=sys.stderr)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    step = None
    try:
        from slipway.training.checkpoints import latest_checkpoint_step

        with _environment({env.ARTIFACT_URI_ENV: job.artifact_uri}):
            step = latest_checkpoint_step()
    except Exception as exc:
        print(f"slipway: could not read the checkpoint index: {exc}", file=sys.stderr)
    job.finish(status, outcome.restarts, failed_rank, error, step)
