"""Training on a Ray cluster: one actor per rank, the same job as a local one.

``launch(..., on="ray")`` keeps everything the local launcher promises: torchrun's
environment in every worker, one tracked run (params, rank 0's metrics, every rank's system
metrics and logs, the restarts, the failing rank and its error), checkpoints in that run, and
restarts that resume from them. What changes is who starts the workers:

1. everything that can be refused is refused before the run exists: an address nothing
   answers (:func:`slipway.engines.ray.connect`), a job the cluster could never hold, and one
   whose resources are not free within the placement timeout
   (:mod:`.ray_placement`);
2. each attempt reserves one bundle per rank in a placement group (all placed or none), and
   starts one :class:`~.ray_worker.RankWorker` actor in each bundle. Ranks are numbered node
   by node, so ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` count the ranks that share a node and
   ``GROUP_RANK`` numbers the nodes, as torchrun on each node would; rank 0's actor picks
   ``MASTER_ADDR`` (its node's address) and a free ``MASTER_PORT`` there;
3. the launcher watches the actors: when a worker fails, its actor dies or its node is lost,
   the others are stopped, the actors killed and the placement group removed; a new attempt
   starts in a new placement group while restarts are left. When a node went silent, Ray is
   given time to declare it lost first, so the new group is not placed on it;
4. every actor uploads its rank's logs from its node when its worker ends; the launcher copies
   the workers' output to the console (unless quiet) and ends the run.

The nodes' ranks are recorded in the ``slipway.ray.node_ids`` tag (comma-separated by rank,
for the latest attempt).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipway.engines.shipping import folder_to_ship, pack
from slipway.entities import RunStatus
from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable
from slipway.training.agent import AgentOutcome, JobTimedOut, WorkerFailure
from slipway.training.launcher import (
    TrainingResult,
    _Entrypoint,
    _job_env,
    _Tracking,
    finish_job,
    job_params,
)
from slipway.training.ray_placement import (
    STRATEGIES,
    check_placeable,
    describe_bundle,
    place,
    remove,
    resolve_backend,
    worker_bundle,
)
from slipway.training.ray_worker import RankResult, WorkerCommand
from slipway.training.tracking import JobRun, create_job_run

__all__ = ["NODE_IDS_TAG", "RayPlan", "launch_on_ray"]

NODE_IDS_TAG = "slipway.ray.node_ids"
ACTOR_START_TIMEOUT_S = 120.0
"""How long the actors of an attempt may take to start (a busy node starts processes slowly)."""
STOP_GRACE_S = 10.0
"""Seconds between SIGTERM and SIGKILL when workers are stopped."""
UPLOAD_WAIT_S = 60.0
"""How long a stopped rank's actor may take to upload its logs."""
NODE_LOSS_WAIT_S = 60.0
"""How long to wait for Ray to declare lost a node whose actor stopped answering."""
NODE_PROBE_S = 5.0
"""How long a node whose actor died has to run a tiny task, to show it is still there."""
POLL_S = 0.5
_STANDARD = ("CPU", "GPU", "memory")


