"""The pipeline store interface, enforced with :class:`abc.ABC`.

Pipeline runs, step states, the step cache, artifact links and schedules. The SQL backend keeps
them in the tracking store's database (new tables beside runs); the REST backend talks to
``slipway server`` under ``/api/2.0/slipway/pipelines``. A pipeline run's ``run_id`` is a
tracking run that the caller has already created. This module imports neither SQLAlchemy nor
any HTTP library.

Errors (from :mod:`slipway.exceptions`): an unknown run, step or schedule is
``RESOURCE_DOES_NOT_EXIST``; creating a pipeline run or schedule that exists is
``RESOURCE_ALREADY_EXISTS``; a bad value (unknown status, a cron the caller did not check, a
negative page size) is ``INVALID_PARAMETER_VALUE``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from slipway.entities import PagedList
from slipway.entities.pipelines import (
    ArtifactLink,
    CacheEntry,
    PipelineRun,
    PipelineRunStatus,
    PipelineStep,
    Schedule,
)

SEARCH_PIPELINE_RUNS_DEFAULT = 100
SEARCH_PIPELINE_RUNS_MAX = 1000


class AbstractPipelineStore(abc.ABC):
    """Pipeline runs, steps, cache, artifact links and schedules."""

    # -- pipeline runs ------------------------------------------------------------------------

    @abc.abstractmethod
    def create_pipeline_run(self, run: PipelineRun) -> PipelineRun:
        """Record ``run`` (its tracking run exists already). RESOURCE_ALREADY_EXISTS if a
        pipeline run with that ``run_id`` is recorded."""

    @abc.abstractmethod
    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        """RESOURCE_DOES_NOT_EXIST for an unknown id."""

    @abc.abstractmethod
    def update_pipeline_run(
        self,
        run_id: str,
        *,
        status: PipelineRunStatus | None = None,
        end_time: int | None = None,
        message: str | None = None,
        graph: dict[str, object] | None = None,
        parameters: dict[str, object] | None = None,
        attempt: int | None = None,
        clear_end: bool = False,
    ) -> PipelineRun:
        """Change the fields given (None leaves a field as it is; ``clear_end`` sets
        ``end_time`` and ``message`` back to None, for a resume). A run that is CANCELLING
        stays CANCELLING unless the new status is terminal. Returns the updated run."""

    @abc.abstractmethod
    def request_cancel(self, run_id: str) -> PipelineRun:
        """Ask the executor of a QUEUED or RUNNING run to stop: the status becomes CANCELLING
        (the executor, which polls it, stops the steps and marks CANCELLED). A run that has
        finished is returned unchanged."""

    @abc.abstractmethod
    def search_pipeline_runs(
        self,
        pipeline_name: str | None = None,
        status: PipelineRunStatus | None = None,
        experiment_id: str | None = None,
        schedule_id: str | None = None,
        max_results: int = SEARCH_PIPELINE_RUNS_DEFAULT,
        page_token: str | None = None,
    ) -> PagedList[PipelineRun]:
        """Newest first (start_time, then run_id). ``max_results`` from 1 to
        :data:`SEARCH_PIPELINE_RUNS_MAX`."""

    # -- steps --------------------------------------------------------------------------------

    @abc.abstractmethod
    def upsert_step(self, step: PipelineStep) -> PipelineStep:
        """Insert the step, or replace the one with the same ``(pipeline_run_id, task_id)``.
        Also replaces that step's artifact links with the refs in its ``inputs`` and
        ``outputs``. RESOURCE_DOES_NOT_EXIST if the pipeline run is unknown."""

    @abc.abstractmethod
    def get_step(self, pipeline_run_id: str, task_id: str) -> PipelineStep:
        """RESOURCE_DOES_NOT_EXIST for an unknown run or step."""

    @abc.abstractmethod
    def list_steps(self, pipeline_run_id: str) -> list[PipelineStep]:
        """Every step of the run, in the order they were first recorded."""

    # -- cache --------------------------------------------------------------------------------

    @abc.abstractmethod
    def get_cache_entry(self, key: str, max_age_ms: int | None = None) -> CacheEntry | None:
        """The entry for ``key``; None if there is none, or if it is older than
        ``max_age_ms``."""

    @abc.abstractmethod
    def put_cache_entry(self, entry: CacheEntry) -> None:
        """Insert or replace the entry for ``entry.key``."""

    @abc.abstractmethod
    def delete_cache_entries(self, component: str | None = None) -> int:
        """Drop the entries of ``component`` (every entry when None); returns how many."""

    # -- artifact links -----------------------------------------------------------------------

    @abc.abstractmethod
    def list_artifact_links(
        self,
        pipeline_run_id: str | None = None,
        uri: str | None = None,
        digest: str | None = None,
    ) -> list[ArtifactLink]:
        """Links matching every filter given (at least one is required: INVALID_PARAMETER_VALUE
        otherwise): who produced an artifact and who consumed it."""

    # -- schedules ----------------------------------------------------------------------------

    @abc.abstractmethod
    def create_schedule(self, schedule: Schedule) -> Schedule:
        """RESOURCE_ALREADY_EXISTS if ``schedule_id`` or ``name`` is taken."""

    @abc.abstractmethod
    def get_schedule(self, schedule_id: str) -> Schedule:
        """By id, or by name when no id matches; RESOURCE_DOES_NOT_EXIST otherwise."""

    @abc.abstractmethod
    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""

    @abc.abstractmethod
    def update_schedule(
        self,
        schedule_id: str,
        *,
        paused: bool | None = None,
        next_run_time: int | None = None,
        last_run_time: int | None = None,
        last_run_id: str | None = None,
    ) -> Schedule:
        """Change the fields given; returns the schedule."""

    @abc.abstractmethod
    def claim_schedule_run(self, schedule_id: str, due_time: int, next_run_time: int) -> bool:
        """Compare-and-set for schedulers that may run side by side: if the schedule is not
        paused and its ``next_run_time`` is still ``due_time``, set it to ``next_run_time``
        and return True; otherwise change nothing and return False."""

    @abc.abstractmethod
    def delete_schedule(self, schedule_id: str) -> None:
        """RESOURCE_DOES_NOT_EXIST for an unknown schedule."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (a no-op where there are none)."""


def refs_of(section: dict[str, object]) -> Sequence[tuple[str, dict[str, object]]]:
    """``(name, ref)`` for every artifact ref in a step's ``inputs`` or ``outputs`` (a name
    bound to a list of refs, from ``collected``, gives one pair per ref)."""
    artifacts = section.get("artifacts")
    pairs: list[tuple[str, dict[str, object]]] = []
    if not isinstance(artifacts, dict):
        return pairs
    for name, value in artifacts.items():
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, dict) and isinstance(ref.get("uri"), str):
                pairs.append((str(name), ref))
    return pairs


__all__ = [
    "SEARCH_PIPELINE_RUNS_DEFAULT",
    "SEARCH_PIPELINE_RUNS_MAX",
    "AbstractPipelineStore",
    "refs_of",
]
