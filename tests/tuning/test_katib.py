"""Katib's Experiment vocabulary: reading a spec (and refusing what it does not know, saying
where), running one end to end with a trial script that prints ``accuracy=...``, and writing
the Experiment back for a cluster."""

from __future__ import annotations

import copy
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from slipway.cli import cli
from slipway.entities import RunStatus
from slipway.exceptions import InvalidParameterValue
from slipway.tracking.client import SlipwayClient
from slipway.tuning import katib
from slipway.tuning import space as sp

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tuning" / "tune.yaml"

SPEC: dict[str, Any] = {
    "objective": {
        "type": "maximize",
        "objectiveMetricName": "accuracy",
        "additionalMetricNames": ["loss"],
    },
    "algorithm": {
        "algorithmName": "random",
        "algorithmSettings": [{"name": "random_state", "value": "3"}],
    },
    "parallelTrialCount": 2,
    "maxTrialCount": 6,
    "maxFailedTrialCount": 2,
    "parameters": [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
        {
            "name": "opt",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["sgd", "adam"]},
        },
    ],
    "trialCommand": [
        "python",
        "trial.py",
        "--lr=${trialParameters.lr}",
        "--layers=${trialParameters.layers}",
        "--opt=${trialParameters.opt}",
    ],
}

TRIAL_SCRIPT = textwrap.dedent(
    """
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float)
    p.add_argument("--layers", type=int)
    p.add_argument("--opt")
    a = p.parse_args()
    for epoch in range(3):
        acc = 0.9 * (epoch + 1) / 3 * (1 - abs(a.lr - 0.05)) + 0.01 * a.layers
        print(f"epoch {epoch}: accuracy={acc:.4f} loss={1 - acc:.4f}")
    """
)


def test_reads_the_example_manifest() -> None:
    spec = katib.load_spec_file(EXAMPLE)
    assert spec.name == "example-katib"
    assert spec.direction == "maximize"
    assert spec.metric == "accuracy"
    assert spec.goal == 0.94
    assert spec.additional_metrics == ("loss",)
    assert spec.sampler.name == "tpe"
    assert spec.sampler.seed == 7
    assert spec.n_trials == 12
    assert spec.parallelism == 2
    assert spec.max_failed_trials == 3
    assert spec.space == {
        "lr": sp.Float(0.0001, 0.1, None, True),
        "layers": sp.Int(2, 6),
        "optimizer": sp.Categorical(("sgd", "adam")),
    }
    assert spec.pruner.name == "median"
    assert spec.pruner.settings == {"n_startup_trials": 3, "n_warmup_steps": 2}
    assert spec.command == (
        "python",
        "train.py",
        "--lr=${trialParameters.lr}",
        "--layers=${trialParameters.layers}",
        "--optimizer=${trialParameters.optimizer}",
    )
    assert spec.cwd == str(EXAMPLE.parent)


