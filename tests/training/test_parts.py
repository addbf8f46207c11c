"""The launcher's parts on their own: log capping, picking the failure that caused the others,
the worker's wrapper, the environment helpers, and refusals that must come before any run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slipway import SlipwayClient, training
from slipway.cli import cli
from slipway.exceptions import InvalidParameterValue
from slipway.training import env, worker
from slipway.training.agent import AgentOutcome, WorkerFailure
from slipway.training.logs import AttemptLogs, capped_log

from .conftest import SCRIPTS, all_runs, clean_env

# -- logs --------------------------------------------------------------------------------------


def test_small_logs_are_joined_whole(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("one\n")
    second.write_text("two\n")
    data = capped_log([("== 0 ==\n", first), ("== 1 ==\n", tmp_path / "gone.log"), ("", second)])
    assert data == b"== 0 ==\none\n== 1 ==\ntwo\n"


def test_big_logs_keep_their_head_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    lines = [f"line {i:06d}\n" for i in range(20_000)]  # 240,000 bytes
    path.write_text("".join(lines))
    data = capped_log([("== 0 ==\n", path)], cap=10_000)
    head, _, _rest = data.partition(b"\n... [")
    assert head.startswith(b"== 0 ==\nline 000000\n")
    assert len(head) == 2_500
    omitted = 8 + 240_000 - 10_000
    assert f"{omitted} bytes of log left out] ...\n".encode() in data
    assert data.endswith(b"line 019999\n")
    assert len(data) < 10_100


# -- which failure caused the others -----------------------------------------------------------


def failure(rank: int, **kwargs: object) -> WorkerFailure:
    fields: dict[str, object] = {
        "rank": rank,
        "local_rank": rank,
        "pid": 100 + rank,
        "exit_code": 1,
        "signal": None,
        "message": f"error on {rank}",
        "time": None,
        "has_error_file": True,
    }
    fields.update(kwargs)
    return WorkerFailure(**fields)  # type: ignore[arg-type]


def test_stopped_workers_are_not_the_cause() -> None:
    outcome = AgentOutcome(
        False,
        failures=[failure(0, exit_code=-15, signal="SIGTERM", has_error_file=False),
                  failure(1, time=5.0)],
    )  # fmt: skip
    root = outcome.root_failure()
    assert root is not None
    assert root.rank == 1
    assert root.describe() == "rank 1 failed (exit code 1): error on 1"


def test_the_earliest_error_is_the_cause() -> None:
    outcome = AgentOutcome(False, failures=[failure(0, time=10.25), failure(1, time=10.5)])
    assert outcome.root_failure() == outcome.failures[0]


def test_a_worker_that_vanished_beats_the_peers_that_noticed() -> None:
    outcome = AgentOutcome(
        False,
        failures=[failure(0, time=3.0),
                  failure(1, exit_code=-9, signal="SIGKILL", has_error_file=False,
                          message="killed by SIGKILL")],
    )  # fmt: skip
    root = outcome.root_failure()
    assert root is not None
    assert root.rank == 1
    assert root.describe() == "rank 1 failed (killed by SIGKILL): killed by SIGKILL"
    assert AgentOutcome(True).root_failure() is None
    assert AgentOutcome(True, attempts=[AttemptLogs(0), AttemptLogs(1)]).restarts == 1


# -- the worker wrapper ------------------------------------------------------------------------


def test_worker_constants_match_the_environment_module() -> None:
    assert worker.JOB_RUN_ID_ENV == env.JOB_RUN_ID_ENV
    assert worker.SYSTEM_METRICS_ENV == env.SYSTEM_METRICS_ENV


def test_guarded_exit_codes_and_error_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    assert worker.guarded(lambda: None) == 0
    assert worker.guarded(lambda: sys.exit(0)) == 0
    assert not error_file.exists()

    def fail() -> None:
        raise KeyError("missing")

    assert worker.guarded(fail) == 1
    body = json.loads(error_file.read_text())
    assert body["message"]["message"] == "KeyError: 'missing'"
    assert "py_callstack" in body["message"]["extraInfo"]
    assert isinstance(body[worker.ERROR_TIME_KEY], float)
    assert "KeyError: 'missing'" in capsys.readouterr().err
    assert worker.guarded(lambda: sys.exit(3)) == 3
    assert json.loads(error_file.read_text())["message"]["message"] == "SystemExit: 3"
    assert worker.guarded(lambda: sys.exit("bad input")) == 1
    assert "bad input" in capsys.readouterr().err


def test_fluent_api_is_detached_on_other_ranks(store_uri: str, tmp_path: Path) -> None:
    """Run the wrapper as a rank-1 worker of a job: the script's fluent calls (imported after
    the wrapper started) neither log to the job's run nor end it."""
    client = SlipwayClient(store_uri)
    run_id = client.create_run("0").info.run_id
    out = subprocess.run(
        [sys.executable, "-u", worker.__file__, str(SCRIPTS / "fluent_ranks.py")],
        env=clean_env(
            RANK="1",
            SLIPWAY_TRACKING_URI=store_uri,
            SLIPWAY_RUN_ID=run_id,
            SLIPWAY_TRAINING_RUN_ID=run_id,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"
    assert run.data.params == {}
    assert run.data.metrics == {}
    assert "tagged_by" not in run.data.tags
    assert len(all_runs(store_uri)) == 1


def test_rank_zero_logs_to_the_job_run(store_uri: str) -> None:
    client = SlipwayClient(store_uri)
    run_id = client.create_run("0").info.run_id
    out = subprocess.run(
        [sys.executable, "-u", worker.__file__, str(SCRIPTS / "fluent_ranks.py")],
        env=clean_env(
            RANK="0",
            SLIPWAY_TRACKING_URI=store_uri,
            SLIPWAY_RUN_ID=run_id,
            SLIPWAY_TRAINING_RUN_ID=run_id,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    run = client.get_run(run_id)
    assert run.data.params == {"who": "0"}
    assert run.data.metrics == {"rank_value": 0.0}
    assert len(all_runs(store_uri)) == 1


# -- the environment ---------------------------------------------------------------------------


@pytest.mark.usefixtures("bare_env")
def test_outside_a_job_this_is_rank_zero_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (training.rank(), training.world_size(), training.local_rank()) == (0, 1, 0)
    assert training.is_main()
    assert training.restart_count() == 0
    assert training.job_run_id() is None
    assert training.backend() == "gloo"  # no CUDA here: auto is gloo
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    monkeypatch.setenv("SLIPWAY_TRAINING_RUN_ID", "abc")
    assert (training.rank(), training.world_size(), training.is_main()) == (3, 4, False)
    assert training.restart_count() == 2
    assert training.job_run_id() == "abc"
    monkeypatch.setenv("RANK", "three")
    with pytest.raises(InvalidParameterValue, match="RANK='three' is not an integer"):
        training.rank()


def test_backends() -> None:
    with pytest.raises(InvalidParameterValue, match="Unknown backend 'mpi'"):
        env.resolve_backend("mpi")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: nccl is allowed here")
    with pytest.raises(InvalidParameterValue, match="nccl backend needs CUDA GPUs"):
        env.resolve_backend("nccl")
    assert env.resolve_backend("auto") == "gloo"
    limit, unit = env.capacity("gloo")
    assert unit == "CPU"
    assert limit == len(os.sched_getaffinity(0))


# -- refusals before any run -------------------------------------------------------------------


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, "Invalid workers 0"),
        ({"workers": True}, "Invalid workers True"),
        ({"max_restarts": -1}, "Invalid max_restarts -1"),
        ({"backend": "mpi"}, "Unknown backend 'mpi'"),
        ({"timeout": 0}, "Invalid timeout 0"),
        ({"system_metrics_interval": -1}, "Invalid system_metrics_interval -1"),
        ({"master_port": 70000}, "Invalid master_port 70000"),
        ({"kwargs": {"a": 1}}, "kwargs go with a function"),
    ],
)
def test_bad_launches_are_refused_before_any_run(
    store_uri: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        training.launch(SCRIPTS / "silent.py", **kwargs)  # type: ignore[arg-type]
    assert all_runs(store_uri) == []


def test_missing_script_and_busy_port_are_refused(store_uri: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="No such training script"):
        training.launch(tmp_path / "nope.py")
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(InvalidParameterValue, match=f"Port {port} on 127.0.0.1 is in use"):
            training.launch(SCRIPTS / "silent.py", master_port=port)
    assert all_runs(store_uri) == []


def test_unpicklable_function_is_refused(store_uri: str) -> None:
    import threading

    lock = threading.Lock()
    with pytest.raises(InvalidParameterValue, match=r"Cannot send .* to the workers"):
        training.launch(lambda: lock, workers=1)
    assert all_runs(store_uri) == []


def test_emit_options_without_emit_are_a_usage_error(store_uri: str) -> None:
    result = CliRunner().invoke(
        cli, ["--tracking-uri", store_uri, "train", "x.py", "--output", "o", "--gpus", "1"]
    )
    assert result.exit_code == 2
    assert "--output, --gpus go with --emit pytorchjob" in result.output
    assert "put them after --" in result.output
    assert all_runs(store_uri) == []


def test_help_lists_the_examples() -> None:
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    assert "slipway train --nproc 4 train.py --epochs 5" in result.output
    assert "--max-restarts" in result.output