@dataclass(frozen=True)
class RayPlan:
    """A Ray job's settings, checked."""

    workers: int
    backend: str
    max_restarts: int
    timeout: float | None
    quiet: bool
    address: str | None
    bundle: dict[str, float]
    strategy: str
    placement_timeout: float
    working_dir: str | None = None
    """A folder of the launcher's machine shipped to every node
    (:mod:`slipway.engines.shipping`)."""
    stop_grace: float = STOP_GRACE_S

    @classmethod
    def checked(
        cls,
        *,
        workers: int,
        backend: str,
        max_restarts: int,
        timeout: float | None,
        quiet: bool,
        address: str | None,
        resources: Mapping[str, float] | None,
        strategy: str,
        placement_timeout: float,
        working_dir: str | os.PathLike[str] | None = None,
    ) -> RayPlan:
        chosen = resolve_backend(backend, resources)
        shipped = folder_to_ship(working_dir) if working_dir is not None else None
        bundle = worker_bundle(resources, chosen)
        if strategy not in STRATEGIES:
            raise InvalidParameterValue(
                f"Unknown placement strategy {strategy!r}: use one of {', '.join(STRATEGIES)}"
            )
        return cls(
            workers=workers,
            backend=chosen,
            max_restarts=max_restarts,
            timeout=timeout,
            quiet=quiet,
            address=address,
            bundle=bundle,
            strategy=strategy,
            placement_timeout=placement_timeout,
            working_dir=shipped,
        )

    def command_for(self, target: _Entrypoint) -> WorkerCommand:
        """What each rank runs: with a shipped folder, the script by its path inside it."""
        if self.working_dir is None:
            return WorkerCommand(
                script=target.script,
                script_args=target.script_args,
                payload=target.payload,
                cwd=os.getcwd(),
            )
        script = None
        if target.script is not None:
            try:
                script = str(Path(target.script).resolve().relative_to(self.working_dir))
            except ValueError:
                raise InvalidParameterValue(
                    f"The training script {target.script} is not inside working_dir "
                    f"{self.working_dir}, so it would not reach the nodes"
                ) from None
        return WorkerCommand(
            script=script, script_args=target.script_args, payload=target.payload, shipped=True
        )


def launch_on_ray(
    plan: RayPlan,
    target: _Entrypoint,
    tracking_of: Callable[[], _Tracking],
    run_name: str | None,
    interval: float,
) -> TrainingResult:
    """Run ``target`` on ``plan.workers`` Ray actors as one tracked job (see the module)."""
    from slipway.engines.ray import connect

    command = plan.command_for(target)  # a script outside a shipped folder: refused here
    package = pack(plan.working_dir) if plan.working_dir is not None else None
    connect(plan.address)
    check_placeable(plan.workers, plan.bundle, plan.strategy)
    if package is not None:
        import ray

        # Once into the object store; every rank's actor fetches it on its node.
        command = dataclasses.replace(command, package=ray.put(package.data))
    tracking = tracking_of()
    group = place(plan.workers, plan.bundle, plan.strategy, plan.placement_timeout, _group_name())
    try:
        params = job_params(plan.workers, plan.backend, plan.max_restarts, target, plan.timeout)
        params.update(
            {
                "on": "ray",
                "placement_strategy": plan.strategy,
                "resources_per_worker": describe_bundle(plan.bundle),
            }
        )
        if plan.working_dir is not None:
            params["working_dir"] = plan.working_dir
        job = create_job_run(
            tracking.client,
            tracking.experiment_id,
            run_name,
            params,
            target.source,
            tracking.parent_run_id,
        )
    except BaseException:
        remove(group)
        raise
    return _RayJob(plan, command, job, tracking, interval).run(group)


def _group_name() -> str:
    return f"slipway-train-{uuid.uuid4().hex[:12]}"


@functools.cache
def _actor_class() -> Any:
    import ray

    from slipway.training.ray_worker import RankWorker

    return ray.remote(RankWorker)


