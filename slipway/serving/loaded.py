"""One model loaded for serving: where its URI points, its signature, and its batcher.

A request goes through two steps here. :meth:`LoadedModel.validate` checks it against the
model's signature on arrival, so a bad request is answered 400 on its own and never joins a
batch; the :class:`~slipway.serving.batching.Batcher` then merges checked requests and calls
the flavor's prediction without checking them again
(:meth:`~slipway.flavors.pyfunc.PyFuncModel.predict_unchecked`).

A ``models:/`` URI is resolved against the registry of the given tracking URI (not only the
one in effect for the process), and the version it names at load time is kept: it labels
metrics and answers, and hot reload (:mod:`slipway.serving.reload`) compares it with what the
URI names later.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from slipway.exceptions import InvalidParameterValue, SlipwayError, TemporarilyUnavailable
from slipway.serving import metrics
from slipway.serving.batching import BatchConfig, Batcher

if TYPE_CHECKING:
    from slipway.entities.registry import ModelVersion
    from slipway.flavors.pyfunc import PyFuncModel
    from slipway.models.signature import ModelSignature

_log = logging.getLogger(__name__)

_MAX_REDIRECTS = 8
"""How many registry versions may copy other ``models:/`` URIs before resolution gives up."""

_PROXIED = frozenset({"mlflow-artifacts", "http", "https"})
"""Schemes whose downloads go through the tracking server named by the tracking URI."""


def registry_version(uri: str, tracking_uri: str | None = None) -> ModelVersion | None:
    """The registry version that ``uri`` names now: by number, alias, ``latest`` or stage.
    None for URIs that are not registry versions (paths, ``runs:/``, logged model ids).

    Raises:
        InvalidParameterValue: for a malformed ``models:/`` URI.
        ResourceDoesNotExist: for an unknown model, version or alias, or an empty stage.
    """
    from slipway.registry import RegistryClient
    from slipway.registry.uris import parse_models_uri, resolve_version

    if not uri.startswith("models:"):
        return None
    name, kind, ref = parse_models_uri(uri)
    if kind == "model_id":
        return None
    return resolve_version(RegistryClient(tracking_uri).store, name, kind, ref)


def download(uri: str, tracking_uri: str | None, dst: Path) -> tuple[Path, ModelVersion | None]:
    """The local directory of the model at ``uri`` (downloaded under ``dst`` unless it is
    local already), and the registry version ``uri`` names (None when it names none).

    Raises:
        SlipwayError: when the URI is malformed or names nothing.
    """
    from slipway.models.uri import download_model
    from slipway.registry import RegistryClient

    first = registry_version(uri, tracking_uri)
    location, version = uri, first
    for _ in range(_MAX_REDIRECTS):
        if version is None:
            break
        location = RegistryClient(tracking_uri).get_download_uri(version.name, version.version)
        version = registry_version(location, tracking_uri)  # a copied version points on
    else:
        raise InvalidParameterValue(f"Model URI {uri!r} refers to other models:/ URIs too often")
    location = _run_artifact_location(location, tracking_uri)
    if urlsplit(location).scheme.lower() in _PROXIED:
        return _download_proxied(location, tracking_uri, dst), first
    return download_model(location, dst), first


def _run_artifact_location(uri: str, tracking_uri: str | None) -> str:
    """``runs:/<run>/<path>`` as an artifact URI, with the run looked up in the store of
    ``tracking_uri``; other URIs as they are."""
    if not uri.startswith("runs:"):
        return uri
    from slipway.artifacts.paths import join_uri, safe_relative_path
    from slipway.models.uri import parse_runs_uri
    from slipway.tracking.uri import get_store

    run_id, path = parse_runs_uri(uri)
    root = get_store(tracking_uri).get_run(run_id).info.artifact_uri
    rel = safe_relative_path(path)
    return join_uri(root, rel) if rel else root


def _download_proxied(location: str, tracking_uri: str | None, dst: Path) -> Path:
    from slipway.artifacts import get_artifact_repository

    root, _, leaf = location.rstrip("/").rpartition("/")
    if not leaf or not urlsplit(location).path.strip("/"):
        raise InvalidParameterValue(f"Invalid model URI {location!r}: it names no folder")
    if root.endswith(":"):  # mlflow-artifacts:/model
        root += "/"
    return get_artifact_repository(root, tracking_uri=tracking_uri).download_artifacts(leaf, dst)


class LoadedModel:
    """A model ready to serve requests under ``name``.

    Build one with :meth:`load`. Requests go through :meth:`predict`; the model counts the
    ones in flight, so that :meth:`close` (after a hot reload replaced it) waits for them.

    Attributes:
        uri: the URI it was loaded from, as given (``models:/iris@champion``).
        name: the name it serves under (labels metrics and batches).
        version: the registry version the URI named at load time; None for other URIs.
        registered_name: the registered model of that version; None for other URIs.
        model: the loaded pyfunc model.
        signature: its signature (None when it has none: requests are taken as they are).
    """

    def __init__(
        self,
        name: str,
        uri: str,
        model: PyFuncModel,
        batch: BatchConfig,
        version: ModelVersion | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.uri = uri
        self.name = name
        self.version: str | None = version.version if version is not None else None
        self.registered_name: str | None = version.name if version is not None else None
        self.model = model
        self.signature: ModelSignature | None = model.metadata.signature
        self._workdir = workdir
        self._batch = batch
        self._batcher: Batcher | None = None  # made on first use, inside the event loop
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._unloaded = False
        metrics.set_loaded(name, self.version_label, True)

    def __repr__(self) -> str:
        return f"LoadedModel(name={self.name!r}, uri={self.uri!r}, version={self.version!r})"

    @classmethod
    def load(
        cls, name: str, uri: str, batch: BatchConfig, tracking_uri: str | None = None
    ) -> LoadedModel:
        """Resolve, download and load the model at ``uri``. Blocking: call it in a thread
        from async code.

        Raises:
            SlipwayError: for a URI that names nothing, or a model that does not load (a
                missing or corrupt file, an unknown flavor, a library it needs is missing).
        """
        from slipway.flavors.pyfunc import load_model

        workdir = Path(tempfile.mkdtemp(prefix="slipway-serve-"))
        try:
            local, version = download(uri, tracking_uri, workdir)
            model = load_model(str(local))
        except BaseException as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            if isinstance(exc, SlipwayError) or not isinstance(exc, Exception):
                raise
            raise InvalidParameterValue(
                f"Cannot load the model at {uri!r}: {type(exc).__name__}: {exc}"
            ) from exc
        return cls(name, uri, model, batch, version, workdir)

    @property
    def version_label(self) -> str:
        """The version as a metrics label: the number, or ``""`` outside the registry."""
        return self.version or ""

    @property
    def in_flight(self) -> int:
        """Requests submitted and not answered yet."""
        return self._in_flight

    @property
    def closed(self) -> bool:
        """Whether new requests are refused (the model is unloading or unloaded)."""
        return self._closed

    @property
    def unloaded(self) -> bool:
        """Whether the model is released: closed, and done with its last request."""
        return self._unloaded

    def validate(
        self, data: Any, params: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any] | None]:
        """``(data, params)`` checked against the signature and converted as it says.

        Raises:
            InvalidParameterValue: naming the column, shape, type or param that does not fit.
        """
        from slipway.models.enforcement import enforce_signature

        return enforce_signature(data, self.signature, params)

    async def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Validate one request, then predict it (batched with concurrent requests when the
        batch config allows).

        Raises:
            InvalidParameterValue: when the request does not fit the signature.
            TemporarilyUnavailable: when the model has been closed.
            Exception: whatever the model itself raises.
        """
        if self._closed:
            raise TemporarilyUnavailable(f"Model {self.name!r} ({self.uri}) is unloaded")
        data, params = self.validate(data, params)
        self._in_flight += 1
        self._idle.clear()
        if self._batcher is None:
            self._batcher = Batcher(
                self.model.predict_unchecked, self._batch, self.name, self.version_label
            )
        try:
            return await self._batcher.submit(data, params)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def close(self, drain_timeout_s: float | None = None) -> None:
        """Stop taking requests, wait for those in flight (up to ``drain_timeout_s``, forever
        when None), then release the batcher and any downloaded files."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout_s)
        except TimeoutError:
            _log.warning(
                "Unloading %r with %d requests still in flight after %.1f s",
                self,
                self._in_flight,
                drain_timeout_s,
            )
        if self._batcher is not None:
            await self._batcher.close()
        metrics.set_loaded(self.name, self.version_label, False)
        if self._workdir is not None:
            await asyncio.to_thread(shutil.rmtree, self._workdir, True)
        self._unloaded = True


__all__ = ["LoadedModel", "download", "registry_version"]
