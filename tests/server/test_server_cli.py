"""``slipway server`` as a real process: readiness, the host allow-list, the body limit, worker
processes and graceful shutdown on SIGTERM/SIGINT with requests in flight.

Every server here listens on ``--port 0`` (a free port picked by the OS) and is found through
the URL it prints once it accepts connections.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from click.testing import CliRunner

import slipway
from slipway.cli import cli
from slipway.cli.server import LOCAL_HOSTS, default_allowed_hosts, parse_allowed_hosts
from slipway.server import ServerSettings
from slipway.server.serve import settings_from_env, settings_to_env
from slipway.server.settings import DEFAULT_ALLOWED_HOSTS

SERVER_COMMAND = [sys.executable, "-c", "from slipway.cli import main; main()", "server"]
READY = re.compile(r"ready on (http://\S+)")
API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
START_TIMEOUT = 60.0
_names = itertools.count()


@dataclass
class ServerProcess:
    """A ``slipway server`` subprocess and the URL it announced."""

    proc: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"

    def workers(self) -> list[psutil.Process]:
        """The uvicorn worker processes (spawned children running uvicorn's target)."""
        children = psutil.Process(self.pid).children()
        return [c for c in children if "spawn_main" in " ".join(c.cmdline())]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_server(workdir: Path, *args: str, timeout: float = START_TIMEOUT) -> ServerProcess:
    """Start ``slipway server --port 0 ARGS`` in ``workdir`` and wait until /health answers."""
    name = f"server-{next(_names)}"
    stdout, stderr = workdir / f"{name}.out", workdir / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [*SERVER_COMMAND, "--port", "0", *args], cwd=workdir, stdout=out, stderr=err
        )
    deadline = time.monotonic() + timeout
    while (found := READY.search(stdout.read_text())) is None:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}):\n{stderr.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the server did not start in {timeout}s:\n{stderr.read_text()}")
        time.sleep(0.02)
    server = ServerProcess(proc, found.group(1), stdout, stderr)
    assert httpx.get(f"{server.url}/health").status_code == 200, server.logs()
    return server


def shut_down(server: ServerProcess) -> None:
    """Teardown for a server a test may have left running: SIGTERM, then SIGKILL."""
    if server.proc.poll() is not None:
        return
    workers = server.workers()
    server.proc.terminate()
    try:
        server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    for worker in workers:
        if worker.is_running():
            worker.kill()


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """A list to put started servers in; whatever still runs at the end is stopped."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        shut_down(server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the read-only checks: default hosts, a 4 KiB body limit."""
    root = tmp_path_factory.mktemp("server-cli")
    started = start_server(
        root, "--backend-store-uri", str(root / "store"), "--max-request-bytes", "4096"
    )
    yield started
    assert started.stop() == 0, started.logs()


def with_host(url: str, host: str, path: str = "/health") -> httpx.Response:
    return httpx.get(f"{url}{path}", headers={"Host": host})


# -- options and settings (no server) ---------------------------------------------------------


def test_help_lists_every_option() -> None:
    result = CliRunner().invoke(cli, ["server", "--help"])
    assert result.exit_code == 0, result.output
    for option in (
        "--host",
        "--port",
        "--workers",
        "--backend-store-uri",
        "--default-artifact-root",
        "--artifacts-destination",
        "--serve-artifacts / --no-serve-artifacts",
        "--allowed-hosts",
        "--max-request-bytes",
        "--log-level",
    ):
        assert option in result.output, option
    assert "127.0.0.1" in result.output
    assert "5000" in result.output
    assert "16777216" in result.output
    top = CliRunner().invoke(cli, ["--help"])
    assert "server" in top.output


def test_a_server_url_is_refused_as_the_store() -> None:
    result = CliRunner().invoke(cli, ["server", "--backend-store-uri", "http://localhost:5000"])
    assert result.exit_code == 2
    assert "is a server URL" in result.output


def test_empty_allowed_hosts_are_refused() -> None:
    result = CliRunner().invoke(cli, ["server", "--allowed-hosts", " , "])
    assert result.exit_code == 2
    assert "--allowed-hosts" in result.output


def test_default_allowed_hosts() -> None:
    assert LOCAL_HOSTS == DEFAULT_ALLOWED_HOSTS
    assert default_allowed_hosts("127.0.0.1") == LOCAL_HOSTS
    assert default_allowed_hosts("0.0.0.0") == LOCAL_HOSTS
    assert default_allowed_hosts("::") == LOCAL_HOSTS
    assert default_allowed_hosts("10.1.2.3") == (*LOCAL_HOSTS, "10.1.2.3")
    assert default_allowed_hosts("fe80::1") == (*LOCAL_HOSTS, "[fe80::1]")
    assert parse_allowed_hosts(" a.example , b.example:8443 ", "0.0.0.0") == (
        "a.example",
        "b.example:8443",
    )
    assert parse_allowed_hosts("*", "127.0.0.1") == ("*",)


def test_settings_round_trip_through_the_environment() -> None:
    settings = ServerSettings(
        backend_store_uri="sqlite:///x.db",
        default_artifact_root="s3://bucket/root",
        artifacts_destination="/data/artifacts",
        serve_artifacts=False,
        allowed_hosts=("a.example", "b.example:8443"),
        max_request_bytes=1234,
    )
    env = {k: v for k, v in settings_to_env(settings).items() if v is not None}
    assert settings_from_env(env) == settings
    plain = ServerSettings(backend_store_uri="store")
    env = {k: v for k, v in settings_to_env(plain).items() if v is not None}
    assert settings_from_env(env) == plain
    assert settings_from_env({}) == ServerSettings()


def test_the_server_path_imports_no_data_libraries(tmp_path: Path) -> None:
    """What a worker imports to build its app (and what the CLI imports) leaves out pandas,
    numpy and mlflow, which would cost start time and memory."""
    code = (
        "import os, sys\n"
        "from slipway.cli import cli\n"
        "from slipway.server.serve import app_from_env\n"
        f"os.environ['SLIPWAY_SERVER_BACKEND_STORE_URI'] = {str(tmp_path / 'store')!r}\n"
        "app_from_env().state.context.close()\n"
        "print(sorted(m for m in ('pandas', 'numpy', 'mlflow') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- one running server -----------------------------------------------------------------------


def test_ready_line_health_and_version(server: ServerProcess) -> None:
    lines = [line for line in server.stdout.read_text().splitlines() if "ready on" in line]
    assert len(lines) == 1
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    health = httpx.get(f"{server.url}/health")
    assert (health.status_code, health.text) == (200, "OK")
    version = httpx.get(f"{server.url}/version")
    assert version.status_code == 200
    assert version.text == slipway.__version__


def test_a_host_outside_the_allow_list_gets_403_json(server: ServerProcess) -> None:
    response = with_host(server.url, "evil.example")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error_code"] == "PERMISSION_DENIED"
    assert "evil.example" in body["message"]
    port = server.url.rsplit(":", 1)[1]
    assert with_host(server.url, f"evil.example:{port}").status_code == 403
    assert with_host(server.url, "127.0.0.1.evil.example").status_code == 403


def test_localhost_names_are_allowed_by_default(server: ServerProcess) -> None:
    port = server.url.rsplit(":", 1)[1]
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert with_host(server.url, host).status_code == 200, host


def test_an_oversized_json_body_gets_413(server: ServerProcess) -> None:
    metrics = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(200)]
    body = (
        httpx.Client()
        .build_request(
            "POST", f"{server.url}{API}/runs/log-batch", json={"run_id": "x", "metrics": metrics}
        )
        .content
    )
    assert len(body) > 4096
    sized = httpx.post(
        f"{server.url}{API}/runs/log-batch",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert sized.status_code == 413
    assert sized.json()["error_code"] == "RESOURCE_EXHAUSTED"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it streams
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    streamed = httpx.post(
        f"{server.url}{API}/runs/log-batch",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error_code"] == "RESOURCE_EXHAUSTED"


def test_a_body_under_the_limit_is_served(server: ServerProcess) -> None:
    created = httpx.post(f"{server.url}{API}/experiments/create", json={"name": "under-limit"})
    assert created.status_code == 200, created.text
    assert created.json()["experiment_id"]


# -- servers of their own ---------------------------------------------------------------------


def test_allowed_hosts_option_then_sigint(tmp_path: Path, servers: list[ServerProcess]) -> None:
    server = start_server(
        tmp_path,
        "--backend-store-uri",
        str(tmp_path / "store"),
        "--allowed-hosts",
        "tracking.example.com,127.0.0.1",
    )
    servers.append(server)
    assert with_host(server.url, "tracking.example.com").status_code == 200
    assert with_host(server.url, "tracking.example.com:443").status_code == 200
    assert with_host(server.url, "localhost").status_code == 403
    assert server.stop(signal.SIGINT, timeout=30) == 0, server.logs()


def test_two_workers_serve_requests(tmp_path: Path, servers: list[ServerProcess]) -> None:
    server = start_server(
        tmp_path,
        "--backend-store-uri",
        str(tmp_path / "store"),
        "--workers",
        "2",
        "--allowed-hosts",
        "*",
        "--log-level",
        "warning",
    )
    servers.append(server)
    assert "2 workers" in server.stdout.read_text()
    workers = server.workers()
    assert len(workers) == 2, [w.cmdline() for w in workers]
    assert with_host(server.url, "anything.example").status_code == 200  # "*" allows any host

    api = f"{server.url}{API}"
    experiment = httpx.post(f"{api}/experiments/create", json={"name": "workers"}).json()
    errors: list[str] = []
    run_ids: list[str] = []

    def client(n: int) -> None:
        with httpx.Client(base_url=api, timeout=60) as http:
            run = http.post("/runs/create", json={"experiment_id": experiment["experiment_id"]})
            if run.status_code != 200:
                errors.append(run.text)
                return
            run_id = run.json()["run"]["info"]["run_id"]
            run_ids.append(run_id)
            for step in range(20):
                done = http.post(
                    "/runs/log-metric",
                    json={
                        "run_id": run_id,
                        "key": "loss",
                        "value": n + step / 100,
                        "timestamp": 1_700_000_000_000 + step,
                        "step": step,
                    },
                )
                if done.status_code != 200:
                    errors.append(done.text)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len(run_ids) == 8
    for run_id in run_ids:
        history = httpx.get(
            f"{api}/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"}
        ).json()
        assert len(history["metrics"]) == 20

    assert server.stop(signal.SIGINT, timeout=60) == 0, server.logs()
    psutil.wait_procs(workers, timeout=10)
    assert not any(w.is_running() for w in workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_the_request_in_flight_finish(
    tmp_path: Path, servers: list[ServerProcess], workers: int
) -> None:
    """A slow artifact upload (2 s of trickled chunks) is under way when SIGTERM arrives: it
    completes with 200, the file is whole, and the server then exits 0."""
    artifacts = tmp_path / "artifacts"
    server = start_server(
        tmp_path,
        "--backend-store-uri",
        str(tmp_path / "store"),
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        str(workers),
    )
    servers.append(server)
    chunk, count = os.urandom(64 * 1024), 40
    sending = threading.Event()
    outcome: dict[str, Any] = {}

    def body() -> Iterator[bytes]:
        for i in range(count):
            yield chunk
            if i == 2:
                sending.set()
            time.sleep(0.05)

    def upload() -> None:
        try:
            outcome["response"] = httpx.put(
                f"{server.url}{PROXY}/slow/big.bin", content=body(), timeout=60
            )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=upload)
    thread.start()
    assert sending.wait(30)
    assert server.proc.poll() is None
    server.proc.send_signal(signal.SIGTERM)
    assert thread.is_alive()  # the upload is still sending
    thread.join(60)
    assert "error" not in outcome, f"{outcome.get('error')!r}\n{server.logs()}"
    assert outcome["response"].status_code == 200, outcome["response"].text
    assert (artifacts / "slow" / "big.bin").read_bytes() == chunk * count
    assert server.proc.wait(60) == 0, server.logs()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health")


def test_a_taken_port_fails_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [*SERVER_COMMAND, "--port", port, "--backend-store-uri", str(tmp_path / "store")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    assert done.returncode != 0
    assert "ready on" not in done.stdout
    assert "address already in use" in done.stderr.lower()
    assert "Error: the server stopped before it could serve" in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unusable_store_fails_with_a_clear_error(tmp_path: Path, workers: str) -> None:
    """The store's error is shown once per process and the server exits (workers are not
    restarted forever)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run(
        [
            *SERVER_COMMAND,
            "--port",
            "0",
            "--workers",
            workers,
            "--backend-store-uri",
            str(blocker / "store"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "ready on" not in done.stdout
    assert str(blocker / "store") in done.stderr
    assert "Error:" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_readme_server_flow(tmp_path: Path, servers: list[ServerProcess]) -> None:
    """README: start `slipway server`, log the quickstart to it with the Slipway SDK over HTTP,
    then read the runs back with unchanged MLflow code."""
    server = start_server(tmp_path, "--backend-store-uri", str(tmp_path / "store"))
    servers.append(server)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SLIPWAY_TRACKING_URI": server.url,
        "SLIPWAY_SPOOL_DIR": str(tmp_path / "spool"),
    }
    quickstart = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
    done = subprocess.run(
        [sys.executable, str(quickstart), "--steps", "50"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    read = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mlflow; runs = mlflow.search_runs(experiment_names=['quickstart']);"
            "print(len(runs), sorted(runs['tags.mlflow.runName']), list(runs['status'].unique()))",
        ],
        cwd=tmp_path,
        env={**env, "MLFLOW_TRACKING_URI": server.url},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.splitlines()[-1] == "3 ['lr-0.01', 'lr-0.1', 'lr-1.0'] ['FINISHED']"
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").rglob("*.jsonl"))