class _Interrupted(BaseException):
    """A termination signal reached the launcher (a BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the job like Ctrl-C does (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise _Interrupted(signum)

    saved = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None:
            saved[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in saved.items():
            signal.signal(signum, old)


@dataclass
class _Rank:
    """One rank of an attempt: its actor and where it runs."""

    rank: int
    actor: Any
    node_id: str = ""
    ip: str = ""
    gpus: list[str] = field(default_factory=list)
    local_rank: int = 0
    local_world_size: int = 1
    group_rank: int = 0
    gone: bool = False
    """Its actor died or stopped answering: nothing more is asked of it."""


@dataclass
class _Outcome:
    """How an attempt ended."""

    succeeded: bool
    values: dict[int, bytes] = field(default_factory=dict)
    failures: list[WorkerFailure] = field(default_factory=list)
    silent_nodes: set[str] = field(default_factory=set)
    """Nodes whose actors stopped answering: maybe lost, not yet declared so."""

    def root_failure(self) -> WorkerFailure | None:
        return AgentOutcome(False, failures=self.failures).root_failure()


class _RayJob:
    """The launcher's side of one job: its attempts, and its run."""

    def __init__(
        self,
        plan: RayPlan,
        command: WorkerCommand,
        job: JobRun,
        tracking: _Tracking,
        interval: float,
    ) -> None:
        self.plan = plan
        self.job = job
        self.tracking = tracking
        self.deadline = time.monotonic() + plan.timeout if plan.timeout else None
        self.base_env = _job_env(
            job.run_id,
            job.artifact_uri,
            tracking.experiment_id,
            tracking.uri,
            plan.backend,
            interval,
        )
        self.base_env["OMP_NUM_THREADS"] = str(max(1, int(plan.bundle.get("CPU", 1.0))))
        self.command = command

    # -- the job ---------------------------------------------------------------------------

    def run(self, group: Any) -> TrainingResult:
        status = RunStatus.FAILED
        failed_rank: int | None = None
        error: str | None = None
        interrupted: BaseException | None = None
        values: dict[int, bytes] = {}
        attempt = 0
        try:
            with _signals_interrupt():
                while True:
                    outcome = self._attempt(group, attempt)
                    group = None
                    if outcome.succeeded:
                        status, values = RunStatus.FINISHED, outcome.values
                        failed_rank, error = None, None
                        break
                    root = outcome.root_failure()
                    failed_rank = root.rank if root is not None else None
                    error = root.describe() if root is not None else "the workers failed"
                    if attempt >= self.plan.max_restarts:
                        break
                    restart = f"{attempt + 1}/{self.plan.max_restarts}"
                    self._say(f"{error}; restarting the workers ({restart})")
                    self._wait_for_silent_nodes(outcome.silent_nodes)
                    try:
                        group = self._place_again()
                    except TemporarilyUnavailable as exc:
                        error = f"{error}; then the restart could not be placed: {exc.message}"
                        break
                    attempt += 1
        except JobTimedOut as exc:
            error = f"Stopped the workers: {exc}"
        except _Interrupted as exc:
            status, error = RunStatus.KILLED, f"Stopped the workers: {exc}"
            interrupted = SystemExit(128 + exc.signum)
        except KeyboardInterrupt:
            status, error = RunStatus.KILLED, "Stopped the workers: stopped by SIGINT"
            interrupted = KeyboardInterrupt()
        except Exception as exc:
            error = f"The launcher failed: {type(exc).__name__}: {exc}"
            interrupted = exc
        finally:
            if group is not None:
                remove(group)
            finish_job(self.job, status, attempt, failed_rank, error, self.tracking.uri)
        if interrupted is not None:
            raise interrupted
        returned: dict[int, Any] = {}
        if status == RunStatus.FINISHED and self.command.payload is not None:
            import cloudpickle

            returned = {rank: cloudpickle.loads(values[rank]) for rank in sorted(values)}
        return TrainingResult(
            run_id=self.job.run_id,
            status=str(status),
            restarts=attempt,
            return_values=returned,
            failed_rank=failed_rank,
            error=error,
        )

    def _place_again(self) -> Any:
        timeout = self.plan.placement_timeout
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                assert self.plan.timeout is not None
                raise JobTimedOut(self.plan.timeout)
            timeout = min(timeout, left)
        return place(
            self.plan.workers, self.plan.bundle, self.plan.strategy, timeout, _group_name()
        )

    def _wait_for_silent_nodes(self, nodes: set[str]) -> None:
        """Give Ray time to declare lost the nodes whose actors died or went silent and that
        do not run a tiny task either, so that the next placement group does not land on a
        node that is gone (Ray takes some seconds to notice)."""
        from slipway.engines.ray import cluster_nodes

        alive = {n.node_id for n in cluster_nodes()}
        silent = {node for node in nodes & alive if not _node_answers(node, NODE_PROBE_S)}
        limit = time.monotonic() + NODE_LOSS_WAIT_S
        while silent and time.monotonic() < limit:
            self._check_deadline()
            time.sleep(POLL_S)
            silent &= {n.node_id for n in cluster_nodes()}

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            assert self.plan.timeout is not None
            raise JobTimedOut(self.plan.timeout)

    def _say(self, text: str) -> None:
        print(f"slipway: {text}", file=sys.stderr, flush=True)

    # -- one attempt -------------------------------------------------------------------------

    def _attempt(self, group: Any, attempt: int) -> _Outcome:
        """Start the actors in ``group``, run the workers until they all end or one fails,
        then stop the rest and release everything (the group included)."""
        import ray

        outcome = _Outcome(False)
        ranks: list[_Rank] = []
        pending: dict[Any, _Rank] = {}
        try:
            ranks = self._start_actors(group, outcome)
            if outcome.failures:
                return outcome
            self._set_node_tag(ranks)
            pending = self._start_workers(ranks, attempt, outcome)
            self._watch(pending, outcome)
        finally:
            try:
                self._stop(pending, outcome)
                self._tee(ranks, final=True)
            finally:
                for one in ranks:
                    with contextlib.suppress(Exception):
                        ray.kill(one.actor, no_restart=True)
                remove(group)
        returned = self.command.payload is None or len(outcome.values) == len(ranks)
        outcome.succeeded = not outcome.failures and returned
        return outcome

    def _start_actors(self, group: Any, outcome: _Outcome) -> list[_Rank]:
        """One actor per bundle, numbered node by node; a bundle whose actor does not start
        is a failure of the attempt."""
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundle = self.plan.bundle
        options: dict[str, Any] = {
            "num_cpus": bundle.get("CPU", 0.0),
            "num_gpus": bundle.get("GPU", 0.0),
            "max_concurrency": 4,
            "max_restarts": 0,
        }
        if "memory" in bundle:
            options["memory"] = bundle["memory"]
        custom = {k: v for k, v in bundle.items() if k not in _STANDARD}
        if custom:
            options["resources"] = custom
        cls = _actor_class()
        actors = [
            cls.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    group, placement_group_bundle_index=index
                ),
                **options,
            ).remote()
            for index in range(self.plan.workers)
        ]
        ranks = [_Rank(rank=index, actor=actor) for index, actor in enumerate(actors)]
        refs = {actor.describe.remote(): one for actor, one in zip(actors, ranks, strict=True)}
        limit = ACTOR_START_TIMEOUT_S
        if self.deadline is not None:
            limit = max(0.0, min(limit, self.deadline - time.monotonic()))
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=limit)
        for ref, one in refs.items():
            if ref not in ready:
                outcome.failures.append(
                    _failure(one, "not started", f"its actor did not start in {limit:g} s")
                )
                continue
            try:
                info = ray.get(ref)
            except Exception as exc:
                outcome.failures.append(_failure(one, "not started", _first_line(exc)))
                continue
            one.node_id, one.ip, one.gpus = info["node_id"], info["ip"], list(info["gpus"])
        self._check_deadline()
        return _number_by_node(ranks)

    def _set_node_tag(self, ranks: list[_Rank]) -> None:
        value = ",".join(one.node_id for one in ranks)
        self.tracking.client.set_tag(self.job.run_id, NODE_IDS_TAG, value)

    def _start_workers(
        self, ranks: list[_Rank], attempt: int, outcome: _Outcome
    ) -> dict[Any, _Rank]:
        import ray

        master = ranks[0]
        try:
            port = int(ray.get(master.actor.free_port.remote(), timeout=ACTOR_START_TIMEOUT_S))
        except Exception as exc:
            outcome.failures.append(_failure(master, "actor died", _first_line(exc)))
            return {}
        visible = _visible_gpus(ranks)
        groups = len({one.node_id for one in ranks})
        pending = {}
        for one in ranks:
            env = dict(self.base_env)
            env.update(
                {
                    "RANK": str(one.rank),
                    "LOCAL_RANK": str(one.local_rank),
                    "WORLD_SIZE": str(len(ranks)),
                    "LOCAL_WORLD_SIZE": str(one.local_world_size),
                    "GROUP_RANK": str(one.group_rank),
                    "GROUP_WORLD_SIZE": str(groups),
                    "ROLE_NAME": "default",
                    "ROLE_RANK": str(one.rank),
                    "ROLE_WORLD_SIZE": str(len(ranks)),
                    "MASTER_ADDR": master.ip,
                    "MASTER_PORT": str(port),
                    "TORCHELASTIC_RESTART_COUNT": str(attempt),
                    "TORCHELASTIC_MAX_RESTARTS": str(self.plan.max_restarts),
                    "TORCHELASTIC_RUN_ID": self.job.run_id,
                }
            )
            if one.node_id in visible:
                env["CUDA_VISIBLE_DEVICES"] = visible[one.node_id]
            pending[one.actor.run.remote(self.command, env, attempt)] = one
        return pending

    def _watch(self, pending: dict[Any, _Rank], outcome: _Outcome) -> None:
        """Until every worker has ended, or one has failed."""
        import ray

        ranks = list(pending.values())
        while pending and not outcome.failures:
            wait = POLL_S
            if self.deadline is not None:
                wait = max(0.0, min(wait, self.deadline - time.monotonic()))
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait)
            for ref in ready:
                self._collect(ref, pending.pop(ref), outcome, stopped=False)
            self._tee(ranks)
            self._check_deadline()

    def _collect(self, ref: Any, one: _Rank, outcome: _Outcome, stopped: bool) -> None:
        import ray
        from ray.exceptions import RayActorError

        try:
            result: RankResult = ray.get(ref)
        except RayActorError as exc:
            failure = self._lost(one, exc)  # stopping a worker leaves its actor alive
            outcome.failures.append(failure)
            if failure.cause == "actor died" and one.node_id:
                outcome.silent_nodes.add(one.node_id)  # maybe lost, not declared so yet
            return
        except Exception as exc:
            failure = _failure(one, "actor failed", _first_line(exc), stopped=stopped)
            outcome.failures.append(failure)
            return
        if result.log_error:
            self._say(f"rank {one.rank}'s logs could not be uploaded: {result.log_error}")
        if result.succeeded:
            if result.value is not None:
                outcome.values[one.rank] = result.value
            return
        outcome.failures.append(
            WorkerFailure(
                rank=one.rank,
                local_rank=one.local_rank,
                pid=result.pid,
                exit_code=result.exit_code,
                signal=result.signal,
                message=result.message,
                time=result.time,
                has_error_file=result.has_error_file,
                stopped=stopped,
            )
        )

    def _lost(self, one: _Rank, exc: Exception) -> WorkerFailure:
        from slipway.engines.ray import cluster_nodes

        alive = {n.node_id for n in cluster_nodes()}
        if one.node_id and one.node_id not in alive:
            where = f"its node {one.node_id[:8]} ({one.ip}) is gone"
            return _failure(one, "node lost", where)
        return _failure(one, "actor died", _first_line(exc))

    def _stop(self, pending: dict[Any, _Rank], outcome: _Outcome) -> None:
        """Stop the workers still running, and collect how they ended; an actor that does
        not answer is a failure of its own (its node may be lost)."""
        import ray

        if not pending:
            return
        grace = self.plan.stop_grace
        stops = {one.actor.stop.remote(grace): one for one in pending.values()}
        done, _ = ray.wait(list(stops), num_returns=len(stops), timeout=grace + 5)
        answered = set()
        for ref in done:
            with contextlib.suppress(Exception):
                ray.get(ref)
                answered.add(stops[ref].rank)
        waiting = [ref for ref, one in pending.items() if one.rank in answered]
        if waiting:
            ray.wait(waiting, num_returns=len(waiting), timeout=UPLOAD_WAIT_S)
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref, one in list(pending.items()):
            if ref in ready:
                self._collect(ref, one, outcome, stopped=True)
            else:
                outcome.failures.append(
                    _failure(
                        one,
                        "no answer",
                        f"its actor on node {one.node_id[:8]} ({one.ip}) stopped answering: "
                        "the node may be lost",
                    )
                )
                outcome.silent_nodes.add(one.node_id)
            del pending[ref]

    def _tee(self, ranks: list[_Rank], final: bool = False) -> None:
        """Copy the workers' new output to this console, each line after its rank."""
        import ray

        if self.plan.quiet and not final:
            return
        calls = {
            (one.actor.close.remote() if final else one.actor.tail.remote()): one
            for one in ranks
            if not one.gone
        }
        if not calls:
            return
        done, _ = ray.wait(list(calls), num_returns=len(calls), timeout=10 if final else 2)
        for ref in done:
            lines: dict[str, str] = {}
            with contextlib.suppress(Exception):  # an actor gone meanwhile has no more to show
                lines = ray.get(ref)
            if self.plan.quiet:
                continue
            prefix = f"[rank{calls[ref].rank}]:"
            for stream, text in lines.items():
                out = sys.stdout if stream == "stdout" else sys.stderr
                out.write("".join(prefix + line + "\n" for line in text.splitlines()))
                out.flush()


