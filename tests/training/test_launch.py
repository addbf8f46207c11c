"""Real jobs: two gloo workers under the elastic agent, through ``slipway train`` (a
subprocess) and ``slipway.training.launch`` (in this process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slipway import SlipwayClient, training
from slipway.exceptions import InvalidParameterValue
from slipway.training.env import capacity

from .conftest import (
    SCRIPTS,
    all_runs,
    artifact_text,
    assert_ddp_trained,
    assert_job_contract,
    clean_env,
    only_run,
    rank_files,
    slipway_train,
)

pytestmark = pytest.mark.slow


def test_ddp_job_trains_one_model_and_logs_to_one_run(store_uri: str, tmp_path: Path) -> None:
    """Both ranks end with the same weights, the loss falls, and the loss history (logged by
    every rank) is in the job's run only, from rank 0 only."""
    out = tmp_path / "out"
    done = slipway_train(
        store_uri,
        "--nproc",
        "2",
        "--experiment",
        "ddp",
        str(SCRIPTS / "ddp_train.py"),
        str(out),
        "--log",
        "--steps",
        "15",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    losses = assert_ddp_trained(out)[0]["losses"]

    run = only_run(store_uri)
    assert run.info.status == "FINISHED"
    client = SlipwayClient(store_uri)
    assert client.get_experiment(run.info.experiment_id).name == "ddp"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(15))
    assert [m.value for m in history] == pytest.approx(losses)
    assert run.data.params["nproc"] == "2"
    assert run.data.params["backend"] == "gloo"
    assert run.data.params["max_restarts"] == "0"
    assert run.data.params["script"].endswith("ddp_train.py")
    assert run.data.params["script_args"] == f"{out} --log --steps 15"
    assert run.data.tags["slipway.training.restarts"] == "0"
    assert f"Run {run.info.run_id} FINISHED" in done.stderr
    # the console shows the workers' output, and rank 0's stdout is an artifact
    assert "[rank0]:final weights" in done.stdout
    assert "final weights" in artifact_text(store_uri, run.info.run_id, "logs/rank_0.stdout.txt")


def test_same_script_under_torchrun_and_slipway_train(store_uri: str, tmp_path: Path) -> None:
    """A torchrun script runs unchanged: the same results, the same rank-0 output."""
    script = str(SCRIPTS / "ddp_train.py")
    plain = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", script,
         str(tmp_path / "plain"), "--steps", "8"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    ours = slipway_train(
        store_uri, "--nproc", "2", script, str(tmp_path / "ours"), "--steps", "8", cwd=tmp_path
    )
    assert ours.returncode == 0, ours.stderr
    assert rank_files(tmp_path / "plain") == rank_files(tmp_path / "ours")
    line = [x for x in plain.stdout.splitlines() if x.startswith("final weights")]
    logged = artifact_text(store_uri, only_run(store_uri).info.run_id, "logs/rank_0.stdout.txt")
    assert line
    assert logged.splitlines() == line


