"""The Ray launcher: each step attempt a Ray task, on whichever node holds its resources.

A task asks Ray for the step's ``cpu`` (1 when unset), ``gpu`` and ``memory``; Ray queues
what does not fit yet, so the only limits the executor keeps are ``max_parallel`` and the
loops' ``parallelism``. A task no alive node could ever hold is refused before the pipeline
run is recorded, and one left waiting after the nodes that could hold it are gone fails.

Tasks are never retried by Ray (``max_retries=0``): the step's own retries apply, so each
attempt is a tracked child run. On the node the step runs as it does locally (see
:mod:`slipway.pipelines.executor._node`); its outputs go to the step run's artifact location
and its logs are uploaded from there, so nothing the node writes needs to be readable here.
The step's tracking URI is made absolute (a relative folder would mean another folder on the
node); for a cluster of several machines it must be one they all reach (a tracking server).

Stopping a step (a timeout the node did not report, a cancel, Ctrl-C) cancels its Ray task:
first gently (the node stops the step's process group and uploads its logs), then, after the
step's grace, by killing the worker. A node lost mid-attempt fails that attempt with a message
naming the node; the step's retries then run elsewhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines.executor.launcher import Placement
from slipway.pipelines.executor.step import KILL_GRACE_SECONDS
from slipway.tracking.uri import absolute_uri

if TYPE_CHECKING:
    from slipway.pipelines.component import StepOptions
    from slipway.pipelines.executor.local import Budget
    from slipway.pipelines.executor.step import StepResult, StepSpec
    from slipway.pipelines.graph import PipelineGraph

NODE_ID_TAG = "slipway.ray.node_id"
"""Tag of a step attempt's run: the Ray node it ran on."""

FORWARDED_PREFIXES = ("SLIPWAY_", "MLFLOW_")
"""Variables of this process a step on a node gets too (tracking credentials, settings);
the rest of its environment is the node's, with the component's ``env`` over it."""

REPORT_SECONDS = 15.0
"""How long past a step's timeout (and its kill grace) the node has to report it stopped the
step, before the executor cancels the task itself."""

FEASIBILITY_INTERVAL_SECONDS = 5.0
"""How often tasks still waiting for a node are checked against the nodes left alive."""

_remote_functions: dict[bool, Any] = {}


def _remote(streaming: bool) -> Any:
    """The Ray remote function running one attempt (made once per process): a streaming
    generator that says where the step runs as soon as it starts, or, over Ray Client (which
    cannot stream), a plain task that says so when it ends."""
    if streaming not in _remote_functions:
        from slipway.engines.ray import require_ray
        from slipway.pipelines.executor._node import run_attempt, run_attempt_once

        ray = require_ray()
        body = run_attempt if streaming else run_attempt_once
        _remote_functions[streaming] = ray.remote(max_retries=0, retry_exceptions=False)(body)
    return _remote_functions[streaming]


def _client_mode() -> bool:
    """Whether this process talks to Ray through Ray Client (``ray://``)."""
    try:
        from ray.util.client import ray as client
    except ImportError:  # pragma: no cover - part of every Ray install
        return False
    return bool(client.is_connected())  # type: ignore[no-untyped-call]


def _resources(options: StepOptions) -> dict[str, Any]:
    """The Ray resources a step asks for."""
    wanted: dict[str, Any] = {
        "num_cpus": options.cpu if options.cpu is not None else 1.0,
        "num_gpus": options.gpu,
    }
    if options.memory:
        wanted["memory"] = options.memory
    return wanted


