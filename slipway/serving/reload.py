"""Hot reload: a served URI that follows the registry.

A :class:`ModelSlot` holds the model that serves one URI now. When the URI can move (an alias
``models:/iris@champion``, ``models:/iris/latest``, or a stage ``models:/iris/Production``),
:meth:`ModelSlot.check` asks the registry what it names; when that is another version, the
new version loads in a thread while the old one keeps serving, then takes over by swapping
one reference. Requests already in flight finish on the old model, which unloads once they
have (see :meth:`LoadedModel.close`). A version that fails to load leaves the old one serving;
the failure is logged, counted (``observe_reload(..., ok=False)``) and written on the version
as the tag ``slipway.serving.load_error``, and the slot does not try that version again until
the URI moves elsewhere. :func:`watch` runs the checks every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from slipway.exceptions import SlipwayError, TemporarilyUnavailable
from slipway.serving import metrics
from slipway.serving.batching import BatchConfig
from slipway.serving.loaded import LoadedModel, registry_version

if TYPE_CHECKING:
    from slipway.entities.registry import ModelVersion

LOAD_ERROR_TAG = "slipway.serving.load_error"
"""The model version tag that records why a version failed to load for serving."""

_TAG_LIMIT = 1000
"""The load error is cut to this many characters (tags are for people, logs keep the rest)."""

_log = logging.getLogger(__name__)


def is_movable(uri: str) -> bool:
    """Whether ``uri`` can name another version later: an alias, ``latest`` or a stage."""
    from slipway.models.uri import parse_models_uri

    if not uri.startswith("models:"):
        return False
    _, kind, _ = parse_models_uri(uri)
    return kind in ("alias", "latest", "stage")


class ModelSlot:
    """The model serving one URI under an endpoint's name, replaceable while it serves.

    Args:
        name: the endpoint name (labels metrics and batches).
        uri: the model URI.
        batch: the batching of the loaded model.
        tracking_uri: the registry to resolve ``models:/`` URIs against.
        drain_timeout_s: how long a replaced model waits for its in-flight requests before it
            unloads anyway (None: as long as they take).
    """

    def __init__(
        self,
        name: str,
        uri: str,
        batch: BatchConfig,
        tracking_uri: str | None = None,
        drain_timeout_s: float | None = None,
    ) -> None:
        self.name = name
        self.uri = uri
        self.batch = batch
        self.tracking_uri = tracking_uri
        self.drain_timeout_s = drain_timeout_s
        self.movable = is_movable(uri)
        self._model: LoadedModel | None = None
        self._lock = asyncio.Lock()
        self._failed_version: str | None = None
        self._last_problem: str | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def model(self) -> LoadedModel:
        """The model serving now.

        Raises:
            TemporarilyUnavailable: before :meth:`load` finished, or after :meth:`close`.
        """
        if self._model is None:
            raise TemporarilyUnavailable(f"Model {self.uri!r} of {self.name!r} is not loaded")
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    async def load(self) -> LoadedModel:
        """Load the model for the first time (in a thread).

        Raises:
            SlipwayError: when it does not load; a registry version that fails is tagged.
        """
        async with self._lock:
            try:
                model = await asyncio.to_thread(self._load)
            except SlipwayError as exc:
                await self._record_failure(exc)
                raise
            self._model = model
            return model

    def _load(self) -> LoadedModel:
        return LoadedModel.load(self.name, self.uri, self.batch, self.tracking_uri)

    async def check(self) -> bool:
        """Load and switch to the version the URI names now, if it moved. True when the
        slot switched to another model; False when nothing changed or the new version
        failed to load (the old one keeps serving then)."""
        if not self.movable:
            return False
        async with self._lock:
            current = self._model
            if current is None:  # not loaded yet, or closed
                return False
            try:
                found = await asyncio.to_thread(registry_version, self.uri, self.tracking_uri)
            except SlipwayError as exc:
                self._problem(f"Cannot resolve {self.uri} for {self.name!r}: {exc.message}")
                return False
            if found is None or found.version in (current.version, self._failed_version):
                return False
            try:
                new = await asyncio.to_thread(self._load)
            except SlipwayError as exc:
                self._failed_version = found.version
                metrics.observe_reload(self.name, found.version, False)
                await self._record_failure(exc, found)
                return False
            self._failed_version = None
            self._last_problem = None
            if new.version != found.version:  # the URI moved again while the new one loaded
                _log.info("%s moved on while loading; serving v%s", self.uri, new.version)
            self._model = new  # the switch: requests from now on go to the new model
            metrics.observe_reload(self.name, new.version_label, True)
            _log.info(
                "%r now serves %s v%s (was v%s)", self.name, self.uri, new.version, current.version
            )
            self._retire(current)
            return True

    def _retire(self, old: LoadedModel) -> None:
        """Unload ``old`` in the background once its in-flight requests are answered."""
        task = asyncio.create_task(old.close(self.drain_timeout_s), name=f"retire {old!r}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _problem(self, message: str) -> None:
        """Log a recurring problem once, not on every check."""
        if message != self._last_problem:
            _log.warning("%s", message)
            self._last_problem = message

    async def _record_failure(self, exc: SlipwayError, version: ModelVersion | None = None) -> None:
        """Log a load failure and write it on the registry version that failed (the one the
        URI names now, when not given)."""
        _log.error("Cannot load %s for %r: %s", self.uri, self.name, exc.message)
        if version is None:
            try:
                version = await asyncio.to_thread(registry_version, self.uri, self.tracking_uri)
            except SlipwayError:
                return  # the URI names no version (that is the failure itself)
        if version is None:
            return
        message = f"{type(exc).__name__}: {exc.message}"[:_TAG_LIMIT]
        try:
            await asyncio.to_thread(self._tag, version.name, version.version, message)
        except Exception as tag_error:  # the registry may refuse or be away: serving goes on
            _log.warning(
                "Cannot tag %s v%s with %s: %s",
                version.name,
                version.version,
                LOAD_ERROR_TAG,
                tag_error,
            )

    def _tag(self, name: str, version: str, message: str) -> None:
        from slipway.registry import RegistryClient

        RegistryClient(self.tracking_uri).set_model_version_tag(
            name, version, LOAD_ERROR_TAG, message
        )

    async def close(self) -> None:
        """Unload the model (after its in-flight requests), and any being retired."""
        async with self._lock:
            model, self._model = self._model, None
        if model is not None:
            await model.close(self.drain_timeout_s)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


async def watch(slots: Sequence[ModelSlot], interval_s: float) -> None:
    """Check each movable slot every ``interval_s`` seconds, until cancelled. A check that
    fails unexpectedly is logged, and the watch goes on."""
    movable = [slot for slot in slots if slot.movable]
    if not movable or interval_s <= 0:
        return
    while True:
        await asyncio.sleep(interval_s)
        for slot in movable:
            try:
                await slot.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("Checking %s for a new version failed", slot.uri)


__all__ = ["LOAD_ERROR_TAG", "ModelSlot", "is_movable", "watch"]
