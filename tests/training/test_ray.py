"""Training jobs on the real two-node Ray cluster (a head with 2 CPUs, a second node with 1):
one actor per rank, tracked as locally. A DDP job spread over both nodes; the environment
contract through ``slipway train --on ray``; a function job packed on one node; a failing
rank; a node lost mid-run, after which the job restarts elsewhere from its checkpoint; jobs
the cluster cannot hold, and an address where nothing listens, refused before any run."""

from __future__ import annotations

import contextlib
import importlib
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway import SlipwayClient, training
from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable

from .conftest import (
    SCRIPTS,
    all_runs,
    artifact_text,
    assert_ddp_trained,
    assert_job_contract,
    only_run,
    rank_files,
    slipway_train,
)

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]

NODE_IDS_TAG = "slipway.ray.node_ids"


@pytest.fixture
def cluster(ray_cluster: Any, store_uri: str) -> Any:
    """The shared cluster, this process connected to it, with a folder store of its own."""
    from slipway.engines import ray as ray_engine

    ray_engine.connect(ray_cluster.address)
    return ray_cluster


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@contextlib.contextmanager
def head_taken(cpus: int = 2) -> Iterator[Any]:
    """The head's CPUs reserved by a placement group of this test (only the head has 2), so
    that a job goes to the other nodes; the group is removed on the way out."""
    from ray.util import placement_group, remove_placement_group

    group = placement_group([{"CPU": float(cpus)}], strategy="STRICT_PACK")
    try:
        assert group.wait(timeout_seconds=60)
        yield group
    finally:
        with contextlib.suppress(Exception):
            remove_placement_group(group)


def test_ddp_job_spread_over_two_nodes(cluster: Any, store_uri: str, tmp_path: Path) -> None:
    """One rank per node: both end with the same weights, the loss falls, rank 0's losses
    are the run's metric, and the run records where the ranks ran."""
    out = tmp_path / "out"
    result = training.launch(
        SCRIPTS / "ddp_train.py",
        workers=2,
        args=[str(out), "--log", "--steps", "15"],
        experiment_name="ray",
        on="ray",
        ray_address=cluster.address,
        placement_strategy="SPREAD",
        system_metrics_interval=0.5,
        quiet=True,
    )
    assert result.succeeded, result.error
    losses = assert_ddp_trained(out)[0]["losses"]

    run = only_run(store_uri)
    assert run.info.run_id == result.run_id
    assert run.info.status == "FINISHED"
    client = SlipwayClient(store_uri)
    assert client.get_experiment(run.info.experiment_id).name == "ray"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(15))
    assert [m.value for m in history] == pytest.approx(losses)
    assert run.data.params["nproc"] == "2"
    assert run.data.params["backend"] == "gloo"
    assert run.data.params["on"] == "ray"
    assert run.data.params["placement_strategy"] == "SPREAD"
    assert run.data.params["resources_per_worker"] == "1 CPU"
    assert run.data.tags["slipway.training.restarts"] == "0"
    nodes = run.data.tags[NODE_IDS_TAG].split(",")
    assert sorted(nodes) == sorted([cluster.head_node_id, cluster.second_node_id])
    assert "final weights" in artifact_text(store_uri, run.info.run_id, "logs/rank_0.stdout.txt")
    for rank in (0, 1):
        assert run.data.metrics[f"system/rank_{rank}/memory_rss_megabytes"] > 10


