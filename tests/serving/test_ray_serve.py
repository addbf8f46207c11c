"""Serving on Ray Serve, against the real two-node Ray cluster on loopback: two replicas of
the model server (one per node), the answers of the model itself over MLflow's and the V2
protocol, hot reload in every replica, deployment records, and the errors that must come at
once (a replica no node can hold, an address nothing answers at)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

from slipway.cli import cli
from slipway.entities.registry import DeploymentStatus
from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable
from slipway.flavors.pyfunc import load_model
from slipway.serving import ray_serve
from slipway.serving.settings import ServingSettings

from ._models import ServingModels, features
from .conftest import free_port

pytestmark = pytest.mark.xdist_group("ray")

URI = "models:/iris@champion"
SLIPWAY = str(Path(sys.executable).parent / "slipway")
READY = re.compile(r"Slipway model server ready on (http://\S+) \(models: (.*)\)")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ServingModels:
    """``iris`` v1: a LogisticRegression, alias ``champion``; v2: answers 7.0 for every row."""
    models = ServingModels(tmp_path_factory.mktemp("ray-serve"))
    models.register_sklearn("iris", alias="champion")
    models.register_constant("iris", 7.0)
    models.register_constant("const", 3.0)
    models.register_broken("broken")
    return models


def _expected(registry: ServingModels, rows: pd.DataFrame) -> list[int]:
    model = load_model(registry.registry.get_download_uri("iris", "1"))
    return [int(v) for v in model.predict(rows)]


def _post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """A request on a connection of its own, so Serve's proxies may route it anywhere."""
    with httpx.Client(base_url=url, timeout=60) as fresh:
        return fresh.post(path, json=body)


def test_two_replicas_serve_reload_record_and_go(ray_cluster: Any, registry: ServingModels) -> None:
    """The life of one deployment, in order: two replicas of ``models:/iris@champion`` with
    half a CPU each (one fits on each node), reloading every half second."""
    import ray

    from slipway.engines.ray import connect

    connect(ray_cluster.address)
    cpus_free_before = float(ray.available_resources().get("CPU", 0.0))
    settings = ServingSettings(
        tracking_uri=registry.tracking_uri,
        reload_interval_s=0.5,
        max_batch_size=16,
        max_batch_delay_ms=2.0,
    )
    deployed = ray_serve.deploy(
        URI,
        replicas=2,
        ray_address=ray_cluster.address,
        port=free_port(),
        settings=settings,
        replica_cpus=0.5,
        app_name="slipway-test",
        ready_timeout_s=240,
    )
    try:
        assert deployed.description == f"iris={URI} v1"
        assert deployed.replicas == 2
        assert not deployed.started_ray
        _answers_are_the_models(deployed.url, registry)
        _both_replicas_answer_from_both_nodes(deployed.url, ray_cluster)
        _each_replica_records_its_deployment(deployed.url, registry)
        _a_second_application_is_refused(ray_cluster, registry)
        _moving_the_alias_reloads_every_replica(deployed.url, registry)
    finally:
        ray_serve.undeploy(deployed)
    _undeploy_ends_the_records_and_frees_the_cpus(deployed.url, registry, cpus_free_before)


