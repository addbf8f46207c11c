"""Serving on Ray Serve: replicas of the very same model server, spread over a Ray cluster.

Each replica is a Ray Serve replica whose HTTP ingress is the app that ``slipway serve``
runs locally, built by :func:`slipway.serving.runner.build_app` from the same
:class:`~slipway.serving.runner.ServePlan`. So every route (``/invocations``, V2, V1,
``/ping``, ``/health``, ``/metrics``), the batcher, canary routes, the shadow, hot reload of
``models:/name@alias`` and the deployment records behave as they do locally, once per
replica: each replica batches its own requests, watches its own aliases and records its own
deployment (as each worker of ``slipway serve --workers N`` does). Ray Serve's proxies take
the HTTP requests and spread them over the replicas; a replica lost with its node is started
again elsewhere by Serve's controller. ``/metrics`` answers for the replica that took the
request.

Every response names who answered in two headers, :data:`REPLICA_HEADER` and
:data:`NODE_HEADER`, so a client (or a test) can tell the replicas apart.

Ray is an extra (``pip install 'slipway[ray]'``): this module imports it only inside its
functions. A replica request that no node of the cluster can hold is refused before anything
is deployed, an address nothing answers at fails in seconds, and a deployment that does not
become ready in time is deleted again with an error saying why (the models failed to load, or
the cluster has no room for the replicas now).

::

    deployment = deploy("models:/iris@champion", replicas=4, ray_address="auto", port=8000)
    print(deployment.url)            # http://127.0.0.1:8000
    undeploy(deployment)
"""

from __future__ import annotations

import http.client
import importlib
import logging
import os
import re
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable
from slipway.serving.settings import ServingSettings

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from slipway.serving.app import ServingState
    from slipway.serving.config import EndpointSpec

_log = logging.getLogger("slipway.serving")

APP_NAME = "slipway"
"""The Ray Serve application name used unless another is given."""
DEPLOYMENT_NAME = "SlipwayModelServer"
REPLICA_HEADER = "x-slipway-replica"
"""Response header: the id of the Ray Serve replica that answered."""
NODE_HEADER = "x-slipway-node"
"""Response header: the id of the Ray node that replica runs on."""
READY_TIMEOUT_SECONDS = 600.0
"""How long :func:`deploy` waits for every replica to load its models."""
PROXY_WAIT_SECONDS = 30.0
"""How long :func:`deploy` waits for Serve's HTTP proxy to route to a running application."""
STATUS_POLL_SECONDS = 0.5
MONITOR_SECONDS = 5.0
"""How often a blocking serve checks the application's status (and logs changes)."""
LOCAL_STOP_GRACE_SECONDS = 0.5
"""How long a stopping server gives a local Ray instance that got the same signal to go."""
DEFAULT_MAX_ONGOING_REQUESTS = 128
"""Requests a replica works on at once. Ray Serve's own default (5) would starve the
batcher, which merges concurrent requests into one ``predict`` call."""
FORWARDED_ENV = ("SLIPWAY_ARTIFACT_ROOT",)
"""Variables of this process that replicas get too (where artifacts are)."""
_STARTUP_LINE = re.compile(
    r"(?:InvalidParameterValue|ResourceDoesNotExist|SlipwayError\w*|"
    r"TemporarilyUnavailable|PermissionDenied)\w*:\s*(.+)"
)


@dataclass(frozen=True)
class RayDeployment:
    """A Slipway model server deployed on Ray Serve.

    Attributes:
        url: where its HTTP proxy answers (``http://host:port``).
        app_name: the Ray Serve application name (what :func:`undeploy` deletes).
        replicas: the number of replicas asked for.
        description: what is served, with the versions loaded (``iris=models:/iris@champion
            v3``), as ``slipway serve`` prints it.
        ray_address: where Ray is (``"local"`` for an instance on this machine).
        started_ray: whether :func:`deploy` started that Ray instance itself, so that
            :func:`undeploy` stops it again.
    """

    url: str
    app_name: str
    replicas: int
    description: str
    ray_address: str
    started_ray: bool = False


# -- what runs in each replica ---------------------------------------------------------------