def test_cli_on_ray_gives_the_environment_contract(
    cluster: Any, store_uri: str, tmp_path: Path
) -> None:
    """``slipway train --on ray``: each rank alone on its node (local rank 0 of 1, its node's
    group rank), one rendezvous on rank 0's node, Slipway's variables, logs per rank, and the
    workers' output on the console."""
    out = tmp_path / "seen"
    done = slipway_train(
        store_uri,
        "--nproc=2",
        "--on",
        "ray",
        "--ray-address",
        cluster.address,
        "--placement-strategy",
        "SPREAD",
        str(SCRIPTS / "env_echo.py"),
        str(out),
        "--lr",
        "0.1",
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    run = only_run(store_uri)
    assert f"Run {run.info.run_id} FINISHED" in done.stderr
    assert "[rank0]:rank 0 says hello" in done.stdout
    assert "[rank1]:rank 1 to stderr" in done.stderr
    seen = rank_files(out)
    for rank in (0, 1):
        env = seen[rank]["env"]
        assert seen[rank]["argv"][1:] == [str(out), "--lr", "0.1"]
        assert seen[rank]["name"] == "__main__"
        assert env["RANK"] == env["GROUP_RANK"] == env["ROLE_RANK"] == str(rank)
        assert env["LOCAL_RANK"] == "0"
        assert env["WORLD_SIZE"] == "2"
        assert env["LOCAL_WORLD_SIZE"] == "1"
        assert env["TORCHELASTIC_MAX_RESTARTS"] == "0"
    assert_job_contract(seen, run, store_uri)
    assert seen[0]["env"]["MASTER_ADDR"] == seen[1]["env"]["MASTER_ADDR"]
    assert run.data.params["script_args"] == f"{out} --lr 0.1"
    assert len(set(run.data.tags[NODE_IDS_TAG].split(","))) == 2


SHIPPED_SCRIPT = """
import json, os, sys
from pathlib import Path
import helper  # the module next to this script, in the shipped copy of its folder
here = Path(__file__).resolve().parent
seen = {
    "dir": str(here),
    "cwd": os.getcwd(),
    "answer": helper.ANSWER,
    "left_out": sorted(name for name in (".git", ".slipway") if (here / name).exists()),
    "data": (here / "data" / "rows.csv").read_text(),
}
Path(sys.argv[1], "rank_" + os.environ["RANK"] + ".json").write_text(json.dumps(seen))
"""


def test_working_dir_is_shipped_to_the_nodes(cluster: Any, store_uri: str, tmp_path: Path) -> None:
    """``--working-dir``: every rank runs in its node's copy of the folder (Ray's
    ``working_dir``), so the script, the module next to it and its data come along, without
    ``.git`` and the local tracking folder; a script outside the folder is refused before any
    run, and the option is for Ray only."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / ".slipway").mkdir()
    (project / "helper.py").write_text("ANSWER = 42\n")
    (project / "data" / "rows.csv").write_text("x,y\n1,2\n")
    (project / "train_here.py").write_text(SHIPPED_SCRIPT)
    out = tmp_path / "seen"
    out.mkdir()
    common = ["--nproc=2", "--on", "ray", "--ray-address", cluster.address, "--quiet"]
    done = slipway_train(
        store_uri,
        *common,
        "--placement-strategy",
        "SPREAD",
        "--working-dir",
        str(project),
        str(project / "train_here.py"),
        str(out),
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    seen = rank_files(out)
    assert sorted(seen) == [0, 1]
    for rank in (0, 1):
        assert seen[rank]["answer"] == 42
        assert seen[rank]["data"] == "x,y\n1,2\n"
        assert seen[rank]["left_out"] == []
        assert seen[rank]["cwd"] == seen[rank]["dir"]
        assert Path(seen[rank]["dir"]) != project.resolve()  # a copy, not the folder itself
    run = only_run(store_uri)
    assert run.info.status == "FINISHED"
    assert run.data.params["working_dir"] == str(project.resolve())
    assert len(set(run.data.tags[NODE_IDS_TAG].split(","))) == 2

    outside = tmp_path / "outside.py"
    outside.write_text("print('never')\n")
    refused = slipway_train(
        store_uri, *common, "--working-dir", str(project), str(outside), cwd=tmp_path
    )
    assert refused.returncode == 1, refused.stderr
    assert f"The training script {outside} is not inside working_dir" in refused.stderr
    assert len(all_runs(store_uri)) == 1  # no run for the refused job
    local = slipway_train(
        store_uri, "--nproc=1", "--working-dir", str(project), str(outside), cwd=tmp_path
    )
    assert local.returncode == 2
    assert "--working-dir go with --on ray" in local.stderr


def test_a_function_from_a_shipped_module_runs_on_the_nodes(
    cluster: Any, store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function defined in a module of the project travels by reference (cloudpickle pickles
    importable functions so): the nodes import it from their copy of the working_dir."""
    project = tmp_path / "project"
    project.mkdir()
    module = f"shipped_{uuid.uuid4().hex[:8]}"
    (project / f"{module}.py").write_text(
        "import os\n\ndef where(x):\n    return (x * 2, os.path.dirname(__file__))\n"
    )
    monkeypatch.syspath_prepend(str(project))
    where = importlib.import_module(module).where
    try:
        result = training.launch(
            where,
            workers=2,
            args=(21,),
            on="ray",
            ray_address=cluster.address,
            working_dir=project,
            quiet=True,
        )
    finally:
        sys.modules.pop(module, None)
    assert result.succeeded, result.error
    for value, folder in result.return_values.values():
        assert value == 42
        assert Path(folder) != project  # imported from the node's copy
    with pytest.raises(InvalidParameterValue, match=r"working_dir .* is not a folder"):
        training.launch(where, workers=1, on="ray", working_dir=tmp_path / "none")
    with pytest.raises(InvalidParameterValue, match="working_dir go with on='ray'"):
        training.launch(where, workers=1, working_dir=project)


def _packed_fn(scale: float) -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    import slipway

    training.init_process_group(timeout=60)
    value = torch.ones(1) * (training.rank() + 1) * scale
    dist.all_reduce(value)
    slipway.log_metric("total", value.item() + training.rank())
    dist.destroy_process_group()
    return {
        "rank": training.rank(),
        "local_rank": training.local_rank(),
        "local_world": training.local_world_size(),
        "total": value.item(),
    }


def test_function_job_packed_on_one_node_returns_values(cluster: Any, store_uri: str) -> None:
    """PACK puts both ranks on the head (the only node with 2 CPUs): local ranks 0 and 1 of
    2; each rank's return value comes back; rank 0's metric is the run's."""
    result = training.launch(
        _packed_fn,
        workers=2,
        args=(10.0,),
        on="ray",
        ray_address=cluster.address,
        placement_strategy="STRICT_PACK",
        quiet=True,
    )
    assert result.succeeded, result.error
    values = result.return_values
    assert sorted(values) == [0, 1]
    assert [values[r]["local_rank"] for r in (0, 1)] == [0, 1]
    assert values[0]["local_world"] == values[1]["local_world"] == 2
    assert values[0]["total"] == values[1]["total"] == 30.0
    run = only_run(store_uri)
    assert run.data.metrics["total"] == 30.0  # rank 0's (rank 1 would log 31)
    assert run.data.params["function"].endswith("._packed_fn")
    assert run.data.tags[NODE_IDS_TAG] == f"{cluster.head_node_id},{cluster.head_node_id}"


def test_failing_rank_fails_the_run_and_names_it(cluster: Any, store_uri: str) -> None:
    """Rank 1 raises; rank 0 (which would sleep a minute) is stopped; the run is FAILED with
    rank 1 and its error, and both ranks' logs are uploaded from their nodes."""
    result = training.launch(
        SCRIPTS / "crash.py",
        workers=2,
        on="ray",
        ray_address=cluster.address,
        placement_strategy="SPREAD",
        quiet=True,
    )
    assert result.status == "FAILED"
    assert result.failed_rank == 1
    assert result.error is not None
    assert result.error.startswith("rank 1 failed (exit code 1): ValueError: boom on rank 1")
    run = only_run(store_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["slipway.training.failed_rank"] == "1"
    assert run.data.tags["slipway.training.error"] == result.error
    for rank in (0, 1):
        out = artifact_text(store_uri, run.info.run_id, f"logs/rank_{rank}.stdout.txt")
        assert out == f"rank {rank} out\n"
    err = artifact_text(store_uri, run.info.run_id, "logs/rank_1.stderr.txt")
    assert "crash.py" in err
    assert err.endswith("ValueError: boom on rank 1\n")


def test_lost_node_restarts_the_job_from_its_checkpoint(
    cluster: Any, store_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first attempt runs on the second node and an extra one (the head is taken), and
    holds at step 7 after the step-5 checkpoint; the extra node is killed and the head freed.
    The lost rank, not its peer that saw the connection drop, is named as the cause; the job
    restarts on the nodes that are left and resumes from step 5."""
    out, go = tmp_path / "out", tmp_path / "go"
    extra = cluster.add_node(num_cpus=1)
    results: list[Any] = []
    errors: list[BaseException] = []
    args = [str(out), "--steps", "20", "--checkpoint-every", "5", "--log"]
    args += ["--hold-at", "7", "--go", str(go)]

    def job() -> None:
        try:
            results.append(
                training.launch(
                    SCRIPTS / "ddp_train.py",
                    workers=2,
                    max_restarts=1,
                    args=args,
                    on="ray",
                    ray_address=cluster.address,
                    placement_strategy="SPREAD",
                    quiet=True,
                )
            )
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=job)
    try:
        with head_taken():
            runner.start()
            deadline = time.monotonic() + 120
            while len(list(out.glob("held_*"))) < 2:
                assert time.monotonic() < deadline, "the job did not reach step 7"
                assert runner.is_alive(), errors or results
                time.sleep(0.2)
            first = only_run(store_uri)
            assert sorted(first.data.tags[NODE_IDS_TAG].split(",")) == sorted(
                [cluster.second_node_id, extra.node_id]
            )
            workers = [int(path.read_text()) for path in out.glob("held_*")]
            extra.kill()
            while all(_running(pid) for pid in workers):  # the lost node's worker is gone
                assert time.monotonic() < deadline, "no worker died with the node"
                time.sleep(0.2)
        go.write_text("go")
        runner.join(timeout=300)
    finally:
        go.write_text("go")
        extra.kill()
    assert not runner.is_alive()
    assert not errors, errors
    result = results[0]
    assert result.succeeded, result.error
    assert result.restarts == 1
    said = capsys.readouterr().err
    assert "restarting the workers (1/1)" in said
    assert re.search(r"rank \d failed \((node lost|actor died|no answer)\)", said), said
    ranks = rank_files(out)
    assert ranks[0]["start"] == ranks[1]["start"] == 5
    assert ranks[0]["weights"] == ranks[1]["weights"]
    run = only_run(store_uri)
    assert run.info.status == "FINISHED"
    assert run.data.tags["slipway.training.restarts"] == "1"
    assert run.data.tags["slipway.training.checkpoint_step"] == "20"
    assert extra.node_id not in run.data.tags[NODE_IDS_TAG]
    client = SlipwayClient(store_uri)
    steps = {m.step for m in client.get_metric_history(run.info.run_id, "loss")}
    assert steps == set(range(20))
    for rank in (0, 1):
        log = artifact_text(store_uri, run.info.run_id, f"logs/rank_{rank}.stderr.txt")
        assert "===== attempt 1 =====\n" in log


def _running(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_jobs_the_cluster_cannot_hold_are_refused_before_any_run(
    cluster: Any, store_uri: str
) -> None:
    from ray.util import placement_group_table

    from slipway.engines.ray import cluster_nodes

    nodes = cluster_nodes()
    cpus = int(sum(n.cpu for n in nodes))
    script = SCRIPTS / "silent.py"
    on_ray = {"on": "ray", "ray_address": cluster.address, "quiet": True}
    with pytest.raises(InvalidParameterValue, match=r"Each training worker asks for 3 CPU"):
        training.launch(script, resources_per_worker={"CPU": 3}, **on_ray)
    with pytest.raises(InvalidParameterValue, match="asks for 1 CPU, 1 GPU"):
        training.launch(script, backend="nccl", **on_ray)
    with pytest.raises(InvalidParameterValue, match=rf"{cpus + 1} training workers of 1 CPU"):
        training.launch(script, workers=cpus + 1, **on_ray)
    with pytest.raises(InvalidParameterValue, match=r"one per node \(STRICT_SPREAD\)"):
        training.launch(
            script, workers=len(nodes) + 1, placement_strategy="STRICT_SPREAD", **on_ray
        )
    with head_taken(), pytest.raises(TemporarilyUnavailable, match="not free now"):
        training.launch(script, resources_per_worker={"CPU": 2}, placement_timeout=1.5, **on_ray)
    assert all_runs(store_uri) == []
    left = [
        group
        for group in placement_group_table().values()
        if group["name"].startswith("slipway-train-") and group["state"] != "REMOVED"
    ]
    assert left == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"placement_strategy": "ROUND_ROBIN"}, "Unknown placement strategy 'ROUND_ROBIN'"),
        ({"resources_per_worker": {"CPU": -1}}, "Invalid amount -1 of CPU"),
        ({"resources_per_worker": {"GPU": 0}, "backend": "nccl"}, "nccl backend needs a GPU"),
        ({"master_port": 29500}, "master_port is for local jobs"),
        ({"force": True}, "force is for local jobs"),
        ({"placement_timeout": 0}, "Invalid placement_timeout 0"),
    ],
)
def test_bad_ray_settings_are_refused(store_uri: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        training.launch(SCRIPTS / "silent.py", on="ray", ray_address="127.0.0.1:1", **kwargs)
    with pytest.raises(InvalidParameterValue, match="go with on='ray'"):
        training.launch(SCRIPTS / "silent.py", ray_address="auto")
    assert all_runs(store_uri) == []


def test_unreachable_address_fails_fast_without_a_run(store_uri: str, tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(TemporarilyUnavailable, match="Cannot reach a Ray cluster"):
        training.launch(SCRIPTS / "silent.py", on="ray", ray_address=address)
    assert time.monotonic() - started < 15
    done = slipway_train(
        store_uri, "--on", "ray", "--ray-address", address, str(SCRIPTS / "silent.py"), cwd=tmp_path
    )
    assert done.returncode == 1
    assert f"Cannot reach a Ray cluster at {address}" in done.stderr
    assert "Traceback" not in done.stderr
    assert all_runs(store_uri) == []
