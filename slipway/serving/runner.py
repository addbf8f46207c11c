"""Running the model server under uvicorn, in one process or in several sharing one port.

The runner binds the socket first, so the URL is known (port 0 picks a free one) before any
model loads. With one worker the app runs here; with more, uvicorn's supervisor spawns the
workers and each builds its own app (its own copy of every model) through the factory
:func:`app_from_env`, from the plan that :func:`plan_to_env` serialised into
``SLIPWAY_SERVE_PLAN``. Each worker loads its models before it takes connections, so a
request never meets a worker that is still loading; the ready line is printed once one worker
answers. Metrics of all workers are added up through ``PROMETHEUS_MULTIPROC_DIR``.

SIGTERM and SIGINT stop the server gracefully: it stops accepting connections, lets requests
in flight finish (for up to :data:`GRACEFUL_SHUTDOWN_SECONDS`), unloads the models, ends the
deployment records and returns 0. A model that does not load stops the server with status 3
and one line saying why.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from slipway.serving import metrics
from slipway.serving.settings import ServingSettings
from slipway.utils.uvicorn_run import (
    ReadyWorkers,
    display_url,
    ignore_signal,
    log_config,
    probe_host,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from slipway.serving.config import EndpointSpec

GRACEFUL_SHUTDOWN_SECONDS = 30
READY_TIMEOUT_SECONDS = 600.0
"""How long the supervisor waits for a first worker to load its models and answer."""
ENV_PLAN = "SLIPWAY_SERVE_PLAN"

log = logging.getLogger("slipway.serving")


@dataclass(frozen=True)
class ServePlan:
    """Everything a server process needs to build its app.

    Attributes:
        specs: the endpoints to serve.
        settings: limits, batching, logging and registry settings.
        endpoint_url: the URL the server answers on (for deployment records); set by the
            runner once the socket is bound.
    """

    specs: list[EndpointSpec]
    settings: ServingSettings = field(default_factory=ServingSettings)
    endpoint_url: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "specs": [
                    {
                        "name": s.name,
                        "routes": [[uri, weight] for uri, weight in s.routes],
                        "shadow": s.shadow,
                        "sticky_header": s.sticky_header,
                    }
                    for s in self.specs
                ],
                "settings": self.settings.to_json_dict(),
                "endpoint_url": self.endpoint_url,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ServePlan:
        from slipway.serving.config import EndpointSpec

        raw = json.loads(text)
        specs = [
            EndpointSpec(
                s["name"],
                [(str(uri), float(weight)) for uri, weight in s["routes"]],
                s.get("shadow"),
                s.get("sticky_header"),
            )
            for s in raw["specs"]
        ]
        settings = ServingSettings.from_json_dict(raw["settings"])
        return cls(specs, settings, raw.get("endpoint_url"))


# -- building the app ------------------------------------------------------------------------


def build_app(plan: ServePlan) -> Starlette:
    """The app for ``plan``: endpoints (not loaded yet), the request logger and the
    deployment recorder as the settings ask.

    Raises:
        SlipwayError: for specs or settings that are not valid.
    """
    from slipway.serving.app import create_serving_app
    from slipway.serving.batching import BatchConfig
    from slipway.serving.config import build_endpoints

    settings = plan.settings
    logger = None
    if settings.log_requests_rate > 0:
        from slipway.serving.request_log import RequestLogger

        logger = RequestLogger(
            settings.log_requests_rate,
            settings.log_requests_to,
            tracking_uri=settings.tracking_uri,
        )
    recorder = None
    if settings.record_deployments and plan.endpoint_url is not None:
        from slipway.serving.deployments import DeploymentRecorder

        recorder = DeploymentRecorder(plan.endpoint_url, settings.tracking_uri)
    batch = BatchConfig(settings.max_batch_size, settings.max_batch_delay_ms)
    endpoints = build_endpoints(
        plan.specs, batch, settings.reload_interval_s, settings.tracking_uri, logger
    )
    return create_serving_app(
        endpoints, settings, request_logger=logger, deployment_recorder=recorder
    )


def plan_to_env(plan: ServePlan) -> dict[str, str]:
    """The variables :func:`app_from_env` reads."""
    return {ENV_PLAN: plan.to_json()}


def app_from_env() -> Starlette:
    """The app factory each worker process calls (``slipway.serving.runner:app_from_env``).

    A plan that cannot be built ends the worker with uvicorn's startup-failure status, so the
    supervisor gives up rather than restarting workers that would fail the same way."""
    from slipway.exceptions import SlipwayError

    try:
        return build_app(ServePlan.from_json(os.environ[ENV_PLAN]))
    except SlipwayError as exc:
        log.error("Cannot start the model server: %s", exc.message)
    except Exception:
        log.exception("Cannot start the model server")
    raise SystemExit(STARTUP_FAILURE)


# -- running ---------------------------------------------------------------------------------


def _get_json(host: str, port: int, path: str, timeout: float) -> Any:
    """The JSON that ``GET path`` answers, or None (no answer, not 200, not JSON)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": "localhost"})
        response = connection.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else None
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