class ReplicaHeaders:
    """ASGI middleware naming the replica and node that answered, on every HTTP response."""

    def __init__(self, app: ASGIApp, replica_id: str, node_id: str) -> None:
        self.app = app
        self.headers = [
            (REPLICA_HEADER.encode(), replica_id.encode("latin-1")),
            (NODE_HEADER.encode(), node_id.encode("latin-1")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_named)


async def build_replica_app(plan_json: str) -> tuple[ASGIApp, ServingState]:
    """The app one replica serves, with its models loaded, and its serving state.

    The models load here rather than in the app's lifespan, so a model that does not load
    fails the replica with the reason itself (Ray Serve reports the exception)."""
    from slipway.engines.ray import current_node_id
    from slipway.serving.runner import ServePlan, build_app

    plan = ServePlan.from_json(plan_json)
    app = build_app(plan)
    state: ServingState = app.state.serving
    await state.start()
    try:
        replica_id = _serve().get_replica_context().replica_id.unique_id
    except Exception:  # outside a replica (a unit test): the process names it
        replica_id = f"pid-{os.getpid()}"
    return ReplicaHeaders(app, str(replica_id), current_node_id()), state


def served_versions(state: ServingState) -> dict[str, list[str]]:
    """Endpoint name -> the registry versions its models serve now."""
    return {
        name: [m.version for m in endpoint.current() if m.version is not None]
        for name, endpoint in state.endpoints.items()
    }


def _serve() -> Any:
    """The ``ray.serve`` module (untyped here: its decorators confuse type checkers).

    Its first import defines pydantic models in a way pydantic deprecates; that warning is
    Ray's to fix and says nothing to our users, so it is silenced for that import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("ray.serve")


def set_ray_serve_log_level(level: int | str) -> None:
    """Set the level of Ray Serve's client log in this process (it logs its start-up steps
    at INFO). Ray Serve sets its logger up when first imported, so it is imported here."""
    from slipway.engines.ray import require_ray

    require_ray()
    _serve()
    logging.getLogger("ray.serve").setLevel(level)


def _replica_class() -> Any:
    """The Ray Serve deployment class (defined here, as the decorators need Ray)."""
    serve = _serve()

    @serve.ingress()
    class SlipwayReplica:
        """One replica: the Slipway model server app, built from a serialised plan."""

        def __init__(self, plan_json: str) -> None:
            self._plan_json = plan_json
            self._state: ServingState | None = None

        async def __serve_build_asgi_app__(self) -> ASGIApp:
            app, self._state = await build_replica_app(self._plan_json)
            return app

        def versions(self) -> dict[str, list[str]]:
            """What this replica serves now (called through a deployment handle)."""
            return served_versions(self._state) if self._state is not None else {}

        def check_health(self) -> None:
            """Serve restarts a replica whose models are gone."""
            if self._state is not None and not self._state.ready:
                raise RuntimeError("the replica's models are not loaded")

    return SlipwayReplica


# -- deploying -------------------------------------------------------------------------------


def portable_tracking_uri(uri: str | None) -> str:
    """``uri`` (or the tracking URI in effect) in a form that means the same in a replica:
    a relative folder or SQLite path becomes absolute (a replica's working directory is not
    this one's)."""
    from pathlib import Path

    from slipway.tracking.uri import get_tracking_uri

    uri = uri or get_tracking_uri()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme.startswith("sqlite") and ":///" in uri:
        head, path = uri.split(":///", 1)
        if path and not path.startswith(("/", ":memory:")):
            return f"{head}:///{Path(path).absolute()}"
        return uri
    if scheme == "file":
        return "file://" + str(Path(uri[len("file://") :]).absolute())
    if scheme:
        return uri
    return str(Path(uri).absolute())


def _specs(specs_or_uri: str | Sequence[EndpointSpec]) -> list[EndpointSpec]:
    from slipway.serving.config import parse_serve_args

    if isinstance(specs_or_uri, str):
        return parse_serve_args(specs_or_uri, [], [], None)
    specs = list(specs_or_uri)
    if not specs:
        raise InvalidParameterValue("Nothing to serve: give a model URI or endpoint specs")
    return specs


def _check_models(specs: Sequence[EndpointSpec], tracking_uri: str) -> None:
    """Refuse now a ``models:/`` URI that names nothing, rather than in every replica."""
    from slipway.serving.loaded import registry_version

    for spec in specs:
        for uri in [u for u, _ in spec.routes] + ([spec.shadow] if spec.shadow else []):
            registry_version(uri, tracking_uri)


def _serve_url(host: str, port: int, connected_to: str) -> str:
    """The URL clients use: ``host``, or for a wildcard bind the head node's host."""
    from slipway.utils.uvicorn_run import WILDCARD_HOSTS, display_url

    if host in WILDCARD_HOSTS:
        head = connected_to.removeprefix("ray://").rpartition(":")[0]
        host = head if head and connected_to not in ("local", "auto") else "127.0.0.1"
    return display_url(host, port)


def _start_serve(host: str, port: int) -> int:
    """Start Ray Serve's controller and proxies (once per cluster) and return the port its
    proxies listen on: the one asked for, or that of a Serve already running there."""
    serve = _serve()

    serve.start(http_options={"host": host, "port": port})
    try:
        context: Any = importlib.import_module("ray.serve.context")
        running = int(context._get_global_client().http_config.port)
    except Exception:  # the internal client moved: trust what was asked for
        return port
    if running != port:
        _log.warning(
            "Ray Serve already runs on this cluster with its proxies on port %d; port %d is "
            "not used (Serve's HTTP options are fixed until Serve is shut down)",
            running,
            port,
        )
    return running


def deploy(
    specs_or_uri: str | Sequence[EndpointSpec],
    *,
    replicas: int = 1,
    ray_address: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServingSettings | None = None,
    replica_cpus: float = 1.0,
    replica_gpus: float = 0.0,
    app_name: str = APP_NAME,
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS,
    ready_timeout_s: float = READY_TIMEOUT_SECONDS,
) -> RayDeployment:
    """Deploy a model server on Ray Serve and return once every replica serves.

    Args:
        specs_or_uri: a model URI (served under its registered name), or endpoint specs
            (:func:`slipway.serving.config.parse_serve_args` builds them from CLI arguments).
        replicas: replicas of the server; each loads every model.
        ray_address: the cluster (see :func:`slipway.engines.ray.connect`); None starts a
            local Ray instance unless ``SLIPWAY_RAY_ADDRESS``/``RAY_ADDRESS`` names one.
        host, port: where Serve's HTTP proxies listen (fixed for the cluster once Serve has
            started there; the returned URL names the port actually used). Port 0 picks a
            free port of this machine (for a cluster on this machine).
        settings: batching, limits, reload interval, registry and logging, as for local
            serving (``host``, ``port`` and ``workers`` of it are not used). Replicas reach
            the registry at ``settings.tracking_uri`` (made absolute when it is a path): on a
            cluster of several machines, use a tracking server or a database they all reach.
        replica_cpus, replica_gpus: what each replica reserves on its node.
        app_name: the Ray Serve application; deploying a name again replaces it.
        max_ongoing_requests: requests one replica works on at once.
        ready_timeout_s: how long to wait for the replicas to load their models.

    Raises:
        InvalidParameterValue: bad arguments, a replica no node can hold, or a model that
            does not load.
        ResourceDoesNotExist: a ``models:/`` URI that names nothing.
        TemporarilyUnavailable: Ray cannot be reached, or the replicas did not become ready
            in time (the application is deleted again).
    """
    from slipway.engines import ray as ray_engine
    from slipway.serving.runner import ServePlan, describe

    checks = (
        (replicas >= 1, "replicas must be at least 1"),
        (replica_cpus >= 0, "replica_cpus cannot be negative"),
        (replica_gpus >= 0, "replica_gpus cannot be negative"),
        (max_ongoing_requests >= 1, "max_ongoing_requests must be at least 1"),
        (0 <= port <= 65535, "port must be between 0 and 65535"),
        (bool(re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", app_name)), f"bad app name {app_name!r}"),
    )
    for ok, message in checks:
        if not ok:
            raise InvalidParameterValue(message)
    specs = _specs(specs_or_uri)
    settings = settings or ServingSettings()
    tracking_uri = portable_tracking_uri(settings.tracking_uri)
    _check_models(specs, tracking_uri)

    was_connected = bool(ray_engine.require_ray().is_initialized())
    connected_to = ray_engine.connect(ray_address)
    started_ray = not was_connected and connected_to == "local"
    ray_engine.check_fits(f"A replica of {app_name!r}", cpu=replica_cpus, gpu=replica_gpus)
    if port == 0:
        port = _free_port(host)
    port = _start_serve(host, port)
    url = _serve_url(host, port, connected_to)
    settings = replace(
        settings,
        host=host,
        port=port,
        workers=1,
        tracking_uri=tracking_uri,
        allowed_hosts=_with_url_host(settings.allowed_hosts, url),
    )
    plan = ServePlan(specs, settings, url)

    serve = _serve()

    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    actor_options: dict[str, Any] = {"num_cpus": replica_cpus, "num_gpus": replica_gpus}
    if env:
        actor_options["runtime_env"] = {"env_vars": env}
    deployment = serve.deployment(
        _replica_class(),
        name=DEPLOYMENT_NAME,
        num_replicas=replicas,
        ray_actor_options=actor_options,
        max_ongoing_requests=max_ongoing_requests,
    )
    try:
        serve._run(
            deployment.bind(plan.to_json()), name=app_name, route_prefix="/", _blocking=False
        )
    except serve.exceptions.RayServeException as exc:  # refused by Serve's controller
        raise InvalidParameterValue(
            f"Ray Serve refused {app_name!r}: {_startup_reason(str(exc))} (Slipway serves at "
            "'/', so one of its applications runs on a cluster at a time: undeploy the other "
            "one, or deploy under its name to replace it)"
        ) from None
    try:
        _wait_running(app_name, ready_timeout_s)
        versions = _versions(app_name)
        _wait_proxy(url)
    except BaseException:
        _delete(app_name)
        raise
    description = describe(specs, versions)
    return RayDeployment(url, app_name, replicas, description, connected_to, started_ray)


def _with_url_host(allowed: tuple[str, ...], url: str) -> tuple[str, ...]:
    """The default Host allow-list plus the host the URL names (the head node's address
    when the proxies listen on every interface); an allow-list given explicitly is kept."""
    from urllib.parse import urlsplit

    from slipway.serving.settings import DEFAULT_ALLOWED_HOSTS

    host = urlsplit(url).hostname or ""
    named = f"[{host}]" if ":" in host else host
    if set(allowed) != set(DEFAULT_ALLOWED_HOSTS) or not host or named in allowed:
        return allowed
    return (*allowed, named)


def _free_port(host: str) -> int:
    from slipway.utils.uvicorn_run import probe_host

    with socket.socket() as sock:
        sock.bind((probe_host(host), 0))
        return int(sock.getsockname()[1])


def _app_status(app_name: str) -> tuple[str, str]:
    """The application's status and what its deployment says (Serve's own words)."""
    serve = _serve()

    app = serve.status().applications.get(app_name)
    if app is None:
        return "NOT_STARTED", ""
    status = str(getattr(app.status, "value", app.status))
    messages = [app.message] + [d.message for d in app.deployments.values()]
    return status, "\n".join(m for m in messages if m)


def _startup_reason(message: str) -> str:
    """The line of a replica's failure that says why (our error's message), if there is one."""
    found = [m.group(1).strip() for m in _STARTUP_LINE.finditer(message)]
    if found:
        return found[-1]
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    return re.sub(r"^[\w.]*(?:Error|Exception):\s*", "", lines[-1])


def _wait_running(app_name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        status, message = _app_status(app_name)
        if status == "RUNNING":
            return
        if status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise InvalidParameterValue(
                f"The model server on Ray Serve did not start: {_startup_reason(message)}"
            )
        if time.monotonic() > deadline:
            raise TemporarilyUnavailable(
                f"The replicas of {app_name!r} were not ready within {timeout_s:g} s "
                f"({message.strip() or status}); the application was deleted"
            )
        time.sleep(STATUS_POLL_SECONDS)


def _versions(app_name: str) -> dict[str, list[str]]:
    serve = _serve()

    handle = serve.get_app_handle(app_name)
    found: dict[str, list[str]] = handle.versions.remote().result(timeout_s=60)
    return found


def _wait_proxy(url: str) -> None:
    """Wait until the proxy routes to the application (it learns of it a moment after the
    replicas run); gives up quietly, as a remote proxy may not be reachable from here."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    deadline = time.monotonic() + PROXY_WAIT_SECONDS
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(host, port, timeout=2.0)
        try:
            connection.request("GET", "/v2", headers={"Host": "localhost"})
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(STATUS_POLL_SECONDS)
    _log.warning("Ray Serve's proxy at %s did not answer yet", url)


def _delete(app_name: str) -> None:
    serve = _serve()

    try:
        serve.delete(app_name)
    except Exception:  # best effort while another error is on its way
        _log.exception("Cannot delete the Ray Serve application %r", app_name)


def undeploy(deployment: RayDeployment | str = APP_NAME, *, ray_address: str | None = None) -> None:
    """Delete a model server from Ray Serve (its replicas unload their models and end their
    deployment records first). When :func:`deploy` started the Ray instance, Serve and Ray
    are shut down too; on a cluster, Serve's controller and proxies stay for other apps.

    Args:
        deployment: what :func:`deploy` returned, or an application name.
        ray_address: the cluster, when this process is not connected yet.
    """
    from slipway.engines import ray as ray_engine

    ray_engine.connect(ray_address)
    serve = _serve()

    name = deployment.app_name if isinstance(deployment, RayDeployment) else deployment
    serve.delete(name)
    if isinstance(deployment, RayDeployment) and deployment.started_ray:
        serve.shutdown()
        ray_engine.shutdown()


# -- serving until stopped (the CLI) ---------------------------------------------------------


def serve_until_stopped(
    specs: Sequence[EndpointSpec],
    settings: ServingSettings,
    *,
    on_ready: Callable[[RayDeployment], None] | None = None,
    **deploy_args: Any,
) -> int:
    """Deploy, call ``on_ready``, block until SIGINT or SIGTERM, then undeploy; the exit
    status (0 after a clean stop, 1 when the Ray cluster went away meanwhile).

    Args:
        specs, settings: what to serve and how, as for local serving.
        on_ready: called once every replica serves.
        deploy_args: the other arguments of :func:`deploy` (``replicas``, ``ray_address``,
            ``replica_cpus``, ...).
    """
    from slipway.engines import ray as ray_engine

    # Connect first: ray.init installs SIGTERM handlers of its own (one exits at once, one
    # prints a stack trace); ours replace them so a stop deletes the application first.
    was_connected = bool(ray_engine.require_ray().is_initialized())
    started_ray = (
        not was_connected and ray_engine.connect(deploy_args.get("ray_address")) == "local"
    )
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        deployment = deploy(
            specs, settings=settings, host=settings.host, port=settings.port, **deploy_args
        )
        deployment = replace(deployment, started_ray=started_ray)
        status = 0
        try:
            if on_ready is not None and not stop.is_set():
                on_ready(deployment)
            status = _monitor(deployment, stop)
        finally:
            if deployment.started_ray and not _local_ray_alive():
                _log.warning("The local Ray instance has stopped too (the same signal reached it)")
                _no_auto_init()
            else:
                try:
                    undeploy(deployment)
                except Exception as exc:
                    if not status:  # the cluster is gone already when status says so
                        raise
                    _log.warning("Cannot delete %r from Ray Serve: %s", deployment.app_name, exc)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _local_ray_alive() -> bool:
    """Whether the Ray instance this process started still answers. A signal sent to the
    whole process group (``timeout``, a service manager) stops Ray's own processes too, and
    asking a stopped instance to delete an application waits a minute for nothing."""
    from slipway.engines.ray import require_ray

    address = str(require_ray().get_runtime_context().gcs_address)
    host, _, port = address.rpartition(":")
    time.sleep(LOCAL_STOP_GRACE_SECONDS)  # let a signalled instance finish stopping
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def _no_auto_init() -> None:
    """Keep Ray from starting a new local instance while this process exits: Serve's client
    threads would call into Ray once more, and Ray starts an instance for a call made when
    none is connected."""
    try:
        hook: Any = importlib.import_module("ray._private.auto_init_hook")
        hook.enable_auto_connect = False
    except (ImportError, AttributeError):  # a Ray without that switch: nothing to turn off
        pass


def _monitor(deployment: RayDeployment, stop: threading.Event) -> int:
    """Log the application's status when it changes (a replica lost with its node, restarted
    elsewhere), until ``stop`` is set; 1 when Ray cannot be asked any more."""
    last = "RUNNING"
    failures = 0
    while not stop.wait(MONITOR_SECONDS):
        try:
            status, message = _app_status(deployment.app_name)
            failures = 0
        except Exception as exc:
            failures += 1
            if failures >= 3:
                _log.error("Lost the Ray cluster (%s); stopping", exc)
                return 1
            continue
        if status != last:
            level = logging.INFO if status == "RUNNING" else logging.WARNING
            _log.log(
                level, "Ray Serve application %r is %s. %s", deployment.app_name, status, message
            )
            last = status
    return 0


__all__ = [
    "APP_NAME",
    "NODE_HEADER",
    "REPLICA_HEADER",
    "RayDeployment",
    "ReplicaHeaders",
    "deploy",
    "portable_tracking_uri",
    "serve_until_stopped",
    "set_ray_serve_log_level",
    "undeploy",
]
