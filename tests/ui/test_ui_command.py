"""``slipway ui`` as a user runs it: a subprocess that prints its URL, serves the pages, opens
the browser (the one ``BROWSER`` names) when there is a display, and stops on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from slipway.cli import cli
from slipway.cli.ui import has_display
from slipway.tracking.client import SlipwayClient

READY = re.compile(r"Slipway UI on (http://\S+)")
START_TIMEOUT = 60.0


class UiProcess:
    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.stdout = workdir / "ui.out"
        self.stderr = workdir / "ui.err"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slipway", "ui", "--port", "0", *args],
                cwd=workdir,
                stdout=out,
                stderr=err,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while (found := READY.search(self.stdout.read_text())) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"slipway ui did not start:\n{self.stderr.read_text()}")
            time.sleep(0.02)
        self.url = found.group(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def started() -> Iterator[list[UiProcess]]:
    running: list[UiProcess] = []
    yield running
    for ui in running:
        ui.stop()


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_no_browser_serves_the_ui_on_the_store(tmp_path: Path, started: list[UiProcess]) -> None:
    store = tmp_path / "store"
    SlipwayClient(str(store)).create_experiment("made-before-the-ui")
    ui = UiProcess(tmp_path, "--no-browser", "--backend-store-uri", str(store))
    started.append(ui)
    assert ui.url.startswith("http://127.0.0.1:")
    home = httpx.get(ui.url + "/", follow_redirects=True, timeout=30)
    assert home.status_code == 200
    assert home.url.path == "/experiments"
    assert "made-before-the-ui" in home.text  # the store given is the one served
    for path in ("/models", "/approvals", "/pipelines", "/pipelines/schedules"):
        assert httpx.get(ui.url + path, timeout=30).status_code == 200, path
    assert ui.stop() == 0


def test_the_browser_opens_on_the_url_when_there_is_a_display(
    tmp_path: Path, started: list[UiProcess]
) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "fake-browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{opened}"\n')
    browser.chmod(0o755)
    env = _env(BROWSER=str(browser), DISPLAY=":0", WAYLAND_DISPLAY=None)
    ui = UiProcess(tmp_path, "--no-scheduler", "--backend-store-uri", "store", env=env)
    started.append(ui)
    deadline = time.monotonic() + 30
    while not (opened.exists() and opened.read_text()):
        assert time.monotonic() < deadline, "the browser was not opened"
        time.sleep(0.05)
    assert opened.read_text() == ui.url


def test_without_a_display_the_browser_is_not_opened(
    tmp_path: Path, started: list[UiProcess]
) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "fake-browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{opened}"\n')
    browser.chmod(0o755)
    env = _env(BROWSER=str(browser), DISPLAY=None, WAYLAND_DISPLAY=None)
    ui = UiProcess(tmp_path, "--no-scheduler", "--backend-store-uri", "store", env=env)
    started.append(ui)
    assert httpx.get(ui.url + "/models", timeout=30).status_code == 200
    assert ui.stop() == 0
    assert not opened.exists()


def test_has_display_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform in ("darwin", "win32"):
        assert has_display()
        return
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert has_display()


def test_a_server_url_is_refused_as_the_store() -> None:
    result = CliRunner().invoke(cli, ["ui", "--backend-store-uri", "http://example.com"])
    assert result.exit_code == 2
    assert "is a server URL" in result.output
