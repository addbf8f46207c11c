"""The scheduler against a real folder store: claims, missed fires, the runs it starts (real
detached processes running ``slipway pipelines run``), ``slipway scheduler`` and the scheduler
inside ``slipway server``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slipway.entities.pipelines import PipelineRun, PipelineRunStatus, Schedule
from slipway.pipelines.cron import next_fire
from slipway.pipelines.scheduler import (
    Scheduler,
    default_log_dir,
    run_command,
    slipway_command,
)
from slipway.pipelines.store import clear_pipeline_store_cache, get_pipeline_store
from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.tracking import uri as uris

FLOW = """
from slipway.pipelines import component, pipeline


@component
def echo(n: int, label: str) -> str:
    print(f"echo {label} x{n}")
    return label * n


@pipeline(name="echoes")
def echoes(n: int = 1, label: str = "a"):
    echo(n=n, label=label)
"""
YEARLY = "0 0 1 1 *"
ENV_VARS = ("SLIPWAY_TRACKING_URI", "SLIPWAY_ARTIFACT_ROOT", "SLIPWAY_EXPERIMENT_NAME")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield tmp_path / "tracking"
    clear_pipeline_store_cache()
    uris.clear_store_cache()


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "echoes.py"
    path.write_text(FLOW)
    return path


def now_ms() -> int:
    return int(time.time() * 1000)


def add_schedule(
    store: AbstractPipelineStore,
    source: str,
    *,
    name: str | None = None,
    cron: str = YEARLY,
    due: int | None = None,
    parameters: dict[str, object] | None = None,
    paused: bool = False,
) -> Schedule:
    return store.create_schedule(
        Schedule(
            schedule_id=uuid.uuid4().hex,
            name=name or f"s-{uuid.uuid4().hex[:6]}",
            source=source,
            cron=cron,
            parameters=parameters or {},
            paused=paused,
            created_time=now_ms(),
            next_run_time=due,
        )
    )


def wait_for(what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def finished_runs(store: AbstractPipelineStore, schedule_id: str) -> list[PipelineRun]:
    runs = list(store.search_pipeline_runs(schedule_id=schedule_id))
    return [r for r in runs if r.status.terminal]


def test_two_schedulers_start_a_due_schedule_once_and_the_run_records_it(
    folder: Path, flow: Path
) -> None:
    store = get_pipeline_store(str(folder))
    due = now_ms() - 1_000
    schedule = add_schedule(
        store, str(flow), name="echo", due=due, parameters={"n": 2, "label": "007"}
    )
    first = Scheduler(str(folder), poll_seconds=0.05)
    second = Scheduler(str(folder), poll_seconds=0.05)
    with first, second:
        wait_for("the scheduled run", lambda: bool(finished_runs(store, schedule.schedule_id)))
    for scheduler in (first, second):
        scheduler.wait_children(timeout=60)
    launched = first.launched + second.launched
    assert len(launched) == 1

    (run,) = store.search_pipeline_runs(schedule_id=schedule.schedule_id)
    assert run.status == PipelineRunStatus.SUCCEEDED, run.message
    assert run.schedule_id == schedule.schedule_id
    assert run.parameters == {"n": 2, "label": "007"}  # a str that reads like a number stays one
    assert run.source == str(flow)
    (step,) = store.list_steps(run.run_id)
    assert step.outputs["parameters"] == {"Output": "007007"}

    after = store.get_schedule(schedule.schedule_id)
    assert after.last_run_id == run.run_id
    assert after.last_run_time is not None
    assert after.last_run_time >= due
    assert after.next_run_time == next_fire(YEARLY, after.last_run_time)

    log = Path(launched[0].log_path)
    assert log.parent == folder / "scheduler-logs"
    text = log.read_text()
    assert "--schedule-id " + schedule.schedule_id in text.splitlines()[0]
    assert "pipeline echoes SUCCEEDED" in text


def test_concurrent_polls_claim_each_due_fire_exactly_once(folder: Path, tmp_path: Path) -> None:
    store = get_pipeline_store(str(folder))
    missing = str(tmp_path / "gone.py")  # each run fails at once: only the claims matter here
    schedules = [add_schedule(store, missing, due=now_ms() - 60_000) for _ in range(3)]
    schedulers = [Scheduler(str(folder), poll_seconds=60) for _ in range(4)]
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def poll(scheduler: Scheduler) -> None:
        try:
            barrier.wait()
            scheduler.poll_once()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    launched = sorted(launch.schedule_id for s in schedulers for launch in s.launched)
    assert launched == sorted(s.schedule_id for s in schedules)
    for scheduler in schedulers:
        scheduler.wait_children(timeout=60)


def test_missed_fires_start_one_run_and_the_next_counts_from_now(
    folder: Path, tmp_path: Path
) -> None:
    store = get_pipeline_store(str(folder))
    now = now_ms()
    schedule = add_schedule(
        store, str(tmp_path / "gone.py"), cron="0 * * * *", due=now - 3 * 86_400_000
    )
    scheduler = Scheduler(str(folder), poll_seconds=60)
    assert [launch.schedule_id for launch in scheduler.poll_once(now)] == [schedule.schedule_id]
    following = next_fire("0 * * * *", now)
    assert store.get_schedule(schedule.schedule_id).next_run_time == following
    assert scheduler.poll_once(now) == []  # seventy-two missed fires, one run
    assert scheduler.poll_once(following - 1) == []
    assert len(scheduler.poll_once(following)) == 1
    assert store.get_schedule(schedule.schedule_id).next_run_time == next_fire(
        "0 * * * *", following
    )
    scheduler.wait_children(timeout=60)
    assert len(scheduler.launched) == 2


def test_paused_schedules_wait_and_new_ones_get_a_fire_time(folder: Path, tmp_path: Path) -> None:
    store = get_pipeline_store(str(folder))
    now = now_ms()
    paused = add_schedule(store, str(tmp_path / "x.py"), due=now - 1, paused=True)
    fresh = add_schedule(store, str(tmp_path / "x.py"), cron="*/10 * * * *", due=None)
    scheduler = Scheduler(str(folder), poll_seconds=60)
    assert scheduler.poll_once(now) == []
    assert store.get_schedule(paused.schedule_id).next_run_time == now - 1
    assert store.get_schedule(fresh.schedule_id).next_run_time == next_fire("*/10 * * * *", now)
    assert scheduler.launched == []


def test_a_broken_schedule_does_not_stop_the_others(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = get_pipeline_store(str(folder))
    now = now_ms()
    add_schedule(store, str(tmp_path / "x.py"), name="a-broken", cron="bad cron", due=now - 1)
    good = add_schedule(store, str(tmp_path / "x.py"), name="b-good", due=now - 1)
    scheduler = Scheduler(str(folder), poll_seconds=60)
    with caplog.at_level("WARNING", logger="slipway.pipelines.scheduler"):
        launched = scheduler.poll_once(now)
        scheduler.poll_once(now)
    assert [launch.schedule_id for launch in launched] == [good.schedule_id]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # said once, not at every poll
    assert "schedule a-broken: Cron expression 'bad cron'" in warnings[0]
    scheduler.wait_children(timeout=60)


def test_run_command_carries_types_schedule_and_experiment() -> None:
    schedule = Schedule(
        schedule_id="abc123",
        name="n",
        source="/flows/x.py:main",
        cron=YEARLY,
        parameters={"label": "007", "n": 2, "sizes": [1, 2]},
        experiment_id="7",
    )
    command = run_command("/data/tracking", schedule)
    assert command[: len(slipway_command())] == slipway_command()
    rest = command[len(slipway_command()) :]
    assert rest[:7] == [
        "--tracking-uri",
        "/data/tracking",
        "pipelines",
        "run",
        "/flows/x.py:main",
        "--schedule-id",
        "abc123",
    ]
    assert json.loads(rest[rest.index("--params-json") + 1]) == schedule.parameters
    assert rest[rest.index("--experiment-id") + 1] == "7"


def test_default_log_dir(tmp_path: Path) -> None:
    assert default_log_dir(str(tmp_path / "t")) == tmp_path / "t" / "scheduler-logs"
    assert default_log_dir(f"sqlite:///{tmp_path}/db/x.db") == tmp_path / "db" / "scheduler-logs"
    temp = Path(tempfile.gettempdir()) / "slipway-scheduler"
    assert default_log_dir("postgresql://u@h/db") == temp
    assert Scheduler("relative-folder").tracking_uri == str(Path("relative-folder").absolute())
    with pytest.raises(ValueError, match="poll_seconds"):
        Scheduler("x", poll_seconds=0)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from slipway.cli import main; main()", *args]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ENV_VARS} | {"PYTHONUNBUFFERED": "1"}


def _stop(child: subprocess.Popen[bytes], sig: int) -> int:
    if child.poll() is None:
        child.send_signal(sig)
    try:
        return child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_slipway_scheduler_command_starts_due_runs_until_ctrl_c(
    folder: Path, flow: Path, tmp_path: Path
) -> None:
    store = get_pipeline_store(str(folder))
    schedule = add_schedule(store, str(flow), due=now_ms() - 1, parameters={"n": 1})
    logs = tmp_path / "logs"
    out = tmp_path / "scheduler.out"
    with open(out, "wb") as sink:
        child = subprocess.Popen(
            _cli(
                "--tracking-uri",
                str(folder),
                "scheduler",
                "--poll-seconds",
                "0.2",
                "--log-dir",
                str(logs),
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    try:
        wait_for("the scheduled run", lambda: bool(finished_runs(store, schedule.schedule_id)))
    finally:
        code = _stop(child, signal.SIGINT)
    text = out.read_text()
    assert code == 0, text
    assert f"Scheduler on {folder}, polling every 0.2s; run logs in {logs}." in text
    assert text.rstrip().endswith("Scheduler stopped.")
    (run,) = finished_runs(store, schedule.schedule_id)
    assert run.status == PipelineRunStatus.SUCCEEDED, run.message
    assert len(list(logs.iterdir())) == 1


@pytest.mark.parametrize("scheduler_flag", ["--scheduler", "--no-scheduler"])
def test_server_runs_the_scheduler_unless_told_not_to(
    folder: Path, flow: Path, tmp_path: Path, scheduler_flag: str
) -> None:
    store = get_pipeline_store(str(folder))
    schedule = add_schedule(store, str(flow), due=now_ms() - 1, parameters={"label": "srv"})
    out = tmp_path / "server.out"
    with open(out, "wb") as sink:
        child = subprocess.Popen(
            _cli(
                "server",
                "--port",
                "0",
                "--backend-store-uri",
                str(folder),
                "--log-level",
                "warning",
                scheduler_flag,
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    try:
        wait_for("the server", lambda: "Slipway server ready on" in out.read_text(), timeout=60)
        if scheduler_flag == "--scheduler":
            wait_for("the scheduled run", lambda: bool(finished_runs(store, schedule.schedule_id)))
            (run,) = finished_runs(store, schedule.schedule_id)
            assert run.status == PipelineRunStatus.SUCCEEDED, run.message
            assert run.parameters == {"n": 1, "label": "srv"}
            log = next((folder / "scheduler-logs").iterdir()).read_text()
            assert "--tracking-uri http://127.0.0.1:" in log.splitlines()[0]  # through the server
        else:
            time.sleep(1.5)  # a scheduler polls as soon as it starts
            assert store.get_schedule(schedule.schedule_id).last_run_time is None
    finally:
        code = _stop(child, signal.SIGTERM)
    assert code == 0, out.read_text()
