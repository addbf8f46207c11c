"""An endpoint: one served name, and the models behind it.

An endpoint routes each request to one of its routes (one route: plain serving; several: a
canary split by weight), optionally mirrors it to a shadow model, and keeps every model
current with the registry (hot reload, :mod:`slipway.serving.reload`)::

    endpoint = Endpoint(
        "iris",
        [("models:/iris@champion", 90), ("models:/iris@challenger", 10)],
        shadow="models:/iris/9",
        sticky_header="x-user-id",
    )
    await endpoint.start()
    result = await endpoint.predict(frame)   # result.model_version says who answered

Routing is random by weight, unless ``sticky_header`` is set and the request carries it: then
a hash of the header's value picks the route, so one caller always meets the same version
(as long as the weights stay the same). The hash is SHA-256, not Python's ``hash``, so every
worker process of a server sends a caller to the same route.

The shadow sees every request after it was routed, in the background: the caller never waits
for it and never sees its answer or its errors. Requests wait in a bounded queue; when the
shadow falls behind and the queue is full, requests are not mirrored (counted in metrics as
``shadow_dropped`` errors). Its answers are logged (``logging`` at DEBUG, and the request
logger when one is given), and timed in metrics under protocol ``shadow``; the shadow's
metrics and request logs carry the name ``<endpoint>.shadow``, apart from the endpoint's own.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slipway.exceptions import InvalidParameterValue, SlipwayError, TemporarilyUnavailable
from slipway.serving import metrics
from slipway.serving.batching import BatchConfig
from slipway.serving.reload import ModelSlot, watch

if TYPE_CHECKING:
    from slipway.serving.loaded import LoadedModel
    from slipway.serving.request_log import RequestLogger

_log = logging.getLogger(__name__)

SHADOW_QUEUE_SIZE = 256
"""Requests waiting for the shadow model at most; more are not mirrored."""

SHADOW_CONCURRENCY = 4
"""Requests the shadow model works on at once (its batcher may merge them)."""


@dataclass
class PredictResult:
    """An answer, and who gave it.

    Attributes:
        predictions: what the model returned (not yet made JSON).
        model_name: the endpoint's name.
        model_version: the registry version that answered; None for a model outside the
            registry.
        model_uri: the route's URI (``models:/iris@champion``).
        model: the loaded model that answered (its signature describes the predictions; after
            a hot reload it may no longer be among :meth:`Endpoint.current`).
    """

    predictions: Any
    model_name: str
    model_version: str | None
    model_uri: str
    model: LoadedModel | None = field(default=None, repr=False, compare=False)


def normalise_weights(weights: Sequence[float]) -> list[float]:
    """``weights`` scaled to sum to 1.

    Raises:
        InvalidParameterValue: for no weights, or a weight that is not a positive number.
    """
    if not weights:
        raise InvalidParameterValue("A route needs at least one model URI")
    for weight in weights:
        if not isinstance(weight, (int, float)) or not weight > 0 or weight == float("inf"):
            raise InvalidParameterValue(f"Route weights must be positive numbers, not {weight!r}")
    total = float(sum(weights))
    return [float(weight) / total for weight in weights]


def sticky_point(value: str) -> float:
    """Where ``value`` falls in [0, 1): the same point in every process and every run."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def header_value(headers: Mapping[str, str] | None, name: str) -> str | None:
    """The value of header ``name`` (matched case-insensitively) or None."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


class Endpoint:
    """One served name: one model, or a weighted route between several (canary), an
    optional shadow, and hot reload for URIs that can move (``models:/name@alias``,
    ``models:/name/latest``, ``models:/name/<stage>``).

    Args:
        name: the name clients address (``/v2/models/<name>``, the ``/invocations`` target).
        routes: ``(uri, weight)`` pairs; weights are positive and are normalised to sum 1.
        batch: how each model batches concurrent requests.
        shadow: a model URI that sees a copy of every request; its answers are never returned.
        sticky_header: a request header whose value picks the route, so one caller keeps
            meeting the same version.
        reload_interval_s: how often movable URIs are checked against the registry (0: never).
        tracking_uri: the registry to resolve ``models:/`` URIs against (the tracking URI in
            effect when None).
        request_logger: where shadow requests and answers are logged, sampled as it decides.
        drain_timeout_s: how long a replaced model waits for its in-flight requests.
        rng: the random source of the weighted split (seed one for reproducible tests).
        shadow_queue_size: requests that may wait for the shadow.

    Raises:
        InvalidParameterValue: for no routes, a weight that is not positive, or a route URI
            given twice.
    """

    def __init__(
        self,
        name: str,
        routes: Sequence[tuple[str, float]],
        *,
        batch: BatchConfig | None = None,
        shadow: str | None = None,
        sticky_header: str | None = None,
        reload_interval_s: float = 10.0,
        tracking_uri: str | None = None,
        request_logger: RequestLogger | None = None,
        drain_timeout_s: float | None = 60.0,
        rng: random.Random | None = None,
        shadow_queue_size: int = SHADOW_QUEUE_SIZE,
    ) -> None:
        uris = [uri for uri, _ in routes]
        if len(set(uris)) != len(uris):
            raise InvalidParameterValue(f"Endpoint {name!r} routes to the same URI twice: {uris}")
        batch = batch or BatchConfig()
        self.name = name
        self.sticky_header = sticky_header
        self.reload_interval_s = reload_interval_s
        self.weights = normalise_weights([weight for _, weight in routes])
        self._bounds = _cumulative(self.weights)
        self._routes = [ModelSlot(name, uri, batch, tracking_uri, drain_timeout_s) for uri in uris]
        self._shadow = (  # under a name of its own, so that its metrics stay apart
            ModelSlot(f"{name}.shadow", shadow, batch, tracking_uri, drain_timeout_s)
            if shadow
            else None
        )
        self._rng = rng or random.Random()
        self._request_logger = request_logger
        self._shadow_queue: asyncio.Queue[tuple[Any, dict[str, Any] | None]] = asyncio.Queue(
            shadow_queue_size
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        routes = ", ".join(
            f"{s.uri}:{w:.3g}" for s, w in zip(self._routes, self.weights, strict=True)
        )
        return f"Endpoint({self.name!r}, [{routes}], shadow={self.shadow_uri!r})"

    @property
    def uris(self) -> list[str]:
        """The route URIs, in order."""
        return [slot.uri for slot in self._routes]

    @property
    def shadow_uri(self) -> str | None:
        return self._shadow.uri if self._shadow is not None else None

    def _slots(self) -> list[ModelSlot]:
        return [*self._routes, *([self._shadow] if self._shadow is not None else [])]

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every model (in threads, side by side), then start the reload watcher and
        the shadow workers.

        Raises:
            SlipwayError: when a model does not load; the ones that did are unloaded again.
        """
        if self._started:
            return
        results = await asyncio.gather(
            *(slot.load() for slot in self._slots()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(slot.close() for slot in self._slots()))
            raise errors[0]
        self._started = True
        if self.reload_interval_s > 0 and any(slot.movable for slot in self._slots()):
            self._spawn(watch(self._slots(), self.reload_interval_s), "reload")
        if self._shadow is not None:
            for index in range(SHADOW_CONCURRENCY):
                self._spawn(self._shadow_worker(), f"shadow-{index}")

    def _spawn(self, coro: Any, what: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"{self.name} {what}"))

    @property
    def ready(self) -> bool:
        """Whether every model is loaded and requests are taken."""
        return self._started and not self._closed and all(s.loaded for s in self._slots())

    def current(self) -> list[LoadedModel]:
        """The models that answer requests now, one per route (the shadow is not listed)."""
        return [slot.model for slot in self._routes if slot.loaded]

    def shadow_model(self) -> LoadedModel | None:
        """The shadow model now, if there is one and it is loaded."""
        return self._shadow.model if self._shadow is not None and self._shadow.loaded else None

    async def check_for_updates(self) -> bool:
        """Check every movable URI against the registry now (the watcher does this every
        ``reload_interval_s``); True when some model was replaced."""
        changed = [await slot.check() for slot in self._slots()]
        return any(changed)

    async def close(self) -> None:
        """Stop the watcher and the shadow, then unload every model once its in-flight
        requests are answered."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await asyncio.gather(*(slot.close() for slot in self._slots()))

    # -- requests -----------------------------------------------------------------------------

    def route_for(self, headers: Mapping[str, str] | None = None) -> int:
        """The index of the route a request with ``headers`` goes to."""
        if len(self._routes) == 1:
            return 0
        key = header_value(headers, self.sticky_header) if self.sticky_header else None
        point = sticky_point(key) if key is not None else self._rng.random()
        return min(bisect.bisect_right(self._bounds, point), len(self._routes) - 1)

    async def predict(
        self,
        data: Any,
        params: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PredictResult:
        """Answer one request with the model its route picks (and mirror it to the shadow).

        Raises:
            InvalidParameterValue: when the request does not fit that model's signature.
            TemporarilyUnavailable: before :meth:`start` finished, or after :meth:`close`.
            Exception: whatever the model itself raises.
        """
        if not self._started or self._closed:
            raise TemporarilyUnavailable(f"Endpoint {self.name!r} is not serving")
        slot = self._routes[self.route_for(headers)]
        model = slot.model
        if self._shadow is not None:
            self._mirror(data, params)
        predictions = await model.predict(data, params)
        return PredictResult(predictions, self.name, model.version, slot.uri, model)

    # -- shadow -------------------------------------------------------------------------------

    def _mirror(self, data: Any, params: dict[str, Any] | None) -> None:
        try:
            self._shadow_queue.put_nowait((data, params))
        except asyncio.QueueFull:
            shadow = self.shadow_model()
            metrics.observe_error(
                f"{self.name}.shadow", shadow.version_label if shadow else "", "shadow_dropped"
            )

    async def _shadow_worker(self) -> None:
        while True:
            data, params = await self._shadow_queue.get()
            try:
                await self._run_shadow(data, params)
            finally:
                self._shadow_queue.task_done()

    async def _run_shadow(self, data: Any, params: dict[str, Any] | None) -> None:
        """Predict one mirrored request with the shadow; log and count, never raise."""
        assert self._shadow is not None
        try:
            model = self._shadow.model
        except SlipwayError:
            return  # closing
        started = time.perf_counter()
        try:
            predictions = await model.predict(data, params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            seconds = time.perf_counter() - started
            status = exc.http_status if isinstance(exc, SlipwayError) else 500
            metrics.observe_request(model.name, model.version_label, "shadow", status, seconds)
            metrics.observe_error(model.name, model.version_label, "shadow")
            _log.warning("Shadow %s of %r failed: %s", model.uri, self.name, exc)
            return
        seconds = time.perf_counter() - started
        metrics.observe_request(model.name, model.version_label, "shadow", 200, seconds)
        _log.debug(
            "Shadow %s (v%s) of %r answered in %.1f ms: %r",
            model.uri,
            model.version,
            self.name,
            seconds * 1000,
            predictions,
        )
        if self._request_logger is not None:
            self._log_shadow(model, data, predictions)

    def _log_shadow(self, model: LoadedModel, data: Any, predictions: Any) -> None:
        """Hand the shadow's answer to the request logger (which samples it, and turns it
        into JSON in its own thread)."""
        assert self._request_logger is not None
        try:
            self._request_logger.maybe_log(model.name, model.version, data, predictions)
        except Exception:  # logging must never break the shadow worker
            _log.exception("Cannot log a shadow answer of %r", self.name)

    async def wait_for_shadow(self) -> None:
        """Wait until every mirrored request so far has been answered by the shadow (for
        tests and graceful stops)."""
        await self._shadow_queue.join()


def _cumulative(weights: Sequence[float]) -> list[float]:
    bounds: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        bounds.append(total)
    bounds[-1] = 1.0  # no gap at the top from rounding
    return bounds


__all__ = ["Endpoint", "PredictResult", "header_value", "normalise_weights", "sticky_point"]
