"""The environment a training worker runs in, and what the launcher reads from the machine.

Workers get torchrun's contract (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``,
``TORCHELASTIC_RESTART_COUNT``...), which is also what Kubeflow's PyTorchJob gives each pod,
plus Slipway's own variables below. The helpers read the contract, so they work the same under
``slipway train``, plain ``torchrun`` and a PyTorchJob, and give rank 0 of 1 outside any of
them.
"""

from __future__ import annotations

import os

from slipway.exceptions import InvalidParameterValue

__all__ = [
    "ARTIFACT_URI_ENV",
    "BACKENDS",
    "BACKEND_ENV",
    "CHECKPOINT_URI_ENV",
    "JOB_RUN_ID_ENV",
    "SYSTEM_METRICS_ENV",
    "backend",
    "capacity",
    "check_capacity",
    "is_main",
    "local_rank",
    "local_world_size",
    "rank",
    "resolve_backend",
    "restart_count",
    "world_size",
]

JOB_RUN_ID_ENV = "SLIPWAY_TRAINING_RUN_ID"
"""The job's run, given to every worker (rank 0 also gets it as ``SLIPWAY_RUN_ID``)."""
ARTIFACT_URI_ENV = "SLIPWAY_TRAINING_ARTIFACT_URI"
"""The job run's artifact root, where checkpoints go."""
BACKEND_ENV = "SLIPWAY_TRAINING_BACKEND"
"""The process-group backend the launcher chose (``gloo`` or ``nccl``)."""
SYSTEM_METRICS_ENV = "SLIPWAY_TRAINING_SYSTEM_METRICS_INTERVAL"
"""Seconds between per-rank system metric samples; 0 turns them off."""
CHECKPOINT_URI_ENV = "SLIPWAY_CHECKPOINT_URI"
"""Where checkpoints go when no job run is known (plain ``torchrun``): a folder or ``s3://``."""

BACKENDS = ("auto", "gloo", "nccl")


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise InvalidParameterValue(f"{name}={raw!r} is not an integer") from None


def rank() -> int:
    """This worker's global rank (``RANK``); 0 outside a distributed job."""
    return _int_env("RANK", 0)


def local_rank() -> int:
    """This worker's rank on its machine (``LOCAL_RANK``); 0 outside a distributed job."""
    return _int_env("LOCAL_RANK", 0)


def world_size() -> int:
    """How many workers the job has in all (``WORLD_SIZE``); 1 outside a distributed job."""
    return _int_env("WORLD_SIZE", 1)


def local_world_size() -> int:
    """How many workers run on this machine (``LOCAL_WORLD_SIZE``)."""
    return _int_env("LOCAL_WORLD_SIZE", 1)


def is_main() -> bool:
    """Whether this is rank 0: the worker that logs to the job's run and writes checkpoints."""
    return rank() == 0


def restart_count() -> int:
    """How many times the workers have been restarted so far (0 on the first attempt)."""
    return _int_env("TORCHELASTIC_RESTART_COUNT", 0)


def backend() -> str:
    """The backend the launcher chose, else nccl with CUDA and gloo without."""
    chosen = os.environ.get(BACKEND_ENV, "").strip()
    return chosen if chosen in ("gloo", "nccl") else resolve_backend("auto")


def resolve_backend(name: str) -> str:
    """``auto`` as nccl when CUDA is available and gloo otherwise; ``gloo``/``nccl`` checked.

    Raises:
        InvalidParameterValue: for an unknown backend, or nccl on a machine without CUDA.
    """
    if name not in BACKENDS:
        raise InvalidParameterValue(f"Unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
    import torch

    cuda = bool(torch.cuda.is_available())
    if name == "auto":
        return "nccl" if cuda else "gloo"
    if name == "nccl" and not cuda:
        raise InvalidParameterValue(
            "The nccl backend needs CUDA GPUs, and torch sees none here: use gloo (or auto)"
        )
    return name


def capacity(backend_name: str) -> tuple[int, str]:
    """How many workers this machine holds for ``backend_name``, and what it counts: one per
    GPU for nccl, one per CPU this process may run on for gloo."""
    if backend_name == "nccl":
        import torch

        return int(torch.cuda.device_count()), "GPU"
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus, "CPU"


def check_capacity(workers: int, backend_name: str, force: bool) -> None:
    """Refuse more workers than the machine holds (unless ``force``).

    Raises:
        InvalidParameterValue: naming the limit and how to go past it.
    """
    limit, unit = capacity(backend_name)
    if workers <= limit or force:
        return
    raise InvalidParameterValue(
        f"{workers} workers are more than this machine can hold: it has {limit} "
        f"{unit}{'s' if limit != 1 else ''} for the {backend_name} backend, one worker each. "
        f"Use at most {limit}, or pass --force (force=True) to oversubscribe."
    )