def _answers_are_the_models(url: str, registry: ServingModels) -> None:
    rows = features(6, seed=5)
    expected = _expected(registry, rows)
    answer = _post(
        url, "/invocations", {"dataframe_split": rows.to_dict(orient="split", index=False)}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": expected}
    infer = {
        "inputs": [
            {"name": c, "shape": [6], "datatype": "FP64", "data": rows[c].tolist()}
            for c in ("a", "b", "c")
        ]
    }
    v2 = _post(url, "/v2/models/iris/infer", infer).json()
    assert v2["model_version"] == "1"
    assert v2["outputs"][0]["data"] == expected
    assert httpx.get(f"{url}/ping", timeout=60).text == "OK\n"
    assert httpx.get(f"{url}/v2/models/iris", timeout=60).json()["versions"] == ["1"]


def _both_replicas_answer_from_both_nodes(url: str, ray_cluster: Any) -> None:
    """Serve's proxies spread requests over the two replicas; each names itself and its node."""
    body = {"dataframe_split": features(2).to_dict(orient="split", index=False)}
    replicas: set[str] = set()
    nodes: set[str] = set()
    deadline = time.monotonic() + 120
    while len(replicas) < 2 and time.monotonic() < deadline:
        answer = _post(url, "/invocations", body)
        assert answer.status_code == 200, answer.text
        replicas.add(answer.headers[ray_serve.REPLICA_HEADER])
        nodes.add(answer.headers[ray_serve.NODE_HEADER])
    assert len(replicas) == 2
    assert nodes == {ray_cluster.head_node_id, ray_cluster.second_node_id}


def _each_replica_records_its_deployment(url: str, registry: ServingModels) -> None:
    deadline = time.monotonic() + 60
    running = registry.registry.deployments("iris", "1", running_only=True)
    while len(running) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        running = registry.registry.deployments("iris", "1", running_only=True)
    assert len(running) == 2
    assert {d.endpoint for d in running} == {f"{url}/v2/models/iris"}
    assert len({d.details["pid"] for d in running}) == 2


def _a_second_application_is_refused(ray_cluster: Any, registry: ServingModels) -> None:
    with pytest.raises(InvalidParameterValue, match="is being used by application"):
        ray_serve.deploy(
            "models:/const/1",
            ray_address=ray_cluster.address,
            replica_cpus=0.5,
            settings=ServingSettings(tracking_uri=registry.tracking_uri),
            app_name="slipway-other",
        )
    assert "slipway-other" not in ray_serve._serve().status().applications


def _moving_the_alias_reloads_every_replica(url: str, registry: ServingModels) -> None:
    body = {"dataframe_split": features(3).to_dict(orient="split", index=False)}
    registry.set_alias("iris", "champion", 2)
    seen: dict[str, list[float]] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = _post(url, "/invocations", body)
        seen[answer.headers[ray_serve.REPLICA_HEADER]] = answer.json()["predictions"]
        if len(seen) == 2 and all(p == [7.0, 7.0, 7.0] for p in seen.values()):
            break
        time.sleep(0.1)
    assert len(seen) == 2
    assert all(p == [7.0, 7.0, 7.0] for p in seen.values()), seen
    assert httpx.get(f"{url}/v2/models/iris", timeout=60).json()["versions"] == ["2"]


def _undeploy_ends_the_records_and_frees_the_cpus(
    url: str, registry: ServingModels, cpus_free_before: float
) -> None:
    import ray

    with pytest.raises(httpx.HTTPError):
        httpx.post(f"{url}/invocations", json={}, timeout=5).raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = registry.registry.deployments("iris")
        free = ray.available_resources().get("CPU", 0.0)
        if all(d.status == DeploymentStatus.STOPPED for d in records) and free >= cpus_free_before:
            break
        time.sleep(0.2)
    assert {d.status for d in records} == {DeploymentStatus.STOPPED}
    assert {d.version for d in records} == {"1", "2"}
    # Serve's controller and proxies stay, holding no CPU
    assert ray.available_resources().get("CPU", 0.0) >= cpus_free_before
    assert ray_serve._serve().status().proxies


def test_a_replica_no_node_can_hold_is_refused_at_once(
    ray_cluster: Any, registry: ServingModels
) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidParameterValue, match=r"asks for 16 CPU.*no node"):
        ray_serve.deploy(
            URI,
            ray_address=ray_cluster.address,
            replica_cpus=16,
            settings=ServingSettings(tracking_uri=registry.tracking_uri),
        )
    assert time.monotonic() - started < 30


def test_an_unreachable_ray_address_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(TemporarilyUnavailable, match="Cannot reach a Ray cluster"):
        ray_serve.deploy(str(tmp_path / "model"), ray_address=f"127.0.0.1:{_closed_port()}")
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            str(tmp_path / "model"),
            "--on",
            "ray",
            "--ray-address",
            f"127.0.0.1:{_closed_port()}",
            "--replicas",
            "2",
        ],
    )
    assert result.exit_code == 1
    assert "Cannot reach a Ray cluster at 127.0.0.1:" in result.output
    assert "Traceback" not in result.output


def test_a_model_that_does_not_load_fails_the_deploy_with_its_reason(
    ray_cluster: Any, registry: ServingModels
) -> None:
    import ray

    with pytest.raises(InvalidParameterValue, match=r"did not start.*pickle data was truncated"):
        ray_serve.deploy(
            "models:/broken/1",
            ray_address=ray_cluster.address,
            replica_cpus=0.5,
            settings=ServingSettings(tracking_uri=registry.tracking_uri),
            app_name="slipway-broken",
            ready_timeout_s=240,
        )
    serve = ray_serve._serve()
    assert "slipway-broken" not in serve.status().applications
    assert ray.is_initialized()


