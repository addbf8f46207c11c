"""Record every serving process as a deployment of the registered versions it serves.

Lineage runs from a dataset through the training run to the model version, and it should end
where the version actually answers requests. So ``slipway serve`` calls
:meth:`DeploymentRecorder.started` when a registered version goes live (at start and after a
hot reload), :meth:`~DeploymentRecorder.stopped` when it stops serving (reloaded away, or
the process exits), and :meth:`~DeploymentRecorder.close` on exit, which ends whatever is
still running. The registry then lists the deployment (``slipway.registry.deployments``) and
``slipway.registry.lineage("models:/iris@champion")`` shows it as a ``deployment`` node.

The registry is bookkeeping here, not a dependency of serving: the calls are queued and
carried out by one background thread, in order, so a slow or unreachable registry never
delays a start, a reload or a request. A call that fails is logged and dropped; serving goes
on. Models loaded from a plain path, a ``runs:/`` URI or an artifact URI have no registry
version and are not recorded.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from slipway.entities.registry import DeploymentStatus
from slipway.exceptions import InvalidParameterValue
from slipway.registry.store.base import AbstractRegistryStore
from slipway.utils.user import current_user

__all__ = ["DeploymentRecorder", "ServedModel"]

_log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 30.0
"""How long :meth:`DeploymentRecorder.close` waits for queued registry calls."""


class ServedModel(Protocol):
    """What the recorder reads from a served model
    (:class:`slipway.serving.loaded.LoadedModel` has it)."""

    @property
    def name(self) -> str:
        """The endpoint name it serves under."""
        ...

    @property
    def uri(self) -> str:
        """The URI it was loaded from."""
        ...

    @property
    def version(self) -> str | None:
        """Its registry version when the URI is ``models:/``, else None."""
        ...


@dataclass(frozen=True)
class _Key:
    endpoint: str
    uri: str
    version: str


@dataclass(frozen=True)
class _Target:
    """A registered version served under one endpoint name."""

    key: _Key
    model_name: str


def registered_name(uri: str) -> str | None:
    """The registered model a ``models:/`` URI names; None for any other URI (and for
    ``models:/<model_id>``, a logged model outside the registry)."""
    from slipway.models.uri import parse_models_uri

    if not uri.startswith("models:"):
        return None
    try:
        name, kind, _ = parse_models_uri(uri)
    except InvalidParameterValue:
        return None
    return None if kind == "model_id" else name


class DeploymentRecorder:
    """Records the registered versions this process serves as deployments in the registry.

    Args:
        endpoint_url: the base URL the server answers on (``http://host:8080``); each
            deployment's endpoint is ``<endpoint_url>/v2/models/<endpoint name>``, the URL
            that serves that name.
        tracking_uri: where the registry lives (the tracking URI in effect when None).
    """

    def __init__(self, endpoint_url: str, tracking_uri: str | None) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.tracking_uri = tracking_uri
        self._store: AbstractRegistryStore | None = None
        self._running: dict[_Key, str] = {}  # -> deployment id (touched by the worker only)
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="slipway-deployments", daemon=True)
        self._worker.start()

    # -- what serving calls ------------------------------------------------------------------

    def started(self, model: ServedModel) -> None:
        """``model`` serves from now on: record a RUNNING deployment of its version (once,
        however often this is called for the same endpoint, URI and version)."""
        target = self._target(model)
        if target is not None:
            details = self._details(model)
            self._submit(lambda: self._record(target, details))

    def stopped(self, model: ServedModel, failed: bool = False) -> None:
        """``model`` no longer serves: end its deployment as STOPPED, or FAILED."""
        target = self._target(model)
        if target is not None:
            status = DeploymentStatus.FAILED if failed else DeploymentStatus.STOPPED
            self._submit(lambda: self._end(target.key, status))

    def flush(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Wait until every call made so far has reached the registry (or failed); False if
        ``timeout`` seconds passed first."""
        done = threading.Event()
        if not self._submit(done.set):
            return True
        return done.wait(timeout)

    def close(self, failed: bool = False) -> None:
        """End every deployment still running (as FAILED when ``failed``), and stop. Waits
        for the registry at most :data:`CLOSE_TIMEOUT_S` seconds; safe to call twice."""
        status = DeploymentStatus.FAILED if failed else DeploymentStatus.STOPPED
        self._submit(lambda: self._end_all(status))
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._tasks.put(None)
        self._worker.join(CLOSE_TIMEOUT_S)
        if self._worker.is_alive():
            _log.warning(
                "The model registry did not answer within %.0f s; deployments of this server "
                "may still show as RUNNING",
                CLOSE_TIMEOUT_S,
            )

    @property
    def running(self) -> dict[tuple[str, str, str], str]:
        """``(endpoint, uri, version) -> deployment id`` of what this recorder has recorded
        and not ended yet (after :meth:`flush`, everything asked for so far)."""
        return {(k.endpoint, k.uri, k.version): d for k, d in dict(self._running).items()}

    # -- the worker ----------------------------------------------------------------------------

    def _target(self, model: ServedModel) -> _Target | None:
        name = registered_name(model.uri)
        if name is None or model.version is None:
            _log.debug("Not recording %s (%s): no registry version", model.name, model.uri)
            return None
        return _Target(_Key(model.name, model.uri, str(model.version)), name)

    def _details(self, model: ServedModel) -> dict[str, object]:
        from slipway import __version__

        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "uri": model.uri,
            "endpoint_name": model.name,
            "server_url": self.endpoint_url,
            "started_by": current_user(),
            "slipway_version": __version__,
        }

    def _submit(self, task: Callable[[], None]) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._tasks.put(task)
            return True

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            try:
                task()
            except Exception as exc:  # the registry must never take serving down
                _log.warning("Could not update the deployment record in the registry: %s", exc)

    def _registry(self) -> AbstractRegistryStore:
        if self._store is None:
            from slipway.registry.store import get_registry_store

            self._store = get_registry_store(self.tracking_uri)
        return self._store

    def _record(self, target: _Target, details: dict[str, object]) -> None:
        if target.key in self._running:
            return
        endpoint = f"{self.endpoint_url}/v2/models/{target.key.endpoint}"
        deployment = self._registry().record_deployment(
            target.model_name, target.key.version, endpoint, details
        )
        self._running[target.key] = deployment.deployment_id
        _log.info(
            "Recorded deployment %s of %s v%s at %s",
            deployment.deployment_id,
            target.model_name,
            target.key.version,
            endpoint,
        )

    def _end(self, key: _Key, status: DeploymentStatus) -> None:
        deployment_id = self._running.pop(key, None)
        if deployment_id is not None:
            self._registry().end_deployment(deployment_id, status)

    def _end_all(self, status: DeploymentStatus) -> None:
        for key in list(self._running):
            try:
                self._end(key, status)
            except Exception as exc:
                _log.warning("Could not end deployment of %s: %s", key.uri, exc)
