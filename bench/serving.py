"""``slipway serve`` against ``mlflow models serve --env-manager local``, the same model, one run.

Usage::

    python -m bench.serving [--quick] [--servers slipway,slipway-batch,mlflow,...]
                            [--duration S] [--json OUT] [--markdown OUT] [--keep]

One scikit-learn model (a 3-class LogisticRegression on 8 numeric features, saved once in
MLflow's format with a signature) is served by each server in turn, each started as a
subprocess in its own process group on a free loopback port, with no ``MLFLOW_*`` or
``SLIPWAY_*`` settings inherited:

* ``slipway``: ``slipway serve MODEL`` (one worker, no batching);
* ``slipway-w2``: the same with ``--workers 2``;
* ``slipway-batch``: one worker with ``--max-batch-size 64 --max-batch-delay-ms 2``;
* ``slipway-w2-batch``: both;
* ``mlflow``: ``mlflow models serve -m MODEL --env-manager local`` (its default, 1 worker);
* ``mlflow-w2``: the same with ``--workers 2``.

For each server:

1. start: spawn -> the first 200 from ``GET /ping`` (polled every 10 ms);
2. idle memory, once the process tree has settled: RSS and PSS summed over the tree;
3. ``POST /invocations`` with ``dataframe_split`` JSON bodies of 1 row and of 100 rows, at
   concurrency 1 and 16 (that many kept-alive connections, each sending its next request
   when the answer to the last one arrives), for ``--duration`` seconds each after a warm-up:
   requests/s, rows/s, p50 and p99 latency. Every answer is checked against the model's own
   predictions for the rows sent; a wrong answer fails that server's run.

The load comes from one asyncio client in this process that writes pre-encoded HTTP/1.1
requests on raw sockets, so that the client is as cheap as a client can be in Python; its
CPU time is reported beside the results, since client and server share the machine.

Ctrl-C (or SIGTERM) stops the running server and removes the temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import urllib3

from bench._common import interrupt, package_version, temporary_root
from bench.server_http import HEALTH_POLL_S, START_TIMEOUT_S, BenchError, latency_ms
from bench.server_processes import Server, ServerSpec, child_env, free_port, venv_bin
from bench.server_report import fmt_mb, fmt_ms, fmt_num, fmt_ratio, fmt_s

SERVERS = ("slipway", "slipway-w2", "slipway-batch", "slipway-w2-batch", "mlflow", "mlflow-w2")
LABELS = {
    "slipway": "Slipway",
    "slipway-w2": "Slipway 2 workers",
    "slipway-batch": "Slipway batching",
    "slipway-w2-batch": "Slipway 2 workers + batching",
    "mlflow": "MLflow",
    "mlflow-w2": "MLflow 2 workers",
}
BASELINE = {
    "slipway": "mlflow",
    "slipway-w2": "mlflow-w2",
    "slipway-batch": "mlflow",
    "slipway-w2-batch": "mlflow-w2",
}
"""Which MLflow server each Slipway configuration is compared with (same worker count)."""
FEATURES = [f"f{i}" for i in range(8)]
ROW_SIZES = (1, 100)
CONCURRENCY = (1, 16)
PAYLOADS = 64
"""Distinct request bodies per size, sent in turn (answers are checked for each)."""
AIM_SPEEDUP = 10.0
AIM_START_S = 2.0


# ---------------------------------------------------------------------------------------------
# The model and the requests


@dataclass
class Workload:
    """Pre-encoded requests of one size and the predictions each must get back."""

    rows: int
    requests: list[bytes]
    expected: list[list[int]]


def build_model(root: Path) -> tuple[Path, Any]:
    """A fitted LogisticRegression saved (MLflow's format, with a signature) under ``root``."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import slipway.flavors.sklearn as sk
    from slipway.models.signature import infer_signature

    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(2000, len(FEATURES))), columns=FEATURES)
    target = np.digitize(frame["f0"] + 0.5 * frame["f1"] - frame["f2"], [-0.7, 0.7])
    model = LogisticRegression(max_iter=500).fit(frame, target)
    path = root / "model"
    sk.save_model(
        model,
        path,
        signature=infer_signature(frame, model.predict(frame)),
        pip_requirements=["scikit-learn", "numpy", "pandas"],
    )
    return path, model


def workloads(model: Any, host: str, port: int) -> dict[int, Workload]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(12)
    out: dict[int, Workload] = {}
    for rows in ROW_SIZES:
        requests, expected = [], []
        for _ in range(PAYLOADS):
            frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
            body = json.dumps(
                {"dataframe_split": {"columns": FEATURES, "data": frame.values.tolist()}}
            ).encode()
            requests.append(http_request(host, port, body))
            expected.append([int(v) for v in model.predict(frame)])
        out[rows] = Workload(rows, requests, expected)
    return out


