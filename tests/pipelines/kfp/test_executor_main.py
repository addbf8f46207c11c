"""The container entry point, run on synthetic executor inputs: end to end through the very
shell command the compiler writes (all but its ``pip install``), and in process for the
protocol's corners and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from slipway.pipelines import (
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    PipelineStatus,
    component,
    pipeline,
)
from slipway.pipelines.kfp import compile_pipeline
from slipway.pipelines.kfp.executor_main import local_path, main
from slipway.pipelines.kfp.program import component_program

SUFFIX = "-fitted"


def describe(rows: int, scale: float) -> str:
    return f"{rows}x{scale:g}{SUFFIX}"


@component
def fit(
    data: Input[Dataset],
    rows: int,
    scale: float,
    tags: list,
    options: dict,
    model: Output[Model],
    note: str = "none",
) -> str:
    text = Path(data.path).read_text()
    with open(model.path, "w") as fh:
        json.dump({"data": text, "rows": rows, "tags": tags, "options": options}, fh)
    model.metadata["input_rows"] = data.metadata["rows"]
    model.metadata["types"] = [type(rows).__name__, type(scale).__name__]
    return describe(rows, scale)


@pipeline
def training(rows: int = 3) -> str:
    raw = make_data(n=rows)
    return fit(  # type: ignore[no-any-return]
        data=raw.outputs["data"], rows=rows, scale=2, tags=["a"], options={"k": 1}
    ).output


@component
def make_data(n: int, data: Output[Dataset]) -> None:
    with open(data.path, "w") as fh:
        fh.write("x" * n)


@pytest.fixture(autouse=True)
def _forget_loaded_programs() -> Iterator[None]:
    yield
    sys.modules.pop("slipway_component", None)


def _executor_input(tmp_path: Path) -> dict[str, Any]:
    mount = tmp_path / "mnt"
    source = mount / "gcs" / "bucket" / "run" / "make-data" / "data"
    source.parent.mkdir(parents=True)
    source.write_text("hello")
    return {
        "inputs": {
            "parameterValues": {
                "rows": 3.0,  # protobuf numbers arrive as doubles
                "scale": 2,
                "tags": ["a"],
                "options": {"k": 1},
            },
            "artifacts": {
                "data": {
                    "artifacts": [
                        {
                            "name": "data",
                            "uri": "gs://bucket/run/make-data/data",
                            "type": {"schemaTitle": "system.Dataset"},
                            "metadata": {"rows": 5},
                        }
                    ]
                }
            },
        },
        "outputs": {
            "artifacts": {
                "model": {
                    "artifacts": [
                        {
                            "name": "model",
                            "uri": "s3://bucket/run/fit/model",
                            "type": {"schemaTitle": "system.Model"},
                        }
                    ]
                }
            },
            "parameters": {"Output": {"outputFile": str(tmp_path / "params" / "Output")}},
            "outputFile": str(tmp_path / "out" / "executor_output.json"),
        },
    }


def test_compiled_container_command_runs_the_component_end_to_end(tmp_path: Path) -> None:
    doc = compile_pipeline(training)
    task = doc["root"]["dag"]["tasks"]["fit"]
    label = doc["components"][task["componentRef"]["name"]]["executorLabel"]
    container = doc["deploymentSpec"]["executors"][label]["container"]
    command, args = container["command"], container["args"]
    assert command[:2] == ["sh", "-c"]  # the pip install; what follows is what it runs
    executor_input = _executor_input(tmp_path)
    argv = [a.replace("{{$}}", json.dumps(executor_input)) for a in args]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SLIPWAY_KFP_MOUNT_ROOT": str(tmp_path / "mnt"),
    }
    done = subprocess.run(
        [*command[3:], *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

    output = json.loads((tmp_path / "out" / "executor_output.json").read_text())
    assert output == {
        "parameterValues": {"Output": "3x2-fitted"},
        "artifacts": {
            "model": {
                "artifacts": [
                    {
                        "name": "model",
                        "uri": "s3://bucket/run/fit/model",
                        "metadata": {"input_rows": 5, "types": ["int", "float"]},
                    }
                ]
            }
        },
    }
    assert (tmp_path / "params" / "Output").read_text() == "3x2-fitted"
    written = json.loads((tmp_path / "mnt" / "s3" / "bucket" / "run" / "fit" / "model").read_text())
    assert written == {"data": "hello", "rows": 3, "tags": ["a"], "options": {"k": 1}}


def _program(tmp_path: Path, comp: Any) -> str:
    path = tmp_path / "prog" / "slipway_component.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(component_program(comp))
    return str(path)


def _run(tmp_path: Path, comp: Any, executor_input: dict[str, Any]) -> int:
    return main(
        [
            "--executor_input",
            json.dumps(executor_input),
            "--function_to_execute",
            comp.python_func.__name__,
            "--component_module_path",
            _program(tmp_path, comp),
        ]
    )


def _output(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "executor_output.json").read_text())  # type: ignore[no-any-return]


def _outputs(tmp_path: Path, **artifacts: str) -> dict[str, Any]:
    return {
        "outputFile": str(tmp_path / "executor_output.json"),
        "artifacts": {k: {"artifacts": [{"name": k, "uri": v}]} for k, v in artifacts.items()},
    }


class Scores(NamedTuple):
    best: float
    count: int


@component
def score(models: Input[list[Model]], metrics: Output[Metrics]) -> Scores:
    values = [float(Path(m.path).read_text()) for m in models]
    metrics.log_metric("best", max(values))
    return Scores(max(values), len(models))


def test_list_inputs_named_tuple_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount = tmp_path / "mnt"
    uris = []
    for i, value in enumerate(("0.5", "0.75")):
        target = mount / "minio" / "b" / f"m{i}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(value)
        uris.append(f"minio://b/m{i}")
    executor_input = {
        "inputs": {"artifacts": {"models": {"artifacts": [{"uri": u} for u in uris]}}},
        "outputs": _outputs(tmp_path, metrics=str(tmp_path / "local" / "metrics")),
    }
    monkeypatch.setenv("SLIPWAY_KFP_MOUNT_ROOT", str(mount))
    assert _run(tmp_path, score, executor_input) == 0
    assert _output(tmp_path) == {
        "parameterValues": {"best": 0.75, "count": 2},
        "artifacts": {
            "metrics": {
                "artifacts": [
                    {
                        "name": "metrics",
                        "uri": str(tmp_path / "local" / "metrics"),
                        "metadata": {"best": 0.75},
                    }
                ]
            }
        },
    }
    assert (tmp_path / "local").is_dir()  # the parent of an output artifact is made


@component
def report(status: PipelineStatus, channel: str = "ops") -> str:
    failed = ",".join(status.failed_tasks)
    return f"{channel}:{status.state}:{status.pipeline_run_id}:{failed}:{status.message}"


def test_exit_task_reads_kubeflow_final_status(tmp_path: Path) -> None:
    status = {
        "state": "FAILED",
        "pipelineJobResourceName": "runs/42",
        "pipelineTaskName": "exit-handler-1",
        "error": {"code": 2, "message": "train failed"},
    }
    executor_input = {
        "inputs": {"parameterValues": {"status": status}},
        "outputs": _outputs(tmp_path),
    }
    assert _run(tmp_path, report, executor_input) == 0
    assert _output(tmp_path) == {
        "parameterValues": {"Output": "ops:FAILED:runs/42:exit-handler-1:train failed"}
    }


@component
def maybe(data: Input[Dataset] = None, count: str = "3") -> int:  # type: ignore[assignment]
    return int(count) if data is None else -1


def test_optional_artifact_and_text_values(tmp_path: Path) -> None:
    assert _run(tmp_path, maybe, {"outputs": _outputs(tmp_path)}) == 0
    assert _output(tmp_path) == {"parameterValues": {"Output": 3}}


@component
def needs_int(n: int) -> int:
    return n


def test_loop_item_as_json_text_is_read_as_the_input_type(tmp_path: Path) -> None:
    executor_input = {"inputs": {"parameterValues": {"n": "7"}}, "outputs": _outputs(tmp_path)}
    assert _run(tmp_path, needs_int, executor_input) == 0
    assert _output(tmp_path) == {"parameterValues": {"Output": 7}}


@component
def boom(n: int) -> int:
    raise RuntimeError(f"exploded at {n}")


@component
def wrong_type(n: int) -> int:
    return "not an int"  # type: ignore[return-value]


@component
def sleepy(n: int) -> int:
    time.sleep(30)
    return n


def test_failures_and_their_exit_statuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = {"inputs": {"parameterValues": {"n": 1}}, "outputs": _outputs(tmp_path)}

    assert _run(tmp_path, boom, good) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "RuntimeError: exploded at 1" in err

    assert _run(tmp_path, wrong_type, good) == 1
    assert "return value of wrong_type: expected int, got str" in capsys.readouterr().err

    missing = {"inputs": {"parameterValues": {}}, "outputs": _outputs(tmp_path)}
    assert _run(tmp_path, needs_int, missing) == 2
    assert "input n of needs_int: no value in the executor input" in capsys.readouterr().err

    bad_type = {"inputs": {"parameterValues": {"n": [1]}}, "outputs": _outputs(tmp_path)}
    assert _run(tmp_path, needs_int, bad_type) == 2
    assert "input n of needs_int: expected int, got list" in capsys.readouterr().err

    no_output = {"inputs": {"parameterValues": {"n": 1}}}
    assert _run(tmp_path, needs_int, no_output) == 2
    assert "no outputs.outputFile" in capsys.readouterr().err

    program = _program(tmp_path, needs_int)
    assert (
        main(
            [
                "--executor_input",
                "{",
                "--function_to_execute",
                "x",
                "--component_module_path",
                program,
            ]
        )
        == 2
    )
    assert "--executor_input is not JSON" in capsys.readouterr().err
    assert (
        main(
            [
                "--executor_input",
                "{}",
                "--function_to_execute",
                "ghost",
                "--component_module_path",
                program,
            ]
        )
        == 2
    )
    assert "has no function 'ghost'" in capsys.readouterr().err
    missing_file = str(tmp_path / "absent.py")
    assert (
        main(
            [
                "--executor_input",
                "{}",
                "--function_to_execute",
                "x",
                "--component_module_path",
                missing_file,
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err

    broken = tmp_path / "broken" / "slipway_component.py"
    broken.parent.mkdir()
    broken.write_text("import package_that_is_not_installed\n")
    assert (
        main(
            [
                "--executor_input",
                "{}",
                "--function_to_execute",
                "x",
                "--component_module_path",
                str(broken),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "ModuleNotFoundError" in err
    assert "add the package to the component's packages" in err

    monkeypatch.setenv("SLIPWAY_STEP_TIMEOUT", "0.3")
    started = time.monotonic()
    assert _run(tmp_path, sleepy, good) == 1
    assert time.monotonic() - started < 10
    assert "ran longer than its timeout of 0.3s" in capsys.readouterr().err
    assert not (tmp_path / "executor_output.json").exists()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://bucket/a/b", "/root/gcs/bucket/a/b"),
        ("s3://bucket/key", "/root/s3/bucket/key"),
        ("minio://bucket/key", "/root/minio/bucket/key"),
        ("oci://registry/model:1", "/root/oci/registry_model:1"),
        ("file:///data/x", "/data/x"),
        ("/local/path", "/local/path"),
    ],
)
def test_local_path_maps_remote_uris_to_kubeflow_mounts(uri: str, expected: str) -> None:
    assert local_path(uri, root="/root") == expected


def test_local_path_defaults_to_the_filesystem_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPWAY_KFP_MOUNT_ROOT", raising=False)
    assert local_path("gs://b/k") == "/gcs/b/k"
    monkeypatch.setenv("SLIPWAY_KFP_MOUNT_ROOT", "/elsewhere")
    assert local_path("gs://b/k") == "/elsewhere/gcs/b/k"
