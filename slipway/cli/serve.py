"""``slipway serve``: serve models over HTTP (MLflow's ``/invocations``, the Open Inference
Protocol V2 and KServe V1), or write the KServe manifest that would serve them on Kubernetes.

The serving modules are imported when the command runs, so ``slipway --help`` and the other
commands stay fast and work without the ``server`` extra installed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from slipway.cli._output import CliState, print_error
from slipway.cli.server import ALL_INTERFACES, LOG_LEVELS, parse_allowed_hosts

if TYPE_CHECKING:
    from slipway.serving.config import EndpointSpec
    from slipway.serving.settings import ServingSettings

DEFAULT_PORT = 8080
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
EMIT_FORMATS = ("kserve",)
ENGINES = ("local", "ray")


def _serve_args(
    workers: int, max_batch_size: int, max_batch_delay_ms: float, reload_interval: float
) -> list[str]:
    """The serving options that differ from their defaults, for the container that a KServe
    manifest with ``--image`` starts."""
    args: list[str] = []
    if workers != 1:
        args += ["--workers", str(workers)]
    if max_batch_size != 1:
        args += ["--max-batch-size", str(max_batch_size)]
    if max_batch_delay_ms:
        args += ["--max-batch-delay-ms", f"{max_batch_delay_ms:g}"]
    if reload_interval != 10:
        args += ["--reload-interval", f"{reload_interval:g}"]
    return args


@click.command("serve")
@click.argument("uri", required=False, metavar="[URI]")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME=URI",
    help="Serve the model at URI under NAME (repeat for more models).",
)
@click.option(
    "--route",
    "routes",
    multiple=True,
    metavar="NAME=URI:W,URI:W",
    help="Serve NAME from several models, split by weight (a canary). Weights are positive "
    "numbers, normalised to sum to 100%: 'iris=models:/iris@champion:90,"
    "models:/iris@challenger:10'.",
)
@click.option(
    "--shadow",
    metavar="[NAME=]URI",
    help="A model that gets a copy of every request; its answers are logged, never returned.",
)
@click.option(
    "--sticky-header",
    metavar="HEADER",
    help="Route by the hash of this request header, so one caller keeps meeting one version.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one (the URL printed names it).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes sharing the port; each loads every model.",
)
@click.option(
    "--on",
    "engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="Where to serve: here (uvicorn), or on Ray Serve (replicas over a Ray cluster).",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=None,
    help="With --on ray: replicas of the server, spread over the cluster [default: 1].",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    help="With --on ray: the cluster ('auto' joins the one on this machine, host:port, "
    "ray://host:port). Default: SLIPWAY_RAY_ADDRESS or RAY_ADDRESS, else a local Ray.",
)
@click.option(
    "--replica-cpus",
    type=click.FloatRange(min=0),
    default=None,
    help="With --on ray: CPUs each replica reserves [default: 1].",
)
@click.option(
    "--replica-gpus",
    type=click.FloatRange(min=0),
    default=None,
    help="With --on ray: GPUs each replica reserves [default: 0].",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Rows merged from concurrent requests into one predict call; 1 turns batching off.",
)
@click.option(
    "--max-batch-delay-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="How long a request may wait for others to join its batch.",
)
@click.option(
    "--reload-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between checks of models:/NAME@ALIAS URIs for a new version (0: never).",
)
@click.option(
    "--log-requests",
    "log_requests",
    type=click.FloatRange(0, 1),
    default=0.0,
    metavar="RATE",
    help="Share of requests (0 to 1) logged with their answers, for drift analysis.",
)
@click.option(
    "--log-requests-to",
    metavar="URI",
    help="Where logged requests go (a folder, s3://...). Default: the tracking store's artifacts.",
)
@click.option(
    "--tracking-uri",
    "serve_tracking_uri",
    metavar="URI",
    help="The registry that models:/ URIs resolve against, and where deployments are "
    "recorded (overrides the global one).",
)
@click.option(
    "--record-deployments/--no-record-deployments",
    default=True,
    show_default=True,
    help="Record each served registry version as a deployment in the registry.",
)
@click.option(
    "--allowed-hosts",
    metavar="HOSTS",
    help="Comma-separated Host header values accepted (host or host:port; * for any); "
    "others get 403. Default: localhost names plus --host unless it is 0.0.0.0.",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_REQUEST_BYTES,
    show_default=True,
    help="Largest request body accepted (413 above it).",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds a request may take (504 after it).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Server log level; info also logs every request.",
)
@click.option(
    "--emit",
    type=click.Choice(EMIT_FORMATS),
    help="Do not serve: print the manifest that serves these models on Kubernetes.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --emit: write the manifest to this file instead of stdout.",
)
@click.option(
    "--image",
    metavar="IMAGE",
    help="With --emit kserve: run 'slipway serve' in this image (default: KServe's MLflow "
    "runtime).",
)
@click.option(
    "--min-replicas", type=click.IntRange(min=0), default=1, show_default=True, help="With --emit."
)
@click.option(
    "--max-replicas", type=click.IntRange(min=1), default=1, show_default=True, help="With --emit."
)
@click.option(
    "--canary-percent",
    type=click.IntRange(0, 100),
    help="With --emit kserve: the share of traffic for the canary of a two-model route.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    uri: str | None,
    models: tuple[str, ...],
    routes: tuple[str, ...],
    shadow: str | None,
    sticky_header: str | None,
    host: str,
    port: int,
    workers: int,
    engine: str,
    replicas: int | None,
    ray_address: str | None,
    replica_cpus: float | None,
    replica_gpus: float | None,
    max_batch_size: int,
    max_batch_delay_ms: float,
    reload_interval: float,
    log_requests: float,
    log_requests_to: str | None,
    serve_tracking_uri: str | None,
    record_deployments: bool,
    allowed_hosts: str | None,
    max_request_bytes: int,
    request_timeout: float,
    log_level: str,
    emit: str | None,
    output: Path | None,
    image: str | None,
    min_replicas: int,
    max_replicas: int,
    canary_percent: int | None,
) -> None:
    """Serve models over HTTP: MLflow's /invocations, the Open Inference Protocol V2
    (/v2/models/NAME/infer, Triton's clients work) and KServe V1 (/v1/models/NAME:predict).

    A positional URI serves under the model's registered name (or "model"). Prints one line
    with the URL and the versions once every model is loaded; SIGTERM or Ctrl+C stops it
    after the requests in flight finish. GET /metrics gives Prometheus metrics.

    \b
    Examples:
      slipway serve models:/iris@champion
      slipway serve --model iris=models:/iris@champion --model churn=runs:/1a2b/model
      slipway serve --route "iris=models:/iris@champion:90,models:/iris@challenger:10"
      slipway serve models:/iris@champion --max-batch-size 64 --max-batch-delay-ms 5
      slipway serve models:/iris@champion --emit kserve -o iris.yaml
      slipway serve models:/iris@champion --on ray --replicas 4 --ray-address auto
    """
    from slipway.serving.config import parse_serve_args

    tracking_uri = serve_tracking_uri or ctx.ensure_object(CliState).tracking_uri
    specs = parse_serve_args(uri, list(models), list(routes), shadow, sticky_header)
    ray_options = {
        "--replicas": replicas,
        "--ray-address": ray_address,
        "--replica-cpus": replica_cpus,
        "--replica-gpus": replica_gpus,
    }
    if engine != "ray" and any(value is not None for value in ray_options.values()):
        given = ", ".join(name for name, value in ray_options.items() if value is not None)
        raise click.UsageError(f"{given} go with --on ray")
    if engine == "ray" and (emit is not None or workers != 1):
        raise click.UsageError(
            "--on ray serves with --replicas (not --workers), and does not go with --emit"
        )
    if emit is not None:
        from slipway.serving.kserve import write_manifest

        text = write_manifest(
            specs,
            image=image,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            canary_percent=canary_percent,
            out=output,
            tracking_uri=tracking_uri,
            serve_args=_serve_args(workers, max_batch_size, max_batch_delay_ms, reload_interval)
            if image
            else (),
        )
        if output is None:
            click.echo(text, nl=False)
        else:
            click.echo(f"Wrote the KServe manifest to {output}", err=True)
        return
    if output is not None or image is not None:
        raise click.UsageError("-o/--output and --image go with --emit kserve")
    try:
        from slipway.serving.runner import ServePlan
        from slipway.serving.runner import serve as run_server
        from slipway.serving.settings import ServingSettings
    except ImportError as err:
        print_error(f'serving needs its extra: pip install "slipway[server]" ({err})')
        raise click.exceptions.Exit(1) from None

    settings = ServingSettings(
        host=host,
        port=port,
        workers=workers,
        max_batch_size=max_batch_size,
        max_batch_delay_ms=max_batch_delay_ms,
        max_request_bytes=max_request_bytes,
        request_timeout_s=request_timeout,
        allowed_hosts=parse_allowed_hosts(allowed_hosts, host),
        reload_interval_s=reload_interval,
        tracking_uri=tracking_uri,
        log_requests_rate=log_requests,
        log_requests_to=log_requests_to,
        record_deployments=record_deployments,
    )
    if host in ALL_INTERFACES and allowed_hosts is None:
        click.echo(
            "Listening on all interfaces, but only localhost Host headers are accepted; "
            "pass --allowed-hosts with the names clients use (or * for any).",
            err=True,
        )

    def ready(url: str, served: str) -> None:
        click.echo(f"Slipway model server ready on {url} (models: {served})")
        sys.stdout.flush()

    if engine == "ray":
        raise click.exceptions.Exit(
            _serve_on_ray(
                specs,
                settings,
                ready,
                log_level,
                replicas=replicas or 1,
                ray_address=ray_address,
                replica_cpus=1.0 if replica_cpus is None else replica_cpus,
                replica_gpus=replica_gpus or 0.0,
            )
        )
    status = run_server(ServePlan(specs, settings), log_level=log_level, on_ready=ready)
    if status:
        print_error("the model server stopped before it could serve; see the log above")
        raise click.exceptions.Exit(status)


def _serve_on_ray(
    specs: list[EndpointSpec],
    settings: ServingSettings,
    ready: Callable[[str, str], None],
    log_level: str,
    **deploy_args: Any,
) -> int:
    """Serve on Ray Serve until SIGINT/SIGTERM: the exit status.

    Slipway's serving log goes to stderr at ``log_level``; Ray Serve's own client log is
    kept to warnings unless debugging (its start-up lines say nothing a user acts on)."""
    import logging

    from slipway.serving.ray_serve import (
        RayDeployment,
        serve_until_stopped,
        set_ray_serve_log_level,
    )

    level = logging.DEBUG if log_level.lower() in ("debug", "trace") else log_level.upper()
    ours = logging.getLogger("slipway.serving")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        ours.addHandler(handler)
    ours.setLevel(level)
    if level != logging.DEBUG:
        set_ray_serve_log_level(logging.WARNING)

    def on_ready(deployment: RayDeployment) -> None:
        ready(deployment.url, deployment.description)
        click.echo(
            f"Serving {deployment.replicas} replica(s) on Ray Serve "
            f"(application {deployment.app_name!r}); Ctrl+C stops and deletes it.",
            err=True,
        )

    return serve_until_stopped(specs, settings, on_ready=on_ready, **deploy_args)
