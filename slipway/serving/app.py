"""``create_serving_app(endpoints, settings)``: the model server as an ASGI application.

Routes, by protocol:

* health and housekeeping: ``GET /ping`` and ``GET /health`` (200 when every model is loaded,
  else 503), ``GET /version``, ``GET /metrics`` (Prometheus text);
* MLflow's scoring protocol: ``POST /invocations``. With one endpoint it serves that one;
  with several, name the endpoint with ``/invocations?model=NAME`` or
  ``POST /models/NAME/invocations``;
* the Open Inference Protocol V2: ``GET /v2``, ``GET /v2/health/live``,
  ``GET /v2/health/ready``, ``GET /v2/models/NAME[/versions/V]`` (metadata),
  ``GET .../ready``, ``POST .../infer``. A version in the path must be one being served
  (404 otherwise), and that version answers, whatever the endpoint's canary split says;
* KServe V1: ``GET /v1/models/NAME`` and ``POST /v1/models/NAME:predict``.

Errors keep each protocol's shape: ``{"error_code", "message"}`` on MLflow's routes,
``{"error": ...}`` on V1 and V2. Bad input is a 4xx naming the problem; a model that raises
is a 500 (logged) and the server keeps serving; a request over ``request_timeout_s`` is a 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import slipway
from slipway.exceptions import BadRequest, ResourceDoesNotExist, SlipwayError
from slipway.serving import metrics
from slipway.serving._http import (
    Shape,
    error_response,
    read_body,
    slipway_error_response,
)
from slipway.serving.codecs import UnsupportedMediaType, count_rows, require_rows
from slipway.serving.codecs import mlflow as mlflow_codec
from slipway.serving.codecs import v1 as v1_codec
from slipway.serving.codecs import v2 as v2_codec
from slipway.serving.endpoint import Endpoint, PredictResult
from slipway.serving.middleware import (
    AllowedHostsMiddleware,
    LifespanMiddleware,
    error_body,
    error_shape,
)
from slipway.serving.settings import ServingSettings

if TYPE_CHECKING:
    from slipway.models.signature import ModelSignature
    from slipway.serving.deployments import DeploymentRecorder
    from slipway.serving.loaded import LoadedModel
    from slipway.serving.request_log import RequestLogger

_log = logging.getLogger("slipway.serving")

PLATFORM = "slipway"
THREAD_CODEC_BYTES = 256 * 1024
"""Bodies at least this large are parsed in a worker thread, so the event loop keeps serving."""
THREAD_CODEC_ROWS = 10_000
"""Predictions of at least this many rows are turned into JSON in a worker thread."""
T = TypeVar("T")

DEPLOYMENT_CHECK_SECONDS = 1.0
"""How often the served versions are compared with the recorded deployments (hot reloads
change them)."""

Answer = tuple[Response, str]
"""A response, and the model version that gave it (for metrics)."""


class ServingState:
    """What the routes share: the endpoints, the settings, the request logger and the
    deployment recorder.

    Args:
        endpoints: served name -> endpoint (started by :meth:`start`).
        settings: the server's settings.
        request_logger: samples requests with their answers; closed with the server.
        deployment_recorder: records each served registry version as a deployment, from
            start (and hot reload) to stop; closed with the server.
    """

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        settings: ServingSettings,
        request_logger: RequestLogger | None = None,
        deployment_recorder: DeploymentRecorder | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.settings = settings
        self.request_logger = request_logger
        self.deployment_recorder = deployment_recorder
        self.started = False
        self._recorded: dict[tuple[str, str, str | None], LoadedModel] = {}
        self._tracker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load every endpoint's models, side by side; if one fails, unload the others."""
        if self.started:
            return
        results = await asyncio.gather(
            *(endpoint.start() for endpoint in self.endpoints.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(e.close() for e in self.endpoints.values()))
            if self.deployment_recorder is not None:
                await asyncio.to_thread(self.deployment_recorder.close, True)
            raise errors[0]
        self.started = True
        if self.deployment_recorder is not None:
            self.record_deployments()
            self._tracker = asyncio.create_task(self._track_deployments())

    async def close(self) -> None:
        """Unload every model (after its requests in flight), then end the deployment records
        and flush the request log."""
        if self._tracker is not None:
            self._tracker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tracker
        await asyncio.gather(*(e.close() for e in self.endpoints.values()))
        if self.deployment_recorder is not None:
            await asyncio.to_thread(self.deployment_recorder.close)
        if self.request_logger is not None:
            await asyncio.to_thread(self.request_logger.close)
        metrics.mark_process_dead()

    def record_deployments(self) -> None:
        """Tell the recorder which models started and stopped serving since the last call
        (returns at once: the recorder talks to the registry in its own thread)."""
        recorder = self.deployment_recorder
        if recorder is None:
            return
        now = {
            (m.name, m.uri, m.version): m
            for endpoint in self.endpoints.values()
            for m in endpoint.current()
        }
        for key, model in now.items():
            if key not in self._recorded:
                recorder.started(model)
        for key, model in self._recorded.items():
            if key not in now:
                recorder.stopped(model)
        self._recorded = now

    async def _track_deployments(self) -> None:
        while True:
            await asyncio.sleep(DEPLOYMENT_CHECK_SECONDS)
            try:
                self.record_deployments()
            except Exception:  # bookkeeping must never stop serving
                _log.exception("Cannot update the deployment records")

    @property
    def ready(self) -> bool:
        return all(endpoint.ready for endpoint in self.endpoints.values())

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint serving ``name``.

        Raises:
            ResourceDoesNotExist: naming the endpoints that are served (404).
        """
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            served = ", ".join(sorted(self.endpoints)) or "none"
            raise ResourceDoesNotExist(f"No model named {name!r} is served here (served: {served})")
        return endpoint

    def default_endpoint(self, request: Request) -> Endpoint:
        """The target of ``POST /invocations``: ``?model=NAME``, or the only endpoint."""
        name = request.query_params.get("model")
        if name is not None:
            return self.endpoint(name)
        if len(self.endpoints) == 1:
            return next(iter(self.endpoints.values()))
        raise BadRequest(
            f"This server serves several models ({', '.join(sorted(self.endpoints))}); name "
            "one with /invocations?model=NAME or POST /models/NAME/invocations"
        )

    def log_request(self, endpoint: str, version: str | None, request: Any, answer: Any) -> None:
        if self.request_logger is None:
            return
        try:
            self.request_logger.maybe_log(endpoint, version, request, answer)
        except Exception:  # logging must never fail a request
            _log.exception("Cannot log a request to %r", endpoint)


class _Routes:
    """The route handlers, bound to one :class:`ServingState`."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.settings = state.settings

    # -- the request path every prediction takes -------------------------------------------

    async def _predict_route(
        self,
        request: Request,
        protocol: str,
        shape: Shape,
        name: Callable[[], str],
        handle: Callable[[bytes], Awaitable[Answer]],
    ) -> Response:
        """Read the body, run ``handle`` within the request timeout, turn every failure into
        an error in the protocol's shape, and count the request in metrics."""
        started = time.perf_counter()
        version = ""
        model = ""
        try:
            # The body is read first, even for a request that fails at once, so the
            # connection stays usable for the client's next request.
            body = await read_body(
                request, self.settings.max_request_bytes, self.settings.request_timeout_s
            )
            model = name()
            async with asyncio.timeout(self.settings.request_timeout_s):
                response, version = await handle(body)
        except SlipwayError as exc:
            response = slipway_error_response(shape, exc)
        except TimeoutError:
            metrics.observe_error(model, version, "timeout")
            response = error_response(
                shape,
                504,
                "DEADLINE_EXCEEDED",
                f"The prediction took longer than {self.settings.request_timeout_s:g} s",
            )
        except Exception as exc:
            _log.exception("Model %r failed to predict", model)
            metrics.observe_error(model, version, "model")
            response = error_response(
                shape,
                500,
                "INTERNAL_ERROR",
                f"Model {model!r} failed to predict: {type(exc).__name__}: {exc}",
            )
        if response.status_code in (408, 413):
            # The body was not read to its end: the connection cannot carry another request.
            response.headers["connection"] = "close"
        if model in self.state.endpoints:
            metrics.observe_request(
                model, version, protocol, response.status_code, time.perf_counter() - started
            )
        return response

    # -- MLflow ---------------------------------------------------------------------------

    async def invocations(self, request: Request) -> Response:
        name = request.path_params.get("name")

        def target() -> str:
            endpoint = self.state.endpoint(name) if name else self.state.default_endpoint(request)
            return endpoint.name

        async def handle(body: bytes) -> Answer:
            endpoint = self.state.endpoint(target())
            content_type = request.headers.get("content-type")
            decoded = await _parse(body, lambda: mlflow_codec.decode_request(body, content_type))
            result = await endpoint.predict(decoded.data, decoded.params, request.headers)
            raw = await _offload(
                lambda: mlflow_codec.encode_response(result.predictions), result.predictions
            )
            self.state.log_request(
                endpoint.name, result.model_version, decoded.data, result.predictions
            )
            return _json(raw), result.model_version or ""

        return await self._predict_route(request, "mlflow", "mlflow", target, handle)

    # -- Open Inference Protocol V2 -------------------------------------------------------

    async def v2_infer(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        wanted: str | None = request.path_params.get("version")

        async def handle(body: bytes) -> Answer:
            endpoint = self.state.endpoint(name)
            pinned = _versioned(endpoint, wanted)
            encoding = request.headers.get("content-encoding", "identity").lower()
            if encoding != "identity":
                raise UnsupportedMediaType(
                    f"Content-Encoding {encoding!r} is not supported; send the body as is"
                )
            header_length = request.headers.get(v2_codec.HEADER_LENGTH)
            decoded = await _parse(body, lambda: v2_codec.decode_request(body, header_length))
            first = pinned or _first(endpoint)
            data = v2_codec.to_model_input(decoded.inputs, _inputs(first))
            require_rows(data)
            if pinned is not None:  # that version answers, whatever the routes say
                result = PredictResult(
                    await pinned.predict(data, decoded.parameters), name, pinned.version, pinned.uri
                )
            else:
                result = await endpoint.predict(data, decoded.parameters, request.headers)
            answered = _by_uri(endpoint, result.model_uri) or first
            version = result.model_version

            def encode() -> tuple[bytes, int | None]:
                outputs = v2_codec.to_outputs(result.predictions, _outputs(answered))
                chosen = v2_codec.select_outputs(outputs, decoded.outputs)
                return v2_codec.encode_response(name, version, decoded, chosen)

            raw, header_size = await _offload(encode, result.predictions)
            self.state.log_request(name, version, data, result.predictions)
            if header_size is None:
                return _json(raw), version or ""
            headers = {v2_codec.HEADER_LENGTH: str(header_size)}
            return Response(raw, media_type="application/octet-stream", headers=headers), (
                version or ""
            )

        return await self._predict_route(request, "v2", "oip", lambda: name, handle)

    async def v2_server(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "name": PLATFORM,
                "version": slipway.__version__,
                "extensions": list(v2_codec.EXTENSIONS),
            }
        )

    async def v2_live(self, _request: Request) -> Response:
        return Response(status_code=200)

    async def v2_ready(self, _request: Request) -> Response:
        return Response(status_code=200 if self.state.ready else 400)

    async def v2_model(self, request: Request) -> Response:
        try:
            endpoint = self.state.endpoint(request.path_params["name"])
            pinned = _versioned(endpoint, request.path_params.get("version"))
        except SlipwayError as exc:
            return slipway_error_response("oip", exc)
        models = [pinned] if pinned is not None else endpoint.current()
        first = models[0] if models else None
        return JSONResponse(
            {
                "name": endpoint.name,
                "versions": [m.version for m in models if m.version is not None],
                "platform": PLATFORM,
                "inputs": v2_codec.tensor_metadata(_inputs(first), "input"),
                "outputs": v2_codec.tensor_metadata(_outputs(first), v2_codec.DEFAULT_OUTPUT),
            }
        )

    async def v2_model_ready(self, request: Request) -> Response:
        try:
            endpoint = self.state.endpoint(request.path_params["name"])
            _versioned(endpoint, request.path_params.get("version"))
        except SlipwayError as exc:
            return slipway_error_response("oip", exc)
        return Response(status_code=200 if endpoint.ready else 400)

    # -- KServe V1 ------------------------------------------------------------------------

    async def v1_model(self, request: Request) -> Response:
        try:
            endpoint = self.state.endpoint(request.path_params["name"])
        except SlipwayError as exc:
            return slipway_error_response("oip", exc)
        return JSONResponse({"name": endpoint.name, "ready": endpoint.ready})

    async def v1_predict(self, request: Request) -> Response:
        name: str = request.path_params["name"]

        async def handle(body: bytes) -> Answer:
            endpoint = self.state.endpoint(name)
            schema = _inputs(_first(endpoint))
            decoded = await _parse(body, lambda: v1_codec.decode_request(body, schema))
            result = await endpoint.predict(decoded.data, decoded.params, request.headers)
            raw = await _offload(
                lambda: v1_codec.encode_response(result.predictions), result.predictions
            )
            self.state.log_request(name, result.model_version, decoded.data, result.predictions)
            return _json(raw), result.model_version or ""

        return await self._predict_route(request, "v1", "oip", lambda: name, handle)

    # -- housekeeping ---------------------------------------------------------------------

    async def ping(self, _request: Request) -> Response:
        ready = self.state.ready
        return PlainTextResponse("OK\n" if ready else "loading\n", 200 if ready else 503)

    async def version(self, _request: Request) -> Response:
        return PlainTextResponse(slipway.__version__)

    async def metrics(self, _request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, headers={"content-type": content_type})

    def routes(self) -> list[Route]:
        return [
            Route("/ping", self.ping, methods=["GET"]),
            Route("/health", self.ping, methods=["GET"]),
            Route("/version", self.version, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/invocations", self.invocations, methods=["POST"]),
            Route("/models/{name}/invocations", self.invocations, methods=["POST"]),
            Route("/v2", self.v2_server, methods=["GET"]),
            Route("/v2/health/live", self.v2_live, methods=["GET"]),
            Route("/v2/health/ready", self.v2_ready, methods=["GET"]),
            Route("/v2/models/{name}", self.v2_model, methods=["GET"]),
            Route("/v2/models/{name}/ready", self.v2_model_ready, methods=["GET"]),
            Route("/v2/models/{name}/infer", self.v2_infer, methods=["POST"]),
            Route("/v2/models/{name}/versions/{version}", self.v2_model, methods=["GET"]),
            Route(
                "/v2/models/{name}/versions/{version}/ready", self.v2_model_ready, methods=["GET"]
            ),
            Route("/v2/models/{name}/versions/{version}/infer", self.v2_infer, methods=["POST"]),
            Route("/v1/models/{name}:predict", self.v1_predict, methods=["POST"]),
            Route("/v1/models/{name}", self.v1_model, methods=["GET"]),
        ]


# -- helpers ---------------------------------------------------------------------------------


async def _parse(body: bytes, decode: Callable[[], T]) -> T:
    """Run a codec's decoder; in a worker thread for large bodies."""
    if len(body) >= THREAD_CODEC_BYTES:
        return await asyncio.to_thread(decode)
    return decode()


async def _offload(encode: Callable[[], T], predictions: Any) -> T:
    """Run a codec's encoder; in a worker thread for many rows of predictions."""
    if (count_rows(predictions) or 0) >= THREAD_CODEC_ROWS:
        return await asyncio.to_thread(encode)
    return encode()


def _json(raw: bytes) -> Response:
    return Response(raw, media_type="application/json")


def _first(endpoint: Endpoint) -> LoadedModel | None:
    models = endpoint.current()
    return models[0] if models else None


def _by_uri(endpoint: Endpoint, uri: str) -> LoadedModel | None:
    return next((m for m in endpoint.current() if m.uri == uri), None)


def _versioned(endpoint: Endpoint, version: str | None) -> LoadedModel | None:
    """The model serving ``version`` of ``endpoint`` (None when no version is asked for).

    Raises:
        ResourceDoesNotExist: when no model of that version is being served (404).
    """
    if version is None:
        return None
    for model in endpoint.current():
        if model.version == version:
            return model
    served = [m.version for m in endpoint.current() if m.version is not None]
    raise ResourceDoesNotExist(
        f"Model {endpoint.name!r} has no version {version!r} being served (serving: "
        f"{', '.join(served) or 'none with a registry version'})"
    )


def _signature(model: LoadedModel | None) -> ModelSignature | None:
    return model.signature if model is not None else None


def _inputs(model: LoadedModel | None) -> Any:
    signature = _signature(model)
    return signature.inputs if signature is not None else None


def _outputs(model: LoadedModel | None) -> Any:
    signature = _signature(model)
    return signature.outputs if signature is not None else None


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST"}.get(exc.status_code, "BAD_REQUEST")
    return error_response(error_shape(request.url.path), exc.status_code, code, str(exc.detail))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    _log.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    message = f"Internal server error ({type(exc).__name__}); see the server log"
    return error_response(error_shape(request.url.path), 500, "INTERNAL_ERROR", message)


def create_serving_app(
    endpoints: Mapping[str, Endpoint],
    settings: ServingSettings,
    *,
    request_logger: RequestLogger | None = None,
    deployment_recorder: DeploymentRecorder | None = None,
) -> Starlette:
    """The model server app for ``endpoints`` (not started yet: the app's lifespan startup
    loads their models, and its shutdown unloads them and closes ``request_logger``).

    Args:
        endpoints: served name -> endpoint.
        settings: limits (body size, timeout, allowed hosts) and batching.
        request_logger: samples requests with their answers for later analysis.
        deployment_recorder: records the served registry versions as deployments.
    """
    state = ServingState(endpoints, settings, request_logger, deployment_recorder)
    app = Starlette(
        routes=_Routes(state).routes(),
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        middleware=[
            Middleware(LifespanMiddleware, on_startup=state.start, on_shutdown=state.close),
            Middleware(
                AllowedHostsMiddleware, allowed=settings.allowed_hosts, error_body=error_body
            ),
        ],
    )
    app.state.serving = state
    return app


__all__ = ["PLATFORM", "ServingState", "create_serving_app"]
