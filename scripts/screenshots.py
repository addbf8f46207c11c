"""Take the README's screenshots of the web UI (not a test).

Starts ``slipway ui`` on a new store in a temporary folder, makes demo data through the SDK
(an experiment of training runs with metric histories, a pipeline that trains and registers a
model, versions, an alias behind an approval, a pending request), and captures the main pages
with Playwright and Debian's chromium into ``docs/screenshots/`` (1280x800, light theme, and
one in the dark theme)::

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium PATH] [--keep]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from slipway.entities import Metric, Param, RunTag
from slipway.pipelines import Dataset, Input, Model, Output, component, parallel_for, pipeline
from slipway.pipelines import collected as fan_in

VIEWPORT = {"width": 1280, "height": 800}
READY = re.compile(r"Slipway UI on (http://\S+)")
GATE_ENV = "SLIPWAY_DEMO_GATE"
"""The file the demo's last training step waits for (the steps inherit the environment)."""
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC: dates on the pictures do not depend on today


# -- the demo pipeline ----------------------------------------------------------------------------


@component
def load_rows(rows: int, data: Output[Dataset]) -> None:
    with open(data.path, "w") as out:
        out.writelines(f"{i},{i % 3}\n" for i in range(rows))


@component
def train(data: Input[Dataset], depth: int, model: Output[Model]) -> float:
    import os as _os
    import time as _time

    gate = _os.environ.get(GATE_ENV, "")
    if depth == 8 and gate:  # the deepest tree waits, so the picture shows a step running
        give_up = _time.monotonic() + 180  # never for ever, even if the script died
        while not _os.path.exists(gate) and _time.monotonic() < give_up:
            _time.sleep(0.05)
    with open(model.path, "w") as out:
        out.write(f"depth={depth}")
    return 0.8 + depth / 100


@component
def pick_best(scores: list) -> float:
    return max(scores)


@pipeline(name="churn-training")
def churn_training(rows: int = 500) -> None:
    data = load_rows(rows=rows)
    with parallel_for([2, 4, 6, 8]) as depth:
        trained = train(data=data.outputs["data"], depth=depth)
    pick_best(scores=fan_in(trained.output))


# -- data -----------------------------------------------------------------------------------------


def curve(step: int, lr: float, noise: float) -> float:
    return 1.2 * math.exp(-lr * step / 4) + 0.05 + noise * math.sin(step * 1.7)


def make_runs(client: Any, experiment_id: str) -> list[str]:
    """Training runs with parameters, tags and loss/accuracy histories."""
    made = []
    for i, (lr, depth) in enumerate([(0.3, 4), (0.1, 6), (0.5, 4), (0.2, 8), (0.05, 6)]):
        start = T0 + i * 600_000
        run = client.create_run(experiment_id, start_time=start, run_name=f"gbm-{i + 1}")
        run_id = run.info.run_id
        metrics = []
        for step in range(60):
            loss = curve(step, lr, 0.01 * (i + 1))
            metrics.append(Metric("loss", loss, start + step * 2000, step))
            metrics.append(Metric("accuracy", 1 - loss / 1.5, start + step * 2000, step))
        client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param("lr", str(lr)), Param("depth", str(depth)), Param("rows", "50000")],
            tags=[RunTag("team", "growth"), RunTag("mlflow.source.name", "train.py")],
        )
        client.log_text(run_id, f"lr={lr}\ndepth={depth}\n", "config.txt")
        client.set_terminated(run_id, end_time=start + 120_000 + i * 7000)
        made.append(run_id)
    return made


