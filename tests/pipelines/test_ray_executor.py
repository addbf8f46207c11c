"""The Ray executor against a real two-node Ray cluster on loopback: steps spread over the
nodes with artifacts between them, the cache and retries as locally, a timeout and a cancel
that stop the step's processes on the node, a task no node can hold refused before anything
runs, a node lost mid-run, and the CLI (a pipeline file's components travel by value; an
unreachable address fails fast)."""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from slipway import SlipwayClient
from slipway.cli import cli
from slipway.engines import ray as ray_engine
from slipway.entities.pipelines import PipelineRunStatus, PipelineStep, StepStatus
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import (
    Dataset,
    Input,
    Output,
    PipelineResult,
    cancel,
    collected,
    component,
    parallel_for,
    pipeline,
    resume,
    run,
)
from slipway.pipelines.executor.ray import NODE_ID_TAG
from slipway.pipelines.store import clear_pipeline_store_cache, get_pipeline_store
from slipway.tracking import uri as uris

pytestmark = pytest.mark.xdist_group("ray")

WAIT_S = 120.0
"""How long a test waits for something the cluster does (generous: 2 cores, several nodes)."""


@pytest.fixture
def cluster(ray_cluster: Any, tracking_dir: Path) -> Any:
    """The shared cluster, this process connected to it, a fresh folder store."""
    ray_engine.connect(ray_cluster.address)
    return ray_cluster


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def run_tags(step: PipelineStep) -> dict[str, str]:
    return dict(uris.get_store().get_run(step.run_id or "").data.tags)


