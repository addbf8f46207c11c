"""``slipway experiments ...`` and the global options, against a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import slipway
from slipway.cli import cli
from slipway.tracking import uri as uris

ENV_VARS = ("SLIPWAY_TRACKING_URI", "SLIPWAY_ARTIFACT_ROOT", "COLUMNS", "FORCE_COLOR",
            "TTY_COMPATIBLE", "NO_COLOR")


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A folder store of its own; the environment cannot change what the CLI prints."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield str(tmp_path / "tracking")
    uris.clear_store_cache()


def invoke(uri: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--tracking-uri", uri, *args], env=env)


def assert_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_version_and_help(tracking_uri: str) -> None:
    runner = CliRunner()
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert version.stdout == f"slipway {slipway.__version__}\n"
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    assert "--tracking-uri" in top.stdout
    assert "SLIPWAY_TRACKING_URI" in top.stdout
    assert "experiments" in top.stdout
    assert "runs" in top.stdout
    for command in ("list", "create", "rename", "delete", "restore"):
        sub = runner.invoke(cli, ["experiments", command, "--help"])
        assert sub.exit_code == 0, sub.output
        assert sub.stdout.startswith(f"Usage: slipway experiments {command} ")


def test_list_shows_the_default_experiment_and_created_ones(tracking_uri: str) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    client.create_experiment("iris", tags={"team": "ml"})
    result = invoke(tracking_uri, "experiments", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "Name", "Created"]
    assert lines[1].split()[:2] == ["1", "iris"]
    assert lines[2].split()[:2] == ["0", "Default"]
    assert result.stderr == ""


def test_list_json_is_the_experiments_and_nothing_else(tracking_uri: str) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    client.create_experiment("iris", tags={"team": "ml"})
    result = invoke(tracking_uri, "experiments", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [e["name"] for e in data] == ["iris", "Default"]
    assert data[0]["tags"] == [{"key": "team", "value": "ml"}]
    assert data[0] == client.get_experiment_by_name("iris").to_dict()  # type: ignore[union-attr]


def test_list_filter_view_and_max_results(tracking_uri: str) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    for name in ("iris-a", "iris-b", "wine"):
        client.create_experiment(name)
    client.delete_experiment(client.get_experiment_by_name("iris-b").experiment_id)  # type: ignore[union-attr]

    def names(*args: str) -> list[str]:
        result = invoke(tracking_uri, "experiments", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [e["name"] for e in json.loads(result.stdout)]

    assert names("--filter", "name LIKE 'iris%'") == ["iris-a"]
    assert names("--view", "deleted") == ["iris-b"]
    assert names("--view", "all", "--filter", "name LIKE 'iris%'") == ["iris-b", "iris-a"]
    assert names("--max-results", "2") == ["wine", "iris-a"]
    table = invoke(tracking_uri, "experiments", "list", "--view", "all", "--max-results", "2")
    assert "Stage" in table.stdout
    assert "Showing the first 2 experiments" in table.stdout


def test_list_bad_filter_names_the_token(tracking_uri: str) -> None:
    result = invoke(tracking_uri, "experiments", "list", "--filter", "name ~ 'x'")
    assert_error(result, "Invalid filter", "'~'")


def test_create_prints_the_id(tracking_uri: str, tmp_path: Path) -> None:
    location = str(tmp_path / "elsewhere")
    result = invoke(tracking_uri, "experiments", "create", "churn", "--tag", "team=growth",
                    "--tag", "owner=a=b", "--artifact-location", location)
    assert result.exit_code == 0, result.output
    experiment_id = result.stdout.strip()
    assert experiment_id.isdigit()
    exp = slipway.SlipwayClient(tracking_uri).get_experiment(experiment_id)
    assert exp.name == "churn"
    assert exp.tags == {"team": "growth", "owner": "a=b"}
    assert exp.artifact_location == location


def test_create_refuses_a_duplicate_and_a_bad_tag(tracking_uri: str) -> None:
    assert invoke(tracking_uri, "experiments", "create", "churn").exit_code == 0
    assert_error(invoke(tracking_uri, "experiments", "create", "churn"),
                 "Experiment 'churn' already exists")
    bad = invoke(tracking_uri, "experiments", "create", "x", "--tag", "novalue")
    assert bad.exit_code == 2
    assert "KEY=VALUE" in bad.stderr


def test_rename_by_name_and_by_id(tracking_uri: str) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    experiment_id = client.create_experiment("iris")
    result = invoke(tracking_uri, "experiments", "rename", "iris", "flowers")
    assert result.exit_code == 0, result.output
    assert "'iris'" in result.stdout
    assert "'flowers'" in result.stdout
    assert invoke(tracking_uri, "experiments", "rename", experiment_id, "petals").exit_code == 0
    assert client.get_experiment(experiment_id).name == "petals"


def test_rename_to_an_existing_name_fails(tracking_uri: str) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    client.create_experiment("iris")
    client.create_experiment("wine")
    result = invoke(tracking_uri, "experiments", "rename", "iris", "wine")
    assert_error(result, "Experiment 'wine' already exists")
    assert client.get_experiment_by_name("iris") is not None


def test_delete_and_restore(tracking_uri: str) -> None:
    client = slipway.SlipwayClient(tracking_uri)
    experiment_id = client.create_experiment("iris")
    run_id = client.create_run(experiment_id).info.run_id
    deleted = invoke(tracking_uri, "experiments", "delete", "iris")
    assert deleted.exit_code == 0, deleted.output
    assert f"slipway experiments restore {experiment_id}" in deleted.stdout
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    restored = invoke(tracking_uri, "experiments", "restore", "iris")
    assert restored.exit_code == 0, restored.output
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert_error(invoke(tracking_uri, "experiments", "restore", experiment_id),
                 "Cannot restore an active experiment")


def test_unknown_experiment_is_a_clear_error(tracking_uri: str) -> None:
    for command in (["rename", "nope", "x"], ["delete", "nope"], ["restore", "nope"]):
        assert_error(invoke(tracking_uri, "experiments", *command),
                     "No experiment with name or id 'nope'")
    assert_error(invoke(tracking_uri, "experiments", "delete", "42"),
                 "No experiment with name or id '42'")


def test_the_default_experiment_cannot_be_deleted(tracking_uri: str) -> None:
    assert_error(invoke(tracking_uri, "experiments", "delete", "0"), "default experiment")


def test_tracking_uri_from_the_environment_and_per_command(
    tracking_uri: str, tmp_path: Path
) -> None:
    slipway.SlipwayClient(tracking_uri).create_experiment("from-env")
    runner = CliRunner()
    by_env = runner.invoke(cli, ["experiments", "list", "--json"],
                           env={"SLIPWAY_TRACKING_URI": tracking_uri})
    assert by_env.exit_code == 0, by_env.output
    assert "from-env" in [e["name"] for e in json.loads(by_env.stdout)]
    other = str(tmp_path / "other")
    by_option = runner.invoke(cli, ["experiments", "list", "--json", "--tracking-uri", other],
                              env={"SLIPWAY_TRACKING_URI": tracking_uri})
    assert by_option.exit_code == 0, by_option.output
    assert [e["name"] for e in json.loads(by_option.stdout)] == ["Default"]


def test_an_unusable_tracking_uri_is_an_error(tracking_uri: str) -> None:
    assert_error(invoke("ftp://example.com/x", "experiments", "list"),
                 "Unsupported tracking URI")