class RayLauncher:
    """Starts each attempt as a Ray task on the cluster at ``address`` (see
    :func:`slipway.engines.ray.connect`: None starts a local Ray instance)."""

    deadline_slack = KILL_GRACE_SECONDS + REPORT_SECONDS

    def __init__(
        self, address: str | None = None, working_dir: str | os.PathLike[str] | None = None
    ) -> None:
        """``working_dir``: a folder of this machine shipped to the nodes (see
        :mod:`slipway.engines.shipping`); each step runs in its node's copy, first on
        ``sys.path``."""
        self.address = address
        self.working_dir: str | None = None
        if working_dir is not None:
            from slipway.engines.shipping import folder_to_ship

            self.working_dir = folder_to_ship(working_dir)
        self._package: Any = None
        self._connected = False
        self._streaming = True
        self._last_feasibility = 0.0

    # -- before the run -------------------------------------------------------------------

    def _connect(self) -> None:
        if not self._connected:
            from slipway.engines.ray import connect

            connect(self.address)
            self._connected = True

    def budget(self, max_parallel: int | None) -> Budget:
        from slipway.pipelines.executor.local import Budget

        return Budget.unbounded(max_parallel)

    def check(self, graph: PipelineGraph) -> None:
        """Connect (fails fast when nothing answers) and refuse a task that no alive node
        could hold, or one that needs several worker processes."""
        from slipway.engines.ray import check_fits

        for name, task in graph.tasks.items():
            if task.options.workers > 1:
                raise InvalidParameterValue(
                    f"task {name} asks for {task.options.workers} workers; the Ray executor runs "
                    "each step as one process (run it with the local executor, or as a "
                    "training job)"
                )
        self._connect()
        for name, task in graph.tasks.items():
            if graph.functions[task.component].spec.kind == "importer":
                continue  # importers run in the executor itself
            wanted = _resources(task.options)
            check_fits(
                f"task {name}",
                cpu=wanted["num_cpus"],
                gpu=wanted["num_gpus"],
                memory=wanted.get("memory", 0),
            )

    def open(self) -> None:
        self._connect()
        self._streaming = not _client_mode()
        _remote(self._streaming)
        if self.working_dir is not None and self._package is None:
            import ray

            from slipway.engines.shipping import pack

            # Into the object store once; each attempt's task gets the bytes on its node.
            self._package = ray.put(pack(self.working_dir).data)

    def workdir(self, root: str, attempt: int) -> str:
        return ""  # the node makes the attempt's folder

    # -- starting and waiting -------------------------------------------------------------

    def start(self, spec: StepSpec, options: StepOptions, artifact_uri: str) -> RayStep:
        from slipway.pipelines.executor import step as steps

        spec.tracking_uri = absolute_uri(spec.tracking_uri)
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}
        env.update(steps.step_variables(spec))
        folder = steps.component_folder(spec.component)
        payload = steps._payload(spec)
        wanted = _resources(options)
        generator = (
            _remote(self._streaming)
            .options(name=f"slipway-step:{spec.task_id}", **wanted)
            .remote(
                payload,
                spec.task_id,
                env,
                folder,
                artifact_uri,
                options.timeout,
                self._package,
            )
        )
        return RayStep(self, generator, spec.task_id, wanted, self._streaming)

    def wait(self, handles: Sequence[Any], timeout: float) -> None:
        """Wait for one of the tasks to start or end (or ``timeout``), then take in what every
        task that is ready has to say."""
        from slipway.engines.ray import require_ray

        ray = require_ray()
        live = [h for h in handles if not h.finished]
        if not live:
            if timeout > 0:
                time.sleep(timeout)
            return
        refs = [h.generator for h in live]
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and len(refs) > 1:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        by_key = {_key(h.generator): h for h in live}
        for generator in ready:
            by_key[_key(generator)].take()
        self._check_feasible(live)

    def _check_feasible(self, live: Sequence[RayStep]) -> None:
        """Fail the tasks still waiting for a node that no alive node could hold (the nodes
        that could were lost), instead of leaving them waiting for ever."""
        waiting = [h for h in live if not h.finished and h.started is None]
        now = time.monotonic()
        if not waiting or now - self._last_feasibility < FEASIBILITY_INTERVAL_SECONDS:
            return
        self._last_feasibility = now
        from slipway.engines.ray import check_fits, cluster_nodes

        nodes = cluster_nodes()
        for handle in waiting:
            if any(_holds(node, handle.wanted) for node in nodes):
                continue
            try:
                check_fits(
                    "it",
                    cpu=handle.wanted["num_cpus"],
                    gpu=handle.wanted["num_gpus"],
                    memory=handle.wanted.get("memory", 0),
                )
            except InvalidParameterValue as exc:
                handle.abandon(f"no node can run it any more: {exc.message}")

    def close(self) -> None:
        pass  # the connection stays for the process (a later run reuses it)


def _key(waitable: Any) -> Any:
    """What identifies a task's ObjectRef (Ray Client hands back new objects for the same ref)
    or ObjectRefGenerator (handed back as it is)."""
    hex_id = getattr(waitable, "hex", None)
    return hex_id() if callable(hex_id) else id(waitable)


def _holds(node: Any, wanted: dict[str, Any]) -> bool:
    return bool(
        node.cpu >= wanted["num_cpus"]
        and node.gpu >= wanted["num_gpus"]
        and node.memory >= wanted.get("memory", 0)
    )


