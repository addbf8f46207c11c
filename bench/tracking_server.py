"""Slipway's tracking server against ``mlflow server`` and FastTrackML, over plain HTTP.

Usage::

    python -m bench.tracking_server [--quick] [--servers slipway,mlflow,fml,slipway-w2]
                                    [--json OUT] [--markdown OUT]

The servers run one at a time, each on a fresh SQLite file in a fresh temporary folder, and
each is driven by the same client code (urllib3, JSON bodies, MLflow's REST API 2.0):

1. start: spawn -> ``GET /health`` 200 (polled every 10 ms), then idle memory after
   ``--settle`` seconds and once the server's processes use under 10 % of a core: RSS and
   PSS summed over the server's process tree.
2. ``runs/log-metric``, sequential, one call at a time: on one kept-alive connection, then
   with ``Connection: close`` (a new TCP connection per call). Calls/s, p50, p99.
3. ``runs/log-batch``: ``--batch-calls`` calls of ``--batch-size`` metrics. Metrics/s.
4. ``--writers`` threads, each with its own connection and run, ``--writer-calls``
   ``runs/log-metric`` calls each: aggregate calls/s, p50/p99/max, errors.
5. ``metrics/get-history`` of ``--history`` points of one metric (written with log-batch,
   the write time is reported but not scored).
6. ``runs/search`` over ``--runs`` runs (written with runs/create + log-batch from 4 threads,
   the populate time is reported but not scored): every page without a filter, then a
   filtered and ordered search.

Every workload checks its work (points read back, search hits and their order predicted).
Ctrl-C or SIGTERM stops the running server and removes the temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil
import urllib3

SERVERS = ("slipway", "slipway-w2", "mlflow", "fml")
DEFAULT_SERVERS = ("slipway", "mlflow", "fml", "slipway-w2")
LABELS = {
    "slipway": "Slipway",
    "slipway-w2": "Slipway 2 workers",
    "mlflow": "MLflow",
    "fml": "FastTrackML",
}
API = "/api/2.0/mlflow/"
SEARCH_FILTER = "metrics.acc > 0.5 and params.lr = '0.01'"
SEARCH_ORDER = "metrics.acc DESC"
SEARCH_PAGE = 1000
LRS = ("0.1", "0.01", "0.001")
POPULATE_THREADS = 4
HEALTH_POLL_S = 0.01
START_TIMEOUT_S = 180.0
QUIET_TIMEOUT_S = 60.0
FML_VENV = Path(tempfile.gettempdir()) / "slipway-bench-fml-venv"
MB = 1e6


class BenchError(Exception):
    """A workload failed; the message says why."""


# ---------------------------------------------------------------------------------------------
# The HTTP client: the same code for every server


class CountingConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection that counts its TCP connects (to check the connection mode)."""

    connects = 0

    def connect(self) -> None:
        type(self).connects += 1
        super().connect()


