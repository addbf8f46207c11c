"""Running a study: the coordinator asks Optuna for each trial's parameters, records the trial
as a child run of the study's run, hands the trial to a pool of long-lived trial workers (see
:mod:`slipway.tuning.pool`), and when the trial ends tells Optuna how it went and ends its run.

Only the coordinator samples (``study.ask`` with the whole search space) and tells; workers
report intermediate values and ask the pruner, all through the study's journal in the tracking
database (or the server), so pruning compares across processes. The coordinator holds its own
journal writes between two dispatches and writes them in one transaction: telling a trial and
asking for the next cost one round trip (see :class:`~slipway.tuning.journal.StoreJournalBackend`).

What the next trial's sampling does not depend on is written by a recorder thread while this
one asks for and starts trials: a trial's run is created while the trial starts (its worker
waits for the run's id only when the trial first logs), and runs are ended after the study was
told. A trial is told only once its run exists, and the study's run ends after every write.

Runs
    The study is a run (tags ``slipway.tuning.study``), with ``best_<metric>`` logged each time
    a trial beats the best so far, at the step of the number of trials ended (its history is
    the study's progress), and the best trial's number and parameters as tags. Each trial is
    a child run (``mlflow.parentRunId``) named ``<study>-<number>``, with tags
    ``slipway.tuning.study``, ``slipway.tuning.trial`` (its number) and
    ``slipway.tuning.state`` (``RUNNING``, ``COMPLETE``, ``PRUNED``, ``FAIL``), its
    parameters as params, every ``trial.report`` as a point of the metric's history and the
    final value as the last point. Pruned trials end FINISHED with state ``PRUNED``: a pruned
    trial ended as the study meant it to (MLflow's KILLED means someone stopped it), and runs
    stay visible in the default view; filter with ``tags.slipway.tuning.state = 'PRUNED'``.
    Failed trials end FAILED with the error in ``slipway.tuning.error`` (a NaN result fails
    with "objective returned nan", as Optuna fails it); trials stopped by Ctrl-C end KILLED.

Resuming
    A study is named; running it again under its name carries on: trial numbers go on and
    ``n_trials`` counts every trial of the study. One coordinator runs a study at a time: it
    holds a claim on the study, renewed while it runs. A claim left by a process that died
    is taken over (at once when that process was on this machine, else when the claim runs
    out), and the trials that process left RUNNING are failed as interrupted, with their
    runs KILLED.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slipway.entities import Metric, Param, RunStatus, RunTag
from slipway.exceptions import (
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
)
from slipway.tracking import uri as uris
from slipway.tracking.client import SlipwayClient, now_ms
from slipway.tracking.fluent import ActiveRun
from slipway.tuning.pool import Outcome, TrialPool, make_pool
from slipway.tuning.results import (
    FAIL_REASON_ATTR,
    INTERRUPTED_ATTR,
    RUN_ID_ATTR,
    Study,
    TrialResult,
    better,
)
from slipway.tuning.runner import StudyTask
from slipway.tuning.spec import TuneSpec
from slipway.tuning.store import AbstractTuningStore, StudyRecord, get_tuning_store

PARENT_RUN_TAG = "mlflow.parentRunId"
STUDY_TAG = "slipway.tuning.study"
TRIAL_TAG = "slipway.tuning.trial"
STATE_TAG = "slipway.tuning.state"
ERROR_TAG = "slipway.tuning.error"
BEST_TRIAL_TAG = "slipway.tuning.best_trial"
BEST_PARAMS_TAG = "slipway.tuning.best_params"
STOP_TAG = "slipway.tuning.stop_reason"
ERROR_TAG_MAX = 5000

LEASE_TTL_MS = 30_000
"""How long a claim on a study lasts unless renewed (it is renewed every third of that)."""
POLL_SECONDS = 1.0
READ_INTERVAL = 0.25
"""How stale the coordinator's view of other processes' journal writes may be between the
moments it needs them (see :class:`~slipway.tuning.journal.StoreJournalBackend`)."""

TrialCallback = Callable[[TrialResult], None]
PLACES = ("local", "ray")
"""Where trials run: worker processes of this machine, or Ray actors."""
RAY_NODE_TAG = "slipway.ray.node_id"


def _active_parent() -> ActiveRun | None:
    """The active fluent run of this thread (a study started inside one is its child)."""
    from slipway.tracking import fluent

    return fluent.active_run()


@dataclass
class Progress:
    """What a progress display needs after each trial: trials ended, of how many, running,
    and the best so far."""

    done: int
    total: int | None
    running: int
    best_value: float | None
    best_number: int | None
    last: TrialResult | None


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_local_owner(owner: str | None) -> bool:
    """Whether ``owner`` names a process on this machine that is gone."""
    if not owner:
        return False
    parts = owner.split(":")
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines ("A new study created...") say nothing to our users."""
    import optuna  # its first import sets the level this lowers

    logger = logging.getLogger(optuna.__name__)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


