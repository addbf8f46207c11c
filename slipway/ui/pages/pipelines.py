"""Pipelines: the runs, one run's live DAG with its steps, and the schedules.

``GET /pipelines?pipeline=<name>&status=<STATUS>&page_token=`` lists runs, newest first, a page
at a time. ``GET /pipelines/runs/<id>?step=<task id>`` draws the run's DAG (see
:mod:`slipway.ui.pipeline_view`) with its steps and, for the chosen step, its details; while
the run goes on, ``pipelines.js`` polls ``/pipelines/runs/<id>/state.json`` about every second
and patches the page, and fetches ``/pipelines/runs/<id>/live`` (the drawing and the steps
table) when nodes appear. ``POST /pipelines/runs/<id>/cancel`` asks the run's executor to stop
(``request_cancel``); ``POST /pipelines/runs/<id>/resume`` starts ``slipway pipelines resume``
in a detached process, as the scheduler starts scheduled runs. ``GET /pipelines/schedules``
lists schedules, with forms to pause, resume and delete them.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from slipway.entities.pipelines import (
    PipelineRun,
    PipelineRunStatus,
    PipelineStep,
    Schedule,
)
from slipway.exceptions import InvalidParameterValue, InvalidState, SlipwayError
from slipway.pipelines.live import STATE_LOOKS, summary_text
from slipway.pipelines.scheduler import default_log_dir, slipway_command
from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.server.context import ServerContext
from slipway.server.settings import ServerSettings
from slipway.tracking.uri import absolute_uri
from slipway.ui import dag, pipeline_view
from slipway.ui.actions import error_status, post_action
from slipway.ui.render import error_page, render

RUNS_PAGE = 50
RESUMABLE = (PipelineRunStatus.FAILED, PipelineRunStatus.CANCELLED)
POLL_MS = 1000
INSTANCES_SHOWN = 200
"""Rows of a grouped loop task's instance table (the steps table below lists them all)."""
STATES = [(s.value, look.label) for s, look in STATE_LOOKS.items()]

log = logging.getLogger("slipway.ui.pipelines")


def now_ms() -> int:
    return int(time.time() * 1000)


def run_href(run_id: str, **query: str) -> str:
    base = f"/pipelines/runs/{quote(run_id, safe='')}"
    return f"{base}?{urlencode(query)}" if query else base


def step_href(run_id: str, key: str) -> str:
    return run_href(run_id, step=key) + "#step-details"


def status_of(text: str) -> PipelineRunStatus | None:
    """The run status a filter names (any case); INVALID_PARAMETER_VALUE for another word."""
    text = text.strip().upper()
    if not text:
        return None
    try:
        return PipelineRunStatus(text)
    except ValueError:
        known = ", ".join(s.value for s in PipelineRunStatus)
        raise InvalidParameterValue(f"Unknown status {text!r}: use one of {known}") from None


def resume_command(tracking_uri: str, run_id: str) -> list[str]:
    """``slipway --tracking-uri URI pipelines resume RUN`` with this interpreter."""
    return [*slipway_command(), "--tracking-uri", tracking_uri, "pipelines", "resume", run_id]


def _accepts(settings: ServerSettings, name: str, port: int) -> bool:
    hosts = settings.allowed_hosts
    return "*" in hosts or name in hosts or f"{name}:{port}" in hosts


