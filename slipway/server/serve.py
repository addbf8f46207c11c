"""Running the tracking server under uvicorn, in one process or in several worker processes.

With one worker the app is built here, in the calling process, so a bad store URI is reported
before anything listens. With more, uvicorn's supervisor binds the socket once and spawns the
workers; each builds its own app (its own store and connection pool) through the factory
:func:`app_from_env`, from the ``SLIPWAY_SERVER_*`` environment variables that
:func:`settings_to_env` writes.

SIGTERM and SIGINT stop the server gracefully: it stops accepting connections, lets requests
in flight finish (for up to :data:`GRACEFUL_SHUTDOWN_SECONDS`), closes the store and returns 0.
uvicorn picks uvloop and httptools when they are installed.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from slipway.server.settings import ServerSettings
from slipway.utils.uvicorn_run import (
    ReadyWorkers,
    display_url,
    ignore_signal,
    log_config,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

GRACEFUL_SHUTDOWN_SECONDS = 30
READY_TIMEOUT_SECONDS = 60.0

ENV_PREFIX = "SLIPWAY_SERVER_"
ENV_BACKEND_STORE_URI = ENV_PREFIX + "BACKEND_STORE_URI"
ENV_DEFAULT_ARTIFACT_ROOT = ENV_PREFIX + "DEFAULT_ARTIFACT_ROOT"
ENV_ARTIFACTS_DESTINATION = ENV_PREFIX + "ARTIFACTS_DESTINATION"
ENV_SERVE_ARTIFACTS = ENV_PREFIX + "SERVE_ARTIFACTS"
ENV_ALLOWED_HOSTS = ENV_PREFIX + "ALLOWED_HOSTS"
ENV_MAX_REQUEST_BYTES = ENV_PREFIX + "MAX_REQUEST_BYTES"

log = logging.getLogger("slipway.server")


# -- settings through the environment (for worker processes) --------------------------------


def settings_to_env(settings: ServerSettings) -> dict[str, str | None]:
    """The variables :func:`settings_from_env` reads; None means "unset this variable"."""
    return {
        ENV_BACKEND_STORE_URI: settings.backend_store_uri,
        ENV_DEFAULT_ARTIFACT_ROOT: settings.default_artifact_root,
        ENV_ARTIFACTS_DESTINATION: settings.artifacts_destination,
        ENV_SERVE_ARTIFACTS: "true" if settings.serve_artifacts else "false",
        ENV_ALLOWED_HOSTS: ",".join(settings.allowed_hosts),
        ENV_MAX_REQUEST_BYTES: str(settings.max_request_bytes),
    }


def apply_env(values: Mapping[str, str | None], environ: MutableMapping[str, str]) -> None:
    """Set (or, for None, remove) each variable in ``environ``."""
    for name, value in values.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value


def settings_from_env(environ: Mapping[str, str] | None = None) -> ServerSettings:
    """Server settings from ``SLIPWAY_SERVER_*`` variables; unset ones keep their defaults."""
    env = os.environ if environ is None else environ
    defaults = ServerSettings()
    hosts = env.get(ENV_ALLOWED_HOSTS)
    limit = env.get(ENV_MAX_REQUEST_BYTES)
    serve_artifacts = env.get(ENV_SERVE_ARTIFACTS)
    return ServerSettings(
        backend_store_uri=env.get(ENV_BACKEND_STORE_URI) or defaults.backend_store_uri,
        default_artifact_root=env.get(ENV_DEFAULT_ARTIFACT_ROOT) or None,
        artifacts_destination=env.get(ENV_ARTIFACTS_DESTINATION) or None,
        serve_artifacts=(
            defaults.serve_artifacts
            if serve_artifacts is None
            else serve_artifacts.strip().lower() in ("1", "true", "yes", "on")
        ),
        allowed_hosts=(
            tuple(h.strip() for h in hosts.split(",") if h.strip())
            if hosts is not None
            else defaults.allowed_hosts
        ),
        max_request_bytes=int(limit) if limit else defaults.max_request_bytes,
    )


def app_from_env() -> Starlette:
    """The app factory each worker process calls (``slipway.server.serve:app_from_env``).

    A store that cannot be opened ends the worker with uvicorn's startup-failure status, so
    the supervisor gives up rather than restarting workers that would fail the same way."""
    from slipway.exceptions import SlipwayError
    from slipway.server.app import create_app

    try:
        return create_app(settings_from_env())
    except (SlipwayError, OSError) as exc:
        log.error("Cannot start the server: %s", getattr(exc, "message", None) or exc)
    except Exception:
        log.exception("Cannot start the server")
    # uvicorn's supervisor stops, instead of restarting workers, on this exit status.
    raise SystemExit(STARTUP_FAILURE)


# -- running ----------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """A uvicorn server that reports the port it listens on once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            port = self.config.port
            listeners = getattr(self, "servers", [])
            if listeners and listeners[0].sockets:
                port = int(listeners[0].sockets[0].getsockname()[1])
            self._on_ready(port)


def _answers_http(host: str, port: int, timeout: float) -> bool:
    """Whether an HTTP request to ``/health`` gets any answer (a 403 from the host allow-list
    still shows that a worker serves)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


def serve(
    settings: ServerSettings,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    log_level: str = "info",
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT; the exit status (0 after a graceful stop).

    Args:
        settings: what the app serves (each worker rebuilds it from the environment).
        host, port: the address to listen on; port 0 picks a free port.
        workers: the number of processes; above 1, uvicorn's supervisor runs them.
        log_level: uvicorn's level (``info`` also logs each request).
        on_ready: called with the server's URL once it accepts connections.
    """
    level = log_level.lower()

    def ready(actual_port: int) -> None:
        if on_ready is not None:
            on_ready(display_url(host, actual_port))

    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "auto",
        "http": "auto",
        "ws": "none",
        "lifespan": "on",
        "log_config": log_config(level),
        "log_level": level,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    if workers > 1:
        apply_env(settings_to_env(settings), os.environ)  # read by every spawned worker
        config = uvicorn.Config(
            "slipway.server.serve:app_from_env", factory=True, workers=workers, **common
        )
        try:
            sock = config.bind_socket()
        except SystemExit as exc:  # uvicorn has logged why (the port is taken, say)
            return exc.code if isinstance(exc.code, int) else STARTUP_FAILURE
        supervisor = ReadyWorkers(
            config,
            sock,
            lambda host, port: _answers_http(host, port, timeout=1.0),
            ready,
            READY_TIMEOUT_SECONDS,
        )
        supervisor.run()
        return STARTUP_FAILURE if supervisor.startup_failed() else 0

    from slipway.server.app import create_app

    app = create_app(settings)
    server = _Server(uvicorn.Config(app, **common), ready)
    previous = {sig: signal.signal(sig, ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else STARTUP_FAILURE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else STARTUP_FAILURE


__all__ = [
    "GRACEFUL_SHUTDOWN_SECONDS",
    "app_from_env",
    "display_url",
    "serve",
    "settings_from_env",
    "settings_to_env",
]
