"""``slipway models ...``: the registry, approvals and lineage end to end through the CLI, on a
real embedded store (tests/server/test_models_cli_server.py runs the same flows through
``slipway server``)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import slipway
from slipway import Dataset, DatasetInput
from slipway.cli import cli
from slipway.entities import InputTag
from slipway.entities.registry import PIPELINE_RUN_TAG, PIPELINE_STEP_TAG
from slipway.registry import RegistryClient
from slipway.registry.store import clear_registry_store_cache
from slipway.tracking import uri as uris

ENV_VARS = ("SLIPWAY_TRACKING_URI", "SLIPWAY_ARTIFACT_ROOT", "SLIPWAY_USER", "COLUMNS")


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield str(tmp_path / "tracking")
    clear_registry_store_cache()
    uris.clear_store_cache()


def invoke(uri: str, command: str, user: str = "alice") -> Result:
    return CliRunner().invoke(
        cli, ["--tracking-uri", uri, *shlex.split(command)], env={"SLIPWAY_USER": user}
    )


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def json_of(result: Result) -> Any:
    return json.loads(ok(result))


def refused(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def log_training_run(uri: str, digest: str = "d1g35t01") -> str:
    """A finished run that read a dataset, ran as a pipeline step, and saved a "model" folder."""
    client = slipway.SlipwayClient(uri)
    experiment_id = client.create_experiment(f"iris-{digest}")
    run = client.create_run(experiment_id, run_name="train")
    run_id = run.info.run_id
    context = InputTag(DatasetInput.CONTEXT_TAG, "training")
    client.log_inputs(run_id, [DatasetInput(Dataset("iris", digest, "code", "{}"), (context,))])
    client.set_tag(run_id, PIPELINE_RUN_TAG, "pipeline-run-1")
    client.set_tag(run_id, PIPELINE_STEP_TAG, "train")
    client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
    client.set_terminated(run_id)
    return run_id


def approval_flow(uri: str, model: str = "iris") -> None:
    """Register two versions, protect ``champion``, request, refuse a self-approval, approve as
    a reviewer, and read it all back from the audit log."""
    run_id = log_training_run(uri, digest=f"{model}-d1")
    assert "version 1" in ok(invoke(uri, f"models register runs:/{run_id}/model {model}"))
    assert "version 2" in ok(invoke(uri, f"models register runs:/{run_id}/model {model}"))
    ok(invoke(uri, f"models alias {model} challenger 2"))
    ok(invoke(uri, f"models policy {model} --alias champion"))

    refused(invoke(uri, f"models alias {model} champion 2"), "approv")
    made = ok(invoke(uri, f"models request {model} 2 --alias champion --comment 'beats v1'"))
    assert "pending" in made
    refused(invoke(uri, f"models approve {model} 2 --alias champion --comment mine"), "approv")
    assert json_of(invoke(uri, f"models versions {model} --json"))[0]["aliases"] == ["challenger"]

    approved = ok(
        invoke(uri, f"models approve {model} 2 --alias champion --comment ok", user="bob")
    )
    assert f"{model}@champion -> v2" in approved
    v2 = json_of(invoke(uri, f"models versions {model} --json"))[0]
    assert v2["version"] == "2"
    assert sorted(v2["aliases"]) == ["challenger", "champion"]
    refused(invoke(uri, f"models approve {model} 2 --alias champion", user="carol"), "pending")

    requests = json_of(invoke(uri, f"models requests {model} --status all --json"))
    assert [(r["status"], r["requested_by"], r["decided_by"]) for r in requests] == [
        ("APPROVED", "alice", "bob")
    ]
    assert requests[0]["comment"] == "beats v1"
    assert requests[0]["decision_comment"] == "ok"
    assert json_of(invoke(uri, f"models requests {model} --json")) == []  # none pending

    events = json_of(invoke(uri, f"models audit {model} --json"))
    trail = [(e["action"], e["actor"]) for e in events]
    assert ("request_transition", "alice") in trail
    assert ("approve", "bob") in trail
    assert trail.index(("request_transition", "alice")) < trail.index(("approve", "bob"))
    approve_event = next(e for e in events if e["action"] == "approve")
    assert approve_event["version"] == "2"
    assert "ok" in json.dumps(approve_event["details"])
    table = ok(invoke(uri, f"models audit {model}"))
    assert "approve" in table
    assert "bob" in table

    # a rejected request moves nothing
    ok(invoke(uri, f"models request {model} 1 --alias champion --comment rollback"))
    ok(invoke(uri, f"models reject {model} 1 --alias champion --comment no", user="bob"))
    v1 = json_of(invoke(uri, f"models versions {model} --json"))[1]
    assert v1["version"] == "1"
    assert v1["aliases"] == []


def lineage_flow(uri: str, model: str = "churn", digest: str = "feed5eed") -> None:
    """version -> run -> dataset -> pipeline step, and back from the dataset."""
    run_id = log_training_run(uri, digest=digest)
    ok(invoke(uri, f"models register runs:/{run_id}/model {model}"))
    ok(invoke(uri, f"models alias {model} prod 1"))
    RegistryClient(uri).store.record_deployment(model, "1", "http://127.0.0.1:8080/invocations")
    graph = json_of(invoke(uri, f"models lineage models:/{model}@prod --json"))
    kinds = {n["kind"]: n for n in graph["nodes"]}
    assert {"model_version", "run", "dataset", "pipeline_step", "deployment"} <= set(kinds)
    assert "8080" in json.dumps(kinds["deployment"])
    assert kinds["run"]["node_id"].endswith(run_id)
    assert digest in json.dumps(kinds["dataset"])
    assert "train" in json.dumps(kinds["pipeline_step"])
    tree = ok(invoke(uri, f"models lineage models:/{model}/1"))
    assert "dataset" in tree
    assert "iris" in tree
    assert model in tree

    back = json_of(invoke(uri, f"models lineage --dataset iris --digest {digest} --json"))
    versions = [n for n in back["nodes"] if n["kind"] == "model_version"]
    assert [v["label"] for v in versions]
    assert all(model in v["label"] for v in versions)


def test_registry_approval_flow(uri: str) -> None:
    approval_flow(uri)


def test_lineage_flow(uri: str) -> None:
    lineage_flow(uri)


def test_list_shows_models_and_aliases(uri: str) -> None:
    run_id = log_training_run(uri)
    ok(invoke(uri, f"models register runs:/{run_id}/model iris --tag team=ml"))
    ok(invoke(uri, "models alias iris champion 1"))
    table = ok(invoke(uri, "models list"))
    assert "iris" in table
    assert "champion=v1" in table
    listed = json_of(invoke(uri, "models list --json"))
    assert [m["name"] for m in listed] == ["iris"]
    assert listed[0]["aliases"] == [{"alias": "champion", "version": "1"}]
    # register's tags go on the new version, as MLflow's register_model does
    assert json_of(invoke(uri, "models versions iris --json"))[0]["tags"] == {"team": "ml"}


def test_transition_stage_with_archive(uri: str) -> None:
    run_id = log_training_run(uri)
    for _ in range(2):
        ok(invoke(uri, f"models register runs:/{run_id}/model iris"))
    ok(invoke(uri, "models transition iris 1 production"))
    out = ok(invoke(uri, "models transition iris 2 Production --archive-existing"))
    assert "Production" in out
    stages = {
        v["version"]: v["current_stage"]
        for v in json_of(invoke(uri, "models versions iris --json"))
    }
    assert stages == {"1": "Archived", "2": "Production"}


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        ("models versions nope", "nope"),
        ("models alias nope champion 1", "nope"),
        ("models approve nope 1 --alias champion", "nope"),
        ("models lineage models:/nope@x", "nope"),
        ("models lineage not-a-uri", "models:/"),
        ("models request nope 1 --alias a --stage Production", "exactly one"),
    ],
)
def test_bad_input_is_one_clear_line(uri: str, command: str, fragment: str) -> None:
    refused(invoke(uri, command), fragment)


def test_reserved_alias_is_refused(uri: str) -> None:
    run_id = log_training_run(uri)
    ok(invoke(uri, f"models register runs:/{run_id}/model iris"))
    refused(invoke(uri, "models alias iris latest 1"), "latest")
    refused(invoke(uri, "models alias iris v1 1"), "v1")
