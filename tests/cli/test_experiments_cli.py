"""``slipway experiments ...`` and the global options, against a real SQLite store."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import slipway
from slipway.cli import cli
from slipway.tracking import uri as uris

ENV_VARS = ("SLIPWAY_TRACKING_URI", "SLIPWAY_ARTIFACT_ROOT", "COLUMNS", "FORCE_COLOR", "NO_COLOR")


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A folder store of its own; the environment cannot change what the CLI prints."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield str(tmp_path / "tracking")
    uris.clear_store_cache()


def invoke(uri: str, command: str, *args: str) -> Result:
    """``slipway --tracking-uri URI <command> <args>``, the command split like a shell does."""
    return CliRunner().invoke(cli, ["--tracking-uri", uri, *shlex.split(command), *args])


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert all(fragment in result.stderr for fragment in fragments), result.stderr


def test_version_and_help(uri: str) -> None:
    runner = CliRunner()
    version = runner.invoke(cli, ["--version"])
    assert (version.exit_code, version.stdout) == (0, f"slipway {slipway.__version__}\n")
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    for word in ("--tracking-uri", "SLIPWAY_TRACKING_URI", "experiments", "runs", "--json"):
        assert word in top.stdout
    for command in ("list", "create", "rename", "delete", "restore"):
        sub = runner.invoke(cli, ["experiments", command, "-h"])
        assert sub.exit_code == 0, sub.output
        assert sub.stdout.startswith(f"Usage: slipway experiments {command} ")
        assert "--tracking-uri" in sub.stdout


def test_list_shows_the_default_experiment_and_created_ones(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slipway.SlipwayClient(uri).create_experiment("iris", tags={"team": "ml"})
    monkeypatch.setenv("COLUMNS", "400")  # long temporary paths would fold
    result = invoke(uri, "experiments list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "Name", "Created", "Artifact", "location"]
    assert lines[1].split()[:2] == ["1", "iris"]
    assert lines[2].split()[:2] == ["0", "Default"]
    assert result.stderr == ""


def test_list_json_is_the_experiments_and_nothing_else(uri: str) -> None:
    client = slipway.SlipwayClient(uri)
    experiment_id = client.create_experiment("iris", tags={"team": "ml"})
    data = json_of(invoke(uri, "experiments list --json"))
    assert [e["name"] for e in data] == ["iris", "Default"]
    assert data[0]["tags"] == [{"key": "team", "value": "ml"}]
    assert data[0] == client.get_experiment(experiment_id).to_dict()


def test_list_filter_view_and_max_results(uri: str) -> None:
    client = slipway.SlipwayClient(uri)
    ids = [client.create_experiment(name) for name in ("iris-a", "iris-b", "wine")]
    client.delete_experiment(ids[1])

    def names(options: str) -> list[str]:
        return [e["name"] for e in json_of(invoke(uri, "experiments list --json " + options))]

    assert names("--filter \"name LIKE 'iris%'\"") == ["iris-a"]
    assert names("--view deleted") == ["iris-b"]
    assert names("--view all --filter \"name LIKE 'iris%'\"") == ["iris-b", "iris-a"]
    assert names("--max-results 2") == ["wine", "iris-a"]
    table = invoke(uri, "experiments list --view all --max-results 2")
    assert "Stage" in table.stdout.splitlines()[0]
    assert "Showing the first 2 experiments" in table.stdout


def test_list_bad_filter_names_the_token(uri: str) -> None:
    assert_error(invoke(uri, "experiments list --filter", "name ~ 'x'"), "Invalid filter", "'~'")


def test_create_prints_the_id(uri: str, tmp_path: Path) -> None:
    location = str(tmp_path / "elsewhere")
    options = "--tag team=growth --tag owner=a=b --artifact-location"
    result = invoke(uri, "experiments create churn " + options, location)
    assert result.exit_code == 0, result.output
    experiment_id = result.stdout.strip()
    assert result.stdout == f"{experiment_id}\n"
    exp = slipway.SlipwayClient(uri).get_experiment(experiment_id)
    assert (exp.name, exp.artifact_location) == ("churn", location)
    assert exp.tags == {"team": "growth", "owner": "a=b"}


def test_create_refuses_a_duplicate_and_a_bad_tag(uri: str) -> None:
    assert invoke(uri, "experiments create churn").exit_code == 0
    assert_error(invoke(uri, "experiments create churn"), "Experiment 'churn' already exists")
    bad = invoke(uri, "experiments create x --tag novalue")
    assert bad.exit_code == 2
    assert "KEY=VALUE" in bad.stderr


def test_rename_by_name_and_by_id(uri: str) -> None:
    client = slipway.SlipwayClient(uri)
    experiment_id = client.create_experiment("iris")
    result = invoke(uri, "experiments rename iris flowers")
    assert result.exit_code == 0, result.output
    assert "from 'iris' to 'flowers'" in result.stdout
    assert invoke(uri, "experiments rename", experiment_id, "petals").exit_code == 0
    assert client.get_experiment(experiment_id).name == "petals"


def test_rename_to_an_existing_name_fails(uri: str) -> None:
    client = slipway.SlipwayClient(uri)
    client.create_experiment("iris")
    client.create_experiment("wine")
    assert_error(invoke(uri, "experiments rename iris wine"), "Experiment 'wine' already exists")
    assert client.get_experiment_by_name("iris") is not None


def test_delete_and_restore(uri: str) -> None:
    client = slipway.SlipwayClient(uri)
    experiment_id = client.create_experiment("iris")
    run_id = client.create_run(experiment_id).info.run_id
    deleted = invoke(uri, "experiments delete iris")
    assert deleted.exit_code == 0, deleted.output
    assert f"slipway experiments restore {experiment_id}" in deleted.stdout
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    restored = invoke(uri, "experiments restore iris")
    assert restored.exit_code == 0, restored.output
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert_error(invoke(uri, "experiments restore", experiment_id), "Cannot restore an active")


def test_unknown_experiment_is_a_clear_error(uri: str) -> None:
    for command in ("rename nope x", "delete nope", "restore nope"):
        assert_error(invoke(uri, "experiments " + command), "No experiment with name or id 'nope'")
    assert_error(invoke(uri, "experiments delete 42"), "No experiment with name or id '42'")


def test_the_default_experiment_cannot_be_deleted(uri: str) -> None:
    assert_error(invoke(uri, "experiments delete 0"), "default experiment")


def test_tracking_uri_from_the_environment_and_per_command(uri: str, tmp_path: Path) -> None:
    slipway.SlipwayClient(uri).create_experiment("from-env")
    runner = CliRunner(env={"SLIPWAY_TRACKING_URI": uri})
    by_env = json_of(runner.invoke(cli, ["experiments", "list", "--json"]))
    assert "from-env" in [e["name"] for e in by_env]
    other = ["--tracking-uri", str(tmp_path / "other")]
    by_option = json_of(runner.invoke(cli, ["experiments", "list", "--json", *other]))
    assert [e["name"] for e in by_option] == ["Default"]


def test_an_unusable_tracking_uri_is_an_error(uri: str, tmp_path: Path) -> None:
    assert_error(invoke("ftp://example.com/x", "experiments list"), "Unsupported tracking URI")
    (tmp_path / "a-file").write_text("not a folder")
    assert_error(invoke(str(tmp_path / "a-file" / "store"), "experiments list"), "a-file")