class _Running:
    """A trial in flight: its Optuna trial, when it started, its run (recorded in the
    background while it starts) and the future of that record, which must have landed before
    the trial is told."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.started = time.monotonic()
        self.run_id = ""
        self.recorded: Future[Any] | None = None

    def wait_recorded(self) -> None:
        if self.recorded is not None:
            self.recorded.result()


class Coordinator:
    """Runs one study session. Use :func:`run_study`."""

    def __init__(
        self,
        spec: TuneSpec,
        objective: Callable[..., Any] | None,
        tracking_uri: str | None = None,
        experiment_id: str | None = None,
        experiment_name: str | None = None,
        callbacks: Sequence[TrialCallback] = (),
        on_progress: Callable[[Progress], None] | None = None,
        resume_only: bool = False,
        on: str = "local",
        ray_address: str | None = None,
        working_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if (objective is None) == (spec.command is None):
            raise InvalidParameterValue("A study needs an objective function or a trial command")
        if objective is not None and not callable(objective):
            raise InvalidParameterValue(f"The objective must be callable, got {objective!r}")
        if on not in PLACES:
            raise InvalidParameterValue(f"on must be one of {', '.join(PLACES)}, got {on!r}")
        self.spec = spec
        self.objective = objective
        self.on = on
        self.ray_address = ray_address
        self.working_dir: str | None = None
        if working_dir is not None:
            from slipway.tuning.ray_workers import shipped_folder

            self.working_dir = shipped_folder(working_dir, on)
        self.uri = uris.absolute_uri(tracking_uri or uris.get_tracking_uri())
        self.name = spec.name or f"study-{uuid.uuid4().hex[:8]}"
        self.client = SlipwayClient(self.uri)
        self.store: AbstractTuningStore = get_tuning_store(self.uri)
        self.experiment_id = experiment_id
        self.experiment_name = experiment_name
        self.callbacks = list(callbacks)
        self.on_progress = on_progress
        self.resume_only = resume_only
        self.owner = _owner()
        self.running: dict[int, _Running] = {}
        self.best_value: float | None = None
        self.best_number: int | None = None
        self.done = 0
        self.failures = 0
        self.stop_reason: str | None = None
        self._renewal_stop = threading.Event()
        self._lease_error: BaseException | None = None
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="study-recorder")
        self._records: list[Future[Any]] = []
        self._later: list[Callable[[], Any]] = []

    # -- writes off the critical path --------------------------------------------------------

    def _in_background(self, work: Callable[[], Any]) -> Future[Any]:
        """Run ``work`` (tracking writes nothing else waits for) on the recorder thread, in
        order, while this thread asks for and starts the next trials."""
        future = self._recorder.submit(work)
        self._records.append(future)
        return future

    def _after_dispatch(self, work: Callable[[], Any]) -> None:
        """Run ``work`` in the background once the next trials were handed out: ending a
        trial's run then does not compete with sampling the next trial (the recorder thread
        shares this process's interpreter lock), and new trials' runs are recorded first."""
        self._later.append(work)

    def _submit_later(self) -> None:
        later, self._later = self._later, []
        for work in later:
            self._in_background(work)

    def _check_records(self, wait_all: bool = False) -> None:
        """Raise the first error of a background write that ended (of all, with
        ``wait_all``, waiting for them)."""
        pending = []
        for future in self._records:
            if wait_all or future.done():
                future.result()
            else:
                pending.append(future)
        self._records = pending

    # -- the study's record, run and claim ------------------------------------------------------

    def _experiment(self) -> str:
        if self.experiment_id is not None:
            return str(self.experiment_id)
        name = self.experiment_name or os.environ.get("SLIPWAY_EXPERIMENT_NAME")
        if name:
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            try:
                return self.client.create_experiment(name)
            except ResourceAlreadyExists:
                found = self.client.get_experiment_by_name(name)
                assert found is not None
                return found.experiment_id
        parent = _active_parent()
        if parent is not None:
            return str(parent.info.experiment_id)
        return os.environ.get("SLIPWAY_EXPERIMENT_ID") or "0"

    def _open_record(self) -> StudyRecord:
        try:
            record = self.store.get_study(self.name)
        except ResourceDoesNotExist:
            if self.resume_only:
                raise ResourceDoesNotExist(
                    f"Study '{self.name}' not found: there is nothing to resume"
                ) from None
            return self._create_record()
        stored = TuneSpec.from_json(record.spec)
        if stored.identity() != self.spec.identity():
            raise InvalidParameterValue(
                f"Study '{self.name}' exists with another search space, direction or metric; "
                "resume it with the same ones, or give the new study another name"
            )
        return record

    def _create_record(self) -> StudyRecord:
        experiment_id = self._experiment()
        spec = self.spec
        tags = {STUDY_TAG: self.name, "mlflow.source.type": "LOCAL"}
        parent = _active_parent()
        if parent is not None:  # a study inside a run (a pipeline step): nested under it
            tags[PARENT_RUN_TAG] = parent.info.run_id
        run = self.client.create_run(experiment_id, tags=tags, run_name=self.name)
        run_id = run.info.run_id
        params = [
            Param("direction", spec.direction),
            Param("metric", spec.metric),
            Param("sampler", spec.sampler.name),
            Param("pruner", spec.pruner.name),
        ]
        if spec.sampler.seed is not None:
            params.append(Param("seed", str(spec.sampler.seed)))
        self.client.log_batch(run_id, params=params)
        try:
            return self.store.create_study(self.name, run_id, experiment_id, spec.to_json())
        except ResourceAlreadyExists:  # another process created it first: use theirs
            self.client.delete_run(run_id)
            return self.store.get_study(self.name)

    def _claim(self) -> None:
        try:
            self.store.claim_study(self.name, self.owner, LEASE_TTL_MS)
        except ResourceConflict:
            holder = self.store.get_study(self.name).lease_owner
            if not _dead_local_owner(holder):
                raise
            self.store.claim_study(self.name, self.owner, LEASE_TTL_MS, stale_owner=holder)

    def _renew(self) -> None:
        while not self._renewal_stop.wait(LEASE_TTL_MS / 3000):
            try:
                self.store.claim_study(self.name, self.owner, LEASE_TTL_MS)
            except Exception as exc:  # checked by the loop, which stops the study
                self._lease_error = exc
                return

    # -- the Optuna study ------------------------------------------------------------------------

    def _optuna_study(self, record: StudyRecord) -> Any:
        import optuna
        from optuna.storages import JournalStorage

        from slipway.tuning.journal import StoreJournalBackend
        from slipway.tuning.samplers import make_pruner, make_sampler

        self._backend = StoreJournalBackend(self.store, self.name, READ_INTERVAL)
        storage = JournalStorage(self._backend)
        sampler = make_sampler(self.spec)
        pruner = make_pruner(self.spec.pruner)
        if storage.get_all_studies():
            return optuna.load_study(
                study_name=self.name, storage=storage, sampler=sampler, pruner=pruner
            )
        return optuna.create_study(
            study_name=self.name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction=self.spec.direction,
        )

    def _recover(self, study: Any) -> None:
        """Fail the trials a dead coordinator left RUNNING, and end their runs KILLED (a
        trial whose run it had not recorded yet gets one now, so every trial has its run)."""
        from optuna.trial import TrialState

        storage = study._storage
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = "interrupted: the process running the study ended before the trial did"
            run_id = trial.system_attrs.get(RUN_ID_ATTR) or self._find_trial_run(trial.number)
            if not run_id:
                run_id = self._create_trial_run(trial.number)
                params = [Param(k, str(v)) for k, v in trial.params.items()]
                self.client.log_batch(run_id, params=params)
            if RUN_ID_ATTR not in trial.system_attrs:
                storage.set_trial_system_attr(trial._trial_id, RUN_ID_ATTR, run_id)
            storage.set_trial_system_attr(trial._trial_id, FAIL_REASON_ATTR, reason)
            storage.set_trial_system_attr(trial._trial_id, INTERRUPTED_ATTR, True)
            study.tell(trial.number, state=TrialState.FAIL)
            self._end_run(run_id, "FAIL", RunStatus.KILLED, error=reason)

    def _find_trial_run(self, number: int) -> str | None:
        """The run of trial ``number`` of this study, found by its tags."""
        found = self.client.search_runs(
            self.record.experiment_id,
            f"tags.`{PARENT_RUN_TAG}` = '{self.record.run_id}' and tags.`{TRIAL_TAG}` = '{number}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    # -- trials ---------------------------------------------------------------------------------

    def _study_task(self, workdir: str) -> StudyTask:
        spec = self.spec
        return StudyTask(
            study_name=self.name,
            tracking_uri=self.uri,
            metric=spec.metric,
            pruner=spec.pruner,
            objective=self.objective,
            command=spec.command,
            cwd=spec.cwd,
            metric_strategy=spec.metric_strategy,
            additional_metrics=spec.additional_metrics,
            workdir=workdir,
        )

    def _make_pool(self, workdir: str) -> TrialPool:
        """The study's workers (they start in the background); an objective that cannot be
        sent to them, or a Ray cluster that cannot hold a trial, fails here, before anything
        is recorded."""
        return make_pool(
            self._study_task(workdir),
            self.spec,
            on=self.on,
            ray_address=self.ray_address,
            working_dir=self.working_dir,
        )

    def _dispatch(self, trial: Any) -> None:
        """Hand a trial the study has asked for to a worker; its run is recorded meanwhile, in
        the background (the worker waits for the run's id only when the trial first logs), and
        the journal written just after (the worker waits for its trial there only when the
        trial first reports)."""
        item = _Running(trial)
        self.running[trial.number] = item
        self.pool.start(
            trial.number,
            {"trial_id": trial._trial_id, "number": trial.number, "params": dict(trial.params)},
        )
        item.started = time.monotonic()  # its timeout counts from here, not the worker's start
        item.recorded = self._in_background(lambda: self._record_trial(trial, item))

    def _create_trial_run(self, number: int) -> str:
        tags = {
            PARENT_RUN_TAG: self.record.run_id,
            STUDY_TAG: self.name,
            TRIAL_TAG: str(number),
            STATE_TAG: "RUNNING",
            "mlflow.source.type": "LOCAL",
        }
        run = self.client.create_run(
            self.record.experiment_id, tags=tags, run_name=f"{self.name}-{number}"
        )
        return run.info.run_id

    def _record_trial(self, trial: Any, item: _Running) -> str:
        """Create the trial's run (a child of the study's), tell the trial's worker its id and
        log its parameters (the id goes on the Optuna trial when it is told)."""
        run_id = self._create_trial_run(trial.number)
        item.run_id = run_id
        self.pool.record_run(trial.number, run_id)
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in trial.params.items()])
        return run_id

    def _end_run(
        self,
        run_id: str,
        state: str,
        status: RunStatus,
        value: float | None = None,
        step: int = 0,
        error: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        tags = [RunTag(STATE_TAG, state)]
        if error:
            tags.append(RunTag(ERROR_TAG, error[:ERROR_TAG_MAX]))
        tags += [RunTag(k, v) for k, v in (extra or {}).items()]
        metrics = []
        if value is not None:
            metrics.append(Metric(self.spec.metric, value, now_ms(), step))
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self.client.set_terminated(run_id, status)

    def _finish_trial(
        self, study: Any, trial: Any, run_id: str, result: Outcome, interrupted: bool = False
    ) -> TrialResult:
        """Tell the study how the trial went (now: the next trial's sampling depends on it)
        and record it on the trial's run and the study's (in the background)."""
        from optuna.trial import TrialState

        state = result.get("state")
        value = result.get("value")
        error = str(result.get("error") or "the trial failed")
        extra = {str(k): str(v) for k, v in (result.get("tags") or {}).items()}
        storage = study._storage
        if result.get("reported", True):  # its intermediate values count now
            self._backend.refresh()
        if run_id:
            storage.set_trial_system_attr(trial._trial_id, RUN_ID_ATTR, run_id)
        end: Callable[[], None]
        if state == "COMPLETE" and isinstance(value, int | float) and not math.isnan(value):
            frozen = study.tell(trial, float(value))
            last = result.get("last_step")
            step = last + 1 if isinstance(last, int) else 0
            end = lambda: self._end_run(  # noqa: E731
                run_id, "COMPLETE", RunStatus.FINISHED, float(value), step, extra=extra
            )
        elif state == "PRUNED":
            frozen = study.tell(trial, state=TrialState.PRUNED)
            end = lambda: self._end_run(  # noqa: E731
                run_id, "PRUNED", RunStatus.FINISHED, extra=extra
            )
        else:
            storage.set_trial_system_attr(trial._trial_id, FAIL_REASON_ATTR, error)
            if interrupted:
                storage.set_trial_system_attr(trial._trial_id, INTERRUPTED_ATTR, True)
            frozen = study.tell(trial, state=TrialState.FAIL)
            status = RunStatus.KILLED if interrupted else RunStatus.FAILED
            end = lambda: self._end_run(run_id, "FAIL", status, error=error, extra=extra)  # noqa: E731
            if not interrupted:
                self.failures += 1
        if run_id:  # else its run could not be recorded: the study stops on that error
            self._after_dispatch(end)
        self.done += 1
        finished = TrialResult.from_optuna(frozen)
        if (
            finished.state == "COMPLETE"
            and finished.value is not None
            and better(self.spec.direction, finished.value, self.best_value)
        ):
            self.best_value, self.best_number = finished.value, finished.number
            # step: trials ended so far (trials end out of order when several run at once)
            best = [Metric(f"best_{self.spec.metric}", finished.value, now_ms(), self.done)]
            tags = [RunTag(BEST_TRIAL_TAG, str(finished.number))]
            parent = self.record.run_id
            self._after_dispatch(lambda: self.client.log_batch(parent, metrics=best, tags=tags))
        return finished

    def _collect(self, study: Any, timeout: float) -> list[TrialResult]:
        """Wait up to ``timeout`` for trials to end; finish those that did."""
        limit = self.spec.trial_timeout
        ended: list[tuple[int, Outcome]] = []
        if limit is not None:
            now = time.monotonic()
            for number, item in list(self.running.items()):
                left = item.started + limit - now
                if left <= 0:
                    self.pool.kill(number, "timeout")
                    ended.append(
                        (number, {"state": "FAIL", "error": f"timed out after {limit:g} s"})
                    )
                else:
                    timeout = min(timeout, left)
        if not ended:
            ended = self.pool.wait(timeout)
        finished = []
        for number, result in ended:
            item = self.running.pop(number)
            item.wait_recorded()
            finished.append(self._finish_trial(study, item.trial, item.run_id, result))
        return finished

    def _stop_all(self, study: Any, reason: str) -> None:
        with contextlib.suppress(Exception):
            self.pool.kill_all(list(self.running), "interrupted")
        for number, item in list(self.running.items()):
            del self.running[number]
            with contextlib.suppress(Exception):  # the error being handled matters more
                item.wait_recorded()
            result = {"state": "FAIL", "error": reason}
            self._finish_trial(study, item.trial, item.run_id, result, interrupted=True)
        self._backend.release()
        # A trial asked for just as the stop came, before it was handed to a worker, is
        # RUNNING in the study without being in ``running``: fail it too, so nothing is left
        # RUNNING.
        with contextlib.suppress(Exception):
            self._recover(study)

    def _report(self, last: TrialResult | None) -> None:
        if self.on_progress is not None:
            total = self.spec.total_trials()
            self.on_progress(
                Progress(
                    self.done, total, len(self.running), self.best_value, self.best_number, last
                )
            )

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> Study:
        with _quiet_optuna():
            workdir = tempfile.mkdtemp(prefix="slipway-tuning-")
            try:
                self.pool = self._make_pool(workdir)
                try:
                    return self._run()
                finally:
                    self.pool.close()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)

    def _run(self) -> Study:
        from optuna.trial import TrialState

        self.record = self._open_record()
        self._claim()
        renewal = threading.Thread(target=self._renew, name="study-claim", daemon=True)
        renewal.start()
        status = RunStatus.FAILED
        study: Any = None
        try:
            study = self._optuna_study(self.record)
            self._recover(study)
            self.client.update_run(self.record.run_id, RunStatus.RUNNING)
            for trial in study.get_trials(deepcopy=False):
                if trial.state.is_finished():
                    self.done += 1
                    if trial.state == TrialState.FAIL and not trial.system_attrs.get(
                        INTERRUPTED_ATTR
                    ):
                        self.failures += 1
                    if (
                        trial.state == TrialState.COMPLETE
                        and trial.value is not None
                        and better(self.spec.direction, trial.value, self.best_value)
                    ):
                        self.best_value, self.best_number = trial.value, trial.number
            self._loop(study)
            status = (
                RunStatus.FAILED
                if self.stop_reason == "max_failed_trials"
                else (RunStatus.FINISHED)
            )
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            status = RunStatus.KILLED
            if study is not None:
                self._stop_all(study, "interrupted: the study was stopped (Ctrl-C)")
            raise
        except BaseException:
            if study is not None:
                self._stop_all(study, "interrupted: the study stopped on an error")
            raise
        finally:
            self._renewal_stop.set()
            renewal.join(timeout=5)
            try:
                self._submit_later()
                self._recorder.shutdown(wait=True)
                self._check_records(wait_all=True)
                self._close_run(study, status)
            finally:
                with contextlib.suppress(Exception):
                    self.store.release_study(self.name, self.owner)
        return self.result(study)

    def _loop(self, study: Any) -> None:
        spec = self.spec
        total = spec.total_trials()
        distributions = {name: dist.to_optuna() for name, dist in spec.space.items()}
        deadline = time.monotonic() + spec.timeout if spec.timeout is not None else None
        launched = self.done
        self._report(None)
        self._backend.hold()  # a tell and the next asks are written together, at dispatch
        while True:
            if self._lease_error is not None:
                raise self._lease_error
            self._check_records()
            if self.stop_reason is None:
                if total is not None and launched >= total:
                    self.stop_reason = "n_trials"
                elif deadline is not None and time.monotonic() >= deadline:
                    self.stop_reason = "timeout"
                elif spec.max_failed_trials is not None and self.failures >= spec.max_failed_trials:
                    self.stop_reason = "max_failed_trials"
                elif (
                    spec.goal is not None
                    and self.best_value is not None
                    and (not better(spec.direction, spec.goal, self.best_value))
                ):
                    self.stop_reason = "goal"
            asked: list[Any] = []
            if self.stop_reason is None:
                free = spec.parallelism - len(self.running)
                while len(asked) < free and (total is None or launched < total):
                    asked.append(study.ask(distributions))
                    launched += 1
            for trial in asked:
                self._dispatch(trial)
            self._backend.flush()
            self._submit_later()
            if asked:
                self._report(None)
            if not self.running:
                self._backend.release()
                return
            wait_for = POLL_SECONDS
            if deadline is not None and self.stop_reason is None:
                wait_for = max(0.0, min(wait_for, deadline - time.monotonic()))
            for result in self._collect(study, wait_for):
                self._report(result)
                for callback in self.callbacks:
                    callback(result)

    def _close_run(self, study: Any, status: RunStatus) -> None:
        import json

        tags = []
        if self.stop_reason:
            tags.append(RunTag(STOP_TAG, self.stop_reason))
        if study is not None and self.best_number is not None:
            best = study.trials[self.best_number]
            tags.append(RunTag(BEST_PARAMS_TAG, json.dumps(best.params, default=str)[:5000]))
        if tags:
            self.client.log_batch(self.record.run_id, tags=tags)
        self.client.set_terminated(self.record.run_id, status)

    def result(self, study: Any) -> Study:
        trials = [TrialResult.from_optuna(t) for t in study.get_trials(deepcopy=False)]
        return Study(
            self.name,
            self.record.run_id,
            self.record.experiment_id,
            self.spec,
            trials,
            self.stop_reason,
        )


def run_study(
    spec: TuneSpec,
    objective: Callable[..., Any] | None = None,
    *,
    tracking_uri: str | None = None,
    experiment_id: str | None = None,
    experiment_name: str | None = None,
    callbacks: Sequence[TrialCallback] = (),
    on_progress: Callable[[Progress], None] | None = None,
    resume_only: bool = False,
    on: str = "local",
    ray_address: str | None = None,
    working_dir: str | os.PathLike[str] | None = None,
) -> Study:
    """Run (or resume) the study ``spec`` describes and return it when it stops.

    ``on`` says where trials run: ``local`` (worker processes of this machine) or ``ray``
    (Ray actors on the cluster at ``ray_address``, see :mod:`slipway.tuning.ray_workers`);
    on Ray, ``working_dir`` is a folder shipped to the nodes, where the trials run."""
    from slipway.tuning.samplers import make_sampler

    spec = spec.check()
    if on == "local":  # the fork server imports while this process gets ready
        from slipway.tuning.launcher import warm_up

        warm_up(uris.absolute_uri(tracking_uri or uris.get_tracking_uri()), spec.name)
    make_sampler(spec)  # a sampler that cannot run fails here, before anything is recorded
    coordinator = Coordinator(
        spec,
        objective,
        tracking_uri,
        experiment_id,
        experiment_name,
        callbacks,
        on_progress,
        resume_only,
        on,
        ray_address,
        working_dir,
    )
    return coordinator.run()


def load_study(name: str, tracking_uri: str | None = None) -> Study:
    """The study ``name`` as stored (it may be running elsewhere)."""
    import optuna

    from slipway.tuning.journal import open_storage

    uri = uris.absolute_uri(tracking_uri or uris.get_tracking_uri())
    store = get_tuning_store(uri)
    record = store.get_study(name)
    spec = TuneSpec.from_json(record.spec)
    storage = open_storage(store, name)
    with _quiet_optuna():
        if not storage.get_all_studies():
            trials: list[TrialResult] = []
        else:
            study = optuna.load_study(study_name=name, storage=storage)
            trials = [TrialResult.from_optuna(t) for t in study.get_trials(deepcopy=False)]
    return Study(name, record.run_id, record.experiment_id, spec, trials)


__all__ = ["Progress", "load_study", "run_study"]
