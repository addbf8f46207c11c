"""A Slipway study's wall time against plain Optuna's, same sampler, same objective.

Usage::

    python -m bench.tuning [--trials 40] [--sleep 0.02] [--repeat 3] [--quick] [--json OUT]

Each side runs the same study: TPE with the same seed, ``--trials`` trials of an objective
that sleeps ``--sleep`` seconds and returns a function of two parameters, at parallelism 1
and 2. Every run is a child process of its own on a fresh folder; the time is the study call
alone (``tuning.tune`` / ``study.optimize``), after the imports; the median of ``--repeat``
runs is reported.

Sides (the peers are chosen to be fair, and say what they leave out):

``optuna-memory``
    ``optuna.create_study()`` in memory, ``optimize(n_jobs=parallelism)``: threads in one
    process, nothing written anywhere. The floor: what sampling and the objective cost.
``optuna-journal``
    Optuna's own durable, multi-process setup: a ``JournalFileBackend`` file and
    ``parallelism`` worker processes, each running ``optimize`` on its share of the trials.
    Durable and resumable like Slipway's study, but without tracking runs.
``slipway``
    ``slipway.tuning.tune`` on a ``sqlite:///`` tracking store: every trial a process of its
    own and a child run (params, final metric, state), the study's journal in the tracking
    database, the study's run with its best-so-far metric.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import interrupt, package_version, temporary_root

SIDES = ("optuna-memory", "optuna-journal", "slipway")


def make_objective(sleep: float) -> Any:
    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -5.0, 5.0)
        y = trial.suggest_int("y", 1, 8)
        time.sleep(sleep)
        return (x - 1.0) ** 2 + abs(y - 3)

    return objective


def _journal_worker(path: str, name: str, trials: int, sleep: float, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(seed=seed)
    )
    study.optimize(make_objective(sleep), n_trials=trials)


def run_side(side: str, root: Path, trials: int, parallelism: int, sleep: float) -> float:
    """One study of ``side``; its wall time in seconds."""
    seed = 42
    if side == "slipway":
        from slipway import tuning

        objective = make_objective(sleep)
        space = {"x": tuning.uniform(-5.0, 5.0), "y": tuning.randint(1, 8)}
        started = time.perf_counter()
        study = tuning.tune(
            objective,
            space,
            n_trials=trials,
            parallelism=parallelism,
            sampler="tpe",
            seed=seed,
            pruner="none",
            tracking_uri=f"sqlite:///{root / 'slipway.db'}",
            study_name="bench",
        )
        elapsed = time.perf_counter() - started
        assert study.counts() == {"COMPLETE": trials}, study.counts()
        return elapsed
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if side == "optuna-memory":
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        started = time.perf_counter()
        study.optimize(make_objective(sleep), n_trials=trials, n_jobs=parallelism)
        elapsed = time.perf_counter() - started
        assert len(study.trials) == trials
        return elapsed
    path = str(root / "journal.log")
    started = time.perf_counter()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    optuna.create_study(study_name="bench", storage=storage)
    shares = [trials // parallelism + (i < trials % parallelism) for i in range(parallelism)]
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_journal_worker, args=(path, "bench", n, sleep, seed + i))
        for i, n in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    return time.perf_counter() - started


def child_main(args: argparse.Namespace) -> None:
    """In a child process: one study, its time as JSON on stdout."""
    elapsed = run_side(args.side, Path(args.root), args.trials, args.parallelism[0], args.sleep)
    print(json.dumps({"seconds": elapsed}))


def measure(side: str, root: Path, trials: int, parallelism: int, sleep: float) -> float:
    folder = root / f"{side}-{parallelism}-{time.monotonic_ns()}"
    folder.mkdir()
    command = [
        sys.executable, "-m", "bench.tuning", "--child", "--side", side, "--root", str(folder),
        "--trials", str(trials), "--parallelism", str(parallelism), "--sleep", str(sleep),
    ]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=os.getcwd())
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--sleep", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallelism", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="20 trials, one run each")
    parser.add_argument("--json", type=Path, help="write every number to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    if args.quick:
        args.trials, args.repeat = 20, 1
    signal.signal(signal.SIGTERM, interrupt)
    results: list[dict[str, Any]] = []
    print(
        f"{args.trials} trials of a {args.sleep * 1000:.0f} ms objective, TPE seed 42, "
        f"median of {args.repeat}; Python {platform.python_version()}, optuna "
        f"{package_version('optuna')}, {os.cpu_count()} CPUs"
    )
    print(f"{'side':<16}{'parallel':>9}{'seconds':>10}{'per trial':>12}{'vs memory':>11}")
    with temporary_root("slipway-bench-tuning-", args.keep) as root:
        for parallelism in args.parallelism:
            floor = None
            for side in SIDES:
                times = [
                    measure(side, root, args.trials, parallelism, args.sleep)
                    for _ in range(args.repeat)
                ]
                median = statistics.median(times)
                floor = floor if floor is not None else median
                results.append(
                    {"side": side, "parallelism": parallelism, "seconds": median, "runs": times}
                )
                print(
                    f"{side:<16}{parallelism:>9}{median:>10.2f}"
                    f"{median / args.trials * 1000:>10.1f}ms{median / floor:>10.2f}x"
                )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2
            )
        )


if __name__ == "__main__":
    main()
