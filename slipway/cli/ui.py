"""``slipway ui``: the web UI on a local store, in one command.

It is ``slipway server`` with the settings a person at their own machine wants (one worker,
loopback only, the store in ``./.slipway``), and it opens the UI in the browser once the server
accepts connections. The browser is not opened with ``--no-browser``, or where there is no
display to open it on (a Linux session without ``DISPLAY`` or ``WAYLAND_DISPLAY``, such as
SSH); the URL is printed either way.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

import click

from slipway.cli._output import print_error
from slipway.cli.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_STORE,
    LOG_LEVELS,
    _check_store_uri,
    default_allowed_hosts,
    start_scheduler,
)

if TYPE_CHECKING:
    from slipway.pipelines.scheduler import Scheduler


def has_display() -> bool:
    """Whether a browser window could open here: always on macOS and Windows; on other
    systems only with an X or Wayland display (not over plain SSH, not in a container)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_browser(url: str) -> None:
    """Open ``url`` in the user's browser without holding up the server (``webbrowser`` can
    block while it starts one)."""
    import webbrowser

    def go() -> None:
        try:
            webbrowser.open(url, new=2)
        except webbrowser.Error as exc:
            print_error(f"could not open a browser ({exc}); open {url} yourself")

    threading.Thread(target=go, name="open-browser", daemon=True).start()


@click.command("ui")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one (the URL printed names it).",
)
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Interface to listen on (keep the default unless others must reach it).",
)
@click.option(
    "--backend-store-uri",
    default=DEFAULT_STORE,
    show_default=True,
    metavar="URI",
    help="The store to show: a folder, sqlite:///path.db or postgresql://...",
)
@click.option("--no-browser", is_flag=True, help="Print the URL; do not open a browser.")
@click.option(
    "--scheduler/--no-scheduler",
    "run_scheduler",
    default=True,
    show_default=True,
    help="Start the runs of due pipeline schedules, as slipway server does.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="warning",
    show_default=True,
    help="Server log level; info also logs every request.",
)
def ui(
    port: int,
    host: str,
    backend_store_uri: str,
    no_browser: bool,
    run_scheduler: bool,
    log_level: str,
) -> None:
    """Open the web UI: experiments, runs, models, approvals and pipelines.

    Serves the UI (and the whole tracking API, so scripts can log to the same URL) over
    the store, prints its URL and opens it in the browser. Ctrl+C stops it.

    \b
    Examples:
      slipway ui
      slipway ui --backend-store-uri sqlite:///mlruns.db --port 8080 --no-browser
    """
    _check_store_uri(backend_store_uri)
    try:
        from slipway.server.serve import serve
        from slipway.server.settings import ServerSettings
    except ImportError as err:
        print_error(f'the UI needs the server extra: pip install "slipway[server]" ({err})')
        raise click.exceptions.Exit(1) from None

    hosts = default_allowed_hosts(host)
    settings = ServerSettings(backend_store_uri=backend_store_uri, allowed_hosts=hosts)
    schedulers: list[Scheduler] = []

    def ready(url: str) -> None:
        click.echo(f"Slipway UI on {url} (store {backend_store_uri}); Ctrl+C stops it")
        sys.stdout.flush()
        if run_scheduler and not schedulers:
            schedulers.append(start_scheduler(backend_store_uri, url, host, hosts))
        if not no_browser and has_display():
            open_browser(url)

    try:
        status = serve(
            settings, host=host, port=port, workers=1, log_level=log_level, on_ready=ready
        )
    finally:
        for running in schedulers:
            running.stop()
    if status:
        print_error("the UI's server stopped before it could serve; see the log above")
        raise click.exceptions.Exit(status)


__all__ = ["has_display", "open_browser", "ui"]