class _Server(uvicorn.Server):
    """A uvicorn server that calls ``on_ready`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_ready()


@contextlib.contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """A fresh ``PROMETHEUS_MULTIPROC_DIR`` for the workers, removed afterwards."""
    if os.environ.get(metrics.MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="slipway-serve-metrics-")
    os.environ[metrics.MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(metrics.MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def describe(specs: Sequence[EndpointSpec], versions: dict[str, list[str]]) -> str:
    """``iris=models:/iris@champion v3, ...``: what is served, with the versions loaded."""
    parts = []
    for spec in specs:
        routes = ",".join(uri for uri, _ in spec.routes)
        loaded = versions.get(spec.name) or []
        parts.append(f"{spec.name}={routes}" + (f" v{','.join(loaded)}" if loaded else ""))
    return ", ".join(parts)


def serve(
    plan: ServePlan,
    log_level: str = "info",
    on_ready: Callable[[str, str], None] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT; the exit status (0 after a graceful stop, 3 when a
    model does not load).

    Args:
        plan: what to serve, and how (``plan.settings.host``, ``port``, ``workers``).
        log_level: uvicorn's level (``info`` also logs each request).
        on_ready: called with the server's URL and a description of what it serves (names,
            URIs, versions) once it accepts connections.
    """
    settings = plan.settings
    level = log_level.lower()
    config = uvicorn.Config(
        "slipway.serving.runner:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="auto",
        http="auto",
        ws="none",
        lifespan="on",
        log_config=log_config(level),
        log_level=level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    try:
        sock = config.bind_socket()
    except SystemExit as exc:  # uvicorn has logged why (the port is taken, say)
        return exc.code if isinstance(exc.code, int) else STARTUP_FAILURE
    port = int(sock.getsockname()[1])
    url = display_url(settings.host, port)
    plan = ServePlan(plan.specs, settings, url)

    def report(versions: dict[str, list[str]]) -> None:
        if on_ready is not None:
            on_ready(url, describe(plan.specs, versions))

    if settings.workers > 1:
        return _serve_workers(plan, config, sock, report)
    return _serve_here(plan, config, sock, report)


def _serve_workers(
    plan: ServePlan,
    config: uvicorn.Config,
    sock: socket.socket,
    report: Callable[[dict[str, list[str]]], None],
) -> int:
    probe, port = probe_host(plan.settings.host), int(sock.getsockname()[1])

    def ready(_port: int) -> None:
        versions = {}
        for spec in plan.specs:
            meta = _get_json(probe, port, f"/v2/models/{spec.name}", timeout=5.0) or {}
            versions[spec.name] = [str(v) for v in meta.get("versions", [])]
        report(versions)

    os.environ.update(plan_to_env(plan))  # read by every spawned worker
    with _multiprocess_metrics():
        supervisor = ReadyWorkers(
            config,
            sock,
            lambda host, port: _get_json(host, port, "/v2", timeout=1.0) is not None,
            ready,
            READY_TIMEOUT_SECONDS,
        )
        supervisor.run()
    sock.close()
    return STARTUP_FAILURE if supervisor.startup_failed() else 0


def _serve_here(
    plan: ServePlan,
    config: uvicorn.Config,
    sock: socket.socket,
    report: Callable[[dict[str, list[str]]], None],
) -> int:
    from slipway.exceptions import SlipwayError

    try:
        app = build_app(plan)
    except SlipwayError as exc:
        log.error("Cannot start the model server: %s", exc.message)
        sock.close()
        return STARTUP_FAILURE
    config.app = app
    config.factory = False
    state = app.state.serving

    def ready() -> None:
        report(
            {
                name: [m.version for m in endpoint.current() if m.version is not None]
                for name, endpoint in state.endpoints.items()
            }
        )

    server = _Server(config, ready)
    previous = {sig: signal.signal(sig, ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else STARTUP_FAILURE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return 0 if server.started else STARTUP_FAILURE


__all__ = [
    "ENV_PLAN",
    "GRACEFUL_SHUTDOWN_SECONDS",
    "ServePlan",
    "app_from_env",
    "build_app",
    "describe",
    "display_url",
    "plan_to_env",
    "serve",
]
