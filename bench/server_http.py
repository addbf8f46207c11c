"""The HTTP side of the server benchmark: constants, the client, latency statistics."""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
