"""Distributed training: N local workers under PyTorch's elastic agent, as one tracked run.

::

    from slipway import training

    def train(cfg):
        training.init_process_group()          # gloo on CPU, nccl on GPUs
        state = training.load_latest_checkpoint() or fresh_state(cfg)
        for step in range(state["step"], cfg.steps):
            ...
            slipway.log_metric("loss", loss, step=step)    # rank 0's reach the run
            training.save_checkpoint(state_of(model, step + 1), step=step + 1)

    result = training.launch(train, workers=2, max_restarts=2, args=(cfg,))
    result.run_id, result.status, result.restarts, result.return_values

A script works the same way: ``slipway train --nproc 2 train.py --lr 0.1``, or
``training.launch("train.py", workers=2, args=["--lr", "0.1"])``; any script that runs under
``torchrun`` runs unchanged. ``slipway train ... --emit pytorchjob`` writes the Kubeflow
PyTorchJob that runs it on a cluster instead; ``launch(..., on="ray", ray_address="auto")``
(``slipway train --on ray``) runs the same job on a Ray cluster, one actor per rank.

In the workers, ``slipway.log_metric`` and friends log to the job's run on rank 0
(``SLIPWAY_RUN_ID`` names it, so ``slipway.start_run()`` there resumes it rather than starting
another) and are dropped on the other ranks. Every rank's CPU and memory are logged as
``system/rank_<r>/...`` and its stdout and stderr become ``logs/rank_<r>.stdout.txt`` and
``.stderr.txt``. The launcher has the last word on the run's status: FINISHED, FAILED (with
the rank that failed first and its error in the ``slipway.training.failed_rank`` and
``slipway.training.error`` tags) or KILLED (Ctrl-C). Restarts are the ``restarts`` metric and
the ``slipway.training.restarts`` tag.
"""

from __future__ import annotations

import os
from datetime import timedelta

from slipway.training.checkpoints import (
    checkpoint_steps,
    latest_checkpoint_step,
    load_latest_checkpoint,
    save_checkpoint,
)
from slipway.training.env import (
    backend,
    is_main,
    local_rank,
    local_world_size,
    rank,
    restart_count,
    world_size,
)
from slipway.training.launcher import TrainingResult, launch
from slipway.training.manifests import pytorchjob_manifest

__all__ = [
    "TrainingResult",
    "backend",
    "checkpoint_steps",
    "init_process_group",
    "is_main",
    "job_run_id",
    "latest_checkpoint_step",
    "launch",
    "load_latest_checkpoint",
    "local_rank",
    "local_world_size",
    "pytorchjob_manifest",
    "rank",
    "restart_count",
    "save_checkpoint",
    "world_size",
]


def job_run_id() -> str | None:
    """The id of the job's run in a worker launched by Slipway, else None."""
    from slipway.training.env import JOB_RUN_ID_ENV

    return os.environ.get(JOB_RUN_ID_ENV) or None


def init_process_group(backend_name: str | None = None, timeout: float | None = None) -> None:
    """``torch.distributed.init_process_group`` with the launcher's backend and the
    environment's rendezvous; with nccl, this worker's GPU becomes the current device. Does
    nothing when the group exists already.

    Args:
        backend_name: ``gloo`` or ``nccl``; the launcher's choice when omitted.
        timeout: seconds a collective may wait for the other ranks before failing (the
            backend's default, 30 minutes for gloo, when omitted).
    """
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    chosen = backend_name or backend()
    if chosen == "nccl":
        torch.cuda.set_device(local_rank())
    if timeout is None:
        dist.init_process_group(backend=chosen)
    else:
        dist.init_process_group(backend=chosen, timeout=timedelta(seconds=timeout))
