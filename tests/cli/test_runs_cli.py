"""``slipway runs ...`` against a real SQLite store, and the console script in a subprocess."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import slipway
from slipway import Dataset, DatasetInput, Run
from slipway.cli import cli
from slipway.entities import InputTag
from slipway.tracking import uri as uris

ENV_VARS = ("SLIPWAY_TRACKING_URI", "SLIPWAY_ARTIFACT_ROOT", "COLUMNS", "FORCE_COLOR", "NO_COLOR")


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A folder store of its own; the environment cannot change what the CLI prints."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield str(tmp_path / "tracking")
    uris.clear_store_cache()


@pytest.fixture
def iris(uri: str) -> list[Run]:
    """Experiment "iris" (id 1) with three finished runs; the best (loss 0.005) first."""
    client = slipway.SlipwayClient(uri)
    experiment_id = client.create_experiment("iris")
    context = InputTag(DatasetInput.CONTEXT_TAG, "train")
    train = DatasetInput(Dataset("iris-train", "d1g35t", "code", "{}"), (context,))
    made = []
    for i, (lr, loss) in enumerate([("0.1", 0.005), ("0.01", 0.05), ("0.001", 0.5)]):
        run_id = client.create_run(experiment_id, 1_000 * i, run_name=f"lr-{lr}").info.run_id
        client.log_param(run_id, "lr", lr)
        client.log_metric(run_id, "loss", loss, step=3)
        client.set_tag(run_id, "team", "ml")
        client.log_inputs(run_id, [train])
        client.set_terminated(run_id, end_time=1_000 * i + 12_300)
        made.append(client.get_run(run_id))
    return made


def invoke(uri: str, command: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """``slipway --tracking-uri URI <command> <args>``, the command split like a shell does."""
    return CliRunner().invoke(cli, ["--tracking-uri", uri, *shlex.split(command), *args], env=env)


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1
    assert all(fragment in result.stderr for fragment in fragments), result.stderr


def test_list_prints_a_table_of_runs(uri: str, iris: list[Run]) -> None:
    result = invoke(uri, "runs list --experiment iris")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = "Run ID Name Status Started Duration metrics.loss params.lr"
    assert lines[0].split() == header.split()
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == [r.info.run_id[:8] for r in reversed(iris)]
    assert rows[0][1:3] == ["lr-0.001", "FINISHED"]
    assert rows[0][-3:] == ["12.3s", "0.5", "0.001"]
    assert "not shown" not in result.stdout
    assert result.stderr == ""


def test_list_filter_prints_only_the_matching_run(uri: str, iris: list[Run]) -> None:
    result = invoke(uri, 'runs list --experiment iris --filter "metrics.loss < 0.01"')
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert iris[0].info.run_id[:8] in result.stdout
    assert all(other.info.run_id[:8] not in result.stdout for other in iris[1:])


def test_list_json_order_by_and_max_results(uri: str, iris: list[Run]) -> None:
    data = json_of(invoke(uri, 'runs list -e iris --json --order-by "metrics.loss DESC"'))
    assert [r["info"]["run_id"] for r in data] == [r.info.run_id for r in reversed(iris)]
    assert data[-1] == iris[0].to_dict()
    first = json_of(invoke(uri, "runs list -e 1 --json --max-results 1 --order-by 'metrics.loss'"))
    assert [r["info"]["run_name"] for r in first] == ["lr-0.1"]
    table = invoke(uri, "runs list -e iris --max-results 2")
    assert "Showing the first 2 runs" in table.stdout


def test_list_columns_pick_what_is_shown(uri: str, iris: list[Run]) -> None:
    result = invoke(uri, "runs list -e iris --columns params.lr,tags.team --columns metrics.x")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split()
    assert header[-3:] == ["params.lr", "tags.team", "metrics.x"]
    assert "metrics.loss" not in header
    bad = invoke(uri, "runs list -e iris --columns loss")
    assert bad.exit_code == 2
    assert "metrics.KEY" in bad.stderr


def test_many_metrics_are_capped_and_ids_never_wrap(uri: str) -> None:
    client = slipway.SlipwayClient(uri)
    experiment_id = client.create_experiment("wide")
    run_ids = []
    for i in range(3):
        run_id = client.create_run(experiment_id, run_name=f"quite-a-long-name-{i}").info.run_id
        for k in range(30):
            client.log_metric(run_id, f"metric_number_{k:02d}", k / 7)
        run_ids.append(run_id)
    wide = invoke(uri, "runs list -e wide")
    assert wide.exit_code == 0, wide.output
    assert "more metric/param columns not shown" in wide.stdout
    assert all(len(line) <= 120 for line in wide.stdout.splitlines())
    narrow = invoke(uri, "runs list -e wide", env={"COLUMNS": "40"})
    assert narrow.exit_code == 0, narrow.output
    first_words = [line.split()[0] for line in narrow.stdout.splitlines() if line.strip()]
    assert all(run_id[:8] in first_words for run_id in run_ids)


def test_list_several_experiments_and_views(uri: str, iris: list[Run]) -> None:
    client = slipway.SlipwayClient(uri)
    client.create_run(client.create_experiment("wine"), run_name="[bold]markup[/bold]")
    both = invoke(uri, "runs list -e iris -e wine")
    assert both.exit_code == 0, both.output
    assert "Experiment" in both.stdout.splitlines()[0]
    assert "[bold]markup[/bold]" in both.stdout
    client.delete_run(iris[1].info.run_id)
    deleted = json_of(invoke(uri, "runs list -e iris --view deleted --json"))
    assert [r["info"]["run_id"] for r in deleted] == [iris[1].info.run_id]
    assert "deleted" in invoke(uri, "runs list -e iris --view ALL").stdout
    empty = invoke(uri, 'runs list -e iris --filter "metrics.loss > 9"')
    assert empty.stdout == "No runs found.\n"


def test_list_errors(uri: str, iris: list[Run]) -> None:
    bad_filter = "metrics.loss < 0.01 and params.lr ~ '0.1'"
    assert_error(invoke(uri, "runs list -e iris --filter", bad_filter), "Invalid filter", "'~'")
    assert_error(invoke(uri, "runs list -e iris --filter 'nonsense.loss < 1'"), "'nonsense'")
    assert_error(invoke(uri, "runs list -e iris --order-by 'metrics.loss up'"), "'up'")
    assert_error(invoke(uri, "runs list -e setosa"), "No experiment with name or id 'setosa'")
    missing = invoke(uri, "runs list")
    assert missing.exit_code == 2
    assert "--experiment" in missing.stderr


def test_show_prints_everything_about_a_run(uri: str, iris: list[Run]) -> None:
    run = iris[0]
    result = invoke(uri, "runs show", run.info.run_id)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"Run {run.info.run_id}"
    expected = "lr-0.1 iris (1) FINISHED 12.3s Params lr 0.1 Metrics loss 0.005 Tags team ml"
    for word in [*expected.split(), "Datasets", "iris-train", "d1g35t", "train"]:
        assert word in result.stdout
    assert invoke(uri, "runs show", run.info.run_id[:8]).stdout == result.stdout


def test_show_json_is_the_run(uri: str, iris: list[Run]) -> None:
    assert json_of(invoke(uri, "runs show --json", iris[1].info.run_id)) == iris[1].to_dict()


def test_show_unknown_and_ambiguous_ids(uri: str) -> None:
    assert_error(invoke(uri, "runs show 0123456789abcdef"), "Run with id=0123456789abcdef")
    assert_error(invoke(uri, "runs show not-a-run"), "not-a-run")
    client = slipway.SlipwayClient(uri)
    seen: set[str] = set()
    while True:  # about 300 runs until two share their first four characters
        run_id = client.create_run("0").info.run_id
        if run_id[:4] in seen:
            break
        seen.add(run_id[:4])
    assert_error(invoke(uri, "runs show", run_id[:4]), "matches several runs")


def test_delete_and_restore_a_run(uri: str, iris: list[Run]) -> None:
    client = slipway.SlipwayClient(uri)
    run_id = iris[2].info.run_id
    deleted = invoke(uri, "runs delete", run_id)
    assert deleted.exit_code == 0, deleted.output
    assert f"slipway runs restore {run_id}" in deleted.stdout
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert run_id[:8] not in invoke(uri, "runs list -e iris").stdout
    restored = invoke(uri, "runs restore", run_id[:10])
    assert restored.exit_code == 0, restored.output
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert_error(invoke(uri, "runs delete", "feedface" * 4), "not found")
    assert_error(invoke(uri, "runs restore", "feedface" * 4), "not found")


def test_the_console_script_runs_in_a_subprocess(uri: str, iris: list[Run]) -> None:
    script = [sys.executable, "-c", "from slipway.cli import main; main()"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*script, *args], capture_output=True, text=True, timeout=120)

    listed = run("--tracking-uri", uri, "runs", "list", "--experiment", "iris", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3
    failed = run("--tracking-uri", uri, "runs", "list", "-e", "iris", "--filter", "metrics.x ~")
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr.startswith("Error: Invalid filter")
    assert "Traceback" not in failed.stderr
    assert run("--version").stdout == f"slipway {slipway.__version__}\n"
