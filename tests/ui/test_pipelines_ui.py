"""Pipeline runs in the browser: the live DAG of a run as it goes, cancel and resume from the
page, step details, schedules, and bad inputs.

Runs execute for real (``slipway.pipelines.run`` in a background thread, recording to the live
server); a step waits for a marker file the test creates, so the test decides when it ends.
Records that would take long to produce for real (a step with markup in its message) are
written through the server's pipeline store.
"""

from __future__ import annotations

import html
import re
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from slipway.entities.pipelines import (
    PipelineRun,
    PipelineRunStatus,
    PipelineStep,
    Schedule,
    StepStatus,
)
from slipway.pipelines import PipelineResult, component, pipeline, run
from slipway.pipelines.loader import load_pipeline
from slipway.pipelines.store import clear_pipeline_store_cache
from slipway.server.context import ServerContext
from slipway.tracking import uri as uris

WAIT_SECONDS = 60
MARKUP = "<img src=x onerror=alert(1)>"


@component
def wait_for(marker: str) -> str:
    deadline = time.monotonic() + WAIT_SECONDS
    while not Path(marker).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{marker} never appeared")
        time.sleep(0.05)
    return "ready"


@component
def finish(word: str) -> str:
    return word + "!"


@pipeline(name="gated")
def gated(marker: str) -> None:
    ready = wait_for(marker=marker)
    finish(word=ready.output)


@pytest.fixture
def ctx(server_url: str, rest_server: Any) -> Iterator[ServerContext]:
    """The live server's context: its stores, for arranging records and reading them back."""
    context = rest_server.front.app.state.context
    assert isinstance(context, ServerContext)
    yield context
    clear_pipeline_store_cache()
    uris.clear_store_cache()


class Background:
    """A pipeline run in a thread; ``result()`` waits for it."""

    def __init__(self, start: Callable[[], PipelineResult]) -> None:
        self.holder: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._go, args=(start,), daemon=True)
        self.thread.start()

    def _go(self, start: Callable[[], PipelineResult]) -> None:
        try:
            self.holder["result"] = start()
        except BaseException as exc:  # reported by result()
            self.holder["error"] = exc

    def result(self, timeout: float = 60) -> PipelineResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pipeline run did not end"
        if "error" in self.holder:
            raise self.holder["error"]
        return self.holder["result"]  # type: ignore[no-any-return]


