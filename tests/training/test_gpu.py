"""The GPU path: nccl workers, one per GPU, through ``slipway train``. These tests need a CUDA
GPU; on a machine without one they are skipped (the gloo path is tested everywhere)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from slipway import SlipwayClient
from slipway.training import env

from .conftest import REPO, SCRIPTS, only_run, slipway_train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU: the nccl path is checked on a machine that has one",
    ),
]


def _pythonpath() -> str:
    """The repository first, then whatever this process was given (packages installed
    beside the interpreter's on a GPU machine)."""
    return os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)


def test_auto_backend_is_nccl_with_cuda() -> None:
    assert env.resolve_backend("auto") == "nccl"
    assert env.capacity("nccl") == (torch.cuda.device_count(), "GPU")


def test_nccl_ddp_job_on_the_gpus(store_uri: str, tmp_path: Path) -> None:
    """One worker per GPU (two at most): nccl all-reduce, the same weights on every rank, the
    loss falls, rank 0's loss history in the one job run."""
    workers = min(2, torch.cuda.device_count())
    out = tmp_path / "out"
    done = slipway_train(
        store_uri,
        "--nproc",
        str(workers),
        str(SCRIPTS / "ddp_gpu.py"),
        str(out),
        "--steps",
        "15",
        cwd=tmp_path,
        timeout=300,
        gloo=False,
        PYTHONPATH=_pythonpath(),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = {int(p.stem.split("_")[1]): json.loads(p.read_text()) for p in out.glob("rank_*.json")}
    assert sorted(ranks) == list(range(workers))
    for rank, result in ranks.items():
        assert result["backend"] == "nccl"
        assert result["param_device"] == f"cuda:{rank}"
        assert result["all_reduce"] == workers * (workers + 1) / 2
        assert result["weights"] == ranks[0]["weights"]
    losses = ranks[0]["losses"]
    assert losses[-1] < losses[0] / 10
    run = only_run(store_uri)
    assert run.info.status == "FINISHED"
    assert run.data.params["backend"] == "nccl"
    history = SlipwayClient(store_uri).get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in history] == pytest.approx(losses)


def test_more_nccl_workers_than_gpus_is_refused(store_uri: str, tmp_path: Path) -> None:
    gpus = torch.cuda.device_count()
    done = slipway_train(
        store_uri,
        "--nproc",
        str(gpus + 1),
        "--backend",
        "nccl",
        str(SCRIPTS / "ddp_gpu.py"),
        str(tmp_path / "out"),
        cwd=tmp_path,
        PYTHONPATH=_pythonpath(),
    )
    assert done.returncode != 0
    assert f"it has {gpus} GPU" in done.stderr
    assert "Traceback" not in done.stderr