class Http:
    """One server, one connection at a time: kept alive, or a new one per call."""

    def __init__(self, base_url: str, keepalive: bool = True, read_timeout: float = 600.0):
        url = urllib3.util.parse_url(base_url)
        self.pool = urllib3.HTTPConnectionPool(
            url.host or "127.0.0.1",
            url.port,
            maxsize=1,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=10.0, read=read_timeout),
        )
        self.pool.ConnectionCls = type("Connection", (CountingConnection,), {"connects": 0})
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if not keepalive:
            self.headers["Connection"] = "close"

    def raw(
        self,
        method: str,
        endpoint: str,
        body: bytes | None = None,
        query: dict[str, Any] | None = None,
    ) -> tuple[int, bytes]:
        path = API + endpoint
        if query:
            path += "?" + urlencode(query)
        response = self.pool.urlopen(
            method,
            path,
            body=body,
            headers=self.headers,
            retries=False,
            preload_content=True,
            assert_same_host=False,
        )
        return response.status, response.data

    def post(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        status, data = self.raw("POST", endpoint, json.dumps(payload).encode())
        if status != 200:
            raise BenchError(f"POST {endpoint} -> HTTP {status}: {data[:300]!r}")
        return json.loads(data) if data.strip() else {}

    def get(self, endpoint: str, query: dict[str, Any]) -> tuple[dict[str, Any], int]:
        status, data = self.raw("GET", endpoint, query=query)
        if status != 200:
            raise BenchError(f"GET {endpoint} -> HTTP {status}: {data[:300]!r}")
        return json.loads(data), len(data)

    @property
    def connections(self) -> int:
        """TCP connections opened so far."""
        return int(self.pool.ConnectionCls.connects)

    def close(self) -> None:
        self.pool.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def create_experiment(http: Http, name: str) -> str:
    return str(http.post("experiments/create", {"name": name})["experiment_id"])


def create_run(http: Http, experiment_id: str, name: str) -> str:
    body = {"experiment_id": experiment_id, "run_name": name, "start_time": now_ms()}
    return str(http.post("runs/create", body)["run"]["info"]["run_id"])


def get_history(http: Http, run_id: str, key: str) -> tuple[list[dict[str, Any]], int, int, float]:
    """Every point of one metric, following ``next_page_token``: points, pages, bytes, parse s."""
    points: list[dict[str, Any]] = []
    pages = size = 0
    parse_s = 0.0
    token: str | None = None
    while True:
        query: dict[str, Any] = {"run_id": run_id, "metric_key": key}
        if token:
            query["page_token"] = token
        status, data = http.raw("GET", "metrics/get-history", query=query)
        if status != 200:
            raise BenchError(f"get-history -> HTTP {status}: {data[:300]!r}")
        started = time.perf_counter()
        page = json.loads(data)
        parse_s += time.perf_counter() - started
        pages += 1
        size += len(data)
        got = page.get("metrics", [])
        points.extend(got)
        token = page.get("next_page_token")
        if not token or not got:
            return points, pages, size, parse_s


def search_all(
    http: Http, experiment_id: str, filter_: str | None, order_by: str | None
) -> tuple[list[dict[str, Any]], int, int, float]:
    """Every page of one search: runs, pages, bytes, client parse seconds."""
    runs: list[dict[str, Any]] = []
    pages = size = 0
    parse_s = 0.0
    token: str | None = None
    while True:
        body: dict[str, Any] = {"experiment_ids": [experiment_id], "max_results": SEARCH_PAGE}
        if filter_:
            body["filter"] = filter_
        if order_by:
            body["order_by"] = [order_by]
        if token:
            body["page_token"] = token
        status, data = http.raw("POST", "runs/search", json.dumps(body).encode())
        if status != 200:
            raise BenchError(f"runs/search -> HTTP {status}: {data[:300]!r}")
        started = time.perf_counter()
        page = json.loads(data)
        parse_s += time.perf_counter() - started
        pages += 1
        size += len(data)
        got = page.get("runs", [])
        runs.extend(got)
        token = page.get("next_page_token")
        if not token or not got:  # a server may hand out a token for an empty last page
            return runs, pages, size, parse_s


# ---------------------------------------------------------------------------------------------
# Statistics


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (seconds), ``q`` in (0, 100]."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "p50_ms": percentile(values, 50) * 1e3,
        "p99_ms": percentile(values, 99) * 1e3,
        "max_ms": max(values) * 1e3,
        "mean_ms": statistics.fmean(values) * 1e3,
    }


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


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


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


# ---------------------------------------------------------------------------------------------
# The workloads


@dataclass
class Config:
    calls: int
    batch_calls: int
    batch_size: int
    writers: int
    writer_calls: int
    runs: int
    history: int
    repeats: int
    settle: float
    warmup: int


Progress = Callable[[str, int, int], None]


class Stop:
    """Set on Ctrl-C; the client threads look at it between calls."""

    event = threading.Event()


def client_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Meter:
    """Wall time, client CPU and server CPU of one workload."""

    def __init__(self, server: Server):
        self.server = server
        self.wall0 = time.perf_counter()
        self.client0 = client_cpu()
        self.server0 = server.cpu_seconds()

    def done(self) -> dict[str, float]:
        return {
            "wall_s": time.perf_counter() - self.wall0,
            "client_cpu_s": client_cpu() - self.client0,
            "server_cpu_s": self.server.cpu_seconds() - self.server0,
        }


def sequential_log_metric(
    server: Server, run_id: str, key: str, n: int, keepalive: bool, progress: Progress, phase: str
) -> dict[str, Any]:
    http = Http(server.url, keepalive=keepalive)
    base = now_ms()
    latencies: list[float] = []
    errors = 0
    first_error = ""
    meter = Meter(server)
    for i in range(n):
        if Stop.event.is_set():
            raise KeyboardInterrupt
        body = json.dumps(
            {"run_id": run_id, "key": key, "value": 1.0 / (i + 1), "timestamp": base + i, "step": i}
        ).encode()
        started = time.perf_counter()
        try:
            status, data = http.raw("POST", "runs/log-metric", body)
        except urllib3.exceptions.HTTPError as exc:
            status, data = -1, str(exc).encode()
        latencies.append(time.perf_counter() - started)
        if status != 200:
            errors += 1
            first_error = first_error or f"HTTP {status}: {data[:200]!r}"
            if errors > 50 and errors > i // 2:
                raise BenchError(f"{phase}: too many errors, first: {first_error}")
        if i % 50 == 0:
            progress(phase, i, n)
    cost = meter.done()
    connections = http.connections
    http.close()
    return {
        "calls": n,
        "calls_per_s": (n - errors) / cost["wall_s"],
        "server_cpu_ms_per_call": cost["server_cpu_s"] / n * 1e3,
        "client_cpu_ms_per_call": cost["client_cpu_s"] / n * 1e3,
        **latency_ms(latencies),
        **cost,
        "errors": errors,
        "first_error": first_error or None,
        "connections_opened": connections,
    }


