"""Slipway's model format and registry against MLflow's, on local stores, in one run.

Usage::

    python -m bench.models [--repeat 20] [--calls 2000] [--versions 200] [--quick]
                           [--json OUT] [--markdown OUT]

Workloads (each side, each workload in a child process of its own, on a fresh folder):

1. ``log``: ``<side>.sklearn.log_model`` of a fitted LogisticRegression with an input example
   (signature inferred, environment captured, files uploaded to the run), ``--repeat`` times.
   ``log-pinned`` does the same with ``pip_requirements`` given, which spares MLflow its
   requirement inference (it loads the model in a subprocess to see what it imports).
2. ``load``: ``<side>.pyfunc.load_model`` of the same saved model directory, ``--repeat``
   times (the first load pays the imports; the median is reported).
3. ``predict-1``: ``model.predict`` on a one-row DataFrame, ``--calls`` times: the per-call
   overhead of signature enforcement and conversion, which a server pays on every request.
4. ``predict-10k``: ``model.predict`` on 10,000 rows, ``--repeat`` times.
5. ``registry``: ``--versions`` model versions of one model created through each side's
   client on SQLite, each followed by moving an alias onto it and reading it back by alias.

Peak memory (``ru_maxrss``) is reported per child. Ctrl-C stops the children and removes the
temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import interrupt, package_version, temporary_root

SIDES = ("slipway", "mlflow")
WORKLOADS = ("log", "log-pinned", "load", "predict-1", "predict-10k", "registry")
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def dataset(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    target = (frame["sepal_length"] + frame["petal_width"] > 0).astype("int64")
    return frame, target


def fitted_model() -> Any:
    from sklearn.linear_model import LogisticRegression

    frame, target = dataset(500)
    return LogisticRegression(max_iter=200).fit(frame, target)


class Side:
    """The same steps through Slipway's or MLflow's API."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        warnings.simplefilter("ignore")  # MLflow warns about deprecated arguments and stages
        if name == "slipway":
            import slipway

            slipway.set_tracking_uri(str(root / "store"))
            self.lib: Any = slipway
        else:
            import mlflow

            mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
            self.lib = mlflow

    def log(self, model: Any, example: Any, pinned: bool) -> None:
        options: dict[str, Any] = {"input_example": example}
        if pinned:
            options["pip_requirements"] = [f"scikit-learn=={package_version('scikit-learn')}"]
        with self.lib.start_run():
            if self.name == "slipway":
                self.lib.sklearn.log_model(model, "model", **options)
            else:
                self.lib.sklearn.log_model(model, name="model", **options)

    def save(self, model: Any, example: Any, path: Path) -> None:
        self.lib.sklearn.save_model(model, str(path), input_example=example)

    def load(self, path: Path) -> Any:
        return self.lib.pyfunc.load_model(str(path))

    def registry_round(self, count: int) -> None:
        """``count`` versions, each given the alias ``champion`` and read back by it."""
        if self.name == "slipway":
            from slipway.registry import RegistryClient

            client: Any = RegistryClient()
            run_client = self.lib.SlipwayClient()
            run = run_client.create_run(run_client.create_experiment("registry"))
            source = run.info.artifact_uri + "/model"
            client.create_registered_model("bench")
            for _ in range(count):
                mv = client.store.create_model_version("bench", source, run.info.run_id)
                client.set_alias("bench", "champion", mv.version)
                assert client.get_model_version("bench", alias="champion").version == mv.version
        else:
            client = self.lib.MlflowClient()
            run = client.create_run(client.create_experiment("registry"))
            source = run.info.artifact_uri + "/model"
            client.create_registered_model("bench")
            for _ in range(count):
                mv = client.create_model_version("bench", source, run.info.run_id)
                client.set_registered_model_alias("bench", "champion", mv.version)
                found = client.get_model_version_by_alias("bench", "champion")
                assert found.version == mv.version


def timed(action: Callable[[], Any], times: int) -> list[float]:
    out = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        out.append(time.perf_counter() - start)
    return out


def worker(side_name: str, workload: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    side = Side(side_name, root)
    model = fitted_model()
    example, _ = dataset(5)
    result: dict[str, Any] = {"side": side_name, "workload": workload}
    if workload.startswith("log"):
        pinned = workload == "log-pinned"
        times = timed(lambda: side.log(model, example, pinned), args.repeat)
        result.update(median_s=statistics.median(times), unit="log_model")
    elif workload == "registry":
        start = time.perf_counter()
        side.registry_round(args.versions)
        elapsed = time.perf_counter() - start
        result.update(median_s=elapsed / args.versions, unit="version+alias+get")
    else:
        path = root / "saved"
        side.save(model, example, path)
        if workload == "load":
            times = timed(lambda: side.load(path), args.repeat)
            result.update(median_s=statistics.median(times), first_s=times[0], unit="load")
        else:
            loaded = side.load(path)
            rows, times_n = (1, args.calls) if workload == "predict-1" else (10_000, args.repeat)
            frame, _ = dataset(rows)
            times = timed(lambda: loaded.predict(frame), times_n)
            result.update(median_s=statistics.median(times), unit=f"predict({rows} rows)")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_child(side: str, workload: str, root: Path, argv: list[str]) -> dict[str, Any]:
    folder = root / f"{side}-{workload}"
    folder.mkdir()
    cmd = [sys.executable, "-m", "bench.models", "--worker", side, workload, str(folder), *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} {workload} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    by = {(r["side"], r["workload"]): r for r in results}
    lines = [
        f"Python {platform.python_version()}, slipway {package_version('slipway')}, "
        f"mlflow {package_version('mlflow')}, scikit-learn {package_version('scikit-learn')}; "
        f"repeat {args.repeat}, calls {args.calls}, versions {args.versions}.",
        "",
        "| workload | unit | Slipway | MLflow | MLflow / Slipway | peak RSS MB (S / M) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for workload in WORKLOADS:
        s, m = by.get(("slipway", workload)), by.get(("mlflow", workload))
        if not s or not m:
            continue
        lines.append(
            f"| {workload} | {s['unit']} | {s['median_s'] * 1000:.2f} ms | "
            f"{m['median_s'] * 1000:.2f} ms | {m['median_s'] / s['median_s']:.1f}x | "
            f"{s['peak_rss_mb']:.0f} / {m['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="Small sizes, for a smoke run.")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "WORKLOAD", "DIR"))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.calls, args.versions = 3, 50, 10
    if args.worker:
        side, workload, folder = args.worker
        os.chdir(folder)
        print(json.dumps(worker(side, workload, Path(folder), args)))
        return 0
    signal.signal(signal.SIGTERM, interrupt)
    passthrough = ["--repeat", str(args.repeat), "--calls", str(args.calls)]
    passthrough += ["--versions", str(args.versions)]
    results = []
    with temporary_root("slipway-bench-models-", args.keep) as root:
        for workload in WORKLOADS:
            for side in SIDES:
                print(f"{workload:12} {side:8}", end=" ", flush=True, file=sys.stderr)
                results.append(run_child(side, workload, root, passthrough))
                print(f"{results[-1]['median_s'] * 1000:9.2f} ms", file=sys.stderr)
    table = markdown(results, args)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