def _broken(path: list[str | int], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    node: Any = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_broken(["parameters", 1, "feasibleSpac"], {}), "'spec.parameters\\[1\\].feasibleSpac'"),
        (_broken(["objective", "goals"], 1), "'spec.objective.goals'"),
        (_broken(["maxTrialCounts"], 3), "'spec.maxTrialCounts'"),
        (_broken(["algorithm", "algorithmName"], "sobol"), "'sobol' is not supported"),
        (
            _broken(["parameters", 0, "feasibleSpace", "min"], "1.0"),
            "parameter 'lr': empty range",
        ),
        (
            _broken(["parameters", 2, "feasibleSpace", "list"], []),
            "parameter 'opt': empty choice list",
        ),
        (_broken(["parameters", 1, "parameterType"], "float"), "'float' is not one of int"),
        (
            _broken(["trialCommand", 2], "--lr=${trialParameters.rate}"),
            "trialParameters.rate}, which is not a parameter",
        ),
        (_broken(["objective", "objectiveMetricName"], ""), "objectiveMetricName: required"),
        (
            _broken(["parameters", 0, "feasibleSpace", "distribution"], "normal"),
            "'normal' is not supported",
        ),
    ],
)
def test_bad_specs_say_what_and_where(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        katib.read_spec(spec)


def test_bayesian_optimization_runs_as_tpe_and_says_so() -> None:
    spec = katib.read_spec(_broken(["algorithm", "algorithmName"], "bayesianoptimization"))
    assert spec.sampler.name == "tpe"
    assert spec.notes == (
        "algorithm bayesianoptimization runs as tpe (Optuna's model-based sampler)",
    )


def test_emitted_experiment_reads_back_the_same() -> None:
    spec = katib.load_spec_file(EXAMPLE)
    manifest = katib.to_katib(spec, image="registry.local/train:1")
    assert manifest["apiVersion"] == "kubeflow.org/v1beta1"
    assert manifest["kind"] == "Experiment"
    container = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "registry.local/train:1"
    again = katib.read_spec(yaml.safe_load(yaml.safe_dump(manifest)), EXAMPLE)
    assert again.space == spec.space
    assert again.command == spec.command
    assert (again.sampler, again.pruner, again.n_trials, again.goal) == (
        spec.sampler,
        spec.pruner,
        spec.n_trials,
        spec.goal,
    )


def _with_template(resources: dict[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in SPEC.items() if k != "trialCommand"}
    container = {"name": "main", "command": ["python", "trial.py"], "resources": resources}
    spec["trialTemplate"] = {
        "primaryContainerName": "main",
        "trialSpec": {"kind": "Job", "spec": {"template": {"spec": {"containers": [container]}}}},
    }
    return spec


def test_the_trial_templates_resources_are_what_a_trial_holds() -> None:
    spec = katib.read_spec(
        _with_template(
            {
                "requests": {"cpu": "1500m", "memory": "2Gi", "ephemeral-storage": "1Gi"},
                "limits": {"nvidia.com/gpu": 1, "cpu": "4"},  # a limit alone counts
            }
        )
    )
    assert spec.trial_resources == {"cpu": 1.5, "memory": 2.0 * 2**30, "gpu": 1.0}
    assert spec.notes == ("the trial's resource 'ephemeral-storage' is not used",)
    manifest = katib.to_katib(spec)
    again = katib.read_spec(manifest)
    assert again.trial_resources == spec.trial_resources
    with pytest.raises(InvalidParameterValue, match=r"resources\.cpu: unknown unit 'x'"):
        katib.read_spec(_with_template({"requests": {"cpu": "2x"}}))


def test_a_python_objective_cannot_be_emitted() -> None:
    spec = katib.read_spec({k: v for k, v in SPEC.items() if k != "trialCommand"})
    with pytest.raises(InvalidParameterValue, match="needs a trial command"):
        katib.to_katib(spec)


def test_katib_spec_end_to_end(tracking_uri: str, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "trial.py").write_text(TRIAL_SCRIPT)
    (folder / "tune.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubeflow.org/v1beta1",
                "kind": "Experiment",
                "metadata": {"name": "katib-e2e"},
                "spec": SPEC,
            }
        )
    )
    runner = CliRunner()
    args = ["--tracking-uri", tracking_uri, "tune", "--spec", str(folder / "tune.yaml")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Study katib-e2e: 6 complete" in result.output
    assert "Best trial" in result.output

    shown = runner.invoke(
        cli, ["--tracking-uri", tracking_uri, "tune", "--show", "katib-e2e", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    data = yaml.safe_load(shown.output)
    assert data["counts"] == {"COMPLETE": 6}
    client = SlipwayClient(tracking_uri)
    for trial in data["trials"]:
        run = client.get_run(trial["run_id"])
        assert run.info.status == RunStatus.FINISHED
        history = client.get_metric_history(trial["run_id"], "accuracy")
        assert [m.step for m in history] == [0, 1, 2, 3]  # three printed, then the final
        assert history[-1].value == pytest.approx(history[-2].value) == trial["value"]
        assert len(client.get_metric_history(trial["run_id"], "loss")) == 3
        assert run.data.params["opt"] in ("sgd", "adam")
        assert [f.path for f in client.list_artifacts(trial["run_id"])] == ["trial.log"]

    # Running the same spec again resumes the study: it is complete, nothing runs.
    again = runner.invoke(cli, [*args, "--n-trials", "7"])
    assert again.exit_code == 0, again.output
    assert "Study katib-e2e: 7 complete" in again.output


def test_a_trial_that_never_reports_fails(tracking_uri: str, tmp_path: Path) -> None:
    (tmp_path / "quiet.py").write_text("print('training...')\n")
    (tmp_path / "logs.py").write_text(
        "import slipway\n"
        "for i in range(2):\n"
        "    slipway.log_metric('accuracy', 0.5 + i / 10, step=i)\n"
    )
    (tmp_path / "crash.py").write_text("raise SystemExit(3)\n")
    base = {
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "parameters": [
            {
                "name": "s",
                "parameterType": "categorical",
                "feasibleSpace": {"list": ["quiet", "logs", "crash"]},
            }
        ],
        "algorithm": {"algorithmName": "grid"},
        "trialCommand": [sys.executable, "${trialParameters.s}.py"],
    }
    spec = katib.read_spec(base, tmp_path / "tune.yaml")
    from slipway.tuning.coordinator import run_study

    study = run_study(spec, tracking_uri=tracking_uri)
    by_script = {t.params["s"]: t for t in study.trials}
    assert by_script["quiet"].state == "FAIL"
    assert by_script["quiet"].error is not None
    assert "did not report objective metric 'accuracy'" in by_script["quiet"].error
    assert by_script["crash"].state == "FAIL"
    assert by_script["crash"].error is not None
    assert "exited with code 3" in by_script["crash"].error
    # slipway.log_metric in the script counts as reporting it
    assert by_script["logs"].state == "COMPLETE"
    assert by_script["logs"].value == pytest.approx(0.6)
    assert by_script["logs"].intermediate_values == {0: 0.5, 1: 0.6}


def test_cli_emits_katib(tmp_path: Path) -> None:
    out = tmp_path / "experiment.yaml"
    result = CliRunner().invoke(
        cli, ["tune", "--spec", str(EXAMPLE), "--emit", "katib", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load(out.read_text())
    assert manifest["metadata"]["name"] == "example-katib"
    assert [p["name"] for p in manifest["spec"]["parameters"]] == ["lr", "layers", "optimizer"]


def test_cli_reports_a_bad_spec_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_broken(["parameters", 1, "feasibleSpac"], {})))
    result = CliRunner().invoke(cli, ["tune", "--spec", str(path)])
    assert result.exit_code == 1
    assert "Unknown field 'spec.parameters[1].feasibleSpac'" in result.output
    assert "Traceback" not in result.output
