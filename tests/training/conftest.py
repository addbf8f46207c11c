"""What the training tests share: a clean environment, a folder store, the CLI in a subprocess.

Launches are real: worker processes under PyTorch's elastic agent, gloo, two workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway import Run, SlipwayClient, ViewType
from slipway.tracking import fluent
from slipway.tracking import uri as uris

SCRIPTS = Path(__file__).parent / "scripts"
REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Slipway's or torchelastic's settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLIPWAY_", "TORCHELASTIC_", "PET_")) and k not in WORKER_VARS
    }
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


WORKER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Slipway, torchelastic or worker variable in this process's environment."""
    for key in list(os.environ):
        if key.startswith(("SLIPWAY_", "TORCHELASTIC_", "PET_")) or key in WORKER_VARS:
            monkeypatch.delenv(key)


@pytest.fixture
def store_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bare_env: None) -> Iterator[str]:
    """A folder store of its own, with no Slipway setting left in the environment; the
    fluent API points at it too (for in-process launches)."""
    monkeypatch.chdir(tmp_path)
    uri = str(tmp_path / "tracking")
    fluent.set_tracking_uri(uri)
    yield uri
    while fluent.active_run() is not None:
        fluent.end_run()
    fluent.set_tracking_uri(None)
    with fluent._clients_lock:
        for client in fluent._clients.values():
            if client._async is not None:
                client._async.close()
        fluent._clients.clear()
    uris.clear_store_cache()


def slipway_train(
    uri: str, *args: str, cwd: Path, timeout: float = 120, gloo: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """``slipway --tracking-uri URI train ARGS`` as a subprocess; with ``--backend gloo`` unless
    ARGS name a backend, emit a manifest or ``gloo=False`` (``auto`` would choose nccl on a
    machine with a GPU, where these CPU jobs are meant to run on gloo)."""
    if gloo and "--backend" not in args and "--emit" not in args:
        args = ("--backend", "gloo", *args)
    return subprocess.run(
        [sys.executable, "-m", "slipway", "--tracking-uri", uri, "train", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def all_runs(uri: str) -> list[Run]:
    client = SlipwayClient(uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    return list(
        client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL)
    )


def only_run(uri: str) -> Run:
    """The one run in the store (failing when there are more: workers must not make runs)."""
    runs = all_runs(uri)
    assert len(runs) == 1, [(r.info.run_id, r.info.run_name) for r in runs]
    return runs[0]


def artifact_text(uri: str, run_id: str, path: str) -> str:
    client = SlipwayClient(uri)
    return client.download_artifacts(run_id, path).read_text(encoding="utf-8")


def rank_files(out: Path) -> dict[int, dict[str, Any]]:
    """What each rank of a test script wrote to ``out/rank_<r>.json``, by rank."""
    return {
        int(path.stem.split("_")[1]): json.loads(path.read_text())
        for path in sorted(out.glob("rank_*.json"))
    }


def assert_ddp_trained(out: Path) -> dict[int, dict[str, Any]]:
    """``ddp_train.py`` ran on two ranks that ended with the same weights, each on its own
    shard, and rank 0's loss fell tenfold; what the ranks wrote."""
    ranks = rank_files(out)
    assert sorted(ranks) == [0, 1]
    assert ranks[0]["world"] == 2
    assert ranks[0]["weights"] == ranks[1]["weights"]
    losses = ranks[0]["losses"]
    assert losses[-1] < losses[0] / 10
    assert ranks[0]["losses"] != ranks[1]["losses"]  # each rank its own shard
    return ranks


def assert_job_contract(seen: dict[int, Any], run: Run, uri: str) -> None:
    """What every rank of a job gets wherever it runs: Slipway's variables pointing at the job's
    run, and its own stdout and stderr kept as the run's artifacts (the ``env_echo`` script)."""
    for rank, got in seen.items():
        env = got["env"]
        assert env["SLIPWAY_TRAINING_RUN_ID"] == env["SLIPWAY_RUN_ID"] == run.info.run_id
        assert env["SLIPWAY_TRACKING_URI"] == uri
        assert env["SLIPWAY_TRAINING_BACKEND"] == "gloo"
        assert env["SLIPWAY_TRAINING_ARTIFACT_URI"] == run.info.artifact_uri
        assert env["TORCHELASTIC_RESTART_COUNT"] == "0"
        assert env["OMP_NUM_THREADS"] == "1"
        stdout = artifact_text(uri, run.info.run_id, f"logs/rank_{rank}.stdout.txt")
        stderr = artifact_text(uri, run.info.run_id, f"logs/rank_{rank}.stderr.txt")
        assert stdout == f"rank {rank} says hello\n"
        assert stderr == f"rank {rank} to stderr\n"
    assert seen[0]["env"]["MASTER_PORT"] == seen[1]["env"]["MASTER_PORT"]
    assert int(seen[0]["env"]["MASTER_PORT"]) > 0
