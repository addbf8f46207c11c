"""Data-parallel training of a small regression model: a plain torchrun-style script.

Runs the same under ``torchrun`` and ``slipway train``::

    torchrun --nproc-per-node 2 examples/training/train_ddp.py --steps 200
    slipway train --nproc 2 --max-restarts 2 --experiment ddp \\
        examples/training/train_ddp.py --steps 200 --lr 0.05

Under ``slipway train`` rank 0's ``slipway.log_metric`` calls go to the job's run, and the
script checkpoints every ``--checkpoint-every`` steps into the run, so a restarted job resumes
where it was. Under plain ``torchrun`` it checkpoints only when ``SLIPWAY_CHECKPOINT_URI``
names a folder, and each rank logs to a run of its own.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import slipway
from slipway import training

TRUE_WEIGHTS = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def checkpoints_enabled() -> bool:
    return bool(training.job_run_id() or os.environ.get("SLIPWAY_CHECKPOINT_URI"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    args = parser.parse_args()

    training.init_process_group()  # gloo on CPU, nccl with GPUs: the launcher's choice
    rank, world = training.rank(), training.world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

    start = 0
    state = training.load_latest_checkpoint() if checkpoints_enabled() else None
    if state is not None:
        model.module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        if training.is_main():
            print(f"resumed from step {start} (restart {training.restart_count()})")
    if training.is_main():
        slipway.log_params({"lr": args.lr, "batch": args.batch, "steps": args.steps})

    data = torch.Generator().manual_seed(1000 + rank)  # each rank its own shard of the data
    for step in range(start, args.steps):
        inputs = torch.randn(args.batch, 4, generator=data)
        targets = inputs @ TRUE_WEIGHTS + 0.25
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()  # DDP averages the gradients of all ranks here
        optimizer.step()
        slipway.log_metric("loss", loss.item(), step=step)  # kept from rank 0 only
        done = step + 1
        if checkpoints_enabled() and done % args.checkpoint_every == 0:
            training.save_checkpoint(
                {
                    "model": model.module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": done,
                },
                step=done,
            )

    if training.is_main():
        weights = model.module.weight.detach().flatten().tolist()
        print(f"{world} workers, {args.steps} steps, weights {[round(w, 3) for w in weights]}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