def wait_for_running_step(ctx: ServerContext, task_id: str) -> str:
    """The id of the (only) pipeline run, once its step ``task_id`` is running."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = ctx.pipeline_store.search_pipeline_runs()
        if runs:
            steps = {s.task_id: s for s in ctx.pipeline_store.list_steps(runs[0].run_id)}
            if task_id in steps and steps[task_id].status == StepStatus.RUNNING:
                return runs[0].run_id
        time.sleep(0.05)
    pytest.fail(f"step {task_id} never started")


def node(page: Any, key: str) -> Any:
    return page.locator(f'svg#pipeline-dag g.dag-node[data-key="{key}"]')


def test_the_dag_follows_a_running_pipeline_without_a_reload(
    page: Any, ctx: ServerContext, server_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "go"
    background = Background(lambda: run(gated, {"marker": str(marker)}, tracking_uri=server_url))
    run_id = wait_for_running_step(ctx, "wait_for")
    page.goto(f"/pipelines/runs/{run_id}")
    expect(node(page, "wait_for")).to_have_class(re.compile(r"\bstatus-RUNNING\b"))
    expect(node(page, "finish")).to_have_class(re.compile(r"\bstatus-QUEUED\b"))
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    marker.write_text("go")
    expect(node(page, "wait_for")).to_have_class(
        re.compile(r"\bstatus-SUCCEEDED\b"), timeout=30_000
    )
    expect(node(page, "finish")).to_have_class(re.compile(r"\bstatus-SUCCEEDED\b"), timeout=30_000)
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    steps = page.get_by_role("table", name="Steps")
    expect(steps.get_by_role("row").filter(has_text="finish")).to_contain_text("succeeded")
    assert page.evaluate("window.stillTheSamePage") is True  # updated in place
    assert background.result().succeeded

    # A node is a link to the step's details (by keyboard too).
    link = page.locator('svg#pipeline-dag a.dag-link:has(g[data-key="finish"])')
    link.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    details = page.locator("#step-details")
    expect(details.get_by_role("heading", name="Step finish")).to_be_visible()
    expect(details.get_by_role("table", name="Outputs parameters")).to_contain_text('"ready!"')
    expect(details.get_by_role("table", name="Inputs parameters")).to_contain_text('"ready"')
    step_run = ctx.pipeline_store.get_step(run_id, "finish").run_id
    expect(details.get_by_role("link", name="stdout.txt")).to_have_attribute(
        "href", f"/runs/{step_run}/artifacts?path=logs/stdout.txt"
    )
    expect(details.get_by_role("link", name=step_run or "-")).to_be_visible()
    expect(node(page, "finish")).to_have_class(re.compile(r"\bdag-current\b"))


def test_cancel_from_the_page_stops_a_running_pipeline(
    page: Any, ctx: ServerContext, server_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "never"
    started = time.monotonic()
    background = Background(lambda: run(gated, {"marker": str(marker)}, tracking_uri=server_url))
    run_id = wait_for_running_step(ctx, "wait_for")
    page.goto(f"/pipelines/runs/{run_id}")
    with page.expect_navigation():
        page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("status")).to_contain_text("Cancel requested")
    result = background.result(timeout=40)
    assert result.status == PipelineRunStatus.CANCELLED
    assert time.monotonic() - started < WAIT_SECONDS  # stopped, not waited out
    assert result.step("wait_for").status == StepStatus.CANCELLED
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=30_000)
    expect(node(page, "wait_for")).to_have_class(re.compile(r"\bstatus-CANCELLED\b"))


PIPELINE_FILE = """
import os
from slipway.pipelines import component, pipeline

MARKER = {marker!r}


@component
def flaky() -> int:
    if not os.path.exists(MARKER):
        raise RuntimeError("not fixed yet")
    return 1


@pipeline(name="fixable")
def fixable() -> None:
    flaky()