def test_environment_contract_and_arguments(store_uri: str, tmp_path: Path) -> None:
    """Workers get torchrun's variables and the script its arguments (``--`` passes on names
    the launcher has too); the script runs as ``__main__`` from its own folder."""
    out = tmp_path / "seen"
    done = slipway_train(
        store_uri,
        "--nproc=2",
        str(SCRIPTS / "env_echo.py"),
        str(out),
        "--lr",
        "0.1",
        "-x",
        "--",
        "--timeout",
        "5",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    seen = rank_files(out)
    run = only_run(store_uri)
    for rank in (0, 1):
        env = seen[rank]["env"]
        assert seen[rank]["argv"][1:] == [str(out), "--lr", "0.1", "-x", "--timeout", "5"]
        assert seen[rank]["name"] == "__main__"
        assert seen[rank]["path0"] == str(SCRIPTS)
        assert env["RANK"] == env["LOCAL_RANK"] == str(rank)
        assert env["WORLD_SIZE"] == env["LOCAL_WORLD_SIZE"] == "2"
        assert env["GROUP_RANK"] == "0"
        assert env["MASTER_ADDR"] == "127.0.0.1"
        assert int(env["MASTER_PORT"]) > 0
    assert_job_contract(seen, run, store_uri)
    assert run.data.params["script_args"] == f"{out} --lr 0.1 -x --timeout 5"


def test_killed_worker_restarts_and_resumes_from_checkpoint(store_uri: str, tmp_path: Path) -> None:
    """Rank 1 SIGKILLs itself at step 12 on the first attempt; the agent restarts both, they
    resume from the step-10 checkpoint and finish the 20 planned steps."""
    out = tmp_path / "out"
    done = slipway_train(
        store_uri,
        "--nproc",
        "2",
        "--max-restarts",
        "2",
        "--quiet",
        str(SCRIPTS / "ddp_train.py"),
        str(out),
        "--steps",
        "20",
        "--checkpoint-every",
        "5",
        "--die-at",
        "12",
        "--marker",
        str(tmp_path / "died"),
        "--log",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "died").exists()
    ranks = rank_files(out)
    assert ranks[0]["start"] == ranks[1]["start"] == 10
    assert len(ranks[0]["losses"]) == 10  # steps 10..19, after the restart
    assert ranks[0]["weights"] == ranks[1]["weights"]
    run = only_run(store_uri)
    assert run.info.status == "FINISHED"
    assert run.data.tags["slipway.training.restarts"] == "1"
    assert run.data.metrics["restarts"] == 1
    assert run.data.tags["slipway.training.checkpoint_step"] == "20"
    client = SlipwayClient(store_uri)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert set(steps) == set(range(20))  # 10 and 11 twice: logged, lost, redone
    files = sorted(f.path for f in client.list_artifacts(run.info.run_id, "checkpoints"))
    assert files == [
        "checkpoints/index.json",
        "checkpoints/step-10.pt",
        "checkpoints/step-15.pt",
        "checkpoints/step-20.pt",
    ]
    log = artifact_text(store_uri, run.info.run_id, "logs/rank_1.stdout.txt")
    assert log.startswith("===== attempt 0 =====\n")
    assert "===== attempt 1 =====\n" in log


def test_crash_with_no_restarts_fails_the_run_and_names_the_rank(
    store_uri: str, tmp_path: Path
) -> None:
    done = slipway_train(
        store_uri, "--nproc", "2", "--quiet", str(SCRIPTS / "crash.py"), cwd=tmp_path
    )
    assert done.returncode == 1
    run = only_run(store_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["slipway.training.failed_rank"] == "1"
    error = run.data.tags["slipway.training.error"]
    assert error.startswith("rank 1 failed (exit code 1): ValueError: boom on rank 1")
    assert "boom on rank 1" in done.stderr
    assert run.data.tags["slipway.training.restarts"] == "0"
    for rank in (0, 1):
        out = artifact_text(store_uri, run.info.run_id, f"logs/rank_{rank}.stdout.txt")
        err = artifact_text(store_uri, run.info.run_id, f"logs/rank_{rank}.stderr.txt")
        assert out == f"rank {rank} out\n"
        assert err.startswith(f"rank {rank} err\n")
    err = artifact_text(store_uri, run.info.run_id, "logs/rank_1.stderr.txt")
    assert 'File "' in err
    assert "crash.py" in err
    assert err.endswith("ValueError: boom on rank 1\n")
    assert "worker.py" not in err  # the traceback starts in the script, as python shows it


def test_hung_collective_ends_at_the_job_timeout(store_uri: str, tmp_path: Path) -> None:
    """Rank 1 never joins the all_reduce: without a timeout this would wait 30 minutes."""
    start = time.monotonic()
    done = slipway_train(
        store_uri,
        "--nproc",
        "2",
        "--timeout",
        "20",
        "--quiet",
        str(SCRIPTS / "hang.py"),
        str(tmp_path),
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 1
    assert (tmp_path / "entered_all_reduce").exists()  # it really hung in the collective
    assert elapsed < 60
    run = only_run(store_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["slipway.training.error"] == (
        "Stopped the workers: the job ran past its timeout of 20 s"
    )
    assert "timeout of 20 s" in done.stderr


def test_silent_script_finishes_its_run(store_uri: str, tmp_path: Path) -> None:
    result = training.launch(SCRIPTS / "silent.py", backend="gloo", workers=2, quiet=True)
    assert result.succeeded
    assert result.return_values == {}
    run = only_run(store_uri)
    assert run.info.run_id == result.run_id
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"restarts": 0}
    client = SlipwayClient(store_uri)
    assert sorted(f.path for f in client.list_artifacts(run.info.run_id, "logs")) == [
        "logs/rank_0.stderr.txt",
        "logs/rank_0.stdout.txt",
        "logs/rank_1.stderr.txt",
        "logs/rank_1.stdout.txt",
    ]


def test_other_ranks_fluent_calls_do_not_reach_the_run(
    store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every rank runs ``with slipway.start_run(): log...``: rank 0's values land in the job's
    run; rank 1's are dropped, and its block ending does not end the run. Every rank's own
    system metrics are there (each rank lives past the first sample, whatever the machine's
    speed)."""
    monkeypatch.setenv("HOLD_SECONDS", "1")
    result = training.launch(
        SCRIPTS / "fluent_ranks.py",
        backend="gloo",
        workers=2,
        quiet=True,
        system_metrics_interval=0.5,
        run_name="fluent",
    )
    assert result.succeeded, result.error
    run = only_run(store_uri)
    assert run.info.run_name == "fluent"
    assert run.info.status == "FINISHED"
    assert run.data.params["who"] == "0"
    assert run.data.tags["tagged_by"] == "0"
    assert run.data.metrics["rank_value"] == 0
    assert "late" not in run.data.metrics
    for rank in (0, 1):
        assert run.data.metrics[f"system/rank_{rank}/memory_rss_megabytes"] > 10
        assert run.data.metrics[f"system/rank_{rank}/cpu_percent"] >= 0
        assert 0 < run.data.metrics[f"system/rank_{rank}/memory_percent"] < 100


@pytest.mark.parametrize("db_uri", ["sqlite", "postgresql"], indirect=True)
def test_job_on_a_database_store(
    db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bare_env: None
) -> None:
    """Workers and launcher share a SQLite file or a PostgreSQL database: rank 0's values and
    both ranks' system metrics arrive, from three processes writing at once."""
    monkeypatch.setenv("HOLD_SECONDS", "1")  # every rank lives past its first sample
    monkeypatch.setenv("SLIPWAY_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    result = training.launch(
        SCRIPTS / "fluent_ranks.py",
        backend="gloo",
        workers=2,
        tracking_uri=db_uri,
        experiment_name="db",
        quiet=True,
        system_metrics_interval=0.3,
    )
    assert result.succeeded, result.error
    client = SlipwayClient(db_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["who"] == "0"
    assert run.data.metrics["rank_value"] == 0
    assert run.info.artifact_uri.startswith(str(tmp_path / "artifacts"))
    for rank in (0, 1):
        assert client.get_metric_history(run.info.run_id, f"system/rank_{rank}/cpu_percent")
    assert len(all_runs(db_uri)) == 1


def test_job_started_inside_a_run_is_its_child(store_uri: str) -> None:
    import slipway

    with slipway.start_run() as parent:
        result = training.launch(SCRIPTS / "silent.py", backend="gloo", workers=1, quiet=True)
        assert slipway.active_run() is not None
        assert slipway.active_run().info.run_id == parent.info.run_id
    child = SlipwayClient(store_uri).get_run(result.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.status == "FINISHED"
    assert "SLIPWAY_RUN_ID" not in os.environ  # the workers' settings do not outlive the job


def _train_fn(scale: float, fail_rank: int = -1) -> dict[str, float]:
    import torch
    import torch.distributed as dist

    import slipway

    training.init_process_group(timeout=60)
    if training.rank() == fail_rank:
        raise RuntimeError(f"rank {fail_rank} gave up")
    value = torch.ones(1) * (training.rank() + 1) * scale
    dist.all_reduce(value)
    slipway.log_metric("total", value.item() + training.rank())
    dist.destroy_process_group()
    return {"rank": training.rank(), "world": training.world_size(), "total": value.item()}


def test_function_job_returns_values_by_rank(store_uri: str) -> None:
    result = training.launch(
        _train_fn, backend="gloo", workers=2, args=(10.0,), experiment_name="fn", quiet=True
    )
    assert result.succeeded, result.error
    assert result.return_values == {
        0: {"rank": 0, "world": 2, "total": 30.0},
        1: {"rank": 1, "world": 2, "total": 30.0},
    }
    run = only_run(store_uri)
    assert run.data.metrics["total"] == 30.0  # rank 0's (rank 1 would log 31)
    assert run.data.params["function"].endswith("._train_fn")


def test_function_job_failure_names_the_rank(store_uri: str) -> None:
    result = training.launch(
        _train_fn, backend="gloo", workers=2, args=(1.0,), kwargs={"fail_rank": 1}, quiet=True
    )
    assert result.status == "FAILED"
    assert result.failed_rank == 1
    assert result.error is not None
    assert "RuntimeError: rank 1 gave up" in result.error
    assert result.return_values == {}
    run = only_run(store_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["slipway.training.failed_rank"] == "1"


def test_more_workers_than_cpus_is_refused_without_a_run(store_uri: str, tmp_path: Path) -> None:
    limit, _ = capacity("gloo")
    done = slipway_train(
        store_uri, "--nproc", str(limit + 1), str(SCRIPTS / "silent.py"), cwd=tmp_path
    )
    assert done.returncode == 1
    assert f"{limit + 1} workers are more than this machine can hold" in done.stderr
    assert "--force" in done.stderr
    with pytest.raises(InvalidParameterValue, match="more than this machine can hold"):
        training.launch(SCRIPTS / "silent.py", backend="gloo", workers=limit + 1)
    assert all_runs(store_uri) == []


def test_ctrl_c_stops_the_workers_and_kills_the_run(store_uri: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "slipway", "--tracking-uri", store_uri, "train", "--nproc", "2",
         "--quiet", str(SCRIPTS / "sleepy.py"), str(tmp_path)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started_*"))) < 2:
            assert time.monotonic() < deadline, "the workers did not start"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        pids = [int(p.read_text()) for p in tmp_path.glob("started_*")]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    for pid in pids:
        assert not _alive(pid), f"worker {pid} still running"
    run = only_run(store_uri)
    assert run.info.status == "KILLED"
    assert run.data.tags["slipway.training.error"] == "Stopped the workers: stopped by SIGINT"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def test_the_command_line_keeps_the_run_in_a_helper_process(tmp_path: Path) -> None:
    """``slipway train`` imports no tracking store before the launch, so the launcher can fork
    the helper that opens it while torch is imported (importing the store eagerly somewhere
    would quietly put it back on the job's start-up time)."""
    code = (
        "import slipway.cli, slipway.cli.train, slipway.training.launcher\n"
        "from slipway.training.bookkeeping import can_fork\n"
        "assert can_fork()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_a_deleted_experiment_is_refused_through_the_helper(store_uri: str, tmp_path: Path) -> None:
    client = SlipwayClient(store_uri)
    client.delete_experiment(client.create_experiment("gone"))
    done = slipway_train(
        store_uri, "--experiment", "gone", str(SCRIPTS / "silent.py"), cwd=tmp_path
    )
    assert done.returncode == 1
    assert "Experiment 'gone' is deleted" in done.stderr
    assert "Traceback" not in done.stderr
    assert all_runs(store_uri) == []


def test_a_killed_launcher_fails_its_run_and_takes_its_workers(
    store_uri: str, tmp_path: Path
) -> None:
    """SIGKILL leaves the launcher no time to clean up: its helper ends the run FAILED, and
    the workers, seeing their parent gone, stop themselves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "slipway", "--tracking-uri", store_uri, "train", "--nproc", "2",
         "--quiet", str(SCRIPTS / "sleepy.py"), str(tmp_path)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started_*"))) < 2:
            assert time.monotonic() < deadline, "the workers did not start"
            assert proc.poll() is None
            time.sleep(0.1)
        pids = [int(p.read_text()) for p in tmp_path.glob("started_*")]
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 60
    while only_run(store_uri).info.status == "RUNNING" or any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, "the run stayed RUNNING or a worker lived on"
        time.sleep(0.2)
    run = only_run(store_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["slipway.training.error"] == "The launcher died before the job ended"
