"""``slipway runs ...`` against a real SQLite store, and the console script in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import slipway
from slipway import Dataset, DatasetInput, Run
from slipway.cli import cli
from slipway.entities import InputTag
from slipway.tracking import uri as uris

ENV_VARS = ("SLIPWAY_TRACKING_URI", "SLIPWAY_ARTIFACT_ROOT", "COLUMNS", "FORCE_COLOR",
            "TTY_COMPATIBLE", "NO_COLOR")


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield str(tmp_path / "tracking")
    uris.clear_store_cache()


@pytest.fixture
def iris(tracking_uri: str) -> list[Run]:
    """Experiment "iris" with three finished runs, the best (loss 0.005) first."""
    client = slipway.SlipwayClient(tracking_uri)
    experiment_id = client.create_experiment("iris")
    made = []
    for i, (lr, loss) in enumerate([("0.1", 0.005), ("0.01", 0.05), ("0.001", 0.5)]):
        run = client.create_run(experiment_id, run_name=f"lr-{lr}", start_time=1_000 * i)
        run_id = run.info.run_id
        client.log_param(run_id, "lr", lr)
        client.log_metric(run_id, "loss", loss, step=3)
        client.set_tag(run_id, "team", "ml")
        client.log_inputs(run_id, [DatasetInput(Dataset("iris-train", "d1g35t", "code", "{}"),
                                                (InputTag(DatasetInput.CONTEXT_TAG, "train"),))])
        client.set_terminated(run_id, end_time=1_000 * i + 12_300)
        made.append(client.get_run(run_id))
    return made


def invoke(uri: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--tracking-uri", uri, *args], env=env)


def json_of(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1
    for fragment in fragments:
        assert fragment in result.stderr


def test_list_prints_a_table_of_runs(tracking_uri: str, iris: list[Run]) -> None:
    result = invoke(tracking_uri, "runs", "list", "--experiment", "iris")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Run", "ID", "Name", "Status", "Started", "Duration",
                                "metrics.loss", "params.lr"]
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == [r.info.run_id[:8] for r in reversed(iris)]
    assert rows[0][1:3] == ["lr-0.001", "FINISHED"]
    assert rows[0][-3:] == ["12.3s", "0.5", "0.001"]
    assert "not shown" not in result.stdout


def test_list_filter_prints_only_the_matching_run(tracking_uri: str, iris: list[Run]) -> None:
    result = invoke(tracking_uri, "runs", "list", "--experiment", "iris",
                    "--filter", "metrics.loss < 0.01")
    assert result.exit_code == 0, result.output
    assert iris[0].info.run_id[:8] in result.stdout
    for other in iris[1:]:
        assert other.info.run_id[:8] not in result.stdout
    assert len(result.stdout.splitlines()) == 2


def test_list_json_order_by_and_max_results(tracking_uri: str, iris: list[Run]) -> None:
    data = json_of(invoke(tracking_uri, "runs", "list", "-e", "iris", "--json",
                          "--order-by", "metrics.loss DESC"))
    assert isinstance(data, list)
    assert [r["info"]["run_id"] for r in data] == [r.info.run_id for r in reversed(iris)]
    assert data[-1] == iris[0].to_dict()
    first = json_of(invoke(tracking_uri, "runs", "list", "-e", "1", "--json",
                           "--order-by", "metrics.loss ASC", "--max-results", "1"))
    assert [r["info"]["run_name"] for r in first] == ["lr-0.1"]  # type: ignore[attr-defined]
    table = invoke(tracking_uri, "runs", "list", "-e", "iris", "--max-results", "2")
    assert "Showing the first 2 runs" in table.stdout


def test_list_columns_pick_what_is_shown(tracking_uri: str, iris: list[Run]) -> None:
    result = invoke(tracking_uri, "runs", "list", "-e", "iris",
                    "--columns", "params.lr,tags.team", "--columns", "metrics.nope")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split()
    assert header[-3:] == ["params.lr", "tags.team", "metrics.nope"]
    assert "metrics.loss" not in header
    bad = invoke(tracking_uri, "runs", "list", "-e", "iris", "--columns", "loss")
    assert bad.exit_code == 2
    assert "metrics.KEY" in bad.stderr


def test_many_metrics_are_capped_and_ids_never_wrap(tracking_uri: str) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    experiment_id = client.create_experiment("wide")
    run_ids = []
    for i in range(3):
        run_id = client.create_run(experiment_id, run_name=f"a-rather-long-run-name-{i}").info.run_id
        for k in range(30):
            client.log_metric(run_id, f"metric_number_{k:02d}", k / 7)
        run_ids.append(run_id)
    wide = invoke(tracking_uri, "runs", "list", "-e", "wide")
    assert wide.exit_code == 0, wide.output
    assert "more metric/param columns not shown" in wide.stdout
    assert all(len(line) <= 120 for line in wide.stdout.splitlines())
    narrow = invoke(tracking_uri, "runs", "list", "-e", "wide", env={"COLUMNS": "40"})
    assert narrow.exit_code == 0, narrow.output
    starts = [line.split()[0] for line in narrow.stdout.splitlines() if line.strip()]
    for run_id in run_ids:
        assert run_id[:8] in starts


def test_list_several_experiments_and_views(tracking_uri: str, iris: list[Run]) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    wine = client.create_experiment("wine")
    client.create_run(wine, run_name="[bold]markup[/bold]")
    both = invoke(tracking_uri, "runs", "list", "-e", "iris", "-e", "wine")
    assert both.exit_code == 0, both.output
    assert "Experiment" in both.stdout.splitlines()[0]
    assert "[bold]markup[/bold]" in both.stdout
    client.delete_run(iris[1].info.run_id)
    deleted = json_of(invoke(tracking_uri, "runs", "list", "-e", "iris", "--view", "deleted",
                             "--json"))
    assert [r["info"]["run_id"] for r in deleted] == [iris[1].info.run_id]  # type: ignore[index]
    table = invoke(tracking_uri, "runs", "list", "-e", "iris", "--view", "all")
    assert "deleted" in table.stdout
    empty = invoke(tracking_uri, "runs", "list", "-e", "iris", "--filter", "metrics.loss > 9")
    assert empty.stdout == "No runs found.\n"


def test_list_errors(tracking_uri: str, iris: list[Run]) -> None:
    assert_error(invoke(tracking_uri, "runs", "list", "-e", "iris", "--filter",
                        "metrics.loss < 0.01 and params.lr ~ '0.1'"), "Invalid filter", "'~'")
    assert_error(invoke(tracking_uri, "runs", "list", "-e", "iris", "--filter",
                        "nonsense.loss < 1"), "'nonsense'")
    assert_error(invoke(tracking_uri, "runs", "list", "-e", "iris", "--order-by",
                        "metrics.loss sideways"), "'sideways'")
    assert_error(invoke(tracking_uri, "runs", "list", "-e", "setosa"),
                 "No experiment with name or id 'setosa'")
    missing = invoke(tracking_uri, "runs", "list")
    assert missing.exit_code == 2
    assert "--experiment" in missing.stderr


def test_show_prints_everything_about_a_run(tracking_uri: str, iris: list[Run]) -> None:
    run = iris[0]
    result = invoke(tracking_uri, "runs", "show", run.info.run_id)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0] == f"Run {run.info.run_id}"
    for text in ("lr-0.1", "iris (1)", "FINISHED", "12.3s", "Params", "lr", "0.1",
                 "Metrics", "loss", "0.005", "Tags", "team", "Datasets", "iris-train",
                 "d1g35t", "train"):
        assert text in out
    by_prefix = invoke(tracking_uri, "runs", "show", run.info.run_id[:8])
    assert by_prefix.stdout == out


def test_show_json_is_the_run(tracking_uri: str, iris: list[Run]) -> None:
    data = json_of(invoke(tracking_uri, "runs", "show", iris[1].info.run_id, "--json"))
    assert data == iris[1].to_dict()


def test_show_unknown_and_ambiguous_ids(tracking_uri: str) -> None:
    assert_error(invoke(tracking_uri, "runs", "show", "0123456789abcdef"),
                 "Run with id=0123456789abcdef not found")
    assert_error(invoke(tracking_uri, "runs", "show", "not-a-run"), "not-a-run")
    client = slipway.SlipwayClient(tracking_uri)
    seen: dict[str, str] = {}
    while True:  # about 300 runs until two share their first four characters
        run_id = client.create_run("0").info.run_id
        if run_id[:4] in seen:
            break
        seen[run_id[:4]] = run_id
    assert_error(invoke(tracking_uri, "runs", "show", run_id[:4]), "matches several runs")


def test_delete_and_restore_a_run(tracking_uri: str, iris: list[Run]) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    run_id = iris[2].info.run_id
    deleted = invoke(tracking_uri, "runs", "delete", run_id)
    assert deleted.exit_code == 0, deleted.output
    assert f"slipway runs restore {run_id}" in deleted.stdout
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    listed = invoke(tracking_uri, "runs", "list", "-e", "iris")
    assert run_id[:8] not in listed.stdout
    restored = invoke(tracking_uri, "runs", "restore", run_id[:10])
    assert restored.exit_code == 0, restored.output
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert_error(invoke(tracking_uri, "runs", "delete", "feedface" * 4), "not found")
    assert_error(invoke(tracking_uri, "runs", "restore", "feedface" * 4), "not found")


def test_the_console_script_runs_in_a_subprocess(tracking_uri: str, iris: list[Run]) -> None:
    command = [sys.executable, "-c", "from slipway.cli import main; main()",
               "--tracking-uri", tracking_uri]
    done = subprocess.run([*command, "runs", "list", "--experiment", "iris", "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3
    failed = subprocess.run([*command, "runs", "list", "-e", "iris", "--filter", "metrics.x ~"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.startswith("Error: Invalid filter")
    assert "Traceback" not in failed.stderr
    version = subprocess.run([*command[:3], "--version"], capture_output=True, text=True,
                             timeout=120, check=False)
    assert version.stdout == f"slipway {slipway.__version__}\n"
