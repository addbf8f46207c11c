"""A live tracking server (uvicorn in a thread, on a free loopback port) shared by the session,
and the official MLflow client pointed at it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slipway.server import ServerSettings, create_app


@dataclass
class LiveServer:
    url: str
    root: Path
    settings: ServerSettings
    app: Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    import uvicorn

    root = tmp_path_factory.mktemp("server")
    settings = ServerSettings(
        backend_store_uri=str(root / "store"), artifacts_destination=str(root / "artifacts")
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", root, settings, app)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def server_url(live_server: LiveServer) -> str:
    return live_server.url


@pytest.fixture
def mlflow_client(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``mlflow.MlflowClient`` on the live server, with ``MLFLOW_TRACKING_URI`` set for the
    fluent API too (and no retries, so a failure shows at once)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    mlflow.set_tracking_uri(live_server.url)
    yield mlflow.MlflowClient(live_server.url)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
