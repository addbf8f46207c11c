"""The local executor: every step in its own process, side by side as far as the graph, the
loops' ``parallelism`` and the machine's cores, memory and GPUs allow.

One thread runs the loop: decide what can be decided (run, skip because a condition is false
or something upstream failed), start what fits the budget (or reuse a cached result), wait for
a step to end, a deadline or a retry to come due, and record each change. Cancelling (from
``slipway pipelines cancel``, which marks the run CANCELLING in the store, or Ctrl-C) kills the
running steps' process groups and marks them and everything not yet run CANCELLED.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slipway.entities import RunTag
from slipway.entities.pipelines import PipelineRun, PipelineRunStatus, PipelineStep, StepStatus
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import types as ty
from slipway.pipelines.component import Component, StepOptions
from slipway.pipelines.dsl import IMPORTER_OUTPUT
from slipway.pipelines.executor.launcher import Launcher, LocalLauncher, StepHandle
from slipway.pipelines.executor.records import CACHED_FROM_TAG, Recorder, now_ms
from slipway.pipelines.executor.runtime import Blocked, Instance, NotYet, Runtime, Scope
from slipway.pipelines.graph import PipelineGraph

CANCEL_POLL_SECONDS = 0.5
UPDATE_INTERVAL_SECONDS = 0.1


@dataclass(frozen=True)
class Budget:
    """What the machine offers the steps running at once."""

    cpu: float
    memory: int
    gpu: int
    max_parallel: int | None = None

    @classmethod
    def of_machine(cls, max_parallel: int | None = None) -> Budget:
        if max_parallel is not None and (isinstance(max_parallel, bool) or max_parallel < 1):
            raise InvalidParameterValue(f"max_parallel must be 1 or more, got {max_parallel!r}")
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            memory = 2**62
        return cls(float(os.cpu_count() or 1), int(memory), _gpu_count(), max_parallel)

    @classmethod
    def unbounded(cls, max_parallel: int | None = None) -> Budget:
        """No limit but ``max_parallel``: for a cluster whose scheduler holds back what does
        not fit yet."""
        if max_parallel is not None and (isinstance(max_parallel, bool) or max_parallel < 1):
            raise InvalidParameterValue(f"max_parallel must be 1 or more, got {max_parallel!r}")
        return cls(math.inf, 2**62, 2**62, max_parallel)

    def refuse_oversized(self, graph: PipelineGraph) -> None:
        """INVALID_PARAMETER_VALUE naming the first task that could never fit."""
        for name, task in graph.tasks.items():
            opts = task.options
            cpu = _cpu_of(opts)
            if cpu > self.cpu:
                raise InvalidParameterValue(
                    f"task {name} asks for {cpu:g} CPUs; this machine has {self.cpu:g}"
                )
            if opts.memory is not None and opts.memory > self.memory:
                raise InvalidParameterValue(
                    f"task {name} asks for {opts.memory / 2**30:.1f} GiB of memory; this "
                    f"machine has {self.memory / 2**30:.1f} GiB"
                )
            if opts.gpu * opts.workers > self.gpu:
                raise InvalidParameterValue(
                    f"task {name} asks for {opts.gpu * opts.workers} GPU(s); this machine has "
                    f"{self.gpu}"
                )


def _cpu_of(opts: StepOptions) -> float:
    """Cores a step holds while it runs: its ``cpu`` (1 when unset) per worker."""
    return (opts.cpu if opts.cpu is not None else 1.0) * opts.workers


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len([n for n in os.listdir("/dev") if n.startswith("nvidia") and n[6:].isdigit()])
    except OSError:
        return 0


@dataclass
class _Running:
    inst: Instance
    process: StepHandle
    step: PipelineStep
    artifact_uri: str
    cpu: float
    memory: int
    gpu: int
    deadline: float | None
    started: float
    placed: bool = True
    """Whether the launcher has said where it runs (and its deadline is counted)."""


@dataclass
class Execution:
    """One execution (the first, or a resume) of a pipeline run."""

    run: PipelineRun
    graph: PipelineGraph
    runtime: Runtime
    recorder: Recorder
    tracking_uri: str
    budget: Budget
    cache: bool = True
    reuse: dict[str, PipelineStep] = field(default_factory=dict)
    """Steps of an earlier attempt whose outputs a resume keeps, by task id."""
    on_update: Callable[[PipelineRun, list[PipelineStep]], None] | None = None
    launcher: Launcher = field(default_factory=LocalLauncher)
    """Where the steps run: processes of this machine, or Ray tasks."""
    steps: dict[str, PipelineStep] = field(default_factory=dict)
    cancelled: bool = False
    _retry_at: dict[str, float] = field(default_factory=dict)
    _ready: list[Instance] = field(default_factory=list)
    _last_update: float = 0.0
    _last_cancel_poll: float = 0.0
    _progress: bool = False
    _workroot: str = ""
    _unplaced: dict[str, _Running] = field(default_factory=dict)
    """Running attempts not yet known to have started somewhere (queued on a cluster)."""

    # -- the loop -------------------------------------------------------------------------

    def execute(self) -> None:
        self.launcher.open()
        self._workroot = tempfile.mkdtemp(prefix=f"slipway-{self.run.run_id[:8]}-")
        running: dict[str, _Running] = {}
        try:
            while True:
                if self._cancel_requested():
                    self._cancel(running)
                    break
                self._advance()
                self._progress = False
                self._launch(running)
                if self._progress and not running:
                    continue  # cache hits and importers finish at once: decide again
                if not running and not self._ready and not self._retry_at:
                    self._strand()
                    break
                self._wait(running)
                self._reap(running)
                self._enforce_deadlines(running)
                self._notify()
        except KeyboardInterrupt:
            self._cancel(running)
        except BaseException:
            self._cancel(running, message="the executor stopped on an error")
            raise
        finally:
            self._notify(force=True)
            self.launcher.close()
            shutil.rmtree(self._workroot, ignore_errors=True)

    def _advance(self) -> None:
        """Decide every queued instance that can be decided; collect the runnable ones."""
        changed = True
        while changed:
            changed = False
            for inst in self.runtime.expand():
                if inst.status != StepStatus.QUEUED or inst.started or inst in self._ready:
                    continue
                if inst.id in self._retry_at:
                    continue
                reused = self.reuse.get(inst.id)
                if reused is not None:
                    inst.status, inst.outputs = reused.status, dict(reused.outputs)
                    self.steps[inst.id] = reused
                    changed = True
                    continue
                verdict, why = self.runtime.decide(inst)
                if verdict == "wait":
                    self._ensure_recorded(inst)
                    continue
                if verdict in ("skip", "fail"):
                    status = StepStatus.SKIPPED if verdict == "skip" else StepStatus.FAILED
                    self._finish(inst, status, message=why)
                    changed = True
                    continue
                self._ensure_recorded(inst)
                self._ready.append(inst)

    def _strand(self) -> None:
        """Nothing runs and nothing can start: an instance still queued now never will (a
        scheduling bug, made visible as a failed step rather than a run that looks done)."""
        for inst in self.runtime.expand():
            if not inst.status.terminal and not inst.started:
                self._finish(inst, StepStatus.FAILED, message="could not be scheduled")

    def _launch(self, running: dict[str, _Running]) -> None:
        now = time.monotonic()
        for task_id, due in list(self._retry_at.items()):
            if due <= now:
                del self._retry_at[task_id]
                self._ready.append(self.runtime.instances[task_id])
        still: list[Instance] = []
        for inst in self._ready:
            if not self._fits(inst, running):
                still.append(inst)
                continue
            try:
                proc = self._start(inst)
            except Blocked as exc:
                self._finish(inst, StepStatus.FAILED, message=str(exc))
                continue
            if proc is not None:
                running[inst.id] = proc
        self._ready = still

    def _fits(self, inst: Instance, running: dict[str, _Running]) -> bool:
        budget = self.budget
        if budget.max_parallel is not None and len(running) >= budget.max_parallel:
            return False
        opts = self._options(inst)
        cpu = _cpu_of(opts)
        used_cpu = sum(r.cpu for r in running.values())
        if running and used_cpu + cpu > budget.cpu + 1e-9:
            return False
        if opts.memory and sum(r.memory for r in running.values()) + opts.memory > budget.memory:
            return False
        gpu = opts.gpu * opts.workers
        if gpu and sum(r.gpu for r in running.values()) + gpu > budget.gpu:
            return False
        return self._loop_allows(inst)

    def _loop_allows(self, inst: Instance) -> bool:
        loops = self.runtime.graph.loops_of(inst.task)
        for depth, loop in enumerate(loops):
            limit = self.runtime.graph.groups[loop].parallelism
            if not limit:
                continue
            outer, index = inst.scope[:depth], inst.scope[depth]
            in_flight = self._iterations_in_flight(outer, depth)
            if index not in in_flight and len(in_flight) >= limit:
                return False
        return True

    def _iterations_in_flight(self, outer: Scope, depth: int) -> set[int]:
        """Iterations of the loop at ``depth`` (within ``outer``) that have begun and not
        finished."""
        begun: set[int] = set()
        unfinished: set[int] = set()
        for other in self.runtime.instances.values():
            if len(other.scope) <= depth or other.scope[:depth] != outer:
                continue
            index = other.scope[depth]
            if other.started or other.status.terminal or other.id in self._retry_at:
                begun.add(index)
            if not other.status.terminal:
                unfinished.add(index)
        return begun & unfinished

    def _wait(self, running: dict[str, _Running]) -> None:
        if self._ready and not running:
            return
        timeout = CANCEL_POLL_SECONDS
        now = time.monotonic()
        for r in running.values():
            if r.deadline is not None:
                timeout = min(timeout, max(r.deadline - now, 0.0))
        for due in self._retry_at.values():
            timeout = min(timeout, max(due - now, 0.0))
        self.launcher.wait([r.process for r in running.values()], timeout)

    def _reap(self, running: dict[str, _Running]) -> None:
        if self._unplaced:
            for r in list(self._unplaced.values()):
                self._place(r)
        for task_id, r in list(running.items()):
            if r.process.done():
                del running[task_id]
                self._complete(r, r.process.result())

    def _place(self, r: _Running) -> None:
        """Record where an attempt queued on a cluster runs, once it has started there; its
        timeout counts from then."""
        placement = r.process.placement()
        if placement is None:
            return
        self._unplaced.pop(r.inst.id, None)
        r.placed = True
        step = r.step
        attempts = list(step.details.get("attempts", []))
        if attempts and "node_id" in placement.details:
            attempts[-1] = {**attempts[-1], "node_id": placement.details["node_id"]}
        step.details = {**step.details, **placement.details, "attempts": attempts}
        for key, value in placement.tags.items():
            self.recorder.tracking.set_tag(step.run_id or "", RunTag(key, value))
        timeout = self._options(r.inst).timeout
        if timeout:
            r.deadline = time.monotonic() + timeout + self.launcher.deadline_slack
        self._save(step)

    def _enforce_deadlines(self, running: dict[str, _Running]) -> None:
        now = time.monotonic()
        for task_id, r in list(running.items()):
            if r.deadline is not None and now >= r.deadline:
                r.process.kill("timeout")
                del running[task_id]
                self._complete(r, r.process.result())

    # -- starting a step ------------------------------------------------------------------

    def _options(self, inst: Instance) -> StepOptions:
        return self.graph.tasks[inst.task].options

    def _component(self, inst: Instance) -> Component:
        node = self.graph.tasks[inst.task]
        return self.graph.functions[node.component]

    def _start(self, inst: Instance) -> _Running | None:
        """Start ``inst`` (or satisfy it from the cache: None is returned then)."""
        from slipway.pipelines import cache as step_cache
        from slipway.pipelines.executor.step import StepSpec

        node = self.graph.tasks[inst.task]
        component = self._component(inst)
        opts = node.options
        try:
            inputs = self.runtime.inputs_of(inst)
        except NotYet:  # cannot happen once decided; keep the instance queued
            return None
        params = dict(inputs["parameters"])
        for name, input_spec in component.spec.inputs.items():
            if input_spec.param is not None and input_spec.param.name == ty.TASK_FINAL_STATUS:
                group = self.graph.exit_handler_of(inst.task)
                state, failed = self.runtime.group_status(group) if group else ("SUCCEEDED", [])
                params[name] = ty.PipelineStatus(state, self.run.run_id, tuple(failed))
        step = self.steps[inst.id]
        if component.spec.kind == "importer":
            self._import(inst, step, component, inputs)
            return None
        key = None
        if self.cache and opts.cache:
            key = step_cache.cache_key(component, opts, inputs["parameters"], inputs["artifacts"])
            max_age = int(opts.cache_ttl * 1000) if opts.cache_ttl is not None else None
            entry = self.recorder.store.get_cache_entry(key, max_age_ms=max_age)
            if entry is not None and _outputs_exist(entry.outputs):
                self._record_cached(inst, step, key, entry.run_id, entry.outputs, inputs)
                return None
        attempt = step.attempt + 1
        run_id, artifact_uri = self.recorder.step_run(
            inst.id, component.name, attempt, inputs["parameters"]
        )
        self.recorder.log_dataset_inputs(run_id, inputs["artifacts"])
        workdir = self.launcher.workdir(self._workroot, attempt)
        spec = StepSpec(
            pipeline_run_id=self.run.run_id,
            task_id=inst.id,
            component=component,
            parameters=params,
            input_artifacts=inputs["artifacts"],
            output_uris={
                name: f"{artifact_uri.rstrip('/')}/outputs/{name}"
                for name, out in component.spec.outputs.items()
                if out.kind == "artifact"
            },
            run_id=run_id,
            tracking_uri=self.tracking_uri,
            workdir=workdir,
            env=dict(opts.env),
            attempt=attempt,
        )
        process = self.launcher.start(spec, opts, artifact_uri)
        placement = process.placement()
        inst.started = True
        started = now_ms()
        step.status = StepStatus.RUNNING
        step.attempt = attempt
        step.run_id = run_id
        step.cache_key = key
        step.cached_from = None
        step.start_time = step.start_time or started
        step.end_time = None
        step.inputs = inputs
        step.message = None
        attempt_entry: dict[str, Any] = {
            "attempt": attempt,
            "run_id": run_id,
            "start_time": started,
        }
        where: dict[str, Any] = {}
        if placement is not None:
            where = placement.details
            if "node_id" in where:
                attempt_entry["node_id"] = where["node_id"]
            for key, value in placement.tags.items():
                self.recorder.tracking.set_tag(run_id, RunTag(key, value))
        step.details = {
            **step.details,
            **where,
            "attempts": [*step.details.get("attempts", []), attempt_entry],
        }
        self._save(step)
        deadline = None
        if opts.timeout and placement is not None:
            deadline = time.monotonic() + opts.timeout + self.launcher.deadline_slack
        running = _Running(
            inst,
            process,
            step,
            artifact_uri,
            _cpu_of(opts),
            opts.memory or 0,
            opts.gpu * opts.workers,
            deadline,
            time.monotonic(),
            placed=placement is not None,
        )
        if placement is None:
            self._unplaced[inst.id] = running
        return running

    def _import(
        self, inst: Instance, step: PipelineStep, component: Component, inputs: dict[str, Any]
    ) -> None:
        """An importer: the artifact at its URI, with the digest of its bytes as they are now."""
        from slipway.pipelines.artifacts import import_artifact

        inst.started = True
        step.attempt += 1
        step.inputs = inputs
        step.start_time = now_ms()
        uri = str(inputs["parameters"]["uri"])
        art = component.spec.outputs[IMPORTER_OUTPUT].artifact
        assert art is not None
        try:
            ref = import_artifact(uri, art.name)
        except Exception as exc:  # a missing file, an unreachable bucket: the step fails
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            self._finish(inst, StepStatus.FAILED, message=f"cannot import {uri}: {message}")
            return
        outputs = {"parameters": {}, "artifacts": {IMPORTER_OUTPUT: {**ref, "producer": inst.id}}}
        run_id, _ = self.recorder.step_run(inst.id, component.name, step.attempt, {"uri": uri})
        self.recorder.finish_step_run(run_id, True, outputs)
        step.run_id = run_id
        self._finish(inst, StepStatus.SUCCEEDED, outputs=outputs)

    def _record_cached(
        self,
        inst: Instance,
        step: PipelineStep,
        key: str,
        source_run: str,
        outputs: dict[str, Any],
        inputs: dict[str, Any],
    ) -> None:
        run_id, _ = self.recorder.step_run(
            inst.id,
            self.graph.tasks[inst.task].component,
            step.attempt + 1,
            inputs["parameters"],
            extra_tags={CACHED_FROM_TAG: source_run},
        )
        self.recorder.finish_step_run(run_id, True, outputs)
        inst.started = True
        step.attempt += 1
        step.run_id = run_id
        step.cache_key = key
        step.cached_from = source_run
        step.inputs = inputs
        step.start_time = step.start_time or now_ms()
        self._finish(inst, StepStatus.CACHED, outputs=outputs)

    # -- a step ended ---------------------------------------------------------------------

    def _complete(self, r: _Running, result: Any) -> None:
        inst, step = r.inst, r.step
        if not r.placed:
            self._place(r)
            self._unplaced.pop(inst.id, None)
        try:
            self.recorder.upload_logs(
                r.artifact_uri, {"stdout": result.stdout_path, "stderr": result.stderr_path}
            )
        except Exception as exc:  # logs are a convenience; the step's outcome stands
            step.details = {**step.details, "log_upload_error": str(exc)}
        if result.log_upload_error:
            step.details = {**step.details, "log_upload_error": result.log_upload_error}
        attempts = list(step.details.get("attempts", []))
        if attempts:
            attempts[-1] = {
                **attempts[-1],
                "end_time": now_ms(),
                "ok": bool(result.ok),
                "message": result.error,
            }
        step.details = {**step.details, "attempts": attempts}
        if result.ok and not _finite(result.parameters):
            result.ok = False
            result.error = (
                "returned a value that is not finite (nan or inf); outputs must be JSON values"
            )
        if result.ok:
            outputs = {
                "parameters": dict(result.parameters),
                "artifacts": {
                    k: {**ref, "producer": inst.id} for k, ref in result.artifacts.items()
                },
            }
            self.recorder.finish_step_run(step.run_id or "", True, outputs)
            if step.cache_key:
                from slipway.entities.pipelines import CacheEntry

                self.recorder.store.put_cache_entry(
                    CacheEntry(
                        step.cache_key,
                        step.component,
                        outputs,
                        step.run_id or "",
                        self.run.run_id,
                        inst.id,
                        now_ms(),
                    )
                )
            self._finish(inst, StepStatus.SUCCEEDED, outputs=outputs)
            return
        if result.cancelled or self.cancelled:
            self.recorder.kill_step_run(step.run_id or "")
            self._finish(inst, StepStatus.CANCELLED, message="cancelled")
            return
        self.recorder.finish_step_run(step.run_id or "", False)
        message = result.error or "failed"
        opts = self._options(inst)
        if step.attempt <= opts.retries:
            delay = opts.retry_delay(step.attempt)
            inst.started = False
            step.status = StepStatus.RETRYING
            step.message = f"attempt {step.attempt} failed: {message}; retrying in {delay:g} s"
            self._retry_at[inst.id] = time.monotonic() + delay
            self._save(step)
            return
        self._finish(inst, StepStatus.FAILED, message=message)

    def _finish(
        self,
        inst: Instance,
        status: StepStatus,
        message: str | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> None:
        self._progress = True
        inst.status = status
        inst.message = message
        if outputs is not None:
            inst.outputs = outputs
        step = self._ensure_recorded(inst)
        step.status = status
        step.message = message
        step.end_time = now_ms()
        if outputs is not None:
            step.outputs = outputs
        self._save(step)

    def _ensure_recorded(self, inst: Instance) -> PipelineStep:
        step = self.steps.get(inst.id)
        if step is None:
            node = self.graph.tasks[inst.task]
            step = PipelineStep(
                self.run.run_id, inst.id, inst.task, node.component, StepStatus.QUEUED
            )
            self.steps[inst.id] = step
            self._save(step)
        return step

    def _save(self, step: PipelineStep) -> None:
        self.recorder.save(step)
        self._notify()

    # -- cancelling -----------------------------------------------------------------------

    def _cancel_requested(self) -> bool:
        now = time.monotonic()
        if now - self._last_cancel_poll < CANCEL_POLL_SECONDS:
            return False
        self._last_cancel_poll = now
        current = self.recorder.store.get_pipeline_run(self.run.run_id)
        return current.status == PipelineRunStatus.CANCELLING

    def _cancel(self, running: dict[str, _Running], message: str = "cancelled") -> None:
        self.cancelled = True
        for r in running.values():  # every step gets SIGTERM at once, then each is awaited
            r.process.kill("cancel", wait=False)
        for r in list(running.values()):
            try:
                r.process.kill("cancel")
                result = r.process.result()
                self.recorder.upload_logs(
                    r.artifact_uri, {"stdout": result.stdout_path, "stderr": result.stderr_path}
                )
            except Exception as exc:  # the step is being stopped either way
                r.step.details = {**r.step.details, "cancel_error": str(exc)}
            self.recorder.kill_step_run(r.step.run_id or "")
            self._finish(r.inst, StepStatus.CANCELLED, message=message)
        running.clear()
        self._unplaced.clear()
        self._ready.clear()
        self._retry_at.clear()
        for inst in self.runtime.expand():
            if not inst.status.terminal:
                self._finish(inst, StepStatus.CANCELLED, message=message)

    def _notify(self, force: bool = False) -> None:
        if self.on_update is None:
            return
        now = time.monotonic()
        if not force and now - self._last_update < UPDATE_INTERVAL_SECONDS:
            return
        self._last_update = now
        ordered = sorted(
            self.steps.values(),
            key=lambda s: (self.runtime.order.get(s.task_name, 1 << 30), s.task_id),
        )
        self.on_update(self.run, ordered)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def _outputs_exist(outputs: dict[str, Any]) -> bool:
    """A cache entry whose local artifact files are gone is a miss."""
    for ref in (outputs.get("artifacts") or {}).values():
        uri = ref.get("uri", "") if isinstance(ref, dict) else ""
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        if path.startswith("/") and not os.path.exists(path):
            return False
    return True


__all__ = ["Budget", "Execution"]
