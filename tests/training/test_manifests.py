"""``--emit pytorchjob``: a Kubeflow PyTorchJob, parsed back and checked field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from slipway.cli import cli
from slipway.exceptions import InvalidParameterValue
from slipway.training import pytorchjob_manifest
from slipway.training.manifests import pytorchjob_yaml


def emit(*args: str, tracking_uri: str | None = None) -> tuple[str, Any]:
    prefix = ["--tracking-uri", tracking_uri] if tracking_uri else []
    result = CliRunner().invoke(cli, [*prefix, "train", *args, "--emit", "pytorchjob"], env={})
    assert result.exit_code == 0, result.output
    return result.stdout, yaml.safe_load(result.stdout)


def container(job: Any, replica: str) -> Any:
    spec = job["spec"]["pytorchReplicaSpecs"][replica]
    return spec["template"]["spec"]["containers"][0]


def test_master_and_workers() -> None:
    text, job = emit(
        "--nproc", "4", "--nnodes", "3", "--max-restarts", "2", "--image", "reg/train:1",
        "--cpu", "8", "--memory", "32Gi", "--gpus", "4", "--namespace", "ml",
        "--timeout", "3600", "--experiment", "ddp",
        "train.py", "--lr", "0.1",
        tracking_uri="http://tracking:5000",
    )  # fmt: skip
    assert job["apiVersion"] == "kubeflow.org/v1"
    assert job["kind"] == "PyTorchJob"
    assert job["metadata"]["name"] == "train"
    assert job["metadata"]["namespace"] == "ml"
    spec = job["spec"]
    assert spec["nprocPerNode"] == "4"
    assert spec["runPolicy"]["backoffLimit"] == 2
    assert spec["runPolicy"]["activeDeadlineSeconds"] == 3600
    assert "elasticPolicy" not in spec
    replicas = spec["pytorchReplicaSpecs"]
    assert list(replicas) == ["Master", "Worker"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas["Worker"]["replicas"] == 2
    assert replicas["Master"]["restartPolicy"] == replicas["Worker"]["restartPolicy"] == "OnFailure"
    for name in ("Master", "Worker"):
        box = container(job, name)
        assert box["name"] == "pytorch"
        assert box["image"] == "reg/train:1"
        assert box["command"][0] == "torchrun"
        assert "--nproc-per-node=4" in box["command"]
        assert "--master-addr=$(MASTER_ADDR)" in box["command"]
        assert "--node-rank=$(PET_NODE_RANK)" in box["command"]
        assert box["command"][-3:] == ["train.py", "--lr", "0.1"]
        assert box["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 4}
        assert box["resources"]["requests"] == {"cpu": "8", "memory": "32Gi"}
        env = {item["name"]: item["value"] for item in box["env"]}
        assert env == {
            "SLIPWAY_TRACKING_URI": "http://tracking:5000",
            "SLIPWAY_EXPERIMENT_NAME": "ddp",
            "SLIPWAY_TRAINING_BACKEND": "nccl",
        }
    assert container(job, "Master")["ports"] == [
        {"name": "pytorchjob-port", "containerPort": 23456}
    ]
    assert "ports" not in container(job, "Worker")
    assert "python:3.11" not in text  # no note about the default image


def test_single_node_defaults() -> None:
    text, job = emit("--nproc", "2", "train.py", "--epochs", "5")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert list(replicas) == ["Master"]
    assert replicas["Master"]["restartPolicy"] == "Never"
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "backoffLimit": 0}
    box = container(job, "Master")
    assert box["image"] == "python:3.11"
    assert "resources" not in box
    assert {item["name"]: item["value"] for item in box["env"]} == {
        "SLIPWAY_TRAINING_BACKEND": "gloo"
    }
    assert text.startswith("# A Kubeflow PyTorchJob")
    assert "has Python only" in text


def test_elastic_job_is_workers_only() -> None:
    _, job = emit("--nproc", "2", "--nnodes", "2", "--elastic", "1:4", "--max-restarts", "3",
                  "train.py")  # fmt: skip
    spec = job["spec"]
    assert spec["elasticPolicy"] == {
        "rdzvBackend": "c10d",
        "minReplicas": 1,
        "maxReplicas": 4,
        "maxRestarts": 3,
    }
    assert list(spec["pytorchReplicaSpecs"]) == ["Worker"]
    assert spec["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    command = container(job, "Worker")["command"]
    assert command == ["torchrun", "--nproc-per-node=2", "--max-restarts=3", "train.py"]


def test_output_file_and_local_tracking_note(tmp_path: Path) -> None:
    out = tmp_path / "job.yaml"
    result = CliRunner().invoke(
        cli,
        ["--tracking-uri", str(tmp_path / "store"), "train", "train.py", "--emit", "pytorchjob",
         "-o", str(out), "--job-name", "My_Job!"],
        env={},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"Wrote the PyTorchJob manifest to {out}" in result.stderr
    text = out.read_text()
    assert "is local to this machine" in text
    job = yaml.safe_load(text)
    assert job["metadata"]["name"] == "my-job"
    env = {item["name"] for item in container(job, "Master")["env"]}
    assert "SLIPWAY_TRACKING_URI" not in env


def test_script_arguments_reach_the_script_unexpanded() -> None:
    manifest = pytorchjob_manifest("t.py", ["--tag", "$(HOME)"])
    command = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][
        0
    ]["command"]
    assert command[-2:] == ["--tag", "$$(HOME)"]
    assert yaml.safe_load(pytorchjob_yaml(manifest)) == manifest


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nnodes": 0}, "Invalid nnodes 0"),
        ({"nproc_per_node": 0}, "Invalid nproc_per_node 0"),
        ({"max_restarts": -1}, "Invalid max_restarts -1"),
        ({"elastic": (2, 4), "nnodes": 1}, "must lie within the elastic range 2:4"),
        ({"backend": "mpi"}, "Unknown backend 'mpi'"),
        ({"backend": "nccl"}, "nccl backend needs GPUs"),
        ({"name": "!!!"}, "Cannot make a Kubernetes name"),
        ({"timeout": 0}, "Invalid timeout 0"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        pytorchjob_manifest("train.py", **kwargs)


def test_cli_refusals_are_one_line() -> None:
    result = CliRunner().invoke(
        cli, ["train", "x.py", "--emit", "pytorchjob", "--elastic", "4"], env={}
    )
    assert result.exit_code == 2
    assert "use MIN:MAX" in result.output
    result = CliRunner().invoke(
        cli, ["train", "x.py", "--emit", "pytorchjob", "--elastic", "2:3"], env={}
    )
    assert result.exit_code == 1
    assert result.output.strip() == "Error: nnodes=1 must lie within the elastic range 2:3"