def start_ui(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    out = folder / "ui.log"
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "slipway",
                "ui",
                "--no-browser",
                "--no-scheduler",
                "--port",
                "0",
                "--backend-store-uri",
                str(folder / "store"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while (found := READY.search(out.read_text())) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"slipway ui did not start:\n{out.read_text()}")
        time.sleep(0.05)
    return proc, found.group(1)


def wait_running(store: Any, task_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for found in store.search_pipeline_runs():
            steps = {s.task_id: s for s in store.list_steps(found.run_id)}
            if task_id in steps and steps[task_id].status.value == "RUNNING":
                others = [s for k, s in steps.items() if k.startswith("train[") and k != task_id]
                if all(s.status.terminal for s in others):
                    return found.run_id
        time.sleep(0.1)
    raise SystemExit(f"step {task_id} never ran")


# -- pictures -------------------------------------------------------------------------------------


def shoot(page: Any, url: str, path: Path, *, scroll_to: str | None = None) -> None:
    """A 1280x800 picture of ``url``; ``scroll_to`` names a heading to bring up the page
    (to a third of the way down, so what leads to it shows too)."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    if scroll_to:
        heading = page.get_by_role("heading", name=scroll_to, exact=True)
        heading.evaluate("e => window.scrollTo(0, e.getBoundingClientRect().top + scrollY - 280)")
    page.screenshot(path=str(path))
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the demo store folder")
    parser.add_argument(
        "--chromium", default=os.environ.get("SLIPWAY_TEST_CHROMIUM", "/usr/bin/chromium")
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    from slipway.pipelines import run
    from slipway.pipelines.store import get_pipeline_store
    from slipway.registry.client import RegistryClient
    from slipway.tracking.client import SlipwayClient

    folder = Path(tempfile.mkdtemp(prefix="slipway-screenshots-"))
    gate = folder / "gate"
    proc, url = start_ui(folder)
    worker: threading.Thread | None = None
    try:
        os.environ["SLIPWAY_USER"] = "alice"
        client = SlipwayClient(url)
        registry = RegistryClient(url)
        exp = client.create_experiment("churn", tags={"team": "growth"})
        client.create_experiment("fraud-detection")
        client.create_experiment("demand-forecast")
        runs = make_runs(client, exp)

        os.environ[GATE_ENV] = str(gate)
        pipelines = get_pipeline_store(url)
        holder: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: holder.setdefault(
                "result",
                run(
                    churn_training,
                    {"rows": 500},
                    tracking_uri=url,
                    experiment_name="churn-pipeline",
                ),
            ),
            daemon=True,
        )
        worker.start()
        pipeline_run = wait_running(pipelines, "train[3]")

        for run_id in runs[:3]:
            registry.register_model(
                f"runs:/{run_id}/model", "churn-classifier", description="Who cancels next month"
            )
        registry.set_registered_model_tag("churn-classifier", "owner", "growth-team")
        registry.update_registered_model("churn-classifier", "Who cancels next month")
        registry.set_alias("churn-classifier", "champion", 2)
        registry.require_approval("churn-classifier", alias="champion")
        registry.request_transition(
            "churn-classifier", 3, alias="champion", comment="better recall on March data"
        )
        registry.register_model(f"runs:/{runs[3]}/model", "fraud-scorer")
        registry.request_transition("fraud-scorer", 1, stage="Staging", comment="first cut")

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
            light = browser.new_context(
                base_url=url, viewport=VIEWPORT, color_scheme="light", device_scale_factor=1
            )
            page = light.new_page()
            shoot(page, f"/pipelines/runs/{pipeline_run}", args.out / "pipeline-run.png")
            gate.write_text("go")
            worker.join(120)
            step_run = holder["result"].step("train[3]").run_id
            registry.register_model(f"runs:/{step_run}/model", "churn-classifier")
            registry.set_alias("churn-classifier", "candidate", 4)

            shoot(page, "/experiments", args.out / "experiments.png")
            shoot(page, f"/experiments/{exp}/runs", args.out / "runs-table.png")
            shoot(page, f"/runs/{runs[0]}", args.out / "run.png", scroll_to="Chart")
            compare = "&".join(f"runs={r}" for r in runs[:3])
            shoot(page, f"/compare?{compare}&metric=loss", args.out / "compare.png")
            shoot(page, "/models", args.out / "models.png")
            shoot(page, "/models/churn-classifier/versions/4", args.out / "model-version.png")
            shoot(page, "/approvals", args.out / "approvals.png")
            shoot(page, f"/pipelines/runs/{pipeline_run}", args.out / "pipeline-run-done.png")
            dark = browser.new_context(base_url=url, viewport=VIEWPORT, color_scheme="dark")
            dark_page = dark.new_page()
            dark_page.add_init_script("localStorage.setItem('slipway-theme', 'dark')")
            shoot(
                dark_page,
                "/models/churn-classifier/versions/4",
                args.out / "model-version-dark.png",
            )
            browser.close()
    finally:
        gate.write_text("go")  # whatever happened, let the waiting step (and its run) end
        if worker is not None:
            worker.join(60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if args.keep:
            print(f"demo store kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
