"""``slipway train`` against plain ``torchrun`` on the same script, in one run.

Usage::

    python -m bench.training [--repeat 10] [--nproc 2] [--quick] [--json OUT] [--markdown OUT]

The script initialises a gloo process group, does one ``all_reduce``, checks its result and
exits: the work is the same on both sides, so the difference in wall time is the launcher's
own cost (creating the run, the workers' set-up, uploading logs, ending the run). Each
repetition runs both launchers back to back, in alternating order, each as a fresh
``python -m ...`` process from spawn to exit. Two numbers per run: the wall time, and the CPU
time (user + system) of the launcher and every worker together, which a busy machine disturbs
far less than the wall time. Medians are reported, with the difference and the ratio. Slipway
logs to a SQLite store in a temporary folder, created before the first timed run; every
Slipway run is checked to have ended FINISHED with both ranks' logs uploaded.

Ctrl-C (or SIGTERM) stops the running child and removes the temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import interrupt, package_version, temporary_root

SCRIPT = """\
import os
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
value = torch.ones(1) * (dist.get_rank() + 1)
dist.all_reduce(value)
world = dist.get_world_size()
assert value.item() == world * (world + 1) / 2, value
if dist.get_rank() == 0:
    print("all_reduce ok", value.item())
dist.destroy_process_group()
"""

SIDES = ("torchrun", "slipway")


def command(side: str, root: Path, nproc: int) -> list[str]:
    script = str(root / "allreduce.py")
    if side == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", script]
    return [
        sys.executable,
        "-m",
        "slipway",
        "--tracking-uri",
        str(root / "store"),
        "train",
        f"--nproc={nproc}",
        script,
    ]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "TORCHELASTIC"))}
    env["OMP_NUM_THREADS"] = "1"  # both sides alike (torchrun would set it and say so)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``cmd`` (the CPU of every process it waited for included)."""
    cpu = cpu_of_children()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=child_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or "all_reduce ok" not in proc.stdout:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, cpu_of_children() - cpu


def check_runs(root: Path, expected: int, nproc: int) -> None:
    """Every Slipway run FINISHED, with every rank's stdout uploaded."""
    with sqlite3.connect(root / "store" / "slipway.db") as conn:
        statuses = [row[0] for row in conn.execute("SELECT status FROM runs")]
    assert len(statuses) == expected, (len(statuses), expected)
    assert set(statuses) == {"FINISHED"}, statuses
    artifacts = root / "store" / "artifacts"
    logs = list(artifacts.rglob("logs/rank_*.stdout.txt"))
    assert len(logs) == expected * nproc, (len(logs), expected * nproc)
    rank0 = [p for p in logs if p.name == "rank_0.stdout.txt"]
    assert all("all_reduce ok" in p.read_text() for p in rank0)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    load_at_start = os.getloadavg()
    (root / "allreduce.py").write_text(SCRIPT)
    sides = list(SIDES)
    # one untimed round: creates the store and warms the page cache for both sides
    for side in sides:
        timed(command(side, root, args.nproc), root)
    times: dict[str, list[float]] = {side: [] for side in sides}
    cpus: dict[str, list[float]] = {side: [] for side in sides}
    for i in range(args.repeat):
        order = sides if i % 2 == 0 else list(reversed(sides))
        for side in order:
            wall, cpu = timed(command(side, root, args.nproc), root)
            times[side].append(wall)
            cpus[side].append(cpu)
            print(f"  {i + 1}/{args.repeat} {side}: {wall:.2f} s, cpu {cpu:.2f} s", file=sys.stderr)
    check_runs(root, args.repeat + 1, args.nproc)
    medians = {side: statistics.median(values) for side, values in times.items()}
    cpu_medians = {side: statistics.median(values) for side, values in cpus.items()}
    return {
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "slipway": package_version("slipway"),
        "cpus": os.cpu_count(),
        "nproc": args.nproc,
        "repeat": args.repeat,
        "load_average_start": load_at_start,
        "load_average": os.getloadavg(),
        "times_s": times,
        "cpu_s": cpus,
        "median_s": medians,
        "median_cpu_s": cpu_medians,
    }


def markdown(result: dict[str, Any]) -> str:
    base, base_cpu = result["median_s"]["torchrun"], result["median_cpu_s"]["torchrun"]
    load = ", ".join(f"{x:.1f}" for x in result["load_average"])
    start = ", ".join(f"{x:.1f}" for x in result["load_average_start"])
    lines = [
        f"Python {result['python']}, torch {result['torch']}, {result['cpus']} CPUs (load "
        f"average {start} at the start, {load} at the end); {result['nproc']} workers, gloo, "
        "one all_reduce; median "
        f"of {result['repeat']} interleaved runs, each launcher a fresh process from spawn to "
        "exit; CPU is the launcher's and its workers' together.",
        "",
        "| launcher | wall | minus torchrun | / torchrun | CPU | minus torchrun |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for side, median in result["median_s"].items():
        cpu = result["median_cpu_s"][side]
        lines.append(
            f"| {side} | {median:.2f} s | {median - base:+.2f} s | {median / base:.2f}x | "
            f"{cpu:.2f} s | {cpu - base_cpu:+.2f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="three repetitions")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 3
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with temporary_root("slipway-bench-training-", args.keep) as root:
            result = run(args, root)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    table = markdown(result)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
