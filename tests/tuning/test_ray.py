"""A study on the two-node Ray cluster: trials run as Ray actors on the cluster's nodes (each
trial's run says which), pruning compares across actors through the study's journal, a trial
that takes its actor down fails alone; a trial asking for more than any node has is refused
before anything is recorded; ``slipway tune --on ray`` runs a spec there, and an address where
nothing listens fails in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from slipway import tuning
from slipway.cli import cli
from slipway.entities import RunStatus
from slipway.exceptions import InvalidParameterValue
from slipway.tracking.client import SlipwayClient
from slipway.tuning.store import get_tuning_store

pytestmark = pytest.mark.xdist_group("ray")

NODE_TAG = "slipway.ray.node_id"


def first_four_lead(trial: tuning.Trial) -> float:
    """Trials 0-3 report the same high values and complete (but trial 3 takes its actor
    down); trials 4-7 report low ones and are pruned at once: when trial 4 starts at least two
    of 0-2 have completed (two trials run at a time), which is what the median pruner waits
    for."""
    if trial.number == 3:
        os._exit(3)
    high = trial.number < 4
    for step in range(3):
        value = 10.0 + step if high else 0.1 * step
        trial.report(value, step)
        if trial.should_prune():
            raise tuning.TrialPruned()
        time.sleep(0.05)
    return 10.0 + trial.number


def test_a_study_runs_its_trials_as_actors_on_the_cluster(
    ray_cluster: Any, tracking_uri: str
) -> None:
    study = tuning.tune(
        first_four_lead,
        {"x": tuning.uniform(0.0, 1.0)},
        n_trials=8,
        parallelism=2,
        sampler="random",
        seed=1,
        pruner="median",
        pruner_settings={"n_startup_trials": 2},
        direction="maximize",
        metric="score",
        study_name="on-ray",
        tracking_uri=tracking_uri,
        on="ray",
        ray_address=ray_cluster.address,
        trial_resources={"cpu": 1, "gpu": 0},
    )
    states = [t.state for t in study.trials]
    assert states == ["COMPLETE"] * 3 + ["FAIL"] + ["PRUNED"] * 4
    assert study.trials[3].error is not None
    assert study.trials[3].error.startswith("the trial's worker died")
    assert study.best_value == 12.0

    client = SlipwayClient(tracking_uri)
    runs = client.search_runs(
        study.experiment_id, f"tags.mlflow.parentRunId = '{study.run_id}'", max_results=100
    )
    assert len(runs) == 8
    nodes = {ray_cluster.head_node_id, ray_cluster.second_node_id}
    for run in runs:
        number = int(run.data.tags["slipway.tuning.trial"])
        trial = study.trials[number]
        assert trial.run_id == run.info.run_id
        assert run.data.params == {"x": str(trial.params["x"])}
        assert run.data.tags["slipway.tuning.state"] == trial.state
        assert run.data.tags[NODE_TAG] in nodes
        expected = RunStatus.FAILED if trial.state == "FAIL" else RunStatus.FINISHED
        assert run.info.status == expected
        if trial.state != "FAIL":  # reported values are the run's metric history
            history = client.get_metric_history(run.info.run_id, "score")
            assert [m.step for m in history][: len(trial.intermediate_values)] == sorted(
                trial.intermediate_values
            )


def test_a_trial_bigger_than_any_node_is_refused_before_anything_runs(
    ray_cluster: Any, tracking_uri: str
) -> None:
    with pytest.raises(InvalidParameterValue, match="64 CPU; no node of the Ray cluster"):
        tuning.tune(
            first_four_lead,
            {"x": tuning.uniform(0.0, 1.0)},
            n_trials=2,
            study_name="too-big",
            tracking_uri=tracking_uri,
            on="ray",
            ray_address=ray_cluster.address,
            trial_resources={"cpu": 64},
        )
    assert get_tuning_store(tracking_uri).list_studies() == []


SCRIPT = "import sys\nx = float(sys.argv[1])\nprint(f'score={x * 2}')\n"


def _spec(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(SCRIPT)
    container = {
        "name": "training-container",
        "image": "python:3.11-slim",
        "command": [sys.executable, "train.py", "${trialParameters.x}"],
        "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}},
    }
    manifest = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "cli-on-ray"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "score"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2,
            "maxTrialCount": 3,
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
            ],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"template": {"spec": {"containers": [container]}}},
                },
            },
        },
    }
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def test_the_cli_runs_a_spec_on_ray_and_fails_fast_on_a_dead_address(
    ray_cluster: Any, tracking_uri: str, tmp_path: Path
) -> None:
    path = _spec(tmp_path)
    result = CliRunner().invoke(
        cli,
        [
            "--tracking-uri",
            tracking_uri,
            "tune",
            "--spec",
            str(path),
            "--on",
            "ray",
            "--ray-address",
            ray_cluster.address,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    study = tuning.load_study("cli-on-ray", tracking_uri)
    assert study.spec.trial_resources == {"cpu": 0.5, "memory": 64.0 * 2**20}
    assert study.counts() == {"COMPLETE": 3}
    client = SlipwayClient(tracking_uri)
    nodes = {ray_cluster.head_node_id, ray_cluster.second_node_id}
    for trial in study.trials:
        assert trial.value == pytest.approx(2 * trial.params["x"])
        assert client.get_run(trial.run_id or "").data.tags[NODE_TAG] in nodes

    # In a process of its own: this one stays connected to the cluster.
    command = ["--spec", str(path), "--name", "dead", "--on", "ray", "--ray-address", "127.0.0.1:9"]
    dead = subprocess.run(
        [sys.executable, "-m", "slipway", "--tracking-uri", tracking_uri, "tune", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    assert dead.returncode == 1
    assert "Cannot reach a Ray cluster at 127.0.0.1:9" in dead.stderr
    assert "Traceback" not in dead.stderr
    assert [s.name for s in get_tuning_store(tracking_uri).list_studies()] == ["cli-on-ray"]


SHIPPED = """
import sys
from pathlib import Path
import helper  # next to this script: in the node's copy of the shipped folder
here = Path(__file__).resolve().parent
with open(sys.argv[2], "a") as seen:
    seen.write(f"{here}|{Path.cwd()}\\n")
