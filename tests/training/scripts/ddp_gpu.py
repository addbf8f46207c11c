"""A tiny DDP job on GPUs, written for torchrun: each rank trains on ``cuda:LOCAL_RANK`` with the
nccl backend (as a GPU script names it), checks an all-reduce across ranks, and writes
OUT_DIR/rank_<r>.json with its final weights, its losses and what it ran on.

Usage: ddp_gpu.py OUT_DIR [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    opts = parser.parse_args()

    local_rank = int(os.environ["LOCAL_RANK"])
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([float(rank + 1)], device=device)
    dist.all_reduce(total)  # 1 + 2 + ... + world on every rank
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1).to(device), device_ids=[local_rank])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1234 + rank)
    inputs = torch.randn(64, 4, generator=generator).to(device)
    targets = inputs @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]], device=device) + 0.25
    losses = []
    import slipway

    for step in range(opts.steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        slipway.log_metric("loss", loss.item(), step=step)
    weights = [
        round(float(w), 6)
        for w in torch.cat([p.detach().flatten() for p in model.parameters()]).cpu()
    ]
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / f"rank_{rank}.json").write_text(
        json.dumps(
            {
                "rank": rank,
                "world": world,
                "backend": dist.get_backend(),
                "device": torch.cuda.get_device_name(device),
                "param_device": str(next(model.parameters()).device),
                "all_reduce": total.item(),
                "losses": losses,
                "weights": weights,
            }
        )
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