def in_background(start: Callable[[], PipelineResult]) -> tuple[threading.Thread, dict[str, Any]]:
    holder: dict[str, Any] = {}

    def target() -> None:
        try:
            holder["result"] = start()
        except BaseException as exc:  # reported by the test
            holder["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, holder


def finished(thread: threading.Thread, holder: dict[str, Any]) -> PipelineResult:
    thread.join(WAIT_S)
    assert not thread.is_alive(), "the pipeline run did not end"
    if "error" in holder:
        raise holder["error"]
    result: PipelineResult = holder["result"]
    return result


def running_steps() -> list[PipelineStep]:
    store = get_pipeline_store()
    runs = store.search_pipeline_runs()
    if not runs:
        return []
    return [s for s in store.list_steps(runs[0].run_id) if s.status == StepStatus.RUNNING]


# -- components ---------------------------------------------------------------------------------


@component
def produce(width: int, data: Output[Dataset]) -> list:  # type: ignore[type-arg]
    with open(data.path, "w") as stream:
        stream.write("x" * width)
    return [0, 1, 2]


@component(cpu=1)
def measure(index: int, data: Input[Dataset], seconds: float) -> int:
    import time

    time.sleep(seconds)  # long enough that the three run side by side on both nodes
    with open(data.path) as stream:
        return index + len(stream.read())


@component(retries=1, backoff=0.1)
def flaky(values: list, marker: str) -> int:  # type: ignore[type-arg]
    """Fails its first attempt (a file remembers it), succeeds the second."""
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return sum(values)


@pipeline(name="spread")
def spread(marker: str, seconds: float = 2.0) -> Any:
    made = produce(width=10)
    with parallel_for(made.output) as index:
        measured = measure(index=index, data=made.outputs["data"], seconds=seconds)
    return flaky(values=collected(measured.output), marker=marker).output


@component
def hold(pid_file: str, seconds: float, release: str = "") -> float:
    """Writes its pid, then sleeps ``seconds`` or until ``release`` exists."""
    import os
    import time

    with open(pid_file, "w") as stream:
        stream.write(str(os.getpid()))
    print("holding", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (release and os.path.exists(release)):
        time.sleep(0.1)
    return seconds


@pipeline(name="times-out")
def times_out(pid_file: str) -> None:
    hold(pid_file=pid_file, seconds=600.0).set_timeout(2)


@pipeline(name="held")
def held(pid_file: str, release: str) -> None:
    hold(pid_file=pid_file, seconds=600.0, release=release)


@component(cpu=64)
def greedy() -> int:
    return 1


@pipeline(name="greedy")
def too_big() -> None:
    greedy()


@component(cpu=1, retries=1, backoff=0.1)
def survive(index: int, folder: str, seconds: float) -> int:
    """Holds one CPU for ``seconds``; its pid goes to ``folder`` (one file per attempt)."""
    import os
    import time

    attempt = os.environ["SLIPWAY_PIPELINE_ATTEMPT"]
    with open(os.path.join(folder, f"{index}-{attempt}.pid"), "w") as stream:
        stream.write(str(os.getpid()))
    time.sleep(seconds)
    return index


@pipeline(name="node-loss")
def node_loss(folder: str, indices: list, seconds: float = 8.0) -> None:  # type: ignore[type-arg]
    with parallel_for(indices) as index:
        survive(index=index, folder=folder, seconds=seconds)


# -- tests --------------------------------------------------------------------------------------


def test_steps_spread_over_the_nodes_with_artifacts_cache_and_retries(
    cluster: Any, tmp_path: Path
) -> None:
    marker = str(tmp_path / "failed-once")
    result = run(spread, {"marker": marker}, executor="ray", ray_address=cluster.address)
    assert result.succeeded, result.run.message
    assert result.outputs == {"Output": (0 + 10) + (1 + 10) + (2 + 10)}
    measured = [result.step(f"measure[{i}]") for i in range(3)]
    used = {s.details["node_id"] for s in measured}
    alive = {n.node_id for n in ray_engine.cluster_nodes()}
    assert used <= alive
    if alive == {cluster.head_node_id, cluster.second_node_id}:
        assert used == alive  # three 1-CPU steps at once: the head's 2 CPUs and the second's 1
    else:  # another module left a node of its own: still more than one node
        assert len(used) >= 2
    for step in [*measured, result.step("produce"), result.step("flaky")]:
        assert step.status == StepStatus.SUCCEEDED
        assert run_tags(step)[NODE_ID_TAG] == step.details["node_id"]
        assert step.details["attempts"][-1]["node_id"] == step.details["node_id"]
    retried = result.step("flaky")
    assert retried.attempt == 2
    first, second = retried.details["attempts"]
    assert not first["ok"]
    assert "first attempt fails" in first["message"]
    assert second["ok"]
    logs = [a.path for a in SlipwayClient().list_artifacts(first["run_id"], "logs")]
    assert logs == ["logs/stderr.txt"]  # uploaded from the node: the traceback
    again = run(spread, {"marker": marker}, executor="ray", ray_address=cluster.address)
    assert again.succeeded, again.run.message
    assert {s.status for s in again.steps} == {StepStatus.CACHED}
    assert again.outputs == result.outputs


def test_a_timeout_stops_the_step_on_its_node(cluster: Any, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    result = run(times_out, {"pid_file": str(pid_file)}, executor="ray")
    assert result.status == PipelineRunStatus.FAILED
    step = result.step("hold")
    assert step.status == StepStatus.FAILED
    assert step.message is not None
    assert step.message.startswith("timed out after"), step.message
    pid = int(pid_file.read_text())
    wait_for("the step's process to end", lambda: process_gone(pid))
    client = SlipwayClient()
    logs = [a.path for a in client.list_artifacts(step.run_id or "", "logs")]
    assert logs == ["logs/stdout.txt"]  # uploaded by the node once it had stopped the step
    local = client.download_artifacts(step.run_id or "", "logs/stdout.txt", str(tmp_path))
    assert Path(local).read_text() == "holding\n"


def test_cancel_stops_the_ray_task_and_resume_finishes_on_ray(cluster: Any, tmp_path: Path) -> None:
    pid_file, release = tmp_path / "pid", tmp_path / "release"
    params = {"pid_file": str(pid_file), "release": str(release)}
    thread, holder = in_background(lambda: run(held, params, executor="ray"))
    step = wait_for(
        "the step to start on a node",
        lambda: [s for s in running_steps() if s.details.get("node_id")],
    )[0]
    wait_for("the step's pid", pid_file.exists)
    pid = int(wait_for("the step's pid", lambda: pid_file.read_text().strip()))
    assert cancel(step.pipeline_run_id).status == PipelineRunStatus.CANCELLING
    result = finished(thread, holder)
    assert result.status == PipelineRunStatus.CANCELLED
    assert result.step("hold").status == StepStatus.CANCELLED
    wait_for("the cancelled step's process to end", lambda: process_gone(pid))
    release.touch()
    resumed = resume(result.run_id, held, executor="ray", ray_address=cluster.address)
    assert resumed.succeeded, resumed.run.message
    assert resumed.run_id == result.run_id
    again = resumed.step("hold")
    assert again.run_id != result.step("hold").run_id
    assert run_tags(again)[NODE_ID_TAG] == again.details["node_id"]


def test_a_task_no_node_can_hold_is_refused_before_anything_runs(cluster: Any) -> None:
    with pytest.raises(InvalidParameterValue, match=r"task greedy asks for 64 CPU.*no node"):
        run(too_big, executor="ray")
    assert get_pipeline_store().search_pipeline_runs() == []
    assert uris.get_store().search_runs(["0"], "", max_results=10) == []


@component(workers=2)
def spread_out() -> int:
    return 1


@pipeline(name="two-workers")
def two_workers() -> None:
    spread_out()


def test_what_the_ray_executor_cannot_take_is_refused(tracking_dir: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="Unknown executor 'spark'"):
        run(too_big, executor="spark")
    with pytest.raises(InvalidParameterValue, match="ray_address is for executor='ray'"):
        run(too_big, ray_address="127.0.0.1:1")
    with pytest.raises(InvalidParameterValue, match="task spread_out asks for 2 workers"):
        run(two_workers, executor="ray", ray_address="127.0.0.1:1")
    assert get_pipeline_store().search_pipeline_runs() == []


def test_a_lost_node_fails_the_attempt_and_the_retry_finishes_the_run(
    cluster: Any, tmp_path: Path
) -> None:
    doomed = cluster.add_node(num_cpus=1, resources={"doomed": 1})
    try:
        alive = ray_engine.cluster_nodes()
        width = int(sum(n.cpu for n in alive))  # one 1-CPU step per CPU: one lands on it
        params = {"folder": str(tmp_path), "indices": list(range(width)), "seconds": 8.0}
        thread, holder = in_background(lambda: run(node_loss, params, executor="ray"))
        victim = wait_for(
            "a step to start on the added node",
            lambda: [s for s in running_steps() if s.details.get("node_id") == doomed.node_id],
        )[0]
        index = victim.task_id.split("[")[1].rstrip("]")
        pid_path = tmp_path / f"{index}-1.pid"
        wait_for("the step's pid", lambda: pid_path.exists() and pid_path.read_text())
        pid = int(pid_path.read_text())
        doomed.kill()
    finally:
        doomed.kill()
    result = finished(thread, holder)
    assert result.succeeded, result.run.message
    step = result.step(victim.task_id)
    assert step.attempt == 2
    first, second = step.details["attempts"]
    assert first["node_id"] == doomed.node_id
    assert not first["ok"]
    assert first["message"].startswith(f"Ray node {doomed.node_id[:12]} "), first["message"]
    assert "lost while running the step" in first["message"]
    assert second["ok"]
    assert second["node_id"] in {cluster.head_node_id, cluster.second_node_id}
    assert run_tags(step)[NODE_ID_TAG] == second["node_id"]
    # The step's process on the lost node was in a session of its own: its guardian ended it.
    wait_for("the lost attempt's process to end", lambda: process_gone(pid))


# -- the CLI ------------------------------------------------------------------------------------

FLOW = """
from slipway.pipelines import collected, component, parallel_for, pipeline

from helpers import double


@component
def square(x: int) -> int:
    print(f"squaring {x}")
    return double(x * x) // 2


@component
def total(values: list) -> int:
    return sum(values)


@pipeline(name="cli-ray")
def flow(xs: list = [0, 1, 2]):  # noqa: B006
    with parallel_for(xs) as x:
        sq = square(x=x)
    return total(values=collected(sq.output)).output
"""


@pytest.fixture
def cli_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ("SLIPWAY_TRACKING_URI", "SLIPWAY_ARTIFACT_ROOT", "SLIPWAY_RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    yield str(tmp_path / "tracking")
    clear_pipeline_store_cache()
    uris.clear_store_cache()


def invoke(uri: str, command: str) -> Result:
    return CliRunner().invoke(
        cli, ["--tracking-uri", uri, *shlex.split(command)], env={"COLUMNS": "160"}
    )


def test_cli_runs_a_pipeline_file_on_the_cluster(
    ray_cluster: Any, cli_uri: str, tmp_path: Path
) -> None:
    (tmp_path / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(FLOW))
    result = invoke(
        cli_uri,
        f"pipelines run {path} --executor RAY --ray-address {ray_cluster.address} --max-parallel 1",
    )
    assert result.exit_code == 0, result.output
    assert "SUCCEEDED" in result.stdout
    (found,) = get_pipeline_store(cli_uri).search_pipeline_runs()
    steps = get_pipeline_store(cli_uri).list_steps(found.run_id)
    assert {s.status for s in steps} == {StepStatus.SUCCEEDED}
    assert all(s.details.get("node_id") for s in steps)
    # --max-parallel 1 holds on Ray too: each step was handed to Ray after the last one ended.
    spans = sorted((s.start_time or 0, s.end_time or 0) for s in steps)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))


def test_cli_runs_over_ray_client(ray_cluster: Any, cli_uri: str, tmp_path: Path) -> None:
    """``--ray-address ray://...``: Ray Client cannot stream a task's results, so each step says
    where it ran when it ends. A process of its own: one process is either a Ray Client or a
    driver of the cluster, and this one is a driver."""
    (tmp_path / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(FLOW))
    address = f"ray://127.0.0.1:{ray_cluster.client_port}"
    command = [str(Path(sys.executable).with_name("slipway")), "--tracking-uri", cli_uri]
    command += ["pipelines", "run", str(path), "--executor", "ray", "--ray-address", address]
    command += ["--working-dir", str(tmp_path)]  # the package goes up through the client too
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if "Starting Ray client server failed" in done.stderr:
        # The head gives the per-client server it starts 30 s; a loaded 2-core machine can miss
        # that once. That is Ray's start-up, not the executor: try once more.
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = get_pipeline_store(cli_uri).search_pipeline_runs()
    assert found.status == PipelineRunStatus.SUCCEEDED
    steps = get_pipeline_store(cli_uri).list_steps(found.run_id)
    alive = {ray_cluster.head_node_id, ray_cluster.second_node_id}
    assert {s.details.get("node_id") for s in steps} <= alive


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_refuses_an_unreachable_ray_address(cli_uri: str, tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(FLOW))
    (tmp_path / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = invoke(cli_uri, f"pipelines run {path} --executor ray --ray-address {address}")
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: Cannot reach a Ray cluster at "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert took < 30  # fails at once, not after Ray's own minute of reconnecting
    assert get_pipeline_store(cli_uri).search_pipeline_runs() == []
    bad = invoke(cli_uri, f"pipelines run {path} --executor spark")
    assert bad.exit_code == 2
    assert "'spark' is not one of 'local', 'ray'" in bad.output


NAP = """
import os, time
from pathlib import Path
from slipway.pipelines import component, pipeline

@component
def nap(pid_file: str) -> int:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)
    return 1

@pipeline(name="napping")
def napping(pid_file: str = ""):
    nap(pid_file=pid_file)
"""


def test_ctrl_c_on_the_cli_cancels_the_run_and_stops_the_step_on_its_node(
    ray_cluster: Any, cli_uri: str, tmp_path: Path
) -> None:
    """Ctrl-C on a terminal running ``pipelines run --executor ray``: the step's process on
    its node goes, the run ends CANCELLED, and the command exits 130 without a traceback."""
    path = tmp_path / "napping.py"
    path.write_text(NAP)
    pid_file = tmp_path / "nap.pid"
    command = [str(Path(sys.executable).with_name("slipway")), "--tracking-uri", cli_uri]
    command += ["pipelines", "run", str(path), "--executor", "ray"]
    command += ["--ray-address", ray_cluster.address, "--param", f"pid_file={pid_file}"]
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        pid = int(
            wait_for(
                "the step to start on a node",
                lambda: child.poll() is None and pid_file.exists() and pid_file.read_text(),
            )
        )
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
        code = child.wait(timeout=WAIT_S)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    output = log.read_text()
    assert code == 130, output
    assert "Traceback" not in output
    assert "nap CANCELLED" in output, output
    wait_for("the step's process on its node to end", lambda: process_gone(pid))
    (found,) = get_pipeline_store(cli_uri).search_pipeline_runs()
    assert found.status == PipelineRunStatus.CANCELLED
    (step,) = get_pipeline_store(cli_uri).list_steps(found.run_id)
    assert step.status == StepStatus.CANCELLED
    assert step.details.get("node_id") in {ray_cluster.head_node_id, ray_cluster.second_node_id}


SHIPPED_FLOW = """
from slipway.pipelines import component, pipeline


@component
def look() -> str:
    import os
    from pathlib import Path

    import shipped_helper  # a module of the shipped folder, imported on the node

    rows = Path("data", "rows.csv").read_text()  # relative to the node's copy
    return f"{os.getcwd()}|{shipped_helper.NAME}|{rows.strip()}"


@pipeline(name="shipped")
def shipped():
    look()
"""


def test_cli_ships_a_working_dir_to_the_nodes(
    ray_cluster: Any, cli_uri: str, tmp_path: Path
) -> None:
    """``--working-dir``: each step runs in its node's copy of the folder, where the modules
    it imports and its files are, whatever the pipeline file's own folder holds."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "rows.csv").write_text("a,b\n")
    (project / "shipped_helper.py").write_text("NAME = 'from the copy'\n")
    flows = tmp_path / "flows"  # the pipeline file lives elsewhere: only shipping helps
    flows.mkdir()
    path = flows / "shipped.py"
    path.write_text(SHIPPED_FLOW)
    result = invoke(
        cli_uri,
        f"pipelines run {path} --executor ray --ray-address {ray_cluster.address} "
        f"--working-dir {project}",
    )
    assert result.exit_code == 0, result.output
    (found,) = get_pipeline_store(cli_uri).search_pipeline_runs()
    (step,) = get_pipeline_store(cli_uri).list_steps(found.run_id)
    assert step.status == StepStatus.SUCCEEDED
    cwd, name, rows = step.outputs["parameters"]["Output"].split("|")
    assert name == "from the copy"
    assert rows == "a,b"
    assert Path(cwd) != project.resolve()
    refused = invoke(cli_uri, f"pipelines run {path} --working-dir {project}")
    assert refused.exit_code == 1
    assert "--working-dir goes with --executor ray" in refused.stderr