def log_batch(
    server: Server,
    run_id: str,
    calls: int,
    size: int,
    keys: int,
    progress: Progress,
    phase: str,
    key_prefix: str = "b",
) -> dict[str, Any]:
    """``calls`` log-batch calls of ``size`` metrics over ``keys`` keys, distinct steps."""
    http = Http(server.url, keepalive=True)
    base = now_ms()
    latencies: list[float] = []
    meter = Meter(server)
    for c in range(calls):
        if Stop.event.is_set():
            raise KeyboardInterrupt
        metrics = []
        for j in range(size):
            step = c * size + j
            metrics.append(
                {
                    "key": f"{key_prefix}{j % keys}" if keys > 1 else key_prefix,
                    "value": math.sin(step * 1e-3),
                    "timestamp": base + step,
                    "step": step,
                }
            )
        body = json.dumps({"run_id": run_id, "metrics": metrics}).encode()
        started = time.perf_counter()
        status, data = http.raw("POST", "runs/log-batch", body)
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise BenchError(f"{phase}: log-batch -> HTTP {status}: {data[:300]!r}")
        progress(phase, c + 1, calls)
    cost = meter.done()
    http.close()
    return {
        "calls": calls,
        "metrics": calls * size,
        "metrics_per_s": calls * size / cost["wall_s"],
        **latency_ms(latencies),
        **cost,
        "server_cpu_ms_per_call": cost["server_cpu_s"] / calls * 1e3,
    }


def run_threads(
    target: Callable[[int], None], count: int, started: Callable[[], None] | None = None
) -> None:
    """Run ``target(i)`` in ``count`` threads, then ``started()`` in this one; Ctrl-C here
    stops them (they look at :class:`Stop` between calls)."""
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)
            Stop.event.set()

    threads = [threading.Thread(target=wrapped, args=(i,), daemon=True) for i in range(count)]
    try:
        for t in threads:
            t.start()
        if started is not None:
            started()
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.2)
    except KeyboardInterrupt:
        Stop.event.set()
        raise
    if errors:
        if not isinstance(errors[0], KeyboardInterrupt):
            Stop.event.clear()
        raise errors[0]


def concurrent_writers(
    server: Server, run_ids: list[str], n: int, progress: Progress, phase: str
) -> dict[str, Any]:
    writers = len(run_ids)
    latencies: list[list[float]] = [[] for _ in range(writers)]
    errors = [0] * writers
    first_errors: list[str] = []
    done = [0] * writers
    barrier = threading.Barrier(writers + 1)
    base = now_ms()

    def writer(w: int) -> None:
        http = Http(server.url, keepalive=True)
        barrier.wait()
        for i in range(n):
            if Stop.event.is_set():
                return
            body = json.dumps(
                {
                    "run_id": run_ids[w],
                    "key": "conc",
                    "value": float(i),
                    "timestamp": base + i,
                    "step": i,
                }
            ).encode()
            started = time.perf_counter()
            try:
                status, data = http.raw("POST", "runs/log-metric", body)
            except urllib3.exceptions.HTTPError as exc:
                status, data = -1, str(exc).encode()
            latencies[w].append(time.perf_counter() - started)
            if status != 200:
                errors[w] += 1
                if not first_errors:
                    first_errors.append(f"HTTP {status}: {data[:200]!r}")
            done[w] = i + 1
        http.close()

    meter_box: list[Meter] = []
    ticker_stop = threading.Event()

    def ticker() -> None:
        while not ticker_stop.wait(0.25):
            progress(phase, sum(done), writers * n)

    def go() -> None:  # every writer is connected-ready; start the clock and release them
        meter_box.append(Meter(server))
        barrier.wait()

    tick = threading.Thread(target=ticker, daemon=True)
    tick.start()
    try:
        run_threads(writer, writers, started=go)
    finally:
        ticker_stop.set()
    cost = meter_box[0].done()
    flat = [x for per in latencies for x in per]
    total_errors = sum(errors)
    return {
        "writers": writers,
        "calls": writers * n,
        "calls_per_s": (writers * n - total_errors) / cost["wall_s"],
        **latency_ms(flat),
        **cost,
        "errors": total_errors,
        "first_error": first_errors[0] if first_errors else None,
    }


def acc_of(i: int, runs: int) -> float:
    """A permutation of 0..runs-1 scaled into [0, 1): distinct accuracies."""
    prime = next(p for p in (7919, 7927, 7933, 7937) if runs % p)
    return ((i * prime) % runs) / runs


def run_name(i: int) -> str:
    return f"run-{i:06d}"


