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
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

from bench._common import interrupt, temporary_root
from bench.server_http import (
    DEFAULT_SERVERS,
    FML_VENV,
    LABELS,
    SEARCH_FILTER,
    SEARCH_ORDER,
    SERVERS,
    BenchError,
    Http,
    create_experiment,
    create_run,
    get_history,
    search_all,
)
from bench.server_processes import Server, ServerSpec, find_fml, free_port, server_specs
from bench.server_report import environment, fmt_mb, markdown_table, render_table, table_rows
from bench.server_workloads import (
    Config,
    Meter,
    Progress,
    Stop,
    concurrent_writers,
    expected_hits,
    log_batch,
    populate_runs,
    registry_cycle,
    sequential_log_metric,
    timed_reads,
)

# ---------------------------------------------------------------------------------------------
# One server, start to stop


def has_registry(url: str) -> bool:
    """Whether the server serves MLflow's model registry: one without it (FastTrackML) answers
    ``ENDPOINT_NOT_FOUND``, one with it ``RESOURCE_DOES_NOT_EXIST`` for an unknown model."""
    probe = Http(url, keepalive=False)
    try:
        body = json.dumps({"name": "no-such-model"}).encode()
        _, data = probe.raw("POST", "registered-models/get-latest-versions", body)
    finally:
        probe.close()
    return b"ENDPOINT_NOT_FOUND" not in data


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

        # The model registry.
        def registry() -> dict[str, Any]:
            keep = Http(server.url, keepalive=True)
            try:
                run_id = create_run(keep, create_experiment(keep, "registry"), "model")
                phase = f"registry: {cfg.registry_cycles} x (version, alias, get by alias)"
                return registry_cycle(server, keep, run_id, cfg.registry_cycles, progress, phase)
            finally:
                keep.close()

        if cfg.registry_cycles and has_registry(server.url):
            step("registry", registry)
        elif cfg.registry_cycles:
            out["unsupported"] = ["registry"]
            say(f"{spec.label} has no model registry API (404): registry row left empty")
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
        "--registry-cycles",
        type=int,
        help="registry cycles: create a version, move an alias, read it (default 300; 50 quick;"
        " 0 skips)",
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
        registry_cycles=(
            args.registry_cycles if args.registry_cycles is not None else (50 if quick else 300)
        ),
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
    signal.signal(signal.SIGTERM, interrupt)
    env = environment()
    console.print(
        f"[bold]Tracking servers over HTTP[/] - {', '.join(LABELS[n] for n in names)}; Python "
        f"{env['python']}, {env['client']}, SQLite {env['sqlite']}, {env['cpus']} CPUs, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    started = time.time()
    try:
        with temporary_root("slipway-server-bench-", args.keep) as root:
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
