"""Trials on Ray: each trial worker is a Ray actor (:class:`TrialActor`) holding the trial's
resources (``trial_resources``: CPUs, GPUs, memory, custom resources), alive for the whole study
and running one trial at a time, as the local workers do (:mod:`slipway.tuning.pool`).

The actors write to the study's tracking URI themselves (the trial's logging, and its
intermediate values through the study's journal, which is how pruning compares across
workers), so that URI must be reachable from the cluster's nodes: a database server, or a
SQLite file or folder on a filesystem the nodes share. Each trial's run gets the tag
``slipway.ray.node_id``, the node it ran on. Before anything runs, the address is checked (an
unreachable one fails in seconds) and so is the request: a trial asking for more than any node
of the cluster has is refused instead of waiting forever.

A trial that takes its actor down fails alone; a new actor takes its place. A trial past its
``trial_timeout``, or a study stopped by Ctrl-C, kills the actor.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.engines.shipping import Package, folder_to_ship, pack, unpack
from slipway.exceptions import InvalidParameterValue
from slipway.tuning.pool import Outcome, TrialPool
from slipway.tuning.runner import TrialRunner, failure, one_line

NODE_TAG = "slipway.ray.node_id"
WAIT_SLICE = 0.05
"""Seconds between looks at trials handed to actors while :meth:`RayPool.wait` waits (a trial
whose run was recorded meanwhile joins the next look)."""


@dataclass
class Shipped:
    """A study's working directory, packed for the nodes, and where in it trial commands
    run."""

    package: Package
    cwd: str = "."


def shipped_folder(working_dir: str | os.PathLike[str], on: str) -> str:
    """The folder to ship to the Ray nodes, checked (a Ray-only setting)."""
    if on != "ray":
        raise InvalidParameterValue("working_dir goes with on='ray'")
    return folder_to_ship(working_dir)


def ship(folder: str, cwd: str | None) -> Shipped:
    """``folder`` packed; trial commands run in the node's copy of ``cwd`` when ``cwd`` is
    inside it, else at the top of the copy."""
    inside = "."
    if cwd is not None:
        with contextlib.suppress(ValueError):
            inside = str(Path(cwd).resolve().relative_to(folder))
    return Shipped(pack(folder), inside)


class TrialActor:
    """A trial worker on a Ray node (made a Ray actor class by :class:`RayPool`)."""

    def __init__(
        self,
        sys_path: list[str],
        payload: bytes,
        env: dict[str, str],
        package: bytes | None = None,
        cwd: str = ".",
    ) -> None:
        """``package``: the study's shipped working directory (a zip, see
        :mod:`slipway.engines.shipping`), unpacked here first: its top goes first on
        ``sys.path`` (the objective's modules are found there) and trial commands run in its
        ``cwd``."""
        import cloudpickle

        from slipway.engines.ray import current_node_id

        os.environ.update(env)
        self._node = current_node_id()
        self._runner: TrialRunner | None = None
        self._broken: Outcome | None = None
        try:
            workdir = tempfile.mkdtemp(prefix="slipway-trial-")  # this node's own
            copy = None
            if package is not None:
                copy = unpack(package, os.path.join(workdir, "working_dir"))
                sys.path.insert(0, str(copy))
            for entry in sys_path:  # where the driver found the objective's modules
                if entry and entry not in sys.path:
                    sys.path.append(entry)
            study = cloudpickle.loads(payload)
            study.workdir = workdir
            if copy is not None:
                study.cwd = str(copy / cwd)
            self._runner = TrialRunner(study)
        except BaseException as exc:
            self._broken = failure(exc, "cannot load the objective: ")

    def node_id(self) -> str:
        return self._node

    def run(self, trial: dict[str, Any]) -> Outcome:
        run_id = str(trial["run_id"])
        if self._runner is None:
            outcome = dict(self._broken or {"state": "FAIL", "error": "no objective"})
        else:
            outcome = self._runner.run(
                int(trial["trial_id"]), int(trial["number"]), dict(trial["params"]), lambda: run_id
            )
        outcome["tags"] = {NODE_TAG: self._node}
        return outcome


@dataclass
class _Actor:
    handle: Any
    node: Any
    """The reference to the actor's node id (asked first, so known once a trial ran)."""


@dataclass
class _Slot:
    actor: _Actor
    trial: dict[str, Any]
    ref: Any = None
    """The running trial's result, once its run was recorded and the trial handed over."""


def actor_options(resources: dict[str, float]) -> dict[str, Any]:
    """Ray actor options for a trial's ``resources`` (one CPU unless said otherwise)."""
    options: dict[str, Any] = {
        "num_cpus": resources.get("cpu", 1.0),
        "num_gpus": resources.get("gpu", 0.0),
        "max_restarts": 0,
        "max_task_retries": 0,
    }
    if resources.get("memory"):
        options["memory"] = int(resources["memory"])
    custom = {k: v for k, v in resources.items() if k not in ("cpu", "gpu", "memory")}
    if custom:
        options["resources"] = custom
    return options


class RayPool(TrialPool):
    """``size`` :class:`TrialActor` actors on the Ray cluster at ``address``."""

    def __init__(
        self,
        size: int,
        payload: bytes,
        env: dict[str, str],
        resources: dict[str, float],
        address: str | None,
        ready: int | None = None,
        shipped: Shipped | None = None,
    ) -> None:
        from slipway.engines.ray import check_fits, connect, require_ray

        ray = require_ray()
        connect(address)
        options = actor_options(resources)
        check_fits(
            "A trial",
            cpu=options["num_cpus"],
            gpu=options["num_gpus"],
            memory=options.get("memory", 0),
            resources=options.get("resources"),
        )
        self.size = size
        self._ray = ray
        self._class = ray.remote(TrialActor).options(**options)
        self._args: tuple[Any, ...] = (list(sys.path), payload, env)
        if shipped is not None:  # into the object store once; each actor gets the bytes
            self._args += (ray.put(shipped.package.data), shipped.cwd)
        self._lock = threading.Condition()
        started = size if ready is None else min(size, ready)
        self._idle = [self._new_actor() for _ in range(started)]  # they start meanwhile
        self._busy: dict[int, _Slot] = {}
        self._run_ids: dict[int, str] = {}

    def _new_actor(self) -> _Actor:
        handle = self._class.remote(*self._args)
        return _Actor(handle, handle.node_id.remote())

    def _hand_over(self, slot: _Slot, run_id: str) -> None:
        slot.ref = slot.actor.handle.run.remote({**slot.trial, "run_id": run_id})
        self._lock.notify_all()

    def start(self, number: int, trial: dict[str, Any]) -> None:
        with self._lock:
            actor = self._idle.pop() if self._idle else self._new_actor()
            slot = self._busy[number] = _Slot(actor, dict(trial))
            run_id = self._run_ids.pop(number, None)
            if run_id is not None:
                self._hand_over(slot, run_id)

    def record_run(self, number: int, run_id: str) -> None:
        with self._lock:
            slot = self._busy.get(number)
            if slot is None:
                self._run_ids[number] = run_id
            elif slot.ref is None:
                self._hand_over(slot, run_id)

    def wait(self, timeout: float) -> list[tuple[int, Outcome]]:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            with self._lock:
                refs = {slot.ref: n for n, slot in self._busy.items() if slot.ref is not None}
                left = deadline - time.monotonic()
                if not refs:
                    if not self._busy or left <= 0:
                        return []
                    self._lock.wait(min(left, WAIT_SLICE))
                    continue
            ready, _ = self._ray.wait(list(refs), timeout=max(0.0, min(left, WAIT_SLICE)))
            if ready:  # and whatever else ended by now
                ready, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=0)
            if ready or left <= 0:
                return [(refs[ref], self._outcome(refs[ref], ref)) for ref in ready]

    def _outcome(self, number: int, ref: Any) -> Outcome:
        with self._lock:
            slot = self._busy.pop(number)
        try:
            outcome = dict(self._ray.get(ref))
        except Exception as exc:  # the actor died (or could not run the trial): replace it
            self._discard(slot.actor)
            outcome = {"state": "FAIL", "error": f"the trial's worker died: {one_line(exc)}"}
            node = self._node_of(slot.actor)
            if node:
                outcome["tags"] = {NODE_TAG: node}
            return outcome
        with self._lock:
            self._idle.append(slot.actor)
        return outcome

    def _node_of(self, actor: _Actor) -> str | None:
        try:
            ready, _ = self._ray.wait([actor.node], timeout=0)
            return str(self._ray.get(ready[0])) if ready else None
        except Exception:
            return None

    def _discard(self, actor: _Actor) -> None:
        with contextlib.suppress(Exception):  # already gone
            self._ray.kill(actor.handle, no_restart=True)

    def kill(self, number: int, reason: str) -> None:
        with self._lock:
            slot = self._busy.pop(number, None)
            self._run_ids.pop(number, None)
        if slot is not None:
            self._discard(slot.actor)

    def close(self) -> None:
        with self._lock:
            actors = [slot.actor for slot in self._busy.values()] + self._idle
            self._busy.clear()
            self._idle = []
        for actor in actors:
            self._discard(actor)


__all__ = ["NODE_TAG", "RayPool", "TrialActor", "actor_options"]
