"""Connecting to Ray and reading what its nodes offer, against a real two-node cluster."""

from __future__ import annotations

import socket
import time
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