def test_the_cli_serves_on_ray_until_sigterm(
    ray_cluster: Any, registry: ServingModels, tmp_path: Path
) -> None:
    """``slipway serve --on ray`` prints the ready line, serves a canary route, and on SIGTERM
    deletes its application and exits 0 (Serve keeps any port it already has here)."""
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [
                SLIPWAY,
                "serve",
                "--route",
                "c=models:/const/1:1,models:/iris/2:1",
                "--on",
                "ray",
                "--ray-address",
                ray_cluster.address,
                "--replicas",
                "1",
                "--replica-cpus",
                "0.25",
                "--port",
                "0",
                "--tracking-uri",
                registry.tracking_uri,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        found: list[re.Match[str]] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if match := READY.search(line):
                    found.append(match)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(240)
        assert found, log.read_text()
        url, models = found[0].group(1), found[0].group(2)
        assert models == "c=models:/const/1,models:/iris/2 v1,2"
        body = {"dataframe_records": features(2).to_dict(orient="records")}
        answers = [_post(url, "/invocations", body).json() for _ in range(30)]
        # the canary split holds on Ray too: both routes answer (each with chance 1/2)
        assert {a["predictions"][0] for a in answers} == {3.0, 7.0}
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        if process.stdout is not None:
            process.stdout.close()
    assert ray_serve.APP_NAME not in ray_serve._serve().status().applications
    assert "Traceback" not in log.read_text()


def _running_replicas(app_name: str, until: int, timeout: float = 120) -> int:
    """The RUNNING replicas of ``app_name`` Serve counts, once it counts ``until`` of them
    (or ``timeout`` seconds passed)."""
    serve = ray_serve._serve()
    deadline = time.monotonic() + timeout
    while True:
        app = serve.status().applications[app_name]
        (states,) = [d.replica_states for d in app.deployments.values()]
        running = int(states.get("RUNNING", 0))
        if running == until or time.monotonic() > deadline:
            return running
        time.sleep(0.5)


def test_losing_a_node_leaves_the_other_replicas_serving(
    ray_cluster: Any, registry: ServingModels
) -> None:
    """Four one-CPU replicas fill the head (2), the second node (1) and an extra node (1);
    the extra node dies: the three others keep answering, and Serve sees one replica short
    (no node has room for its replacement)."""
    extra = ray_cluster.add_node(num_cpus=1)
    deployment = ray_serve.deploy(
        "models:/const/1",
        replicas=4,
        ray_address=ray_cluster.address,
        replica_cpus=1,
        settings=ServingSettings(tracking_uri=registry.tracking_uri, record_deployments=False),
        app_name="slipway-lost",
        ready_timeout_s=240,
    )
    try:
        body = {"dataframe_records": features(1).to_dict(orient="records")}
        nodes: set[str] = set()
        deadline = time.monotonic() + 120
        while extra.node_id not in nodes and time.monotonic() < deadline:
            with httpx.Client(base_url=deployment.url, timeout=60) as fresh:
                nodes.add(fresh.post("/invocations", json=body).headers[ray_serve.NODE_HEADER])
        assert extra.node_id in nodes
        extra.kill()
        answered: list[str] = []
        deadline = time.monotonic() + 180
        while len(answered) < 20 and time.monotonic() < deadline:
            answer: httpx.Response | None = None
            with contextlib.suppress(httpx.TransportError):  # the lost node's proxy shares
                answer = _post(deployment.url, "/invocations", body)  # the port on loopback
            if (
                answer is None
                or answer.status_code != 200
                or answer.headers[ray_serve.NODE_HEADER] == extra.node_id
            ):
                # the lost node's replica (its process outlives its raylet for a moment), its
                # proxy, or a request it took down with it: start counting again
                answered.clear()
                time.sleep(0.2)
                continue
            assert answer.json() == {"predictions": [3.0]}
            answered.append(answer.headers[ray_serve.NODE_HEADER])
        assert len(answered) == 20
        assert _running_replicas("slipway-lost", until=3) == 3
    finally:
        extra.kill()
        ray_serve.undeploy("slipway-lost")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "2"], "--replicas go with --on ray"),
        (["--ray-address", "auto", "--replica-cpus", "2"], "--ray-address, --replica-cpus go"),
        (["--on", "ray", "--workers", "2"], "not --workers"),
        (["--on", "ray", "--emit", "kserve"], "does not go with --emit"),
        (["--on", "ray", "--replicas", "0"], "0 is not in the range"),
    ],
)
def test_ray_options_out_of_place_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["serve", "models:/iris/1", *args])
    assert result.exit_code == 2
    assert message in result.output
