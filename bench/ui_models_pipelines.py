"""How long the model, approval and pipeline pages of the UI take on a big store.

Builds a SQLite store with ``--runs`` pipeline runs (each on its own tracking run, so the
tracking store holds as many runs too), ``--models`` registered models with a few versions
each, ``--requests`` transition requests, and one pipeline run whose loop has ``--fan``
instances; then renders each page in-process through the server app and prints the median and
worst time of ``--repeat`` renders (after one warm-up render). Nothing here is a pass/fail
check: the numbers go in the report.

Usage::

    python -m bench.ui_models_pipelines [--runs 10000] [--models 300] [--requests 1000]
                                        [--fan 1000] [--repeat 7] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from slipway.entities.pipelines import PipelineRun, PipelineRunStatus, PipelineStep, StepStatus
from slipway.entities.registry import TransitionTarget
from slipway.pipelines import collected, component, parallel_for, pipeline


@component
def split(n: int) -> list:
    return list(range(n))


@component
def fit(item: int) -> float:
    return float(item)


@component
def best(scores: list) -> float:
    return max(scores)


@pipeline(name="sweep")
def sweep(n: int = 10) -> None:
    items = split(n=n)
    with parallel_for(items.output) as item:
        scored = fit(item=item)
    best(scores=collected(scored.output))


def build(ctx: Any, runs: int, models: int, requests: int, fan: int) -> dict[str, str]:
    """Fill the stores; returns the ids the timed URLs need."""
    store, pipes, registry = ctx.store, ctx.pipeline_store, ctx.registry_store
    exp = store.create_experiment("timing")
    graph = sweep.graph.to_dict()
    base = 1_700_000_000_000
    last = ""
    for i in range(runs):
        run_id = store.create_run(exp, start_time=base + i, run_name=f"p{i}").info.run_id
        status = PipelineRunStatus.SUCCEEDED if i % 7 else PipelineRunStatus.FAILED
        pipes.create_pipeline_run(
            PipelineRun(
                run_id, exp, f"pipeline-{i % 20}", status, base + i, base + i + 5000, graph=graph
            )
        )
        last = run_id
    fan_run = store.create_run(exp, start_time=base, run_name="fan").info.run_id
    pipes.create_pipeline_run(
        PipelineRun(fan_run, exp, "sweep", PipelineRunStatus.RUNNING, base, graph=graph)
    )
    pipes.upsert_step(PipelineStep(fan_run, "split", "split", "split", StepStatus.SUCCEEDED, 1))
    for i in range(fan):
        status = StepStatus.SUCCEEDED if i % 3 else StepStatus.RUNNING
        pipes.upsert_step(
            PipelineStep(fan_run, f"fit[{i}]", "fit", "fit", status, 1, start_time=base + i)
        )
    source_run = store.create_run(exp, start_time=base, run_name="trainer")
    name = "model-0"
    for m in range(models):
        name = f"model-{m}"
        registry.create_registered_model(name, description="timing")
        for _ in range(3):
            registry.create_model_version(
                name, source_run.info.artifact_uri + "/model", run_id=source_run.info.run_id
            )
        registry.set_registered_model_alias(name, "champion", "1")
    for r in range(requests):
        registry.request_transition(
            f"model-{r % max(models, 1)}",
            str(1 + r % 3),
            TransitionTarget.ALIAS,
            f"a{r}",
            "timing",
            actor="alice",
        )
    return {"last_run": last, "fan_run": fan_run, "model": name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--fan", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the store folder")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the test client's own deprecation notice
    from starlette.testclient import TestClient

    from slipway.server import ServerSettings, create_app

    folder = Path(tempfile.mkdtemp(prefix="slipway-ui-timing-"))
    app = create_app(ServerSettings(backend_store_uri=str(folder / "store")))
    started = time.perf_counter()
    ids = build(app.state.context, args.runs, args.models, args.requests, args.fan)
    print(f"built the store in {time.perf_counter() - started:.1f}s ({folder})")
    urls = [
        "/pipelines",
        "/pipelines?pipeline=pipeline-3&status=FAILED",
        f"/pipelines/runs/{ids['last_run']}",
        f"/pipelines/runs/{ids['fan_run']}",
        f"/pipelines/runs/{ids['fan_run']}/state.json",
        f"/pipelines/runs/{ids['fan_run']}?step=fit%5B*%5D",
        "/models",
        f"/models/{ids['model']}",
        f"/models/{ids['model']}/versions/1",
        "/approvals",
        f"/approvals?model={ids['model']}",
    ]
    client = TestClient(app, base_url="http://127.0.0.1")
    print(f"{'page':60} {'median ms':>10} {'max ms':>8}  status")
    for url in urls:
        client.get(url)
        times = []
        status = 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            status = response.status_code
        print(f"{url[:60]:60} {statistics.median(times):10.1f} {max(times):8.1f}  {status}")
    app.state.context.close()
    if args.keep:
        print(f"store kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
