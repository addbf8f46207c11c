"""Connecting to Ray and reading what its nodes offer, against a real two-node cluster."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from slipway.engines import ray as ray_engine
from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable

pytestmark = pytest.mark.xdist_group("ray")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_unreachable_address_fails_fast(scheme: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemporarilyUnavailable, match="Cannot reach a Ray cluster"):
        ray_engine.connect(f"{scheme}127.0.0.1:{_closed_port()}")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("address", ["127.0.0.1:notaport", ":6379"])
def test_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(InvalidParameterValue, match="Ray address"):
        ray_engine.connect(address)


def test_resolve_address_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv(ray_engine.ADDRESS_ENV, raising=False)
    assert ray_engine.resolve_address(None) is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_engine.resolve_address(None) == "10.0.0.1:6379"
    monkeypatch.setenv(ray_engine.ADDRESS_ENV, "ray://head:10001")
    assert ray_engine.resolve_address(None) == "ray://head:10001"
    assert ray_engine.resolve_address("local") is None


def test_cluster_nodes_and_placement(ray_cluster: Any) -> None:
    import ray

    assert ray_engine.connect(ray_cluster.address) == ray_cluster.address
    nodes = {n.node_id: n for n in ray_engine.cluster_nodes()}
    assert nodes[ray_cluster.head_node_id].cpu == 2
    assert nodes[ray_cluster.second_node_id].cpu == 1
    ray_engine.check_fits("task t", cpu=2)
    with pytest.raises(InvalidParameterValue, match=r"task t asks for 3 CPU.*no node"):
        ray_engine.check_fits("task t", cpu=3)
    with pytest.raises(InvalidParameterValue, match="1 GPU"):
        ray_engine.check_fits("task t", cpu=1, gpu=1)

    @ray.remote(num_cpus=1, resources={ray_cluster.second.tag: 0.1})
    def where() -> str:
        return ray_engine.current_node_id()

    assert ray.get(where.remote(), timeout=120) == ray_cluster.second_node_id


def test_a_failed_probe_keeps_the_connection(ray_cluster: Any) -> None:
    ray_engine.connect(ray_cluster.address)
    with pytest.raises(TemporarilyUnavailable):
        ray_engine.connect(f"127.0.0.1:{_closed_port()}")
    assert {n.node_id for n in ray_engine.cluster_nodes()} >= {
        ray_cluster.head_node_id,
        ray_cluster.second_node_id,
    }


def test_ray_is_imported_only_where_used() -> None:
    """Ray is an extra: importing Slipway, its CLI and the packages that can run on Ray does
    not import it (nor does connecting fail at import time where it is missing)."""
    import subprocess
    import sys

    code = (
        "import sys, slipway, slipway.cli, slipway.engines.ray, slipway.pipelines, "
        "slipway.training, slipway.tuning, slipway.serving\n"
        "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DRIVER = """
import sys
from slipway.engines import ray as ray_engine
from slipway.exceptions import SlipwayError
try:
    print(ray_engine.connect(sys.argv[1]))
    print(sum(node.cpu for node in ray_engine.cluster_nodes()))
except SlipwayError as exc:
    print(f"{exc.error_code}: {exc.message}")
"""


def test_a_cluster_with_token_authentication_is_joined_with_this_machines_token(
    tmp_path: Path,
) -> None:
    """``ray start`` turns token authentication on where a token exists (a local ``ray.init()``
    writes one); a driver joining by address must then send it, which Ray does only with
    ``RAY_AUTH_MODE=token``: ``connect`` sets that when the token is at hand. Without the
    token, the error says what is missing."""
    ray_bin = str(Path(sys.executable).with_name("ray"))
    home, stranger = tmp_path / "home", tmp_path / "stranger"
    home.mkdir()
    stranger.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
        and not k.startswith("SLIPWAY_")
    }
    env |= {"HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(
        [ray_bin, "get-auth-token", "--generate"], env=env, capture_output=True, check=True
    )
    assert (home / ".ray" / "auth_token").read_text().strip()
    temp_dir = Path(tempfile.mkdtemp(prefix="rayt-"))  # Ray's socket paths must stay short
    port = _free_port()
    ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port"]
    ports += ["--metrics-export-port", "--runtime-env-agent-port", "--ray-client-server-port"]
    command = [ray_bin, "start", "--block", "--head", f"--port={port}", f"--temp-dir={temp_dir}"]
    command += ["--include-dashboard=false", "--num-cpus=1", "--num-gpus=0"]
    command += ["--object-store-memory=80000000", "--disable-usage-stats"]
    command += [f"{flag}={_free_port()}" for flag in ports]
    with open(tmp_path / "head.log", "wb") as log:
        head = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        address = f"127.0.0.1:{port}"
        driver = [sys.executable, "-c", DRIVER, address]
        joined = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and head.poll() is None:
            joined = subprocess.run(driver, env=env, capture_output=True, text=True, timeout=120)
            if joined.stdout.split() == [address, "1.0"]:
                break
            time.sleep(0.5)  # the head is still starting
        assert joined is not None, (tmp_path / "head.log").read_text()
        assert joined.stdout.split() == [address, "1.0"], joined.stdout + joined.stderr
        # The token auth is really on: a driver that asks for it but has no token is refused,
        # at once and saying what is missing.
        refused = subprocess.run(
            driver,
            env=env | {"HOME": str(stranger), "RAY_AUTH_MODE": "token"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.stdout.startswith(
            f"INVALID_PARAMETER_VALUE: Cannot connect to Ray at {address}:"
        )
        assert "no authentication token was found" in refused.stdout
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
