"""One step attempt in a real process: results, failures, kills, logs, artifacts, tracking.

Every test starts real step processes (from the fork server, or a new interpreter where a test
says so) against a real SQLite tracking store in ``tmp_path``; one runs on every tracking
backend (SQLite, PostgreSQL, a live tracking server over HTTP), one against S3 (moto).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from slipway.artifacts import get_artifact_repository
from slipway.entities import RunStatus
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import (
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    PipelineStatus,
    component,
)
from slipway.pipelines.artifacts import artifact_digest, read_log_capped
from slipway.pipelines.component import Component
from slipway.pipelines.executor import step as steps
from slipway.pipelines.executor.step import StepProcess, StepResult, StepSpec, start_step
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.rest import RestTrackingStore
from slipway.tracking.store.sql import SqlTrackingStore

from .test_artifacts import moto_endpoint, s3  # noqa: F401 - fixtures

STORE_BACKENDS = ["sqlite", "postgresql", "rest"]
"""For the one test that takes the ``store`` fixture: logging from a step on every backend."""


@dataclass
class Tracking:
    """A tracking store and an experiment to create step runs in."""

    uri: str
    store: AbstractTrackingStore
    experiment_id: str
    root: Path

    def spec(self, comp: Component, **fields: Any) -> StepSpec:
        """A StepSpec for a new RUNNING run of ``comp``, its outputs under the run's
        artifact location (as the orchestrator lays them out)."""
        run = self.store.create_run(self.experiment_id, "test", None, [], comp.name)
        base = run.info.artifact_uri.rstrip("/")
        outputs = {
            name: f"{base}/outputs/{name}"
            for name, out in comp.spec.outputs.items()
            if out.kind == "artifact"
        }
        values: dict[str, Any] = {
            "pipeline_run_id": "p" * 32,
            "task_id": comp.name,
            "component": comp,
            "parameters": {},
            "input_artifacts": {},
            "output_uris": outputs,
            "run_id": run.info.run_id,
            "tracking_uri": self.uri,
            "workdir": str(self.root / f"work-{uuid.uuid4().hex[:8]}"),
            "artifact_cache_dir": str(self.root / "artifact-cache"),
        }
        values.update(fields)
        return StepSpec(**values)


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[Tracking]:
    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    store = SqlTrackingStore(uri, str(tmp_path / "artifacts"))
    experiment_id = store.create_experiment("steps")
    yield Tracking(uri, store, experiment_id, tmp_path)
    store.close()


def finish(process: StepProcess, timeout: float = 60) -> StepResult:
    """Wait (on the sentinel, as the orchestrator does) for the step, then read its result."""
    if not wait([process.sentinel], timeout):
        process.kill("cancel")
        pytest.fail(f"step {process.spec.task_id} did not end within {timeout} s")
    assert process.done()
    return process.result()


def run_step(spec: StepSpec, timeout: float = 60) -> StepResult:
    return finish(start_step(spec), timeout)


def wait_for(predicate: Callable[[], bool], timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def process_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            state = stream.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def log_text(result: StepResult, which: str = "stdout") -> str:
    path = result.stdout_path if which == "stdout" else result.stderr_path
    assert path is not None
    return Path(path).read_text()


# -- success --------------------------------------------------------------------------------


def test_success_with_parameters_and_artifacts(tracking: Tracking, tmp_path: Path) -> None:
    @component
    def train(data: Input[Dataset], model: Output[Model], rate: float, epochs: int = 2) -> float:
        import slipway

        text = Path(data.path).read_text()
        Path(model.path).write_text(text.upper() * epochs)
        model.metadata.update(rows=len(text.splitlines()), source=data.metadata["origin"])
        slipway.log_metric("loss", 0.25)
        slipway.log_metric("loss", 0.125, step=1)
        print("training on", len(text), "bytes")
        os.write(1, b"raw fd write\n")  # below Python's streams, as C code writes
        subprocess.run(["echo", "from a subprocess"], check=True)
        print("a warning", file=sys.stderr)
        return rate * epochs

    data = tmp_path / "data.csv"
    data.write_text("a\nb\n")
    ref = {"uri": str(data), "digest": artifact_digest(data), "type": "Dataset"}
    spec = tracking.spec(
        train,
        parameters={"rate": 0.5},
        input_artifacts={"data": {**ref, "metadata": {"origin": "test"}}},
    )
    process = start_step(spec)
    assert process.pid > 0
    assert isinstance(process.sentinel, int)
    result = finish(process)

    assert result.ok, result.traceback
    assert result.error is None
    assert result.traceback is None
    assert result.exit_code == 0
    assert result.parameters == {"Output": 1.0}
    model_path = Path(spec.output_uris["model"])
    assert model_path.read_text() == "A\nB\nA\nB\n"
    assert result.artifacts == {
        "model": {
            "uri": spec.output_uris["model"],
            "digest": artifact_digest(model_path),
            "type": "Model",
            "metadata": {"rows": 2, "source": "test"},
        }
    }
    assert result.pid == process.pid
    assert 0 < result.duration < 60
    out = log_text(result)
    assert "training on 4 bytes" in out
    assert "raw fd write" in out
    assert "from a subprocess" in out
    assert log_text(result, "stderr") == "a warning\n"

    run = tracking.store.get_run(spec.run_id)
    assert run.data.metrics == {"loss": 0.125}
    assert [m.value for m in tracking.store.get_metric_history(spec.run_id, "loss")] == [
        0.25,
        0.125,
    ]
    assert run.info.status == RunStatus.RUNNING  # the orchestrator ends the run, not the step
    assert run.info.end_time is None


def test_launch_and_exit_of_a_trivial_step(tracking: Tracking) -> None:
    """Not an assertion on speed: prints what starting and reaping a step costs here."""

    @component
    def nothing() -> None:
        pass

    steps.warm_up()
    assert run_step(tracking.spec(nothing)).ok  # the fork server is up and warm from here
    timings = []
    for _ in range(10):
        spec = tracking.spec(nothing)
        started = time.perf_counter()
        result = run_step(spec)
        timings.append(time.perf_counter() - started)
        assert result.ok
    print(
        f"\ntrivial step, start to result: median {statistics.median(timings) * 1000:.1f} ms, "
        f"min {min(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms"
    )


def test_metrics_land_in_the_run_on_every_backend(
    store: AbstractTrackingStore, tmp_path: Path
) -> None:
    """Logging from the step reaches the run whatever the tracking URI names: a SQLite file,
    a PostgreSQL database, a tracking server (whose artifacts go through its proxy)."""
    uri = getattr(store, "db_uri", None) or getattr(store, "server_url", "")
    experiment_id = store.create_experiment("backends")
    tracking = Tracking(uri, store, experiment_id, tmp_path)

    @component
    def evaluate(scores: Output[Metrics], threshold: float) -> bool:
        import slipway

        slipway.log_param("threshold", threshold)
        scores.log_metric("accuracy", 0.75)  # to the metadata and the step's run
        slipway.set_tag("stage", "eval")
        return threshold < 0.75

    spec = tracking.spec(evaluate, parameters={"threshold": 0.5})
    result = run_step(spec)
    assert result.ok, result.traceback
    assert result.parameters == {"Output": True}
    assert result.artifacts["scores"]["metadata"] == {"accuracy": 0.75}
    scores_uri = result.artifacts["scores"]["uri"]
    assert scores_uri == spec.output_uris["scores"]
    if isinstance(store, RestTrackingStore):  # written to staging, uploaded through the proxy
        assert scores_uri.startswith("mlflow-artifacts:/")
    parent, leaf = scores_uri.rsplit("/", 1)
    with get_artifact_repository(parent, tracking_uri=uri).open_artifact(leaf) as stream:
        assert json.load(stream) == {"accuracy": 0.75}
    run = store.get_run(spec.run_id)
    assert run.data.metrics == {"accuracy": 0.75}
    assert run.data.params == {"threshold": "0.5"}
    assert run.data.tags["stage"] == "eval"
    assert run.info.status == RunStatus.RUNNING


def test_a_run_the_component_left_open_is_ended_and_the_step_run_is_not(
    tracking: Tracking,
) -> None:
    @component
    def nested() -> str:
        import slipway

        assert slipway.active_run() is not None
        parent = slipway.active_run().info.run_id  # reading info loads the step's run
        child = slipway.start_run(nested=True, run_name="inner")
        slipway.log_metric("inner", 1.0)
        return f"{parent} {child.info.run_id}"

    spec = tracking.spec(nested)
    result = run_step(spec)
    assert result.ok, result.traceback
    parent, child = result.parameters["Output"].split()
    assert parent == spec.run_id
    inner = tracking.store.get_run(child)
    assert inner.info.status == RunStatus.FINISHED
    assert inner.data.metrics == {"inner": 1.0}
    assert inner.data.tags["mlflow.parentRunId"] == spec.run_id
    assert tracking.store.get_run(spec.run_id).info.status == RunStatus.RUNNING


class Split(NamedTuple):
    train: int
    test: int
    ratio: float


def test_namedtuple_returns(tracking: Tracking) -> None:
    @component
    def split(n: int) -> Split:
        return Split(n - n // 4, n // 4, 0.75)

    @component
    def split_plain(n: int) -> Split:
        return (n, 0, 1)  # type: ignore[return-value] - a plain tuple is fine; int -> float

    @component
    def split_short(n: int) -> Split:
        return (n, 0)  # type: ignore[return-value]

    assert run_step(tracking.spec(split, parameters={"n": 100})).parameters == {
        "train": 75,
        "test": 25,
        "ratio": 0.75,
    }
    plain = run_step(tracking.spec(split_plain, parameters={"n": 8}))
    assert plain.parameters == {"train": 8, "test": 0, "ratio": 1.0}
    assert isinstance(plain.parameters["ratio"], float)
    short = run_step(tracking.spec(split_short, parameters={"n": 8}))
    assert not short.ok
    assert short.error == "returned a tuple of 2, declared a NamedTuple of 3 (train, test, ratio)"


def test_collected_input_list(tracking: Tracking, tmp_path: Path) -> None:
    @component
    def merge(models: Input[list[Model]], merged: Output[Model]) -> int:
        parts = [Path(m.path).read_text() for m in models]
        Path(merged.path).write_text("+".join(parts))
        assert all(isinstance(m, Model) for m in models)
        return len(models)

    refs = []
    for i in range(3):
        path = tmp_path / f"model-{i}"
        path.write_text(f"m{i}")
        refs.append({"uri": str(path), "digest": artifact_digest(path), "type": "Model"})
    spec = tracking.spec(merge, input_artifacts={"models": refs})
    result = run_step(spec)
    assert result.ok, result.traceback
    assert result.parameters == {"Output": 3}
    assert Path(spec.output_uris["merged"]).read_text() == "m0+m1+m2"


def test_metrics_output_is_written_from_its_metadata(tracking: Tracking) -> None:
    @component
    def score(metrics: Output[Metrics]) -> None:
        metrics.log_metric("auc", 0.875)
        metrics.log_metric("f1", 0.5)

    spec = tracking.spec(score)
    result = run_step(spec)
    assert result.ok, result.traceback
    path = Path(spec.output_uris["metrics"])
    assert json.loads(path.read_text()) == {"auc": 0.875, "f1": 0.5}
    assert result.artifacts["metrics"]["digest"] == artifact_digest(path)
    assert tracking.store.get_run(spec.run_id).data.metrics == {"auc": 0.875, "f1": 0.5}


def test_parameters_reach_the_function_as_given(tracking: Tracking) -> None:
    @component
    def echo(
        status: PipelineStatus, items: list, config: dict, name: str = "x", flag: bool = False
    ) -> dict:
        assert isinstance(status, PipelineStatus)
        return {
            "state": status.state,
            "failed": list(status.failed_tasks),
            "items": items,
            "config": config,
            "name": name,
            "flag": flag,
        }

    params = {
        "status": PipelineStatus("FAILED", "run1", ("train[0]",), "boom"),
        "items": [1, "two", None, 3.5],
        "config": {"nested": {"k": [True]}},
        "flag": True,
    }
    result = run_step(tracking.spec(echo, parameters=params))
    assert result.ok, result.traceback
    assert result.parameters["Output"] == {
        "state": "FAILED",
        "failed": ["train[0]"],
        "items": [1, "two", None, 3.5],
        "config": {"nested": {"k": [True]}},
        "name": "x",
        "flag": True,
    }


def test_numpy_scalars_are_returned_as_plain_values(tracking: Tracking) -> None:
    @component
    def stats() -> float:
        import numpy as np

        return np.float32(0.5) * np.int64(3)  # type: ignore[no-any-return]

    result = run_step(tracking.spec(stats))
    assert result.ok, result.error
    assert result.parameters == {"Output": 1.5}


# -- the environment ------------------------------------------------------------------------


def test_environment_reaches_the_step(tracking: Tracking, monkeypatch: pytest.MonkeyPatch) -> None:
    steps.warm_up()  # the fork server exists before the variable is set: it must still arrive
    monkeypatch.setenv("SLIPWAY_TEST_FROM_PARENT", "parent-value")

    @component
    def show() -> dict:
        import subprocess as sp

        names = [
            "STEP_VAR",
            "SLIPWAY_TEST_FROM_PARENT",
            "SLIPWAY_TRACKING_URI",
            "SLIPWAY_PIPELINE_TASK",
            "SLIPWAY_PIPELINE_ATTEMPT",
        ]
        shell = sp.run(["sh", "-c", "echo $STEP_VAR"], capture_output=True, text=True).stdout
        return {**{n: os.environ.get(n) for n in names}, "shell": shell.strip()}

    spec = tracking.spec(show, env={"STEP_VAR": "from-options"}, attempt=2, task_id="show[1]")
    result = run_step(spec)
    assert result.ok, result.traceback
    assert result.parameters["Output"] == {
        "STEP_VAR": "from-options",
        "SLIPWAY_TEST_FROM_PARENT": "parent-value",
        "SLIPWAY_TRACKING_URI": tracking.uri,
        "SLIPWAY_PIPELINE_TASK": "show[1]",
        "SLIPWAY_PIPELINE_ATTEMPT": "2",
        "shell": "from-options",
    }
    assert "STEP_VAR" not in os.environ


def test_component_from_a_file_loaded_under_a_made_up_name(
    tracking: Tracking, tmp_path: Path
) -> None:
    """Functions of a module that cannot be imported by name travel by value (also their
    helpers and classes), whether or not the loader put the module in sys.modules."""
    source = textwrap.dedent(
        """
        from slipway.pipelines import component

        OFFSET = 10

        class Box:
            def __init__(self, v):
                self.v = v

        def helper(x):
            return Box(x + OFFSET)

        @component
        def compute(x: int) -> int:
            return helper(x).v * 2
        """
    )
    path = tmp_path / "my_pipeline_file.py"
    path.write_text(source)
    for register in (True, False):
        name = f"not_importable_{uuid.uuid4().hex[:8]}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        if register:
            sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            result = run_step(tracking.spec(module.compute, parameters={"x": 1}))
        finally:
            sys.modules.pop(name, None)
        assert result.ok, result.traceback
        assert result.parameters == {"Output": 22}


def test_modules_beside_the_pipeline_file_are_found(tracking: Tracking, tmp_path: Path) -> None:
    """A pipeline file that imports a module next to it, loaded the way the loader does (its
    folder on sys.path only while it is imported): the step finds that module by name."""
    folder = tmp_path / "project"
    folder.mkdir()
    helpers = f"helpers_{uuid.uuid4().hex[:8]}"
    (folder / f"{helpers}.py").write_text("def double(x):\n    return 2 * x\n")
    (folder / "pipe.py").write_text(
        f"from slipway.pipelines import component\nimport {helpers}\n\n"
        f"@component\ndef use(x: int) -> int:\n    return {helpers}.double(x)\n"
    )
    name = f"loaded_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, folder / "pipe.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    try:
        result = run_step(tracking.spec(module.use, parameters={"x": 21}))
    finally:
        sys.modules.pop(helpers, None)
    assert result.ok, result.traceback
    assert result.parameters == {"Output": 42}


def test_a_component_that_cannot_be_pickled_fails_to_start(
    tracking: Tracking, tmp_path: Path
) -> None:
    path = tmp_path / "locked.py"
    path.write_text(
        "import threading\nfrom slipway.pipelines import component\nLOCK = threading.Lock()\n"
        "@component\ndef locked() -> None:\n    with LOCK:\n        pass\n"
    )
    spec = importlib.util.spec_from_file_location(f"locked_{uuid.uuid4().hex[:8]}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(InvalidParameterValue, match="cannot send component locked"):
        start_step(tracking.spec(module.locked))


def test_a_script_is_not_run_again_in_its_steps(tmp_path: Path) -> None:
    """A user's script without a ``__main__`` guard: the step's process must not import it
    again (its top level would run once per step)."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from slipway.pipelines import component
            from slipway.pipelines.executor.step import StepSpec, start_step
            from slipway.tracking.store.sql import SqlTrackingStore

            print("top level ran", flush=True)

            @component
            def add_one(n: int) -> int:
                return n + 1

            uri = "sqlite:///{tmp_path / "script.db"}"
            store = SqlTrackingStore(uri, "{tmp_path / "artifacts"}")
            run = store.create_run("0", "me", None, [], "x")
            result = start_step(
                StepSpec("p", "add_one", add_one, {{"n": 2}}, {{}}, {{}}, run.info.run_id, uri,
                         "{tmp_path / "work"}")
            ).result()
            print("RESULT", result.ok, result.parameters, result.error, flush=True)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["top level ran", "RESULT True {'Output': 3} None"]
    assert (tmp_path / "work" / "stdout.log").read_text() == ""


