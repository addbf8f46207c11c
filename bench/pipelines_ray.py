"""The same 200-task fan-out pipeline on Slipway's local executor and on its Ray executor: what
a step costs each of them.

Usage::

    python -m bench.pipelines_ray [--fanout N] [--executors local,ray] [--json OUT] [--keep]

The pipeline is ``bench/pipelines.py``'s fan-out: one producer returning ``list(range(N))``, a
``parallel_for`` of ``N`` trivial tasks (``--fanout``: 200) and a fan-in summing them, ``N + 2``
steps that do no work, so the time per step is the executor's.

Each executor runs in a child process of its own, on a fresh folder (a SQLite store created
before the clock starts, ``TMPDIR`` inside the folder, no ``SLIPWAY_*`` settings inherited):

* ``local``: ``slipway.pipelines.run(p)``, each step a process of this machine (default budget);
* ``ray``: ``run(p, executor="ray", ray_address=None)``: the child starts a **local Ray
  instance** (``ray.init()`` with the machine's CPUs; no cluster, no network), before the
  clock, and each step is a Ray task asking for one CPU. ``RAY_AUTH_MODE=disabled`` is set for
  it so that it leaves no ``~/.ray/auth_token`` behind.

Each child times two runs of the pipeline: ``first`` (cache on, every step a miss; the local
executor boots its fork server during it, Ray starts its worker processes and each worker's
fork server), then ``second`` (``cache=False``, every step runs again, everything warm). Every
run is checked: SUCCEEDED, the pipeline's sum, every step SUCCEEDED, a child run per step in
the database. Per-step overhead is the run's wall time divided by its steps; orchestrator CPU
is the CPU time of the benchmarked process itself (not of the steps, nor of Ray's processes).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import interrupt, package_version, temporary_root
from bench.pipelines import (
    check_slipway,
    prepare_store,
    run_in_child,
    slipway_pipeline,
    step_count,
)
from bench.server_http import BenchError

EXECUTORS = ("local", "ray")
KINDS = ("first", "second")


def worker(executor: str, size: int, folder: Path) -> dict[str, Any]:
    """Run the fan-out twice on ``executor``; what each run took."""
    from slipway.pipelines import run

    pipe = slipway_pipeline("fanout", size)
    pipe.graph  # noqa: B018 - built and validated before the clock starts
    uri, _ = prepare_store(folder)
    startup = 0.0
    if executor == "ray":
        from slipway.engines import ray as ray_engine

        started = time.perf_counter()
        ray_engine.connect(None)  # a local Ray instance for this process
        startup = time.perf_counter() - started
    runs = []
    for kind in KINDS:
        cpu, started = time.process_time(), time.perf_counter()
        result = run(pipe, tracking_uri=uri, cache=kind == "first", executor=executor)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        check_slipway(result, "fanout", size, "SUCCEEDED", folder / "store" / "slipway.db")
        nodes = {s.details.get("node_id") or s.details.get("host") for s in result.steps}
        runs.append(
            {
                "kind": kind,
                "wall_s": wall,
                "cpu_s": cpu,
                "steps": len(result.steps),
                "places": len(nodes),
            }
        )
    return {"executor": executor, "startup_s": startup, "runs": runs}


def run_child(executor: str, size: int, folder: Path) -> dict[str, Any]:
    """One executor in a process of its own, in ``folder``; what it measured."""
    # Ray's socket paths must stay short: its session folder directly under the temp root.
    ray_tmp = tempfile.mkdtemp(prefix="rayb-")
    env: dict[str, str | None] = {
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": ray_tmp,
        "RAY_ADDRESS": None,  # a local Ray instance, whatever this shell points at
    }
    try:
        args = ["bench.pipelines_ray", "--worker", executor, str(size)]
        return run_in_child(args, folder, f"{executor} fanout-{size}", env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def table(results: list[dict[str, Any]], size: int) -> str:
    steps = step_count("fanout", size)
    lines = [
        f"Fan-out of {size} ({steps} steps), one run of each; per step = wall / steps.",
        "",
        "| executor | run | wall | per step | orchestrator CPU | places used |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        label = {
            "local": "local (processes of this machine)",
            "ray": "Ray (a local Ray instance)",
        }[result["executor"]]
        for r in result["runs"]:
            lines.append(
                f"| {label} | {r['kind']} | {r['wall_s']:.2f} s | "
                f"{r['wall_s'] / r['steps'] * 1000:.1f} ms | {r['cpu_s']:.2f} s | {r['places']} |"
            )
        if result["startup_s"]:
            lines.append(
                f"| {label} | starting Ray (`ray.init()`, not in the runs) | "
                f"{result['startup_s']:.2f} s | | | |"
            )
    by = {r["executor"]: {x["kind"]: x for x in r["runs"]} for r in results}
    if "local" in by and "ray" in by:
        lines.append("")
        for kind in KINDS:
            local, ray = by["local"][kind], by["ray"][kind]
            extra = (ray["wall_s"] - local["wall_s"]) / local["steps"] * 1000
            lines.append(
                f"- {kind} run: Ray {ray['wall_s'] / ray['steps'] * 1000:.1f} ms a step, local "
                f"{local['wall_s'] / local['steps'] * 1000:.1f} ms: Ray adds {extra:.1f} ms a "
                f"step ({ray['wall_s'] / local['wall_s']:.1f}x the wall time)."
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipelines_ray", description=__doc__)
    parser.add_argument("--fanout", type=int, default=200, help="loop iterations (200)")
    parser.add_argument("--executors", default=",".join(EXECUTORS), help="local,ray")
    parser.add_argument("--json", type=Path, help="write every number to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--worker", nargs=3, metavar=("EXECUTOR", "SIZE", "DIR"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import signal

    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    if args.worker:
        executor, size, folder = args.worker
        result = worker(executor, int(size), Path(folder))
        (Path(folder) / "result.json").write_text(json.dumps(result, indent=2))
        return 0
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    unknown = sorted(set(executors) - set(EXECUTORS))
    if unknown or args.fanout < 1:
        raise SystemExit(f"unknown executors {unknown} or a fan-out under 1")
    say = functools.partial(print, file=sys.stderr, flush=True)
    say(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, slipway "
        f"{package_version('slipway')}, ray {package_version('ray')}; "
        f"load {os.getloadavg()[0]:.2f}; fan-out of {args.fanout}"
    )
    results = []
    started = time.time()
    try:
        with temporary_root("slipway-bench-pipelines-ray-", args.keep) as root:
            for executor in executors:
                say(f"{executor} ... (load {os.getloadavg()[0]:.2f})")
                result = run_child(executor, args.fanout, root / executor)
                result["loadavg"] = os.getloadavg()[0]
                results.append(result)
    except KeyboardInterrupt:
        say("Interrupted: the running child was stopped and the folder removed.")
        return 130
    except BenchError as exc:
        say(str(exc))
        return 1
    print(table(results, args.fanout))
    say(f"wall time {time.time() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"fanout": args.fanout, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
