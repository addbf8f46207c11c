"""A live model server shared by the protocol tests: uvicorn in a thread, on a free loopback
port, serving real models (registry versions and local model directories) with batching on.

Endpoints of the shared server (see ``_protocol_models`` for the local ones):

* ``iris``: ``models:/iris@champion``, a scikit-learn LogisticRegression on columns a, b, c;
* ``const``: ``models:/const/1``, answers 1.5 per row (plus the ``offset`` param);
* ``broken``: ``models:/broken/1``, raises inside every ``predict``;
* ``picky``, ``tensor``, ``multi``, ``text``: local model directories.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slipway.serving.app import create_serving_app
from slipway.serving.batching import BatchConfig
from slipway.serving.config import EndpointSpec, build_endpoints
from slipway.serving.settings import ServingSettings

from ._models import ServingModels
from ._protocol_models import save_all

SHARED_SETTINGS = ServingSettings(
    max_batch_size=64,
    max_batch_delay_ms=2.0,
    max_request_bytes=8 * 1024 * 1024,
    request_timeout_s=20.0,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def run_app(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread (its lifespan included); yields the base URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"serving-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the model server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serving_app(
    routes: Mapping[str, str], tracking_uri: str, settings: ServingSettings = SHARED_SETTINGS
) -> Any:
    """An app serving name -> URI, built the way ``slipway serve`` builds it."""
    specs = [EndpointSpec(name, [(uri, 1.0)]) for name, uri in routes.items()]
    batch = BatchConfig(settings.max_batch_size, settings.max_batch_delay_ms)
    endpoints = build_endpoints(specs, batch, 0, tracking_uri)
    return create_serving_app(endpoints, settings)


@dataclass
class LiveServing:
    url: str
    app: Any
    models: ServingModels
    uris: dict[str, str]


@pytest.fixture(scope="session")
def serving_models(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ServingModels, dict[str, str]]:
    """The registry with ``iris``, ``const`` and ``broken``, and every endpoint's URI."""
    root = tmp_path_factory.mktemp("serving")
    models = ServingModels(root)
    models.register_sklearn("iris", alias="champion")
    models.register_constant("const", 1.5)
    models.register_constant("broken", 0.0, fail="the model is broken")
    uris = {
        "iris": "models:/iris@champion",
        "const": "models:/const/1",
        "broken": "models:/broken/1",
        **save_all(Path(root) / "local"),
    }
    uris.pop("slow")
    return models, uris


@pytest.fixture(scope="session")
def live_serving(serving_models: tuple[ServingModels, dict[str, str]]) -> Iterator[LiveServing]:
    models, uris = serving_models
    app = serving_app(uris, models.tracking_uri)
    with run_app(app) as url:
        yield LiveServing(url, app, models, uris)


@pytest.fixture
def url(live_serving: LiveServing) -> str:
    return live_serving.url
