"""``slipway serve`` locally against ``slipway serve --on ray``, the same model, one run.

Usage::

    python -m bench.serving_ray [--quick] [--servers local,local-w2,ray,ray-r2]
                                [--duration S] [--json OUT] [--keep]

The model and the load are those of :mod:`bench.serving` (a LogisticRegression on 8
features; ``POST /invocations`` with 1 and 100 rows, at concurrency 1 and 16, every answer
checked). Each server is a subprocess in its own process group on a free loopback port:

* ``local``: ``slipway serve MODEL`` (one uvicorn worker);
* ``local-w2``: the same with ``--workers 2``;
* ``ray``: ``slipway serve MODEL --on ray --replicas 1`` on a local Ray instance that the
  command starts (Ray Serve's proxy in front of one replica);
* ``ray-r2``: the same with ``--replicas 2``.

Each replica reserves half a CPU, so two fit on a 2-core machine. What this measures is the
cost of Ray Serve's HTTP proxy and its hop to the replica against uvicorn answering directly;
on one machine more replicas cannot add cores, so the scale-out itself is not measured. The
start time includes starting Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench._common import interrupt, package_version, temporary_root
from bench.server_processes import ServerSpec, free_port, venv_bin
from bench.serving import CONCURRENCY, ROW_SIZES, Config, bench_server, build_model

SERVERS = {
    "local": ("slipway serve", []),
    "local-w2": ("slipway serve, 2 workers", ["--workers", "2"]),
    "ray": ("--on ray, 1 replica", ["--on", "ray", "--replicas", "1", "--replica-cpus", "0.5"]),
    "ray-r2": ("--on ray, 2 replicas", ["--on", "ray", "--replicas", "2", "--replica-cpus", "0.5"]),
}


def server_spec(name: str, model: Path) -> ServerSpec:
    binary = venv_bin("slipway")
    if binary is None:
        raise SystemExit("the slipway console script was not found")
    label, extra = SERVERS[name]
    cmd = [binary, "serve", str(model), "--host", "127.0.0.1", "--port", str(free_port())]
    return ServerSpec(name, label, [*cmd, *extra], package_version("slipway"), " ".join(extra))


def table(results: dict[str, Any]) -> list[str]:
    names = list(results)
    lines = ["| | " + " | ".join(results[n]["label"] for n in names) + " |"]
    lines.append("|---" * (len(names) + 1) + "|")

    def row(title: str, cell: Any) -> None:
        lines.append(f"| {title} | " + " | ".join(cell(results[n]) for n in names) + " |")

    row("start (s)", lambda r: f"{r.get('start_s', float('nan')):.1f}")
    for rows in ROW_SIZES:
        for conc in CONCURRENCY:
            key = f"{rows}x{conc}"

            def rps(r: dict[str, Any], key: str = key) -> str:
                point = r.get("load", {}).get(key)
                return "-" if point is None else f"{point['rps']:,.0f}"

            def p50(r: dict[str, Any], key: str = key) -> str:
                point = r.get("load", {}).get(key)
                return "-" if point is None else f"{point['p50_ms']:.1f}"

            row(f"{rows} row(s), concurrency {conc}: requests/s", rps)
            row(f"{rows} row(s), concurrency {conc}: p50 (ms)", p50)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving_ray", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short load points (smoke test)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, in order")
    parser.add_argument("--duration", type=float, help="seconds per load point (10; 2 quick)")
    parser.add_argument("--json", help="write every number to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(unknown)} (choose from {list(SERVERS)})")
    cfg = Config(
        duration=args.duration or (2.0 if args.quick else 10.0),
        warmup=0.5 if args.quick else 2.0,
        settle=1.0 if args.quick else 2.0,
    )
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    print(
        f"Model serving, local against Ray Serve; {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; {cfg.duration:.0f} s per point"
    )
    started = time.time()
    results: dict[str, Any] = {}
    try:
        with temporary_root("slipway-serving-ray-bench-", args.keep) as root:
            model_dir, model = build_model(root)
            for name in names:
                spec = server_spec(name, model_dir)
                results[name] = bench_server(spec, root / name, model, cfg, print)
    except KeyboardInterrupt:
        print("Interrupted: the server was stopped and the folder removed.")
        return 130
    except Exception:
        print(traceback.format_exc())
        return 1
    print("\n".join(table(results)))
    print(f"wall time {time.time() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
