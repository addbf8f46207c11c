"""Starting, measuring and stopping the tracking servers under benchmark."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import urllib3

from bench._common import package_version as version_of
from bench.server_http import (
    FML_VENV,
    HEALTH_POLL_S,
    LABELS,
    MB,
    QUIET_TIMEOUT_S,
    START_TIMEOUT_S,
    BenchError,
)

# ---------------------------------------------------------------------------------------------
# The servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_bin(name: str) -> str | None:
    """A console script next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def child_env() -> dict[str, str]:
    """The parent's environment without MLflow or Slipway settings; no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SLIPWAY_", "FML_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def find_fml(explicit: str | None, install: bool, say: Callable[[str], None]) -> str | None:
    """FastTrackML's ``fml`` binary: --fml, PATH, a known venv, or a fresh install."""
    if explicit:
        return explicit if Path(explicit).exists() else None
    for candidate in (
        shutil.which("fml"),
        str(FML_VENV / "bin" / "fml"),
        str(Path(tempfile.gettempdir()) / "fml-venv" / "bin" / "fml"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    if not install:
        return None
    say(f"installing FastTrackML into its own venv, {FML_VENV} (pip install fasttrackml) ...")
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(FML_VENV)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        subprocess.run(
            [str(FML_VENV / "bin" / "pip"), "install", "-q", "fasttrackml"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        say(f"FastTrackML could not be installed: {exc} {detail.decode(errors='replace')[-400:]}")
        return None
    binary = FML_VENV / "bin" / "fml"
    return str(binary) if binary.exists() else None


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=child_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[-1] if text else "unknown"


@dataclass
class ServerSpec:
    name: str
    label: str
    command: list[str]
    version: str
    note: str = ""


def server_specs(
    names: list[str], fml: str | None, folder: Callable[[str], Path], port: Callable[[], int]
) -> tuple[list[ServerSpec], list[str]]:
    """The command line of every server asked for (paths in its own folder), and skips."""
    specs: list[ServerSpec] = []
    skipped: list[str] = []
    for name in names:
        home = folder(name)
        db = home / "store.db"
        artifacts = home / "artifacts"
        p = port()
        if name in ("slipway", "slipway-w2"):
            slipway = venv_bin("slipway")
            if slipway is None:
                skipped.append(f"{name}: the slipway console script was not found")
                continue
            cmd = [
                slipway,
                "server",
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--host",
                "127.0.0.1",
                "--port",
                str(p),
            ]
            if name == "slipway-w2":
                cmd += ["--workers", "2"]
            specs.append(ServerSpec(name, LABELS[name], cmd, version_of("slipway")))
        elif name == "mlflow":
            mlflow = venv_bin("mlflow")
            if mlflow is None:
                skipped.append(
                    "mlflow: the mlflow console script was not found (pip install -e '.[dev]')"
                )
                continue
            cmd = [
                mlflow,
                "server",
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--default-artifact-root",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(p),
            ]
            specs.append(
                ServerSpec(
                    name, LABELS[name], cmd, version_of("mlflow"), "default workers (uvicorn, 4)"
                )
            )
        elif name == "fml":
            if fml is None:
                skipped.append(
                    "fml: FastTrackML is not installed and could not be installed; install it "
                    "in a separate venv (python3 -m venv /tmp/fml-venv && /tmp/fml-venv/bin/pip "
                    "install fasttrackml) or pass --fml PATH"
                )
                continue
            cmd = [
                fml,
                "server",
                "--listen-address",
                f"127.0.0.1:{p}",
                "--database-uri",
                f"sqlite://{db.name}",  # relative to its cwd, home; FML rejects sqlite:////abs
                "--default-artifact-root",
                str(artifacts),
            ]
            specs.append(
                ServerSpec(
                    name,
                    LABELS[name],
                    cmd,
                    tool_version([fml, "--version"]).replace("FastTrackML version ", ""),
                )
            )
    return specs, skipped


def port_of(cmd: list[str]) -> int:
    if "--port" in cmd:
        return int(cmd[cmd.index("--port") + 1])
    return int(cmd[cmd.index("--listen-address") + 1].rsplit(":", 1)[1])


class Server:
    """A running server: its own process group, log file and process tree."""

    def __init__(self, spec: ServerSpec, home: Path):
        self.spec = spec
        self.home = home
        self.url = f"http://127.0.0.1:{port_of(spec.command)}"
        self.log_path = home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.known: dict[int, psutil.Process] = {}

    def start(self) -> float:
        """Spawn the server; seconds until ``GET /health`` answers 200."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "artifacts").mkdir(exist_ok=True)
        log = self.log_path.open("wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.spec.command,
            cwd=self.home,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        health = urllib3.HTTPConnectionPool(
            "127.0.0.1",
            port_of(self.spec.command),
            maxsize=1,
            retries=False,
            timeout=urllib3.Timeout(connect=1.0, read=5.0),
            headers={"Connection": "close"},
        )
        try:
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(
                        f"{self.spec.label} exited with {self.proc.returncode} "
                        f"before answering /health:\n{self.log_tail()}"
                    )
                try:
                    response = health.urlopen("GET", "/health", retries=False)
                    if response.status == 200:
                        return time.perf_counter() - started
                except urllib3.exceptions.HTTPError:
                    pass
                if time.perf_counter() - started > START_TIMEOUT_S:
                    raise BenchError(
                        f"{self.spec.label} did not answer /health within "
                        f"{START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
                    )
                time.sleep(HEALTH_POLL_S)
        finally:
            health.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tree(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for p in procs:
            self.known.setdefault(p.pid, p)
        return procs

    def memory(self) -> dict[str, Any]:
        """RSS and PSS summed over the process tree (PSS splits shared pages fairly)."""
        rss = pss = 0
        count = 0
        pss_ok = True
        for p in self.tree():
            try:
                info = p.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
                count += 1
            except psutil.AccessDenied:
                with contextlib.suppress(psutil.Error):
                    rss += p.memory_info().rss
                    count += 1
                pss_ok = False
            except psutil.NoSuchProcess:
                continue
        return {"processes": count, "rss_mb": rss / MB, "pss_mb": pss / MB if pss_ok else None}

    def cpu_seconds(self) -> float:
        """User + system CPU of the live process tree (threads included)."""
        total = 0.0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system
        return total

    def settle(self, minimum: float) -> float:
        """Wait ``minimum`` seconds, then until the tree uses under 10 % of a core over one
        second (background start-up work done), at most :data:`QUIET_TIMEOUT_S` more.
        Returns the seconds waited."""
        started = time.perf_counter()
        time.sleep(minimum)
        before = self.cpu_seconds()
        while time.perf_counter() - started < minimum + QUIET_TIMEOUT_S:
            time.sleep(1.0)
            now = self.cpu_seconds()
            if now - before < 0.1:
                break
            before = now
        return time.perf_counter() - started

    def threads(self) -> int:
        total = 0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                total += p.num_threads()
        return total

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL to whatever lingers (the group and tree)."""
        if self.proc is None:
            return
        self.tree()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children left in the group
        for p in self.known.values():  # children that left the group
            with contextlib.suppress(psutil.Error):
                if p.is_running():
                    p.kill()
