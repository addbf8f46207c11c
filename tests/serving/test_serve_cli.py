"""``slipway serve`` from the command line: argument errors, ``--emit kserve``, and the real
server in a subprocess (one worker and several), its ready line, graceful SIGTERM with a
request in flight, deployment records, and a model that does not load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from slipway.cli import cli
from slipway.entities.registry import DeploymentStatus
from slipway.serving.config import EndpointSpec
from slipway.serving.runner import ServePlan, build_app, describe
from slipway.serving.settings import ServingSettings

from ._models import ServingModels, features
from .conftest import run_app

SLIPWAY = str(Path(sys.executable).parent / "slipway")
READY = re.compile(r"Slipway model server ready on (http://\S+) \(models: (.*)\)")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ServingModels:
    """``const`` v1 (1.0, sleeps 0.6 s per call), alias ``champion``; ``fast`` v1 (2.0);
    ``broken`` v1 does not load."""
    models = ServingModels(tmp_path_factory.mktemp("cli"))
    models.register_constant("const", 1.0, sleep_s=0.6, alias="champion")
    models.register_constant("fast", 2.0)
    models.register_broken("broken")
    return models


class Served:
    """A ``slipway serve`` subprocess; ``url`` and ``models`` come from its ready line."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.log = cwd / "serve.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [SLIPWAY, "serve", "--port", "0", "--log-level", "warning", *args],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.url = ""
        self.models = ""

    def wait_ready(self, timeout: float = 90) -> None:
        found: list[re.Match[str]] = []

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                if match := READY.search(line):
                    found.append(match)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            self.process.kill()
            raise AssertionError(f"no ready line; log:\n{self.log.read_text()}")
        self.url, self.models = found[0].group(1), found[0].group(2)

    def stop(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Served]]:
    started: list[Served] = []

    class Tracked(Served):
        def __init__(self, args: list[str]) -> None:
            super().__init__(args, tmp_path)
            started.append(self)

    yield Tracked  # type: ignore[misc]
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait(10)
        if served.process.stdout is not None:
            served.process.stdout.close()


def records(rows: int = 2) -> dict[str, object]:
    return {"dataframe_records": features(rows).to_dict(orient="records")}


def test_one_worker_serves_then_stops_gracefully_with_a_request_in_flight(
    registry: ServingModels, serve: type[Served]
) -> None:
    served = serve(["models:/const@champion", "--tracking-uri", registry.tracking_uri])
    served.wait_ready()
    assert served.models == "const=models:/const@champion v1"
    with httpx.Client(base_url=served.url, timeout=30) as http:
        assert http.post("/invocations", json=records()).json() == {"predictions": [1.0, 1.0]}
        running = registry.registry.deployments("const", 1, running_only=True)
        assert [d.endpoint for d in running] == [f"{served.url}/v2/models/const"]
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(http.post, "/invocations", json=records(3))
            time.sleep(0.2)  # the request is in the model now (it sleeps 0.6 s)
            assert served.stop() == 0
            answer = in_flight.result()
    assert answer.status_code == 200
    assert answer.json() == {"predictions": [1.0, 1.0, 1.0]}
    (ended,) = registry.registry.deployments("const", 1)
    assert ended.status == DeploymentStatus.STOPPED
    assert "Traceback" not in served.log.read_text()


def test_several_workers_share_the_port_and_add_up_metrics(
    registry: ServingModels, serve: type[Served]
) -> None:
    served = serve(
        [
            "--model",
            "c=models:/const/1",
            "--workers",
            "2",
            "--max-batch-size",
            "8",
            "--tracking-uri",
            registry.tracking_uri,
            "--no-record-deployments",
        ]
    )
    served.wait_ready()
    assert served.models == "c=models:/const/1 v1"
    with httpx.Client(base_url=served.url, timeout=30) as http:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: http.post("/invocations", json=records(1)), range(8)))
        assert {a.status_code for a in answers} == {200}
        metrics = http.get("/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('slipway_serving_requests_total{model="c",protocol="mlflow"')
    )
    assert total == 8
    assert served.stop() == 0


def test_a_model_that_does_not_load_stops_the_server_with_one_clear_line(
    registry: ServingModels, serve: type[Served]
) -> None:
    served = serve(["models:/broken/1", "--tracking-uri", registry.tracking_uri])
    assert served.process.wait(90) == 3
    log = served.log.read_text()
    assert "Cannot start the model server" in log
    assert "pickle data was truncated" in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Nothing to serve"),
        (["--route", "iris=models:/iris/1:0"], "positive"),
        (["models:/iris/1", "-o", "x.yaml"], "go with --emit kserve"),
        (["models:/iris/1", "--max-batch-size", "0"], "0 is not in the range"),
    ],
)
def test_bad_arguments_are_clear_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["serve", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_emit_kserve_writes_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "iris.yaml"
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--model",
            "iris=/models/iris",
            "--emit",
            "kserve",
            "--image",
            "example.com/slipway:1",
            "--max-batch-size",
            "16",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = out.read_text()
    assert "kind: InferenceService" in manifest
    assert "image: example.com/slipway:1" in manifest
    assert "- iris=/models/iris\n      - --max-batch-size\n      - '16'" in manifest
    printed = CliRunner().invoke(
        cli, ["serve", "/models/iris", "--emit", "kserve", "--image", "example.com/slipway:1"]
    )
    assert printed.output.count("kind: InferenceService") == 1


def test_a_plan_travels_to_workers_as_json() -> None:
    plan = ServePlan(
        [
            EndpointSpec("iris", [("models:/iris@a", 0.9), ("models:/iris@b", 0.1)], "m:/s", "x"),
            EndpointSpec("c", [("/models/c", 1.0)]),
        ],
        ServingSettings(port=0, workers=3, max_batch_size=8, allowed_hosts=("a", "b")),
        "http://127.0.0.1:1234",
    )
    assert ServePlan.from_json(plan.to_json()) == plan
    assert describe(plan.specs, {"iris": ["3", "4"]}) == (
        "iris=models:/iris@a,models:/iris@b v3,4, c=/models/c"
    )


def test_sampled_requests_are_logged_with_their_answers(
    registry: ServingModels, tmp_path: Path
) -> None:
    settings = ServingSettings(
        tracking_uri=registry.tracking_uri,
        log_requests_rate=1.0,
        log_requests_to=str(tmp_path / "logs"),
        record_deployments=False,
    )
    app = build_app(ServePlan([EndpointSpec("fast", [("models:/fast/1", 1.0)])], settings))
    with run_app(app) as url:
        for rows in (1, 2):
            answer = httpx.post(f"{url}/invocations", json=records(rows))
            assert answer.json() == {"predictions": [2.0] * rows}
    (log,) = (tmp_path / "logs" / "requests" / "fast").rglob("*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["response"] for line in lines] == [[2.0], [2.0, 2.0]]
    assert lines[1]["request"] == features(2).to_dict(orient="records")
    assert {line["version"] for line in lines} == {"1"}
