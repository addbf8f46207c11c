"""One attempt of a step inside a Ray task, on whichever node Ray chose.

The task runs the same child machinery as the local executor (a process of its own, in its own
session, with stdout/stderr captured to files and a result file), in a work folder of the node,
with the node's environment under the step's variables and the node's ``sys.path``. It yields
twice: first where the step runs (node id, host, pid), as soon as its process has started, then
how the attempt ended (over Ray Client, which cannot stream, it returns the end only). The node
stops the step at its timeout itself, and uploads the step's logs to the step run's artifacts
(the orchestrator cannot read the node's files). When Ray cancels the task, the step's process
group is stopped and its logs uploaded before the task ends; when Ray kills the worker instead,
the step notices (its guardian is the worker) and its group ends on its own.

Nothing here imports Ray at module level: this module is imported by Ray workers only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import wait
from typing import Any

POLL_SECONDS = 0.25
"""How often the task looks up from waiting (a cancel from Ray lands between looks)."""

STARTED = "started"
RESULT = "result"


def run_attempt(
    payload: bytes,
    task_id: str,
    env: dict[str, str],
    folder: str | None,
    artifact_uri: str,
    timeout: float | None,
    package: bytes | None = None,
) -> Iterator[dict[str, Any]]:
    """The body of the Ray task for one attempt (a generator: Ray streams what it yields).

    ``payload`` is the step pickled by the orchestrator, ``env`` what the step's process gets
    over the node's environment, ``folder`` the component file's folder (added to
    ``sys.path`` where the node has it), ``artifact_uri`` the step run's artifact location,
    ``package`` the run's shipped working directory (:mod:`slipway.engines.shipping`): the
    step runs in its copy, first on ``sys.path``.
    """
    from slipway.engines.ray import current_node_id
    from slipway.pipelines.executor import _child
    from slipway.pipelines.executor import step as steps

    node_id = current_node_id()
    host = os.uname().nodename
    workdir = tempfile.mkdtemp(prefix="slipway-step-")
    try:
        sys_path, cwd = steps.step_sys_path(folder), None
        if package is not None:
            from slipway.engines.shipping import unpack

            cwd = str(unpack(package, os.path.join(workdir, "shipped")))
            sys_path = [cwd, *sys_path]
        job = _child.StepJob(
            payload,
            workdir,
            {**os.environ, **env},
            sys_path,
            guardian_pid=os.getpid(),
            cwd=cwd,
        )
        process = steps.launch(job, task_id)
        try:
            yield {"kind": STARTED, "node_id": node_id, "host": host, "pid": process.pid}
            _wait_for(process, timeout)
            result = process.result()
        except KeyboardInterrupt:  # ray.cancel: the orchestrator cancelled the step
            process.kill("cancel")
            _upload_logs(artifact_uri, process.result())
            raise
        log_error = _upload_logs(artifact_uri, result)
        yield {
            "kind": RESULT,
            "node_id": node_id,
            "host": host,
            "ok": result.ok,
            "parameters": result.parameters,
            "artifacts": result.artifacts,
            "error": result.error,
            "traceback": result.traceback,
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "cancelled": result.cancelled,
            "pid": result.pid,
            "duration": result.duration,
            "log_upload_error": log_error,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_attempt_once(
    payload: bytes,
    task_id: str,
    env: dict[str, str],
    folder: str | None,
    artifact_uri: str,
    timeout: float | None,
    package: bytes | None = None,
) -> dict[str, Any]:
    """:func:`run_attempt` as a plain task returning how the attempt ended (with where it ran),
    for Ray Client, which cannot stream a task's results."""
    last: dict[str, Any] = {}
    for item in run_attempt(payload, task_id, env, folder, artifact_uri, timeout, package):
        last = item
    return last


def _wait_for(process: Any, timeout: float | None) -> None:
    """Wait for the step's process to end, stopping it at ``timeout`` seconds."""
    deadline = time.monotonic() + timeout if timeout else None
    while not process.done():
        step = POLL_SECONDS
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                process.kill("timeout")
                return
            step = min(step, left)
        wait([process.sentinel], step)


def _upload_logs(artifact_uri: str, result: Any) -> str | None:
    """Upload the step's logs from this node; why that failed, or None."""
    from slipway.pipelines.executor.records import upload_logs

    try:
        upload_logs(artifact_uri, {"stdout": result.stdout_path, "stderr": result.stderr_path})
    except Exception as exc:  # logs are a convenience; the step's outcome stands
        return f"{type(exc).__name__}: {exc}"
    return None


__all__ = ["RESULT", "STARTED", "run_attempt", "run_attempt_once"]