def http_request(host: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


# ---------------------------------------------------------------------------------------------
# The servers


def server_spec(name: str, model: Path, port: int) -> ServerSpec | str:
    """The command line of server ``name``, or why it cannot run."""
    where = ["--host", "127.0.0.1", "--port", str(port)]
    if name.startswith("slipway"):
        binary = venv_bin("slipway")
        if binary is None:
            return f"{name}: the slipway console script was not found"
        cmd = [binary, "serve", str(model), *where]
        workers = ["--workers", "2"] if "-w2" in name else []
        batching = ["--max-batch-size", "64", "--max-batch-delay-ms", "2"]
        batching = batching if name.endswith("-batch") else []
        cmd += workers + batching
        note = ("2 workers" if workers else "1 worker") + (
            ", batches of up to 64 rows, 2 ms" if batching else ", no batching"
        )
        return ServerSpec(name, LABELS[name], cmd, package_version("slipway"), note)
    binary = venv_bin("mlflow")
    if binary is None:
        return f"{name}: the mlflow console script was not found (pip install -e '.[dev]')"
    cmd = [binary, "models", "serve", "-m", str(model), "--env-manager", "local", *where]
    note = "default: 1 worker"
    if name == "mlflow-w2":
        cmd += ["--workers", "2"]
        note = "2 workers"
    return ServerSpec(name, LABELS[name], cmd, package_version("mlflow"), note)


def server_env() -> dict[str, str]:
    """:func:`child_env` with this interpreter's scripts first on PATH: ``mlflow models
    serve`` starts ``uvicorn`` through the shell."""
    env = child_env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class ModelServer(Server):
    """A model server: ready when ``GET /ping`` answers 200."""

    def start(self) -> float:
        """Spawn the server; seconds until ``GET /ping`` answers 200."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.spec.command,
                cwd=self.home,
                env=server_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = urllib3.util.parse_url(self.url)
        ping = urllib3.HTTPConnectionPool(
            url.host or "127.0.0.1",
            url.port,
            maxsize=1,
            retries=False,
            timeout=urllib3.Timeout(connect=1.0, read=5.0),
            headers={"Connection": "close"},
        )
        try:
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(
                        f"{self.spec.label} exited with {self.proc.returncode} before "
                        f"answering /ping:\n{self.log_tail()}"
                    )
                with contextlib.suppress(urllib3.exceptions.HTTPError):
                    if ping.urlopen("GET", "/ping", retries=False).status == 200:
                        return time.perf_counter() - started
                if time.perf_counter() - started > START_TIMEOUT_S:
                    raise BenchError(
                        f"{self.spec.label} did not answer /ping within "
                        f"{START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
                    )
                time.sleep(HEALTH_POLL_S)
        finally:
            ping.close()


# ---------------------------------------------------------------------------------------------
# The load: an asyncio client on raw sockets


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def error(self, text: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = text


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    raise BenchError(f"an answer without a length: {head[:200]!r}")


async def one_connection(
    host: str, port: int, work: Workload, offset: int, until: float, tally: Tally | None
) -> None:
    """Requests one after the other on one kept-alive connection until ``until``."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        i = offset
        while time.perf_counter() < until:
            k = i % len(work.requests)
            i += 1
            started = time.perf_counter()
            writer.write(work.requests[k])
            status, body = await read_response(reader)
            took = time.perf_counter() - started
            if tally is None:
                continue
            if status != 200:
                tally.error(f"HTTP {status}: {body[:300]!r}")
                continue
            answer = json.loads(body).get("predictions")
            if answer != work.expected[k]:
                raise BenchError(
                    f"wrong predictions for request {k} ({work.rows} rows): got "
                    f"{str(answer)[:200]}, expected {str(work.expected[k])[:200]}"
                )
            tally.latencies.append(took)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class Measured:
    tally: Tally
    seconds: float
    client_cpu_s: float
    server_cpu_s: float


async def drive(
    server: Server, work: Workload, concurrency: int, warmup: float, duration: float
) -> Measured:
    """Warm up, then load for ``duration`` seconds."""
    url = urllib3.util.parse_url(server.url)
    host, port = url.host or "127.0.0.1", url.port or 80
    until = time.perf_counter() + warmup
    await asyncio.gather(
        *(one_connection(host, port, work, c * 7, until, None) for c in range(concurrency))
    )
    tally = Tally()
    client_cpu, server_cpu = time.process_time(), server.cpu_seconds()
    started = time.perf_counter()
    until = started + duration
    await asyncio.gather(
        *(one_connection(host, port, work, c * 7, until, tally) for c in range(concurrency))
    )
    return Measured(
        tally,
        time.perf_counter() - started,
        time.process_time() - client_cpu,
        server.cpu_seconds() - server_cpu,
    )


def load_point(
    server: Server, work: Workload, concurrency: int, warmup: float, duration: float
) -> dict[str, Any]:
    m = asyncio.run(drive(server, work, concurrency, warmup, duration))
    if not server.alive():
        raise BenchError(f"{server.spec.label} died under load:\n{server.log_tail()}")
    done = len(m.tally.latencies)
    return {
        "rows": work.rows,
        "concurrency": concurrency,
        "requests": done,
        "errors": m.tally.errors,
        "first_error": m.tally.first_error,
        "seconds": m.seconds,
        "rps": done / m.seconds,
        "rows_per_s": done * work.rows / m.seconds,
        **latency_ms(m.tally.latencies),
        "client_cpu_s": m.client_cpu_s,
        "server_cpu_s": m.server_cpu_s,
        "client_ms": m.client_cpu_s / done * 1e3 if done else None,
        "server_ms": m.server_cpu_s / done * 1e3 if done else None,
    }


# ---------------------------------------------------------------------------------------------
# One server, start to stop


@dataclass
class Config:
    duration: float
    warmup: float
    settle: float


def bench_server(
    spec: ServerSpec,
    home: Path,
    model: Any,
    cfg: Config,
    say: Callable[[str], None],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": spec.label,
        "version": spec.version,
        "note": spec.note,
        "command": spec.command,
        "loadavg_start": os.getloadavg(),
    }
    server = ModelServer(spec, home)
    try:
        out["start_s"] = server.start()
        out["settle_s"] = server.settle(cfg.settle)
        out["idle_memory"] = server.memory()
        say(
            f"{spec.label}: /ping 200 after {out['start_s']:.2f} s; idle "
            f"{out['idle_memory']['processes']} processes, PSS "
            f"{fmt_mb(out['idle_memory']['pss_mb'])}, RSS {fmt_mb(out['idle_memory']['rss_mb'])}"
        )
        url = urllib3.util.parse_url(server.url)
        work = workloads(model, url.host or "127.0.0.1", url.port or 80)
        out["load"] = {}
        for rows in ROW_SIZES:
            for concurrency in CONCURRENCY:
                point = load_point(server, work[rows], concurrency, cfg.warmup, cfg.duration)
                out["load"][f"{rows}x{concurrency}"] = point
                say(
                    f"  {rows:>3} row(s), concurrency {concurrency:>2}: "
                    f"{point['rps']:,.0f} req/s, p50 {fmt_ms(point['p50_ms'])}, "
                    f"p99 {fmt_ms(point['p99_ms'])}, errors {point['errors']}"
                )
        out["end_memory"] = server.memory()
    except BenchError as exc:
        out["error"] = str(exc)
        say(f"[red]{spec.label}: {exc}")
    finally:
        server.stop()
    return out


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Row:
    label: str
    key: str  # a path into one server's results
    unit: str  # "s", "mb", "rate", "ms"
    higher_is_better: bool | None  # None: shown, not compared


def rows_of() -> list[Row]:
    rows = [
        Row("start: spawn -> /ping 200", "start_s", "s", False),
        Row("idle RSS (process tree)", "idle_memory.rss_mb", "mb", False),
        Row("idle PSS (process tree)", "idle_memory.pss_mb", "mb", False),
    ]
    for size in ROW_SIZES:
        for conc in CONCURRENCY:
            where = f"load.{size}x{conc}"
            name = f"{size} row{'s' if size > 1 else ''}, concurrency {conc}"
            rows.append(Row(f"{name}: requests/s", f"{where}.rps", "rate", True))
            if size > 1:
                rows.append(Row(f"{name}: rows/s", f"{where}.rows_per_s", "rate", True))
            rows.append(Row(f"{name}: p50", f"{where}.p50_ms", "ms", False))
            rows.append(Row(f"{name}: p99", f"{where}.p99_ms", "ms", False))
            if conc > 1:
                rows.append(Row("  server CPU per request", f"{where}.server_ms", "ms", False))
                rows.append(Row("  client CPU per request", f"{where}.client_ms", "ms", None))
    return rows


def dig(data: dict[str, Any] | None, path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    return {"s": fmt_s, "mb": fmt_mb, "ms": fmt_ms, "rate": fmt_num}[unit](value)


def ratio(row: Row, ours: Any, theirs: Any) -> float | None:
    """How many times better ours is (faster, smaller, lower)."""
    if row.higher_is_better is None or ours is None or theirs is None:
        return None
    if ours <= 0 or theirs <= 0:
        return None
    return float(ours / theirs if row.higher_is_better else theirs / ours)


def aim(row: Row, name: str, results: dict[str, Any]) -> str:
    ours = dig(results.get(name), row.key)
    base = dig(results.get(BASELINE[name]), row.key)
    if row.key == "start_s" and ours is not None:
        return f"<{AIM_START_S:.0f} s {'met' if ours < AIM_START_S else 'MISSED'}"
    if row.key.endswith("x16.rps"):
        r = ratio(row, ours, base)
        if r is not None:
            return f">={AIM_SPEEDUP:.0f}x {'met' if r >= AIM_SPEEDUP else 'MISSED'}"
    if row.key.endswith("x16.p99_ms"):
        r = ratio(row, ours, base)
        if r is not None:
            return f"lower {'met' if r > 1 else 'MISSED'}"
    return ""


def table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    present = [s for s in SERVERS if s in results]
    compared = [s for s in BASELINE if s in results and BASELINE[s] in results]
    header = [
        "workload",
        *[LABELS[s] for s in present],
        *[f"{LABELS[s]} vs {LABELS[BASELINE[s]]}" for s in compared],
        f"aim ({LABELS[compared[0]]})" if compared else "aim",
    ]
    out = []
    for row in rows_of():
        cells = [fmt(dig(results[s], row.key), row.unit) for s in present]
        ratios = [
            fmt_ratio(ratio(row, dig(results[s], row.key), dig(results[BASELINE[s]], row.key)))
            for s in compared
        ]
        out.append([row.label, *cells, *ratios, aim(row, compared[0], results) if compared else ""])
    return header, out


def render(header: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    grid = Table(
        title="Model serving (x = times better for Slipway: faster, lower or smaller)",
        title_justify="left",
    )
    for i, name in enumerate(header):
        grid.add_column(name, justify="left" if i in (0, len(header) - 1) else "right")
    for row in rows:
        grid.add_row(*row[:-1], row[-1].replace("MISSED", "[red]MISSED[/]"))
    return grid


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(header) - 2) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "slipway": package_version("slipway"),
        "mlflow": package_version("mlflow"),
        "scikit-learn": package_version("scikit-learn"),
        "uvicorn": package_version("uvicorn"),
    }


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short load points (smoke test)")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated, in order (default: {','.join(SERVERS)})",
    )
    parser.add_argument("--duration", type=float, help="seconds per load point (10; 2 quick)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per point (2; 0.5 quick)")
    parser.add_argument("--settle", type=float, help="idle seconds before memory (2; 1 quick)")
    parser.add_argument("--json", help="write every number to this file")
    parser.add_argument("--markdown", help="write the table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = parse_args(argv)
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(unknown)} (choose from {SERVERS})")
    cfg = Config(
        duration=args.duration or (2.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0),
        settle=args.settle if args.settle is not None else (1.0 if args.quick else 2.0),
    )
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 200))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    env = environment()
    console.print(
        f"[bold]Model serving[/] - {', '.join(LABELS[n] for n in names)}; Python "
        f"{env['python']}, {env['cpus']} CPUs, load {os.getloadavg()[0]:.1f}; "
        f"{cfg.duration:.0f} s per point"
    )
    started = time.time()
    results: dict[str, Any] = {}
    skipped: list[str] = []
    try:
        with temporary_root("slipway-serving-bench-", args.keep) as root:
            if args.keep:
                console.print(f"keeping the temporary folder {root}")
            model_dir, model = build_model(root)
            for name in names:
                spec = server_spec(name, model_dir, free_port())
                if isinstance(spec, str):
                    skipped.append(spec)
                    console.print(f"[yellow]skipped {spec}")
                    continue
                results[name] = bench_server(spec, root / name, model, cfg, console.print)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted: the server was stopped and the folder removed.")
        return 130
    except Exception:
        console.print(f"[red]{traceback.format_exc()}")
        return 1
    header, rows = table(results)
    console.print(render(header, rows))
    for name, result in results.items():
        console.print(f"[dim]{LABELS[name]}: {result['note']}; {result['version']}")
    console.print(f"[dim]wall time {time.time() - started:.0f} s")
    if args.json:
        report = {
            "environment": env,
            "config": cfg.__dict__,
            "servers": results,
            "skipped": skipped,
            "table": {"header": header, "rows": rows},
            "wall_s": time.time() - started,
        }
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(header, rows))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