class RayStep:
    """One attempt's Ray task, as a step handle: what it yielded so far, or why it ended."""

    def __init__(
        self,
        launcher: RayLauncher,
        generator: Any,
        task_id: str,
        wanted: dict[str, Any],
        streaming: bool = True,
    ) -> None:
        self.launcher = launcher
        self.generator = generator
        """The task's ObjectRefGenerator (its ObjectRef over Ray Client)."""
        self.streaming = streaming
        self.task_id = task_id
        self.wanted = wanted
        self.pid: int | None = None
        self.started: dict[str, Any] | None = None
        self.finished = False
        self._submitted = time.monotonic()
        self._placed_at: float | None = None
        self._result: StepResult | None = None
        self._killed: str | None = None
        self._killed_at: float | None = None

    def __repr__(self) -> str:
        return f"<RayStep {self.task_id}>"

    # -- what the task says ---------------------------------------------------------------

    def take(self) -> None:
        """Read what the task yielded next (it is ready), and the item after it if that is
        ready too."""
        from slipway.engines.ray import require_ray

        ray = require_ray()
        while not self.finished:
            try:
                item = ray.get(next(self.generator) if self.streaming else self.generator)
            except StopIteration:
                self._end(self._failed("the Ray task ended without a result"))
                return
            except Exception as exc:
                self._end(self._from_error(exc))
                return
            if item.get("kind") == "started" and self.streaming:
                self.started = item
                self.pid = item.get("pid")
                self._placed_at = time.monotonic()
            else:
                self.started = self.started or item
                self._end(self._from_item(item))
                return
            ready, _ = ray.wait([self.generator], num_returns=1, timeout=0)
            if not ready:
                return

    def abandon(self, message: str) -> None:
        """End a task that will never start (its Ray task is cancelled)."""
        from slipway.engines.ray import require_ray

        ray = require_ray()
        ray.cancel(self.generator, force=False)
        self._end(self._failed(message))

    def _end(self, result: StepResult) -> None:
        if self.finished:
            return
        if self._killed is not None:
            result = self._killed_result()
        self._result = result
        self.finished = True

    def _failed(self, message: str) -> StepResult:
        from slipway.pipelines.executor.step import StepResult

        return StepResult(False, {}, {}, message, None, None, pid=self.pid)

    def _from_item(self, item: dict[str, Any]) -> StepResult:
        from slipway.pipelines.executor.step import StepResult

        return StepResult(
            ok=bool(item.get("ok")),
            parameters=dict(item.get("parameters") or {}),
            artifacts=dict(item.get("artifacts") or {}),
            error=item.get("error"),
            traceback=item.get("traceback"),
            exit_code=item.get("exit_code"),
            timed_out=bool(item.get("timed_out")),
            cancelled=bool(item.get("cancelled")),
            pid=item.get("pid"),
            duration=float(item.get("duration") or 0.0),
            log_upload_error=item.get("log_upload_error"),
        )

    def _from_error(self, exc: BaseException) -> StepResult:
        """A failed attempt saying what Ray reported: a lost node, a task that could not
        start, or the task's own error."""
        import ray.exceptions as rex

        from slipway.pipelines.executor._child import one_line

        where = self._where()
        if isinstance(exc, rex.TaskCancelledError):
            message = f"the Ray task was cancelled outside Slipway{where}"
        elif isinstance(exc, rex.RayTaskError):
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            message = f"the step could not run{where}: {one_line(cause)}"
        elif isinstance(exc, (rex.TaskUnschedulableError, rex.RuntimeEnvSetupError)):
            message = f"Ray could not schedule the step: {one_line(exc)}"
        elif isinstance(exc, rex.RayError):
            started = self.started or {}
            node = str(started.get("node_id") or "")
            if node:
                message = (
                    f"Ray node {node[:12]} ({started.get('host', '?')}) lost while running "
                    f"the step ({_reason(exc)})"
                )
            else:
                message = f"the Ray worker for the step was lost ({_reason(exc)})"
        else:
            message = f"reading the step's Ray task failed: {one_line(exc)}"
        return self._failed(message)

    def _where(self) -> str:
        if not self.started:
            return ""
        return f" on Ray node {str(self.started.get('node_id', ''))[:12]}"

    # -- the handle -----------------------------------------------------------------------

    def done(self) -> bool:
        return self.finished

    def placement(self) -> Placement | None:
        if not self.started:
            return None
        node_id = str(self.started.get("node_id") or "")
        details = {"node_id": node_id, "host": self.started.get("host"), "pid": self.pid}
        return Placement(details, {NODE_ID_TAG: node_id} if node_id else {})

    def kill(self, reason: str, wait: bool = True) -> None:
        """Cancel the task: gently first (the node stops the step's processes and uploads its
        logs), then, ``wait``-ing out the step's grace, by killing its worker."""
        from slipway.engines.ray import require_ray

        if reason not in ("timeout", "cancel"):
            raise InvalidParameterValue(
                f"kill reason must be 'timeout' or 'cancel', got {reason!r}"
            )
        if self.finished and self._killed is None:
            return
        ray = require_ray()
        if self._killed is None:
            self._killed, self._killed_at = reason, time.monotonic()
            ray.cancel(self.generator, force=False)
        if not wait:
            return
        assert self._killed_at is not None
        if self.started is not None:  # a task that never started has nothing to stop
            left = self._killed_at + KILL_GRACE_SECONDS + 1.0 - time.monotonic()
            if left > 0:
                time.sleep(left)
            ray.cancel(self.generator, force=True)
        self._result = self._killed_result()
        self.finished = True

    def _killed_result(self) -> StepResult:
        result = self._failed("cancelled")
        result.cancelled = self._killed == "cancel"
        result.timed_out = self._killed == "timeout"
        if result.timed_out:
            began = self._placed_at or self._submitted
            elapsed = (self._killed_at or time.monotonic()) - began
            result.error = (
                f"timed out after {elapsed:.1f} s (the node did not report stopping it; its Ray "
                "task was cancelled)"
            )
        return result

    def result(self) -> StepResult:
        while not self.finished:
            self.launcher.wait([self], 1.0)
        assert self._result is not None
        return self._result


def _reason(exc: BaseException) -> str:
    """Ray's error, short: its type and first sentence."""
    lines = str(exc).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".")[:300] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


__all__ = ["NODE_ID_TAG", "RayLauncher", "RayStep"]
