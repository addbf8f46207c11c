"""A Slipway study's wall time against plain Optuna's, same sampler, same objective.

Usage::

    python -m bench.tuning [--trials 40] [--sleep 0.02] [--repeat 3] [--quick] [--json OUT]

Each side runs the same study: TPE with the same seed, ``--trials`` trials of an objective
that sleeps ``--sleep`` seconds and returns a function of two parameters, at parallelism 1
and 2. Every run is a child process of its own on a fresh folder; the time is the study call
alone (``tuning.tune`` / ``study.optimize``), after the imports (Optuna is imported before the
clock starts on every side); the median of ``--repeat`` runs is reported. For Slipway it also
says when the first trial ended (what starting the study cost, plus one trial) and the time per
trial after it.

Sides (the peers are chosen to be fair, and say what they leave out):

``optuna-memory``
    ``optuna.create_study()`` in memory, ``optimize(n_jobs=parallelism)``: threads in one
    process, nothing written anywhere. The floor: what sampling and the objective cost.
``optuna-journal``
    Optuna's own durable, multi-process setup: a ``JournalFileBackend`` file and
    ``parallelism`` worker processes, each running ``optimize`` on its share of the trials.
    Durable and resumable like Slipway's study, but without tracking runs.
``slipway``
    ``slipway.tuning.tune`` on a new ``sqlite:///`` tracking store (its schema is created
    inside the clock): trials in ``parallelism`` long-lived worker processes forked from a
    fork server (started inside the clock too), every trial a child run (params, final metric,
    state), the study's journal in the tracking database, the study's run with its
    best-so-far metric.
``slipway-db-exists``
    The same, on a tracking database another process created before the clock starts: the
    usual case once a project has one.
``slipway-2nd-study``
    The same, as the second study of the process (a one-trial study ran before the clock
    starts, as in a notebook): its fork server is up and its stores are open.
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

SIDES = (
    "optuna-memory",
    "optuna-journal",
    "slipway",
    "slipway-db-exists",
    "slipway-2nd-study",
)


def make_objective(sleep: float) -> Any:
    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -5.0, 5.0)
        y = trial.suggest_int("y", 1, 8)
        time.sleep(sleep)
        return float((x - 1.0) ** 2 + abs(y - 3))

    return objective


def _journal_worker(path: str, name: str, trials: int, sleep: float, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(seed=seed)
    )
    study.optimize(make_objective(sleep), n_trials=trials)


def run_side(
    side: str, root: Path, trials: int, parallelism: int, sleep: float
) -> dict[str, float]:
    """One study of ``side``: its wall time in seconds (and, for Slipway, when the first
    trial ended)."""
    import optuna

    seed = 42
    if side.startswith("slipway"):
        from slipway import tuning

        objective = make_objective(sleep)
        space: dict[str, Any] = {"x": tuning.uniform(-5.0, 5.0), "y": tuning.randint(1, 8)}
        uri = f"sqlite:///{root / 'slipway.db'}"
        if side == "slipway-2nd-study":
            tuning.tune(objective, space, n_trials=1, tracking_uri=uri, study_name="first")
        ends: list[float] = []
        started = time.perf_counter()
        study = tuning.tune(
            objective,
            space,
            n_trials=trials,
            parallelism=parallelism,
            sampler="tpe",
            seed=seed,
            pruner="none",
            tracking_uri=uri,
            study_name="bench",
            callbacks=[lambda _: ends.append(time.perf_counter() - started)],
        )
        elapsed = time.perf_counter() - started
        assert study.counts() == {"COMPLETE": trials}, study.counts()
        return {"seconds": elapsed, "first_end": ends[0]}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if side == "optuna-memory":
        in_memory = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        started = time.perf_counter()
        in_memory.optimize(make_objective(sleep), n_trials=trials, n_jobs=parallelism)
        elapsed = time.perf_counter() - started
        assert len(in_memory.trials) == trials
        return {"seconds": elapsed}
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
    return {"seconds": time.perf_counter() - started}


def child_main(args: argparse.Namespace) -> None:
    """In a child process: one study, its times as JSON on stdout."""
    print(
        json.dumps(
            run_side(args.side, Path(args.root), args.trials, args.parallelism[0], args.sleep)
        )
    )


def measure(side: str, root: Path, trials: int, parallelism: int, sleep: float) -> dict[str, float]:
    folder = root / f"{side}-{parallelism}-{time.monotonic_ns()}"
    folder.mkdir()
    if side == "slipway-db-exists":
        create = (
            f"from slipway import SlipwayClient; SlipwayClient('sqlite:///{folder}/slipway.db')"
        )
        subprocess.run([sys.executable, "-c", create], check=True)
    command = [
        sys.executable, "-m", "bench.tuning", "--child", "--side", side, "--root", str(folder),
        "--trials", str(trials), "--parallelism", str(parallelism), "--sleep", str(sleep),
    ]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=os.getcwd())
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: float(v) for k, v in found.items()}


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
    print(f"{'side':<19}{'parallel':>9}{'seconds':>10}{'per trial':>12}{'vs memory':>11}")
    with temporary_root("slipway-bench-tuning-", args.keep) as root:
        for parallelism in args.parallelism:
            floor = None
            for side in SIDES:
                runs = [
                    measure(side, root, args.trials, parallelism, args.sleep)
                    for _ in range(args.repeat)
                ]
                median = statistics.median(r["seconds"] for r in runs)
                floor = floor if floor is not None else median
                result: dict[str, Any] = {
                    "side": side,
                    "parallelism": parallelism,
                    "seconds": median,
                    "runs": runs,
                }
                line = (
                    f"{side:<19}{parallelism:>9}{median:>10.2f}"
                    f"{median / args.trials * 1000:>10.1f}ms{median / floor:>10.2f}x"
                )
                if "first_end" in runs[0]:
                    first = statistics.median(r["first_end"] for r in runs)
                    after = statistics.median(
                        (r["seconds"] - r["first_end"]) / max(args.trials - 1, 1) for r in runs
                    )
                    result |= {"first_trial_ended": first, "per_trial_after_first": after}
                    line += (
                        f"  (first trial ended at {first:.2f} s, then {after * 1000:.1f} ms/trial)"
                    )
                results.append(result)
                print(line, flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2
            )
        )


if __name__ == "__main__":
    main()
