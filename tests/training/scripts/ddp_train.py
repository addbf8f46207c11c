"""A tiny DDP job, written for torchrun: linear regression on fixed data, two ranks.

Usage: ddp_train.py OUT_DIR [--steps N] [--checkpoint-every K] [--die-at STEP --marker FILE]
       [--hold-at STEP --go FILE] [--log] [--lr LR]

Each rank writes OUT_DIR/rank_<r>.json with its final weights, the loss history and the step
it resumed from. ``--die-at`` makes rank 1 kill itself (SIGKILL) at that step, once: the
marker file says it already did. ``--hold-at`` makes every rank of the first attempt write
OUT_DIR/held_<r> at that step and wait there until the file ``--go`` exists (a test does
something to the job meanwhile).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--die-at", type=int, default=-1)
    parser.add_argument("--marker", type=Path)
    parser.add_argument("--hold-at", type=int, default=-1)
    parser.add_argument("--go", type=Path)
    parser.add_argument("--log", action="store_true")
    opts = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=opts.lr)
    start = 0
    if opts.checkpoint_every:
        from slipway import training

        state = training.load_latest_checkpoint()
        if state is not None:
            model.module.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = state["step"]

    generator = torch.Generator().manual_seed(1234 + rank)  # each rank its own shard
    inputs = torch.randn(64, 4, generator=generator)
    targets = inputs @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.25
    losses = []
    for step in range(start, opts.steps):
        if step == opts.die_at and rank == 1 and opts.marker and not opts.marker.exists():
            opts.marker.write_text("died")
            os.kill(os.getpid(), signal.SIGKILL)
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if step == opts.hold_at and first_attempt and opts.go:
            opts.out.mkdir(parents=True, exist_ok=True)
            (opts.out / f"held_{rank}").write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not opts.go.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if opts.log:
            import slipway

            slipway.log_metric("loss", loss.item(), step=step)
        if opts.checkpoint_every and (step + 1) % opts.checkpoint_every == 0:
            from slipway import training

            state = {
                "model": model.module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step + 1,
            }
            training.save_checkpoint(state, step=step + 1)
    weights = [
        round(float(w), 6) for w in torch.cat([p.detach().flatten() for p in model.parameters()])
    ]
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / f"rank_{rank}.json").write_text(
        json.dumps(
            {"rank": rank, "world": world, "start": start, "losses": losses, "weights": weights}
        )
    )
    if rank == 0:
        print(f"final weights {weights}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