print(f"score={helper.scale(float(sys.argv[1]))}")
"""


def test_a_working_dir_is_shipped_to_the_trials(
    ray_cluster: Any, tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--working-dir``: trial commands run in the node's copy of the folder (the spec's own
    folder inside it), and an objective from a module of the folder is imported there."""
    project = tmp_path / "project"
    (project / "study").mkdir(parents=True)
    (project / "study" / "helper.py").write_text("def scale(x):\n    return 3 * x\n")
    (project / "study" / "train.py").write_text(SHIPPED)
    seen = tmp_path / "seen.txt"
    spec = {
        "objective": {"type": "maximize", "objectiveMetricName": "score"},
        "algorithm": {"algorithmName": "random"},
        "parallelTrialCount": 2,
        "maxTrialCount": 2,
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
        ],
        "trialCommand": [sys.executable, "train.py", "${trialParameters.x}", str(seen)],
    }
    path = project / "study" / "tune.yaml"
    path.write_text(yaml.safe_dump(spec))
    args = ["--tracking-uri", tracking_uri, "tune", "--spec", str(path), "--name", "shipped"]
    args += ["--on", "ray", "--ray-address", ray_cluster.address, "--working-dir", str(project)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    study = tuning.load_study("shipped", tracking_uri)
    assert study.counts() == {"COMPLETE": 2}
    for trial in study.trials:
        assert trial.value == pytest.approx(3 * trial.params["x"])
    lines = seen.read_text().split()
    assert len(lines) == 2
    for line in lines:
        here, cwd = line.split("|")
        assert here == cwd
        assert Path(here).name == "study"
        assert Path(here) != (project / "study").resolve()  # the node's copy

    module = f"objective_{os.getpid()}_{time.monotonic_ns()}"
    (project / f"{module}.py").write_text(
        "import os\n\ndef objective(trial):\n"
        "    return float(os.path.dirname(os.path.abspath(__file__)) != OUTSIDE)\n"
        f"\nOUTSIDE = {str(project.resolve())!r}\n"
    )
    monkeypatch.syspath_prepend(str(project))
    objective = __import__(module).objective
    try:
        api = tuning.tune(
            objective,
            {"x": tuning.uniform(0.0, 1.0)},
            n_trials=2,
            parallelism=2,
            direction="maximize",
            study_name="shipped-api",
            tracking_uri=tracking_uri,
            on="ray",
            ray_address=ray_cluster.address,
            working_dir=project,
        )
    finally:
        sys.modules.pop(module, None)
    assert [t.value for t in api.trials] == [1.0, 1.0]  # imported from the nodes' copies
    with pytest.raises(InvalidParameterValue, match="working_dir goes with on='ray'"):
        tuning.tune(objective, {"x": tuning.uniform(0.0, 1.0)}, n_trials=1, working_dir=project)
