"""What the tracking server and the model server share to run under uvicorn: the URL they
print, the logging setup, the worker supervisor that reports readiness, and the signal handler
that lets a graceful stop end with status 0. Needs uvicorn (the ``server`` extra)."""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 (names, not a bind)


def display_url(host: str, port: int) -> str:
    """``http://host:port``, with IPv6 addresses in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def probe_host(host: str) -> str:
    """Where to reach a server bound to ``host`` from this machine."""
    return "::1" if host == "::" else "127.0.0.1" if host in WILDCARD_HOSTS else host


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup, with Slipway's loggers on the same handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["slipway"] = {
        "handlers": ["default"],
        "level": "DEBUG" if level == "trace" else level.upper(),
        "propagate": False,
    }
    return config


def ignore_signal(_signum: int, _frame: object) -> None:
    """After a graceful shutdown uvicorn re-raises the signal it caught; this handler makes
    that a no-op, so the process ends with status 0 instead of dying from the signal."""


class ReadyWorkers(Multiprocess):
    """uvicorn's worker supervisor, calling ``on_ready(port)`` once ``is_ready(host, port)``
    says a worker answers (or giving up after ``timeout_s``, or when every worker died)."""

    def __init__(
        self,
        config: uvicorn.Config,
        sock: socket.socket,
        is_ready: Callable[[str, int], bool],
        on_ready: Callable[[int], None],
        timeout_s: float,
    ) -> None:
        super().__init__(config, sockets=[sock])
        self._port = int(sock.getsockname()[1])
        self._is_ready = is_ready
        self._on_ready = on_ready
        self._timeout_s = timeout_s

    def init_processes(self) -> None:
        super().init_processes()
        probe = probe_host(self.config.host)
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline and not self.signal_queue:
            if not any(p.process.is_alive() for p in self.processes):
                return
            if self._is_ready(probe, self._port):
                self._on_ready(self._port)
                return
            time.sleep(0.05)

    def startup_failed(self) -> bool:
        """Whether a worker ended with uvicorn's startup-failure status."""
        return any(p.exitcode == STARTUP_FAILURE for p in self.processes)