def run_payload(run_id: str, i: int, runs: int, timestamp: int) -> dict[str, Any]:
    acc = acc_of(i, runs)
    return {
        "run_id": run_id,
        "params": [
            {"key": "lr", "value": LRS[i % 3]},
            {"key": "batch_size", "value": str((32, 64, 128, 256)[i % 4])},
            {"key": "optimizer", "value": ("adam", "sgd")[i % 2]},
            {"key": "layers", "value": str(2 + i % 6)},
            {"key": "seed", "value": str(i)},
        ],
        "metrics": [
            {"key": k, "value": v, "timestamp": timestamp, "step": 0}
            for k, v in (
                ("acc", acc),
                ("loss", 1.0 - acc),
                ("f1", ((i * 31) % 97) / 97),
                ("precision", (i % 89) / 89),
                ("recall", (i % 83) / 83),
            )
        ],
        "tags": [
            {"key": "team", "value": "abcde"[i % 5]},
            {"key": "stage", "value": ("dev", "prod")[i % 2]},
            {"key": "owner", "value": f"user{i % 7}"},
        ],
    }


def expected_hits(runs: int) -> list[str]:
    hits = [i for i in range(runs) if acc_of(i, runs) > 0.5 and LRS[i % 3] == "0.01"]
    hits.sort(key=lambda i: -acc_of(i, runs))
    return [run_name(i) for i in hits]


def populate_runs(
    server: Server, experiment_id: str, runs: int, progress: Progress, phase: str
) -> dict[str, Any]:
    """runs/create + one log-batch (5 params, 5 metrics, 3 tags) per run, 4 client threads."""
    done = [0] * POPULATE_THREADS
    meter = Meter(server)

    def worker(t: int) -> None:
        http = Http(server.url, keepalive=False)
        stamp = now_ms()
        for i in range(t, runs, POPULATE_THREADS):
            if Stop.event.is_set():
                return
            run_id = create_run(http, experiment_id, run_name(i))
            http.post("runs/log-batch", run_payload(run_id, i, runs, stamp))
            done[t] += 1
            if t == 0 and done[0] % 10 == 0:
                progress(phase, sum(done), runs)
        http.close()

    run_threads(worker, POPULATE_THREADS)
    cost = meter.done()
    return {"runs": runs, "http_calls": 2 * runs, "runs_per_s": runs / cost["wall_s"], **cost}


def timed_reads(
    fn: Callable[[], tuple[int, int, int, float]], repeats: int, progress: Progress, phase: str
) -> dict[str, Any]:
    """The first (cold) read, then ``repeats`` more; the median of those is the score."""
    times: list[float] = []
    parse: list[float] = []
    last: tuple[int, int, int, float] = (0, 0, 0, 0.0)
    for r in range(repeats + 1):
        if Stop.event.is_set():
            raise KeyboardInterrupt
        started = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - started)
        parse.append(last[3])
        progress(phase, r + 1, repeats + 1)
    warm = times[1:] or times
    return {
        "first_s": times[0],
        "median_s": statistics.median(warm),
        "min_s": min(warm),
        "times_s": times,
        "client_parse_median_s": statistics.median(parse[1:] or parse),
        "items": last[0],
        "pages": last[1],
        "bytes": last[2],
    }


# ---------------------------------------------------------------------------------------------
# One server, start to stop


