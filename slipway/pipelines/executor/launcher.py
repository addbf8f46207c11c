"""Where the executor's steps run: the seam between the executor's loop (which decides, records
and retries) and the processes that run each attempt.

:class:`LocalLauncher` starts each attempt as a process of this machine, as the local executor
always has; :class:`slipway.pipelines.executor.ray.RayLauncher` runs it as a Ray task on
whichever node of a cluster holds its resources. Everything else (caching, resume, tracking,
retries, timeouts, cancelling) is the loop's, the same for both.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any, Protocol

from slipway.exceptions import InvalidParameterValue

if TYPE_CHECKING:
    from slipway.pipelines.component import StepOptions
    from slipway.pipelines.executor.local import Budget
    from slipway.pipelines.executor.step import StepResult, StepSpec
    from slipway.pipelines.graph import PipelineGraph

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Placement:
    """Where an attempt runs, once that is known: what goes in the step's details (``host``,
    ``pid``, ``node_id``...) and tags for the attempt's tracking run."""

    details: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)


class StepHandle(Protocol):
    """One attempt as the loop sees it, wherever it runs."""

    def done(self) -> bool:
        """Whether the attempt has ended (never blocks)."""
        ...

    def kill(self, reason: str, wait: bool = True) -> None:
        """Stop it (``reason``: ``"timeout"`` or ``"cancel"``); ``wait=False`` only starts
        stopping it, so that many can be told at once."""
        ...

    def result(self) -> StepResult:
        """How it ended (waits for the end)."""
        ...

    def placement(self) -> Placement | None:
        """Where it runs; None while that is not known (waiting for a node)."""
        ...


class Launcher(Protocol):
    """Starts attempts and waits for them."""

    deadline_slack: float
    """Seconds the loop waits past a step's timeout before it stops the step itself (a launcher
    whose steps stop themselves at their timeout gives them time to report it)."""

    def budget(self, max_parallel: int | None) -> Budget:
        """What the steps running at once may hold, all together."""
        ...

    def check(self, graph: PipelineGraph) -> None:
        """Refuse (INVALID_PARAMETER_VALUE) a pipeline with a task that could never run,
        before anything is recorded."""
        ...

    def open(self) -> None:
        """Get ready to start steps (before the loop)."""
        ...

    def workdir(self, root: str, attempt: int) -> str:
        """The attempt's work folder as the orchestrator names it ("" when the machine that
        runs it makes its own)."""
        ...

    def start(self, spec: StepSpec, options: StepOptions, artifact_uri: str) -> StepHandle:
        """Start one attempt and return at once (``artifact_uri``: its run's artifacts)."""
        ...

    def wait(self, handles: Sequence[Any], timeout: float) -> None:
        """Return when one of ``handles`` may have ended or changed, or after ``timeout``."""
        ...

    def close(self) -> None:
        """The run is over: release what :meth:`open` took."""
        ...


class LocalLauncher:
    """Each attempt a process of this machine (:func:`slipway.pipelines.executor.step.
    start_step`), within the machine's cores, memory and GPUs."""

    deadline_slack = 0.0

    def budget(self, max_parallel: int | None) -> Budget:
        from slipway.pipelines.executor.local import Budget

        return Budget.of_machine(max_parallel)

    def check(self, graph: PipelineGraph) -> None:
        self.budget(None).refuse_oversized(graph)

    def open(self) -> None:
        from slipway.pipelines.executor.step import warm_up

        warm_up()  # the fork server starts while the first steps are decided

    def workdir(self, root: str, attempt: int) -> str:
        return tempfile.mkdtemp(prefix=f"{attempt}-", dir=root)

    def start(self, spec: StepSpec, options: StepOptions, artifact_uri: str) -> LocalStep:
        from slipway.pipelines.executor import step

        return LocalStep(step.start_step(spec))

    def wait(self, handles: Sequence[Any], timeout: float) -> None:
        sentinels = [h.process.sentinel for h in handles]
        if sentinels:
            wait(sentinels, timeout)
        elif timeout > 0:
            time.sleep(timeout)

    def close(self) -> None:
        pass


class LocalStep:
    """A :class:`~slipway.pipelines.executor.step.StepProcess` as a :class:`StepHandle`."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.pid: int = process.pid
        self._placement = Placement({"pid": process.pid, "host": os.uname().nodename})

    def done(self) -> bool:
        return bool(self.process.done())

    def kill(self, reason: str, wait: bool = True) -> None:
        self.process.kill(reason, wait=wait)

    def result(self) -> StepResult:
        result: StepResult = self.process.result()
        return result

    def placement(self) -> Placement:
        return self._placement


def make_launcher(
    executor: str,
    ray_address: str | None = None,
    working_dir: str | os.PathLike[str] | None = None,
) -> Launcher:
    """The launcher for ``executor`` (``"local"`` or ``"ray"``); INVALID_PARAMETER_VALUE for
    another name, or for a Ray address or working directory given to the local executor."""
    name = executor.strip().lower() if isinstance(executor, str) else executor
    if name == "local":
        if ray_address is not None:
            raise InvalidParameterValue(
                "ray_address is for executor='ray'; the local executor runs steps on this machine"
            )
        if working_dir is not None:
            raise InvalidParameterValue(
                "working_dir is for executor='ray': local steps run in this machine's folders"
            )
        return LocalLauncher()
    if name == "ray":
        from slipway.pipelines.executor.ray import RayLauncher

        return RayLauncher(ray_address, working_dir)
    raise InvalidParameterValue(
        f"Unknown executor {executor!r}: use one of {', '.join(repr(e) for e in EXECUTORS)}"
    )


__all__ = [
    "EXECUTORS",
    "Launcher",
    "LocalLauncher",
    "LocalStep",
    "Placement",
    "StepHandle",
    "make_launcher",
]