def _listens(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def own_tracking_uri(settings: ServerSettings, server: tuple[str, int] | None) -> str:
    """The tracking URI a process started by the server should record to: the server itself
    over loopback (so runs get its artifact settings), or the address the request came in on,
    or, when the Host allow-list refuses both, the server's store."""
    if server is not None and server[1]:
        host, port = server[0], int(server[1])
        if _accepts(settings, "127.0.0.1", port) and _listens("127.0.0.1", port):
            return f"http://127.0.0.1:{port}"
        name = f"[{host}]" if ":" in host else host
        if _accepts(settings, name, port):
            return f"http://{name}:{port}"
    return absolute_uri(settings.backend_store_uri)


@dataclass(frozen=True, slots=True)
class Launched:
    pid: int
    log_path: str


def launch_resume(settings: ServerSettings, tracking_uri: str, run_id: str) -> Launched:
    """Start the resume of ``run_id`` in its own session (it outlives the request, and the
    server), with its output in a log file beside the scheduler's."""
    command = resume_command(tracking_uri, run_id)
    folder = default_log_dir(absolute_uri(settings.backend_store_uri))
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    log_path = folder / f"resume-{run_id[:12]}-{stamp}.log"
    with open(log_path, "ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            close_fds=True,
        )
    # Collect its exit status when it ends, so a long-lived server leaves no zombies.
    threading.Thread(target=child.wait, name=f"resume-{run_id[:8]}", daemon=True).start()
    log.info("Resuming pipeline run %s (pid %d), log %s", run_id, child.pid, log_path)
    return Launched(child.pid, str(log_path))


@dataclass
class RunPage:
    run: PipelineRun
    steps: list[PipelineStep]
    layout: dag.Layout
    structure: str
    now: int


@dataclass
class StepDetails:
    """What the details panel shows for ``?step=``: one step, a grouped loop task's
    instances, or a task that has not started."""

    key: str
    task: str
    step: PipelineStep | None
    instances: list[PipelineStep]


def load_run(store: AbstractPipelineStore, run_id: str, selected: str | None) -> RunPage:
    run = store.get_pipeline_run(run_id)
    steps = pipeline_view.ordered_steps(pipeline_view.graph_of(run), store.list_steps(run_id))
    now = now_ms()
    nodes, edges = pipeline_view.dag_nodes(run, steps, now, lambda key: step_href(run.run_id, key))
    if selected:
        nodes = [replace(n, current=n.key == selected) for n in nodes]
    layout = dag.layout(nodes, edges)
    return RunPage(run, steps, layout, pipeline_view.structure_key(nodes, edges, steps), now)


def step_details(page: RunPage, key: str) -> StepDetails | None:
    for step in page.steps:
        if step.task_id == key:
            return StepDetails(key, step.task_name, step, [])
    task = key[:-3] if key.endswith("[*]") else key
    instances = [s for s in page.steps if s.task_name == task]
    graph = pipeline_view.graph_of(page.run)
    if instances or (graph is not None and task in graph.tasks):
        return StepDetails(key, task, None, instances)
    return None


def run_error(request: Request, exc: SlipwayError) -> Response:
    """The error page for a run that cannot be shown (404 for an unknown id)."""
    if exc.http_status == 404:
        return error_page(request, 404, "Not found", exc.message)
    return error_page(request, error_status(exc), "Cannot show this run", exc.message)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.pipeline_store

    async def runs_list(request: Request) -> Response:
        name = request.query_params.get("pipeline", "").strip()
        status_text = request.query_params.get("status", "")
        token = request.query_params.get("page_token") or None
        runs: list[PipelineRun] = []
        next_token: str | None = None
        error: str | None = None
        code = 200
        try:
            status = status_of(status_text)
            found = await run_in_threadpool(
                store.search_pipeline_runs, name or None, status, None, None, RUNS_PAGE, token
            )
            runs, next_token = list(found), found.token
        except SlipwayError as exc:
            error, code = exc.message, error_status(exc)
        return render(
            request,
            "pipelines.html",
            status=code,
            section="pipelines",
            runs=runs,
            pipeline=name,
            status_filter=status_text.strip().upper(),
            statuses=[s.value for s in PipelineRunStatus],
            next_token=next_token,
            paged=token is not None,
            error=error,
            now=now_ms(),
            run_href=run_href,
        )

    async def run_page(request: Request, error: str | None = None, code: int = 200) -> Response:
        run_id = request.path_params["run_id"]
        selected = request.query_params.get("step") or None
        try:
            page = await run_in_threadpool(load_run, store, run_id, selected)
        except SlipwayError as exc:
            return run_error(request, exc)
        details = step_details(page, selected) if selected else None
        resumed = request.query_params.get("resumed", "")
        config = {
            "state_url": f"{run_href(page.run.run_id)}/state.json",
            "live_url": f"{run_href(page.run.run_id)}/live"
            + (f"?{urlencode({'step': selected})}" if selected else ""),
            "structure": page.structure,
            "terminal": page.run.status.terminal,
            "wait_attempt": int(resumed) if resumed.isdigit() else None,
            "poll_ms": POLL_MS,
        }
        return render(
            request,
            "pipelines_run.html",
            status=code,
            section="pipelines",
            page=page,
            run=page.run,
            details=details,
            selected=selected,
            config=config,
            error=error,
            notice=request.query_params.get("notice", ""),
            resumable=page.run.status in RESUMABLE and bool(page.run.source),
            states=STATES,
            instances_shown=INSTANCES_SHOWN,
            summary=summary_text(page.steps),
            view=pipeline_view,
            run_href=run_href,
            step_href=step_href,
        )

    async def run_get(request: Request) -> Response:
        return await run_page(request)

    async def live_fragment(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        selected = request.query_params.get("step") or None
        try:
            page = await run_in_threadpool(load_run, store, run_id, selected)
        except SlipwayError as exc:
            return run_error(request, exc)
        return render(
            request,
            "pipelines_live.html",
            page=page,
            run=page.run,
            summary=summary_text(page.steps),
            view=pipeline_view,
            step_href=step_href,
        )

    async def state_json(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def read() -> dict[str, Any]:
            run = store.get_pipeline_run(run_id)
            steps = pipeline_view.ordered_steps(
                pipeline_view.graph_of(run), store.list_steps(run_id)
            )
            body = pipeline_view.state(run, steps, now_ms())
            body["run"]["summary"] = summary_text(steps)
            return body

        try:
            body = await run_in_threadpool(read)
        except SlipwayError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.http_status)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def again_run(request: Request, message: str, code: int) -> Response:
        return await run_page(request, message, code)

    async def cancel(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def work(_form: dict[str, str]) -> PipelineRun:
            return store.request_cancel(run_id)

        return await post_action(
            request,
            work,
            lambda _f, run: run_href(run.run_id, notice="cancel"),
            lambda message, code: again_run(request, message, code),
        )

    async def resume(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        server = request.scope.get("server")

        def work(_form: dict[str, str]) -> tuple[PipelineRun, Launched]:
            run = store.get_pipeline_run(run_id)
            if run.status not in RESUMABLE:
                raise InvalidState(
                    f"Pipeline run {run.run_id} is {run.status.value.lower()}: only a failed or "
                    "cancelled run can be resumed"
                )
            if not run.source:
                raise InvalidParameterValue(
                    f"Pipeline run {run.run_id} does not say which file it came from, so it "
                    "cannot be resumed from here (resume it from Python with the pipeline)"
                )
            uri = own_tracking_uri(ctx.settings, server)
            try:
                launched = launch_resume(ctx.settings, uri, run.run_id)
            except OSError as exc:
                raise InvalidState(f"Could not start the resume: {exc}") from None
            return run, launched

        def back(_form: dict[str, str], done: tuple[PipelineRun, Launched]) -> str:
            run, launched = done
            return run_href(
                run.run_id, resumed=str(run.attempt), notice="resume", log=launched.log_path
            )

        return await post_action(
            request, work, back, lambda message, code: again_run(request, message, code)
        )

    async def schedules_page(
        request: Request, error: str | None = None, code: int = 200
    ) -> Response:
        found: list[Schedule] = []
        try:
            found = await run_in_threadpool(store.list_schedules)
        except SlipwayError as exc:
            error, code = exc.message, error_status(exc)
        return render(
            request,
            "pipelines_schedules.html",
            status=code,
            section="pipelines",
            schedules=found,
            error=error,
            run_href=run_href,
            json_text=pipeline_view.json_text,
        )

    async def schedules_get(request: Request) -> Response:
        return await schedules_page(request)

    def schedule_action(change: str) -> Any:
        async def handler(request: Request) -> Response:
            schedule_id = request.path_params["schedule_id"]

            def work(_form: dict[str, str]) -> None:
                schedule = store.get_schedule(schedule_id)
                if change == "pause":
                    store.update_schedule(schedule.schedule_id, paused=True)
                elif change == "resume":
                    from slipway.pipelines.cron import next_fire

                    following = next_fire(schedule.cron, now_ms())
                    store.update_schedule(
                        schedule.schedule_id, paused=False, next_run_time=following
                    )
                else:
                    store.delete_schedule(schedule.schedule_id)

            return await post_action(
                request,
                work,
                "/pipelines/schedules",
                lambda message, code: schedules_page(request, message, code),
            )

        return handler

    return [
        Route("/pipelines", runs_list, methods=["GET"]),
        Route("/pipelines/schedules", schedules_get, methods=["GET"]),
        Route(
            "/pipelines/schedules/{schedule_id}/pause", schedule_action("pause"), methods=["POST"]
        ),
        Route(
            "/pipelines/schedules/{schedule_id}/resume",
            schedule_action("resume"),
            methods=["POST"],
        ),
        Route(
            "/pipelines/schedules/{schedule_id}/delete",
            schedule_action("delete"),
            methods=["POST"],
        ),
        Route("/pipelines/runs/{run_id}", run_get, methods=["GET"]),
        Route("/pipelines/runs/{run_id}/state.json", state_json, methods=["GET"]),
        Route("/pipelines/runs/{run_id}/live", live_fragment, methods=["GET"]),
        Route("/pipelines/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/pipelines/runs/{run_id}/resume", resume, methods=["POST"]),
    ]


__all__ = [
    "Launched",
    "RunPage",
    "StepDetails",
    "launch_resume",
    "load_run",
    "own_tracking_uri",
    "resume_command",
    "routes",
    "run_href",
    "status_of",
    "step_details",
]
