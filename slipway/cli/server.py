"""``slipway server``: the tracking server (MLflow's REST API and the artifact proxy).

The server's modules are imported when the command runs, so ``slipway --help`` and the other
commands stay fast and work without the ``server`` extra installed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from slipway.cli._output import print_error

if TYPE_CHECKING:
    from slipway.pipelines.scheduler import Scheduler

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_STORE = "./.slipway"
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
ALL_INTERFACES = ("0.0.0.0", "::", "")  # noqa: S104 (names compared, nothing bound here)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def default_allowed_hosts(host: str) -> tuple[str, ...]:
    """The localhost names, plus ``host`` when it names one interface (not 0.0.0.0 / ::)."""
    if host in ALL_INTERFACES or host.lower() in LOCAL_HOSTS:
        return LOCAL_HOSTS
    return (*LOCAL_HOSTS, f"[{host}]" if ":" in host else host)


def parse_allowed_hosts(value: str | None, host: str) -> tuple[str, ...]:
    """``--allowed-hosts``: comma-separated names (``host`` or ``host:port``) or ``*``."""
    if value is None:
        return default_allowed_hosts(host)
    hosts = tuple(h.strip() for h in value.split(",") if h.strip())
    if not hosts:
        raise click.BadParameter(
            "give at least one host name, or * for any", param_hint="'--allowed-hosts'"
        )
    return hosts


def _check_store_uri(uri: str) -> None:
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        raise click.BadParameter(
            f"{uri!r} is a server URL; the server needs a folder, sqlite:///path.db or "
            "postgresql://... to keep its data in",
            param_hint="'--backend-store-uri'",
        )


def scheduler_run_uri(
    backend_store_uri: str, url: str, host: str, allowed_hosts: tuple[str, ...]
) -> str:
    """The tracking URI that scheduled runs record to: this server over loopback (so runs
    get its artifact settings), or the store itself when the Host allow-list refuses
    loopback names."""
    from slipway.utils.uvicorn_run import probe_host

    port = url.rsplit(":", 1)[-1]
    local = probe_host(host)
    name = f"[{local}]" if ":" in local else local
    accepted = "*" in allowed_hosts or any(h in (name, f"{name}:{port}") for h in allowed_hosts)
    return f"http://{name}:{port}" if accepted else backend_store_uri


def start_scheduler(
    backend_store_uri: str, url: str, host: str, allowed_hosts: tuple[str, ...]
) -> Scheduler:
    """The schedules' scheduler, polling the store in a thread of this (parent) process."""
    from slipway.pipelines.scheduler import Scheduler

    run_uri = scheduler_run_uri(backend_store_uri, url, host, allowed_hosts)
    return Scheduler(backend_store_uri, run_tracking_uri=run_uri).start()


@click.command("server")
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Interface to listen on; 0.0.0.0 listens on all of them.",
)
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
    help="Worker processes. Above 1 each worker opens its own store connections.",
)
@click.option(
    "--backend-store-uri",
    default=DEFAULT_STORE,
    show_default=True,
    metavar="URI",
    help="Where runs are kept: a folder, sqlite:///path.db or postgresql://... "
    "(SLIPWAY_TRACKING_URI is not read: clients use it to find this server).",
)
@click.option(
    "--default-artifact-root",
    metavar="URI",
    help="Artifact location for new experiments. Default: mlflow-artifacts:/ (the "
    "proxy) with --serve-artifacts, else the artifacts destination.",
)
@click.option(
    "--artifacts-destination",
    metavar="URI",
    help="Where proxied artifacts are stored: a folder or s3://bucket/prefix. "
    "Default: the store's artifacts folder.",
)
@click.option(
    "--serve-artifacts/--no-serve-artifacts",
    default=True,
    show_default=True,
    help="Proxy artifact uploads and downloads, so clients need no storage access.",
)
@click.option(
    "--allowed-hosts",
    metavar="HOSTS",
    help="Comma-separated Host header values accepted (host or host:port; * for "
    "any); others get 403. Default: localhost names plus --host unless it is "
    "0.0.0.0.",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_REQUEST_BYTES,
    show_default=True,
    help="Largest JSON request body accepted (413 above it); artifact uploads "
    "stream and are not limited.",
)
@click.option(
    "--scheduler/--no-scheduler",
    "run_scheduler",
    default=True,
    show_default=True,
    help="Start the runs of due pipeline schedules from this server's process (several "
    "servers over one store start each run once).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Server log level; info also logs every request.",
)
def server(
    host: str,
    port: int,
    workers: int,
    backend_store_uri: str,
    default_artifact_root: str | None,
    artifacts_destination: str | None,
    serve_artifacts: bool,
    allowed_hosts: str | None,
    max_request_bytes: int,
    run_scheduler: bool,
    log_level: str,
) -> None:
    """Run the tracking server: MLflow's REST API and artifact proxy over the store.

    Prints one line with the URL once it accepts connections. SIGTERM or Ctrl+C stops it
    after the requests in flight finish.

    \b
    Examples:
      slipway server
      slipway server --backend-store-uri sqlite:///mlruns.db --port 8080
      slipway server --host 0.0.0.0 --allowed-hosts tracking.example.com --workers 4
    """
    _check_store_uri(backend_store_uri)
    hosts = parse_allowed_hosts(allowed_hosts, host)
    try:
        from slipway.server.serve import serve
        from slipway.server.settings import ServerSettings
    except ImportError as err:
        print_error(f'the server needs its extra: pip install "slipway[server]" ({err})')
        raise click.exceptions.Exit(1) from None

    settings = ServerSettings(
        backend_store_uri=backend_store_uri,
        default_artifact_root=default_artifact_root,
        artifacts_destination=artifacts_destination,
        serve_artifacts=serve_artifacts,
        allowed_hosts=hosts,
        max_request_bytes=max_request_bytes,
    )
    if host in ALL_INTERFACES and allowed_hosts is None:
        click.echo(
            "Listening on all interfaces, but only localhost Host headers are accepted; "
            "pass --allowed-hosts with the names clients use (or * for any).",
            err=True,
        )

    schedulers: list[Scheduler] = []

    def ready(url: str) -> None:
        worker_text = f"{workers} worker{'s' if workers > 1 else ''}"
        click.echo(f"Slipway server ready on {url} ({worker_text}, store {backend_store_uri})")
        sys.stdout.flush()
        if run_scheduler and not schedulers:
            schedulers.append(start_scheduler(backend_store_uri, url, host, hosts))

    try:
        status = serve(
            settings, host=host, port=port, workers=workers, log_level=log_level, on_ready=ready
        )
    finally:
        for running in schedulers:
            running.stop()
    if status:
        print_error("the server stopped before it could serve; see the log above")
        raise click.exceptions.Exit(status)