def bench_server(
    spec: ServerSpec, home: Path, cfg: Config, progress: Progress, say: Callable[[str], None]
) -> dict[str, Any]:
    """Every workload against one server; errors of one workload do not stop the others."""
    out: dict[str, Any] = {
        "label": spec.label,
        "version": spec.version,
        "command": spec.command,
        "note": spec.note,
        "errors": {},
        "loadavg_start": os.getloadavg(),
    }
    server = Server(spec, home)
    try:
        progress("starting", 0, 1)
        out["start_s"] = server.start()
        progress(f"settling {cfg.settle:.0f} s, then until idle", 0, 1)
        out["settle_s"] = server.settle(cfg.settle)
        out["idle_memory"] = server.memory()
        out["idle_threads"] = server.threads()
        say(
            f"{spec.label}: /health 200 after {out['start_s']:.2f} s; idle "
            f"{out['idle_memory']['processes']} processes, PSS "
            f"{fmt_mb(out['idle_memory']['pss_mb'])}, RSS sum "
            f"{fmt_mb(out['idle_memory']['rss_mb'])}"
        )

        http = Http(server.url, keepalive=False)
        started = time.perf_counter()
        http.post("experiments/search", {"max_results": 1})
        out["first_call_ms"] = (time.perf_counter() - started) * 1e3

        # Setup and warm-up (every worker process of a multi-worker server gets requests).
        progress("setup + warm-up", 0, 1)
        started = time.perf_counter()
        ingest = create_experiment(http, "ingest")
        seq_run = create_run(http, ingest, "sequential")
        batch_run = create_run(http, ingest, "batch")
        writer_runs = [create_run(http, ingest, f"writer-{w}") for w in range(cfg.writers)]
        warm_run = create_run(http, ingest, "warm-up")
        warm_ids = [create_run(http, ingest, f"warm-up-{w}") for w in range(cfg.writers)]
        out["setup_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for keepalive in (False, True):
            sequential_log_metric(
                server,
                warm_run,
                f"warm-{keepalive}",
                cfg.warmup,
                keepalive,
                lambda *_: None,
                "warm-up",
            )
        with contextlib.suppress(BenchError):
            concurrent_writers(server, warm_ids, max(1, cfg.warmup // 4), lambda *_: None, "w")
        out["warmup_s"] = time.perf_counter() - started

        def step(key: str, fn: Callable[[], dict[str, Any]]) -> None:
            if not server.alive():
                out["errors"][key] = f"the server is gone:\n{server.log_tail()}"
                return
            try:
                out[key] = fn()
            except (BenchError, urllib3.exceptions.HTTPError, KeyError, ValueError) as exc:
                out["errors"][key] = f"{type(exc).__name__}: {exc}"
                say(f"[red]{spec.label} {key} failed: {exc}")

        step(
            "seq_keepalive",
            lambda: sequential_log_metric(
                server,
                seq_run,
                "seq_keepalive",
                cfg.calls,
                True,
                progress,
                "log-metric, kept-alive connection",
            ),
        )
        step(
            "seq_close",
            lambda: sequential_log_metric(
                server,
                seq_run,
                "seq_close",
                cfg.calls,
                False,
                progress,
                "log-metric, new connection per call",
            ),
        )
        step(
            "log_batch",
            lambda: log_batch(
                server,
                batch_run,
                cfg.batch_calls,
                cfg.batch_size,
                10,
                progress,
                f"log-batch {cfg.batch_calls} x {cfg.batch_size:,}",
            ),
        )
        step(
            "concurrent",
            lambda: concurrent_writers(
                server, writer_runs, cfg.writer_calls, progress, f"{cfg.writers} concurrent writers"
            ),
        )
        step("verify_ingest", lambda: verify_ingest(server, seq_run, batch_run, writer_runs, cfg))

        # Metric history.
        def history_populate() -> dict[str, Any]:
            experiment = create_experiment(http, "history")
            run_id = create_run(http, experiment, "history")
            out["_history_run"] = run_id
            calls = math.ceil(cfg.history / 1000)
            result = log_batch(
                server,
                run_id,
                calls,
                1000,
                1,
                progress,
                f"populate history {cfg.history:,} points",
                key_prefix="loss",
            )
            return {**result, "points_per_s": result["metrics_per_s"]}

        def history_read() -> dict[str, Any]:
            reader = Http(server.url, keepalive=False)
            run_id = out["_history_run"]
            checked: list[bool] = []

            def read() -> tuple[int, int, int, float]:
                points, pages, size, parse_s = get_history(reader, run_id, "loss")
                if not checked:
                    steps = sorted(int(p["step"]) for p in points)
                    expected = list(range(math.ceil(cfg.history / 1000) * 1000))
                    if steps != expected:
                        raise BenchError(
                            f"get-history returned {len(steps):,} points, "
                            f"expected {len(expected):,} distinct steps"
                        )
                    checked.append(True)
                return len(points), pages, size, parse_s

            meter = Meter(server)
            result = timed_reads(read, cfg.repeats, progress, f"get-history {cfg.history:,} points")
            reader.close()
            cost = meter.done()
            per_read = cost["server_cpu_s"] / (cfg.repeats + 1) * 1e3
            return {**result, **cost, "server_cpu_ms_per_read": per_read, "correct": bool(checked)}

        step("history_populate", history_populate)
        if "history_populate" in out:
            step("history", history_read)
        out.pop("_history_run", None)

        # Search.
        search_experiment: list[str] = []

        def search_populate() -> dict[str, Any]:
            search_experiment.append(create_experiment(http, "search"))
            return populate_runs(
                server, search_experiment[0], cfg.runs, progress, f"populate {cfg.runs:,} runs"
            )

        def search(filtered: bool) -> dict[str, Any]:
            reader = Http(server.url, keepalive=False)
            experiment = search_experiment[0]
            want = expected_hits(cfg.runs) if filtered else None
            checked: list[bool] = []

            def read() -> tuple[int, int, int, float]:
                runs, pages, size, parse_s = search_all(
                    reader,
                    experiment,
                    SEARCH_FILTER if filtered else None,
                    SEARCH_ORDER if filtered else None,
                )
                if not checked:
                    names = [r["info"].get("run_name") for r in runs]
                    if want is not None and names != want:
                        raise BenchError(
                            f"filtered search returned {len(names)} runs, "
                            f"expected {len(want)} in order (first got "
                            f"{names[:3]}, want {want[:3]})"
                        )
                    ids = {r["info"]["run_id"] for r in runs}
                    if want is None and (len(ids) != cfg.runs or len(runs) != cfg.runs):
                        raise BenchError(
                            f"search returned {len(runs)} runs "
                            f"({len(ids)} distinct), expected {cfg.runs}"
                        )
                    checked.append(True)
                return len(runs), pages, size, parse_s

            phase = "search, filtered + ordered" if filtered else "search, no filter"
            meter = Meter(server)
            result = timed_reads(read, cfg.repeats, progress, phase)
            reader.close()
            cost = meter.done()
            per_read = cost["server_cpu_s"] / (cfg.repeats + 1) * 1e3
            return {**result, **cost, "server_cpu_ms_per_read": per_read, "correct": bool(checked)}

        step("search_populate", search_populate)
        if "search_populate" in out:
            step("search_all", lambda: search(False))
            step("search_filter", lambda: search(True))
        http.close()
        out["end_memory"] = server.memory()
        out["end_threads"] = server.threads()
    except BenchError as exc:
        out["errors"]["server"] = str(exc)
        say(f"[red]{spec.label}: {exc}")
    finally:
        server.stop()
        out["loadavg_end"] = os.getloadavg()
    return out


def verify_ingest(
    server: Server, seq_run: str, batch_run: str, writer_runs: list[str], cfg: Config
) -> dict[str, Any]:
    """Read back what the ingest workloads wrote (untimed)."""
    http = Http(server.url, keepalive=False)
    counts: dict[str, int] = {}
    for key in ("seq_keepalive", "seq_close"):
        counts[key] = len(get_history(http, seq_run, key)[0])
    counts["log_batch_b0"] = len(get_history(http, batch_run, "b0")[0])
    counts["writers_min"] = min(len(get_history(http, r, "conc")[0]) for r in writer_runs)
    http.close()
    expected = {
        "seq_keepalive": cfg.calls,
        "seq_close": cfg.calls,
        "log_batch_b0": cfg.batch_calls * len(range(0, cfg.batch_size, 10)),
        "writers_min": cfg.writer_calls,
    }
    return {"counts": counts, "expected": expected, "correct": counts == expected}


# ---------------------------------------------------------------------------------------------
# The report


def fmt_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def fmt_num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def dig(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


@dataclass
class Metric:
    """One row of the table."""

    label: str
    path: str
    unit: str  # "rate", "s", "ms", "mb", "count"
    higher_is_better: bool
    scored: bool = True
    aim_vs_mlflow: float | None = None
    aim_below: float | None = None
    note: str = ""

    def value(self, result: dict[str, Any] | None) -> float | None:
        if result is None:
            return None
        found = dig(result, self.path)
        return None if found is None else float(found)

    def fmt(self, value: float | None) -> str:
        if self.unit == "rate":
            return fmt_num(value)
        if self.unit == "s":
            return fmt_s(value)
        if self.unit == "ms":
            return fmt_ms(value)
        if self.unit == "mb":
            return fmt_mb(value)
        return "-" if value is None else f"{value:,.0f}"

    def ratio(self, ours: float | None, theirs: float | None) -> float | None:
        """How many times better Slipway is (>1: better, <1: worse)."""
        if ours is None or theirs is None:
            return None
        if self.higher_is_better:
            return ours / theirs if theirs > 0 else None
        if ours <= 0:
            return None
        return theirs / ours


def metrics_for(cfg: Config) -> list[Metric]:
    return [
        Metric("start: spawn -> /health 200", "start_s", "s", False, aim_below=2.0),
        Metric("  then the first API call", "first_call_ms", "ms", False, scored=False),
        Metric(
            "idle memory, PSS of the process tree",
            "idle_memory.pss_mb",
            "mb",
            False,
            aim_below=150.0,
        ),
        Metric("  RSS sum / processes", "idle_memory.rss_mb", "mb", False, scored=False),
        Metric(
            f"log-metric x {cfg.calls:,}, kept-alive: calls/s",
            "seq_keepalive.calls_per_s",
            "rate",
            True,
            aim_vs_mlflow=20,
        ),
        Metric("  p50", "seq_keepalive.p50_ms", "ms", False, scored=False),
        Metric("  p99", "seq_keepalive.p99_ms", "ms", False, scored=False),
        Metric(
            "  server CPU per call",
            "seq_keepalive.server_cpu_ms_per_call",
            "ms",
            False,
            scored=False,
        ),
        Metric(
            "log-metric, new connection per call: calls/s",
            "seq_close.calls_per_s",
            "rate",
            True,
            aim_vs_mlflow=20,
        ),
        Metric("  p50", "seq_close.p50_ms", "ms", False, scored=False),
        Metric("  p99", "seq_close.p99_ms", "ms", False, scored=False),
        Metric(
            f"log-batch {cfg.batch_calls} x {cfg.batch_size:,}: metrics/s",
            "log_batch.metrics_per_s",
            "rate",
            True,
            aim_vs_mlflow=20,
        ),
        Metric("  per-call p50", "log_batch.p50_ms", "ms", False, scored=False),
        Metric("  per-call p99", "log_batch.p99_ms", "ms", False, scored=False),
        Metric(
            "  server CPU per call",
            "log_batch.server_cpu_ms_per_call",
            "ms",
            False,
            scored=False,
        ),
        Metric(
            f"{cfg.writers} writers x {cfg.writer_calls:,} log-metric: calls/s",
            "concurrent.calls_per_s",
            "rate",
            True,
        ),
        Metric("  p99", "concurrent.p99_ms", "ms", False, scored=False),
        Metric("  errors", "concurrent.errors", "count", False, scored=False),
        Metric(
            f"search {cfg.runs:,} runs, no filter, all pages",
            "search_all.median_s",
            "s",
            False,
            aim_vs_mlflow=20,
        ),
        Metric(
            "  server CPU per search",
            "search_all.server_cpu_ms_per_read",
            "ms",
            False,
            scored=False,
        ),
        Metric("search, filter + order_by", "search_filter.median_s", "s", False, aim_vs_mlflow=20),
        Metric(
            f"get-history {cfg.history:,} points", "history.median_s", "s", False, aim_vs_mlflow=20
        ),
        Metric(
            "  server CPU per read", "history.server_cpu_ms_per_read", "ms", False, scored=False
        ),
        Metric("  client JSON parse", "history.client_parse_median_s", "s", False, scored=False),
        Metric(
            f"(setup) populate {cfg.runs:,} runs, 4 threads",
            "search_populate.wall_s",
            "s",
            False,
            scored=False,
        ),
        Metric(
            f"(setup) write {cfg.history:,} points (log-batch)",
            "history_populate.wall_s",
            "s",
            False,
            scored=False,
        ),
        Metric("memory after the workloads, PSS", "end_memory.pss_mb", "mb", False, scored=False),
    ]


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    if ratio >= 10:
        return f"{ratio:,.0f}x"
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2f}x"


def aim_text(
    metric: Metric, ours: float | None, vs_mlflow: float | None, vs_fml: float | None
) -> str:
    parts: list[str] = []
    if metric.aim_vs_mlflow is not None and vs_mlflow is not None:
        ok = vs_mlflow >= metric.aim_vs_mlflow
        parts.append(f">={metric.aim_vs_mlflow:.0f}x MLflow {'met' if ok else 'MISSED'}")
    if metric.aim_below is not None and ours is not None:
        ok = ours < metric.aim_below
        limit = f"{metric.aim_below:.0f} s" if metric.unit == "s" else f"{metric.aim_below:.0f} MB"
        parts.append(f"<{limit} {'met' if ok else 'MISSED'}")
    if metric.scored and vs_fml is not None:
        parts.append("ahead of FML" if vs_fml > 1 else "BEHIND FML")
    return ", ".join(parts)


def table_rows(results: dict[str, Any], cfg: Config) -> tuple[list[str], list[list[str]]]:
    present = [s for s in SERVERS if s in results]
    ours = results.get("slipway")
    header = [
        "workload",
        *[LABELS[s] for s in present],
        "Slipway vs MLflow",
        "Slipway vs FML",
        "aim",
    ]
    rows: list[list[str]] = []
    for metric in metrics_for(cfg):
        cells = []
        for s in present:
            text = metric.fmt(metric.value(results[s]))
            if metric.path == "idle_memory.rss_mb":
                procs = dig(results[s], "idle_memory.processes")
                text += f" / {procs}" if procs is not None else ""
            cells.append(text)
        mine = metric.value(ours)
        vs_mlflow = metric.ratio(mine, metric.value(results.get("mlflow")))
        vs_fml = metric.ratio(mine, metric.value(results.get("fml")))
        show = metric.scored or metric.unit in ("ms", "mb")
        rows.append(
            [
                metric.label,
                *cells,
                fmt_ratio(vs_mlflow) if show else "",
                fmt_ratio(vs_fml) if show else "",
                aim_text(metric, mine, vs_mlflow, vs_fml),
            ]
        )
    return header, rows


def render_table(header: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(
        title="Tracking server over HTTP (x = times better for Slipway: faster, lower or smaller)",
        title_justify="left",
    )
    for i, name in enumerate(header):
        table.add_column(
            name,
            justify="left" if i in (0, len(header) - 1) else "right",
            no_wrap=i != len(header) - 1,
        )
    for row in rows:
        style = "dim" if row[0].startswith(("  ", "(setup)")) else None
        aim = row[-1].replace("MISSED", "[red]MISSED[/]").replace("BEHIND", "[red]BEHIND[/]")
        table.add_row(*row[:-1], aim, style=style)
    return table


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(header) - 2) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "sqlite": sqlite3.sqlite_version,
        "client": f"urllib3 {version_of('urllib3')}",
        "slipway": version_of("slipway"),
        "mlflow": version_of("mlflow"),
        "uvicorn": version_of("uvicorn"),
        "starlette": version_of("starlette"),
        "sqlalchemy": version_of("sqlalchemy"),
    }


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracking_server",
        description="Compare `slipway server` with `mlflow server` and FastTrackML over HTTP.",
    )
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated, run in this order (of {','.join(SERVERS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke run of about 2 minutes"
    )
    parser.add_argument(
        "--calls", type=int, help="sequential log-metric calls per mode (default 2,000; 300 quick)"
    )
    parser.add_argument("--batch-calls", type=int, help="log-batch calls (default 100; 20 quick)")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="metrics per log-batch call (default 1,000)"
    )
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers (default 8)")
    parser.add_argument(
        "--writer-calls", type=int, help="log-metric calls per writer (default 500; 100 quick)"
    )
    parser.add_argument("--runs", type=int, help="runs to search (default 5,000; 500 quick)")
    parser.add_argument(
        "--history", type=int, help="metric-history points (default 100,000; 10,000 quick)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="timed reads after the first; the median is the score (default 3)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        help="seconds between /health 200 and the idle memory (default 5; 2 quick)",
    )
    parser.add_argument("--fml", metavar="PATH", help="FastTrackML's fml binary")
    parser.add_argument(
        "--no-fml-install",
        action="store_true",
        help=f"do not pip install FastTrackML into {FML_VENV} when missing",
    )
    parser.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    parser.add_argument("--markdown", metavar="OUT", help="write the table as Markdown")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (databases and server logs)"
    )
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    quick = args.quick
    cfg = Config(
        calls=args.calls or (300 if quick else 2_000),
        batch_calls=args.batch_calls or (20 if quick else 100),
        batch_size=args.batch_size,
        writers=args.writers,
        writer_calls=args.writer_calls or (100 if quick else 500),
        runs=args.runs or (500 if quick else 5_000),
        history=args.history or (10_000 if quick else 100_000),
        repeats=args.repeats or (2 if quick else 3),
        settle=args.settle if args.settle is not None else (2.0 if quick else 5.0),
        warmup=20,
    )
    if (
        min(
            cfg.calls,
            cfg.batch_calls,
            cfg.batch_size,
            cfg.writers,
            cfg.writer_calls,
            cfg.runs,
            cfg.history,
            cfg.repeats,
        )
        < 1
    ):
        raise SystemExit("every size must be at least 1")
    if cfg.batch_size > 1000:
        raise SystemExit("--batch-size is at most 1,000 (MLflow's log-batch limit)")
    return cfg


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def temporary_root(keep: bool) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="slipway-server-bench-"))
    try:
        yield root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class Run:
    results: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def run_all(
    names: list[str], cfg: Config, args: argparse.Namespace, root: Path, console: Any
) -> Run:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    run = Run()
    fml = None
    if "fml" in names:
        fml = find_fml(args.fml, not args.no_fml_install, console.print)
    ports: set[int] = set()

    def port() -> int:
        p = free_port()
        while p in ports:
            p = free_port()
        ports.add(p)
        return p

    specs, run.skipped = server_specs(names, fml, lambda n: root / n, port)
    for line in run.skipped:
        console.print(f"[yellow]skipped {line}")
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[dim]{task.fields[phase]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, refresh_per_second=4) as bar:
        tasks = {
            s.name: bar.add_task(s.label, total=None, phase="waiting", start=False) for s in specs
        }
        for spec in specs:
            task = tasks[spec.name]
            bar.start_task(task)

            def progress(phase: str, done: int, total: int, task: Any = task) -> None:
                bar.update(task, phase=phase, completed=done, total=total)

            started = time.perf_counter()
            result = bench_server(spec, root / spec.name, cfg, progress, bar.console.print)
            run.results[spec.name] = result
            failed = ", ".join(result["errors"])
            bar.update(
                task,
                total=1,
                completed=1,
                phase=(
                    f"[red]errors: {failed}"
                    if failed
                    else f"[green]done in {time.perf_counter() - started:.0f} s"
                ),
            )
            bar.stop_task(task)
    return run


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = parse_args(argv)
    cfg = config_from(args)
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise SystemExit(
            f"unknown servers: {', '.join(unknown)} (choose from {', '.join(SERVERS)})"
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 180))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    env = environment()
    console.print(
        f"[bold]Tracking servers over HTTP[/] - {', '.join(LABELS[n] for n in names)}; Python "
        f"{env['python']}, {env['client']}, SQLite {env['sqlite']}, {env['cpus']} CPUs, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    started = time.time()
    try:
        with temporary_root(args.keep) as root:
            if args.keep:
                console.print(f"keeping the temporary folder {root}")
            run = run_all(names, cfg, args, root, console)
    except KeyboardInterrupt:
        Stop.event.set()
        console.print(
            "[yellow]Interrupted: the server was stopped and the temporary folder removed."
        )
        return 130
    except Exception:
        console.print(f"[red]{traceback.format_exc()}")
        return 1
    header, rows = table_rows(run.results, cfg)
    console.print(render_table(header, rows))
    for name, result in run.results.items():
        for key in ("verify_ingest", "history", "search_all", "search_filter"):
            if key in result and not result[key].get("correct", False):
                console.print(f"[red]{LABELS[name]} {key}: wrong results {result[key]}")
        for key, error in result["errors"].items():
            console.print(f"[red]{LABELS[name]} {key}: {error}")
    console.print(f"[dim]wall time {time.time() - started:.0f} s")
    errors = {n: r["errors"] for n, r in run.results.items() if r["errors"]}
    if args.json:
        report = {
            "environment": env,
            "config": cfg.__dict__,
            "servers": run.results,
            "skipped": run.skipped,
            "table": {"header": header, "rows": rows},
            "wall_s": time.time() - started,
        }
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(header, rows))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