def test_subprocess_launcher(tracking: Tracking, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no fork server is available, a step is a new interpreter; the same contract."""
    monkeypatch.setenv(steps.LAUNCHER_ENV, "subprocess")

    @component
    def where(x: int) -> int:
        import slipway

        slipway.log_metric("x", x)
        print("in a fresh interpreter")
        return os.getsid(0) - os.getpid() + x  # a session of its own: sid == pid

    spec = tracking.spec(where, parameters={"x": 5})
    result = run_step(spec)
    assert result.ok, result.traceback
    assert result.parameters == {"Output": 5}
    assert log_text(result) == "in a fresh interpreter\n"
    assert tracking.store.get_run(spec.run_id).data.metrics == {"x": 5.0}

    @component
    def fail() -> None:
        sys.exit(4)

    assert run_step(tracking.spec(fail)).error == "exited with code 4"
    monkeypatch.setenv(steps.LAUNCHER_ENV, "teleport")
    with pytest.raises(InvalidParameterValue, match="SLIPWAY_STEP_LAUNCHER"):
        start_step(tracking.spec(fail))


# -- failures -------------------------------------------------------------------------------


def test_exception(tracking: Tracking) -> None:
    @component
    def broken(x: int) -> int:
        import slipway

        slipway.log_metric("before_failure", 1.0)
        raise ValueError(f"boom\non two lines {x}")

    spec = tracking.spec(broken, parameters={"x": 7})
    result = run_step(spec)
    assert not result.ok
    assert result.error == "ValueError: boom on two lines 7"
    assert result.traceback is not None
    assert result.traceback.startswith("Traceback")
    assert "in broken" in result.traceback
    assert "boom" in result.traceback
    assert "_child.py" not in result.traceback  # the step machinery's frames are left out
    assert result.exit_code == 1
    assert result.parameters == {}
    assert result.artifacts == {}
    assert "ValueError: boom" in log_text(result, "stderr")
    # what was logged before the failure is kept, and the run is left to the orchestrator
    run = tracking.store.get_run(spec.run_id)
    assert run.data.metrics == {"before_failure": 1.0}
    assert run.info.status == RunStatus.RUNNING


def test_long_error_is_one_truncated_line(tracking: Tracking) -> None:
    @component
    def loud() -> None:
        raise RuntimeError("x" * 2000)

    result = run_step(tracking.spec(loud))
    assert result.error is not None
    assert len(result.error) <= 500
    assert result.error.endswith("...")
    assert result.error.startswith("RuntimeError: xxx")


@pytest.mark.parametrize(
    ("body", "error", "code"),
    [
        ("sys.exit(3)", "exited with code 3", 3),
        ("os._exit(3)", "exited with code 3", 3),
        ("sys.exit(0)", "the component called sys.exit(0) before returning", 1),
        ("sys.exit('bad input')", "exited: bad input", 1),
        ("os.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9", -9),
    ],
)
def test_exits(tracking: Tracking, body: str, error: str, code: int) -> None:
    namespace: dict[str, Any] = {"component": component, "sys": sys, "os": os, "signal": signal}
    exec(f"@component\ndef leave() -> int:\n    {body}\n    return 1\n", namespace)
    result = run_step(tracking.spec(namespace["leave"]))
    assert not result.ok
    assert result.error == error
    assert result.exit_code == code
    assert not result.timed_out
    assert not result.cancelled


def test_wrong_return_type(tracking: Tracking) -> None:
    @component
    def wrong() -> float:
        return "0.5"  # type: ignore[return-value]

    @component
    def wrong_none() -> int:
        return None  # type: ignore[return-value]

    @component
    def undeclared() -> None:
        return 5  # type: ignore[return-value]

    @component
    def not_json() -> list:
        return [object()]

    assert run_step(tracking.spec(wrong)).error == "output 'Output': returned str, declared float"
    assert run_step(tracking.spec(wrong_none)).error == (
        "output 'Output': returned None, declared int"
    )
    assert run_step(tracking.spec(undeclared)).error == (
        "returned int, declared no return value (-> None)"
    )
    assert "not JSON-serialisable" in (run_step(tracking.spec(not_json)).error or "")


def test_output_not_written(tracking: Tracking) -> None:
    @component
    def forgetful(model: Output[Model], data: Output[Dataset]) -> None:
        Path(data.path).write_text("d")

    result = run_step(tracking.spec(forgetful))
    assert not result.ok
    assert result.error == "output artifact 'model' was not written"
    assert result.traceback is None
    assert result.artifacts == {}


def test_missing_input_artifact(tracking: Tracking, tmp_path: Path) -> None:
    @component
    def reader(data: Input[Dataset]) -> None:
        raise AssertionError("not reached")

    ref = {"uri": str(tmp_path / "gone"), "digest": "sha256:" + "0" * 64, "type": "Dataset"}
    result = run_step(tracking.spec(reader, input_artifacts={"data": ref}))
    assert result.error == (f"input artifact 'data': nothing is stored at {tmp_path / 'gone'}")


def test_garbled_result_file(tracking: Tracking) -> None:
    @component
    def vandal() -> None:
        with open(os.environ["RESULT_FILE"], "w") as stream:
            stream.write("{not json")
        os._exit(0)

    spec = tracking.spec(vandal)
    spec.env = {"RESULT_FILE": os.path.join(spec.workdir, "result.json")}
    result = run_step(spec)
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("the step's result file is unreadable")


# -- kills ----------------------------------------------------------------------------------


def _sleeper_with_grandchild() -> Component:
    @component
    def sleeper(pid_file: str) -> None:
        import slipway

        child = subprocess.Popen(["sleep", "300"])
        slipway.log_metric("progress", 0.5)
        Path(pid_file).write_text(str(child.pid))
        time.sleep(300)

    return sleeper


def test_timeout_kills_the_step_and_its_grandchildren(tracking: Tracking, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    spec = tracking.spec(_sleeper_with_grandchild(), parameters={"pid_file": str(pid_file)})
    process = start_step(spec)
    wait_for(pid_file.exists, what="the grandchild to start")
    grandchild = int(pid_file.read_text())
    assert process_running(grandchild)
    assert not process.done()
    time.sleep(0.2)
    started = time.monotonic()
    process.kill("timeout")
    assert time.monotonic() - started < 3.5
    assert process.done()
    result = process.result()
    assert result.timed_out
    assert not result.cancelled
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("timed out after ")
    assert float(result.error.split()[3]) >= 0.2
    assert result.traceback is not None
    assert "StepTerminated" in result.traceback
    wait_for(lambda: not process_running(grandchild), 5, "the grandchild to be gone")
    # SIGTERM let the step flush what it had logged
    assert tracking.store.get_run(spec.run_id).data.metrics == {"progress": 0.5}


def test_cancel(tracking: Tracking, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    spec = tracking.spec(_sleeper_with_grandchild(), parameters={"pid_file": str(pid_file)})
    process = start_step(spec)
    wait_for(pid_file.exists, what="the grandchild to start")
    process.kill("cancel")
    result = process.result()
    assert result.cancelled
    assert not result.timed_out
    assert result.error == "cancelled"
    wait_for(lambda: not process_running(int(pid_file.read_text())), 5, "the grandchild gone")
    with pytest.raises(InvalidParameterValue, match="kill reason"):
        process.kill("because")


def test_kill_gives_up_waiting_for_a_step_that_ignores_sigterm(
    tracking: Tracking, tmp_path: Path
) -> None:
    @component
    def stubborn(ready: str) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path(ready).write_text("1")
        while True:
            time.sleep(0.05)

    ready = tmp_path / "ready"
    process = start_step(tracking.spec(stubborn, parameters={"ready": str(ready)}))
    wait_for(ready.exists, what="the step to ignore SIGTERM")
    started = time.monotonic()
    process.kill("timeout")
    took = time.monotonic() - started
    assert steps.KILL_GRACE_SECONDS - 0.1 < took < steps.KILL_GRACE_SECONDS + 1.5
    result = process.result()
    assert result.timed_out
    assert result.exit_code == -signal.SIGKILL


def test_kill_gives_what_the_step_started_its_grace(tracking: Tracking, tmp_path: Path) -> None:
    """The step's own process ends at SIGTERM at once; a child process of it that takes a
    moment to clean up is not cut short by SIGKILL."""

    @component
    def parent(marker: str, ready: str) -> None:
        code = textwrap.dedent(
            """
            import pathlib, signal, sys, time
            def bye(*_):
                time.sleep(0.5)
                pathlib.Path(sys.argv[1]).write_text("cleaned up")
                sys.exit(0)
            signal.signal(signal.SIGTERM, bye)
            pathlib.Path(sys.argv[2]).write_text("1")
            time.sleep(300)
            """
        )
        subprocess.Popen([sys.executable, "-c", code, marker, ready])
        time.sleep(300)

    marker, ready = tmp_path / "marker", tmp_path / "ready"
    process = start_step(
        tracking.spec(parent, parameters={"marker": str(marker), "ready": str(ready)})
    )
    wait_for(ready.exists, what="the child process to start")
    process.kill("cancel")
    assert marker.read_text() == "cleaned up"
    assert process.result().cancelled


def test_many_steps_are_told_at_once(tracking: Tracking, tmp_path: Path) -> None:
    """kill(wait=False) sends SIGTERM and returns; the waiting kill afterwards counts the
    grace from then, so stopping several SIGTERM-ignoring steps takes one grace, not one
    each."""

    @component
    def stubborn(ready: str) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path(ready).write_text("1")
        while True:
            time.sleep(0.05)

    ready = [tmp_path / f"ready-{i}" for i in range(3)]
    running = [start_step(tracking.spec(stubborn, parameters={"ready": str(r)})) for r in ready]
    for r in ready:
        wait_for(r.exists, what="the steps to ignore SIGTERM")
    started = time.monotonic()
    for process in running:
        process.kill("cancel", wait=False)
    assert time.monotonic() - started < 0.5
    assert not any(p.done() for p in running)
    for process in running:
        process.kill("cancel")
    assert time.monotonic() - started < steps.KILL_GRACE_SECONDS + 1.5
    results = [p.result() for p in running]
    assert all(r.cancelled for r in results)
    assert all(r.exit_code == -signal.SIGKILL for r in results)


def test_kill_after_the_end_keeps_the_result(tracking: Tracking) -> None:
    @component
    def quick() -> int:
        return 1

    process = start_step(tracking.spec(quick))
    wait([process.sentinel], 60)
    process.kill("timeout")
    result = process.result()
    assert result.ok
    assert not result.timed_out
    assert result.parameters == {"Output": 1}


def test_processes_left_behind_end_with_the_step(tracking: Tracking) -> None:
    @component
    def leaves_a_daemon() -> int:
        return subprocess.Popen(["sleep", "300"], start_new_session=False).pid

    result = run_step(tracking.spec(leaves_a_daemon))
    assert result.ok
    wait_for(lambda: not process_running(result.parameters["Output"]), 5, "the sleep to end")


# -- output volume --------------------------------------------------------------------------


def test_huge_output_completes(tracking: Tracking) -> None:
    @component
    def chatty(mb: int) -> int:
        line = "y" * 99 + "\n"
        for _ in range(mb * 10_000 // 2):
            sys.stdout.write(line)
        os.write(1, (line * 10_000 * (mb - mb // 2)).encode())  # the rest in one raw write
        print("stderr end", file=sys.stderr)
        return mb

    result = run_step(tracking.spec(chatty, parameters={"mb": 20}), timeout=120)
    assert result.ok, result.error
    assert result.stdout_path is not None
    assert os.path.getsize(result.stdout_path) == 20 * 1_000_000
    excerpt = read_log_capped(result.stdout_path, limit=10_000)
    assert len(excerpt) < 10_100
    assert "[19990000 bytes left out]" in excerpt
    assert log_text(result, "stderr") == "stderr end\n"


# -- remote artifacts -----------------------------------------------------------------------


def test_s3_artifacts_in_and_out(tracking: Tracking, s3: Any) -> None:  # noqa: F811
    @component
    def transform(data: Input[Dataset], model: Output[Model], folder: Output[Dataset]) -> str:
        assert data.path.startswith(os.environ["CACHE_ROOT"])
        Path(model.path).write_text(Path(data.path).read_text()[::-1])
        os.makedirs(folder.path)
        Path(folder.path, "part-0").write_text("p0")
        model.metadata["reversed"] = True
        return data.path

    s3.put_object(Bucket=s3.bucket, Key="in/data", Body=b"abc")
    ref = {
        "uri": f"s3://{s3.bucket}/in/data",
        "digest": "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "type": "Dataset",
    }
    outputs = {
        "model": f"s3://{s3.bucket}/run/outputs/model",
        "folder": f"s3://{s3.bucket}/run/outputs/folder",
    }
    spec = tracking.spec(
        transform,
        input_artifacts={"data": ref},
        output_uris=outputs,
        env={"CACHE_ROOT": str(tracking.root / "artifact-cache")},
    )
    result = run_step(spec)
    assert result.ok, result.traceback
    body = s3.get_object(Bucket=s3.bucket, Key="run/outputs/model")["Body"].read()
    assert body == b"cba"
    part = s3.get_object(Bucket=s3.bucket, Key="run/outputs/folder/part-0")["Body"].read()
    assert part == b"p0"
    assert result.artifacts["model"]["uri"] == outputs["model"]
    assert result.artifacts["model"]["metadata"] == {"reversed": True}
    cached = result.parameters["Output"]
    assert Path(cached).read_bytes() == b"abc"
    # a second step reads the cached copy: the object can be gone from S3 meanwhile
    s3.delete_object(Bucket=s3.bucket, Key="in/data")
    again = run_step(
        tracking.spec(
            transform,
            input_artifacts={"data": ref},
            output_uris={k: v + "-2" for k, v in outputs.items()},
            env={"CACHE_ROOT": str(tracking.root / "artifact-cache")},
        )
    )
    assert again.ok, again.traceback
    assert again.parameters["Output"] == cached