def _here() -> bool:
    return True


@functools.cache
def _probe_task() -> Any:
    import ray

    return ray.remote(num_cpus=0, max_retries=0)(_here)


def _node_answers(node_id: str, timeout: float) -> bool:
    """Whether the node runs a task (that needs no resources) within ``timeout`` seconds."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ref = (
        _probe_task()
        .options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
        .remote()
    )
    ready, _ = ray.wait([ref], timeout=timeout)
    if not ready:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)
        return False
    try:
        return bool(ray.get(ref))
    except Exception:
        return False


def _failure(one: _Rank, cause: str, message: str, stopped: bool = False) -> WorkerFailure:
    """A failure that no exit code describes; unless the actor raised, it is gone."""
    one.gone = cause != "actor failed"
    return WorkerFailure(
        rank=one.rank,
        local_rank=one.local_rank,
        pid=0,
        exit_code=-1,
        signal=None,
        message=message,
        time=None,
        has_error_file=False,
        cause=cause,
        stopped=stopped,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _number_by_node(ranks: list[_Rank]) -> list[_Rank]:
    """Number the ranks node by node (nodes in the order their first bundle comes), as
    torchrun does: ``GROUP_RANK`` is the node's place, ``LOCAL_RANK`` the rank's place on it."""
    nodes: dict[str, list[_Rank]] = {}
    for one in ranks:
        nodes.setdefault(one.node_id, []).append(one)
    ordered: list[_Rank] = []
    for group_rank, members in enumerate(nodes.values()):
        for local_rank, one in enumerate(members):
            one.group_rank, one.local_rank = group_rank, local_rank
            one.local_world_size = len(members)
            one.rank = len(ordered)
            ordered.append(one)
    return ordered


def _visible_gpus(ranks: list[_Rank]) -> dict[str, str]:
    """``CUDA_VISIBLE_DEVICES`` per node when every rank has one GPU of its own: all of the
    node's workers' GPUs in local-rank order, so that ``LOCAL_RANK`` is the index of the
    rank's own GPU (what ``init_process_group`` selects) and nccl sees its peers."""
    if not ranks or any(len(one.gpus) != 1 for one in ranks):
        return {}
    visible: dict[str, list[str]] = {}
    for one in ranks:
        visible.setdefault(one.node_id, []).append(one.gpus[0])
    if any(len(set(ids)) != len(ids) for ids in visible.values()):
        return {}  # shared GPUs: each worker keeps what Ray gave it
    return {node: ",".join(ids) for node, ids in visible.items()}