"""


def test_resume_from_the_page_runs_a_failed_pipeline_again(
    page: Any, ctx: ServerContext, server_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "fixed"
    source = tmp_path / "fixable.py"
    source.write_text(textwrap.dedent(PIPELINE_FILE.format(marker=str(marker))))
    failed = run(load_pipeline(str(source)), tracking_uri=server_url, source=str(source))
    assert failed.status == PipelineRunStatus.FAILED
    page.goto(f"/pipelines/runs/{failed.run_id}")
    expect(node(page, "flaky")).to_have_class(re.compile(r"\bstatus-FAILED\b"))
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    marker.write_text("fixed")
    with page.expect_navigation():
        page.get_by_role("button", name="Resume run").click()
    expect(page.get_by_role("status")).to_contain_text("Resume started")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#run-attempt")).to_have_text("2")
    expect(node(page, "flaky")).to_have_class(re.compile(r"\bstatus-SUCCEEDED\b"))
    resumed = ctx.pipeline_store.get_pipeline_run(failed.run_id)
    assert (resumed.status, resumed.attempt) == (PipelineRunStatus.SUCCEEDED, 2)


def _record(ctx: ServerContext, name: str = "gated", **fields: Any) -> PipelineRun:
    tracking = ctx.store.create_run("0", run_name=name).info.run_id
    return ctx.pipeline_store.create_pipeline_run(
        PipelineRun(
            run_id=tracking,
            experiment_id="0",
            pipeline_name=name,
            status=fields.pop("status", PipelineRunStatus.FAILED),
            start_time=fields.pop("start_time", 1_700_000_000_000),
            end_time=fields.pop("end_time", 1_700_000_005_000),
            graph=gated.graph.to_dict(),
            **fields,
        )
    )


def test_markup_in_step_messages_inputs_and_outputs_stays_text(
    page: Any, ctx: ServerContext
) -> None:
    recorded = _record(ctx, parameters={"marker": MARKUP}, message=MARKUP)
    ctx.pipeline_store.upsert_step(
        PipelineStep(
            recorded.run_id,
            "wait_for",
            "wait_for",
            "wait_for",
            StepStatus.FAILED,
            attempt=2,
            start_time=1_700_000_000_000,
            end_time=1_700_000_004_000,
            inputs={"parameters": {"marker": MARKUP}},
            outputs={"artifacts": {"data": {"uri": f"file:///{MARKUP}", "digest": "sha256:0"}}},
            message=f"Traceback ...\nRuntimeError: {MARKUP}<script>alert(3)</script>",
            details={"attempts": [{"attempt": 1, "ok": False, "message": MARKUP}]},
        )
    )
    page.goto(f"/pipelines/runs/{recorded.run_id}?step=wait_for")
    details = page.locator("#step-details")
    expect(details.locator("pre.message")).to_contain_text(f"RuntimeError: {MARKUP}<script>")
    expect(details.get_by_role("table", name="Inputs parameters")).to_contain_text(MARKUP)
    expect(details.get_by_role("table", name="Outputs artifacts")).to_contain_text(MARKUP)
    expect(details.get_by_role("table", name="Attempts")).to_contain_text(MARKUP)
    expect(page.locator("#run-message")).to_have_text(MARKUP)
    expect(node(page, "wait_for")).to_have_class(re.compile(r"\bstatus-FAILED\b"))
    expect(node(page, "finish")).to_have_class(re.compile(r"\bstatus-NOT_RUN\b"))
    expect(page.get_by_role("button", name="Resume run")).to_have_count(0)  # no source file
    assert page.locator("img").count() == 0


def test_every_step_state_has_its_class(page: Any, ctx: ServerContext) -> None:
    recorded = _record(ctx, status=PipelineRunStatus.RUNNING, end_time=None)
    for task, status in (("wait_for", StepStatus.RETRYING), ("finish", StepStatus.QUEUED)):
        ctx.pipeline_store.upsert_step(
            PipelineStep(recorded.run_id, task, task, task, status, attempt=1, start_time=1)
        )
    page.goto(f"/pipelines/runs/{recorded.run_id}")
    expect(node(page, "wait_for")).to_have_class(re.compile(r"\bstatus-RETRYING\b"))
    expect(node(page, "finish")).to_have_class(re.compile(r"\bstatus-QUEUED\b"))
    legend = page.get_by_role("list", name="Step states")
    for word in ("queued", "running", "retrying", "succeeded", "cached", "failed", "skipped"):
        expect(legend).to_contain_text(word)
    ctx.pipeline_store.upsert_step(
        PipelineStep(
            recorded.run_id, "wait_for", "wait_for", "wait_for", StepStatus.SKIPPED, attempt=1
        )
    )
    ctx.pipeline_store.update_pipeline_run(
        recorded.run_id, status=PipelineRunStatus.CANCELLED, end_time=2
    )
    expect(node(page, "wait_for")).to_have_class(re.compile(r"\bstatus-SKIPPED\b"), timeout=10_000)
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=10_000)


def test_the_runs_list_filters_and_pages(page: Any, ctx: ServerContext) -> None:
    for i in range(3):
        _record(ctx, name="alpha", start_time=1_700_000_000_000 + i)
    _record(ctx, name="beta", status=PipelineRunStatus.SUCCEEDED)
    page.goto("/pipelines")
    table = page.get_by_role("table", name="Pipeline runs")
    expect(table.get_by_role("row")).to_have_count(5)
    page.get_by_label("Pipeline", exact=True).fill("beta")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("succeeded")
    page.goto("/pipelines?status=failed")
    expect(table.get_by_role("row")).to_have_count(4)
    page.goto("/pipelines?status=sideways")
    expect(page.get_by_role("alert")).to_contain_text("Unknown status")


def test_runs_page_in_pages_of_fifty(server_url: str, ctx: ServerContext) -> None:
    for i in range(55):
        _record(ctx, name="many", start_time=1_700_000_000_000 + i)
    with httpx.Client(base_url=server_url, timeout=30) as http:
        first = http.get("/pipelines", params={"pipeline": "many"})
        assert first.text.count('class="status status-FAILED"') == 50
        link = re.search(r'href="(\?[^"]*page_token=[^"]*)"', first.text)
        assert link is not None
        query = parse_qs(urlsplit(html.unescape(link.group(1))).query)
        second = http.get("/pipelines", params={k: v[-1] for k, v in query.items()})
        assert second.text.count('class="status status-FAILED"') == 5
        assert http.get("/pipelines", params={"page_token": "junk"}).status_code == 400


def test_schedules_are_paused_resumed_and_deleted(page: Any, ctx: ServerContext) -> None:
    made = ctx.pipeline_store.create_schedule(
        Schedule(uuid.uuid4().hex, "nightly", "flows/train.py", "0 3 * * *", {"rows": MARKUP})
    )
    page.goto("/pipelines/schedules")
    row = page.get_by_role("row").filter(has_text="nightly")
    expect(row).to_contain_text(MARKUP)
    with page.expect_navigation():
        row.get_by_role("button", name="Pause schedule nightly").click()
    assert ctx.pipeline_store.get_schedule(made.schedule_id).paused
    expect(row).to_contain_text("paused")
    with page.expect_navigation():
        row.get_by_role("button", name="Resume schedule nightly").click()
    resumed = ctx.pipeline_store.get_schedule(made.schedule_id)
    assert not resumed.paused
    assert resumed.next_run_time is not None
    assert resumed.next_run_time > time.time() * 1000
    row.get_by_text("Delete…").click()
    with page.expect_navigation():
        row.get_by_role("button", name="Delete schedule nightly").click()
    assert ctx.pipeline_store.list_schedules() == []
    expect(page.get_by_text("No schedules")).to_be_visible()
    assert page.locator("img").count() == 0


def test_unknown_runs_and_bad_posts(page: Any, server_url: str, ctx: ServerContext) -> None:
    response = page.goto("/pipelines/runs/0123456789abcdef")
    assert response.status == 404
    expect(page.get_by_role("alert")).to_be_visible()
    running = _record(ctx, status=PipelineRunStatus.RUNNING, end_time=None, source="x.py")
    with httpx.Client(base_url=server_url, timeout=30) as http:
        assert http.get("/pipelines/runs/nope/state.json").status_code == 404
        assert http.get("/pipelines/runs/nope/live").status_code == 404
        state = http.get(f"/pipelines/runs/{running.run_id}/state.json").json()
        assert state["run"]["status"] == "RUNNING"
        assert [n["status"] for n in state["nodes"]] == ["WAITING", "WAITING"]
        refused = http.post(f"/pipelines/runs/{running.run_id}/resume")
        assert refused.status_code == 400
        assert "only a failed or cancelled run" in refused.text
        crossed = http.post(
            f"/pipelines/runs/{running.run_id}/cancel", headers={"Origin": "http://evil.example"}
        )
        assert crossed.status_code == 403
        assert ctx.pipeline_store.get_pipeline_run(running.run_id).status == (
            PipelineRunStatus.RUNNING
        )
        cancelled = http.post(f"/pipelines/runs/{running.run_id}/cancel")
        assert cancelled.status_code == 303
        assert ctx.pipeline_store.get_pipeline_run(running.run_id).status == (
            PipelineRunStatus.CANCELLING
        )
        assert http.post("/pipelines/schedules/nope/pause").status_code == 404
