"""The tracking store interface, enforced with :class:`abc.ABC`.

A backend implements every abstract method; a subclass that misses one cannot be instantiated.
The single-entity logging calls (``log_metric``, ``log_param``, ``set_tag``) are defined here in
terms of ``log_batch`` so that backends implement one write path. This module imports neither
SQLAlchemy nor any HTTP library.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from slipway.entities import (
    DatasetInput,
    Experiment,
    ExperimentTag,
    Metric,
    MetricWithRunId,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)

SEARCH_MAX_RESULTS_DEFAULT = 1000


class AbstractTrackingStore(abc.ABC):
    """Experiments, runs, metrics, params, tags and dataset inputs."""

    # -- experiments ------------------------------------------------------------------------

    @abc.abstractmethod
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Sequence[ExperimentTag] = (),
    ) -> str:
        """Create an experiment and return its id; RESOURCE_ALREADY_EXISTS if the name is taken."""

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment (deleted ones too); RESOURCE_DOES_NOT_EXIST if there is none."""

    @abc.abstractmethod
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment with this name (deleted ones too), or None."""

    @abc.abstractmethod
    def rename_experiment(self, experiment_id: str, new_name: str) -> None: ...

    @abc.abstractmethod
    def delete_experiment(self, experiment_id: str) -> None:
        """Soft-delete the experiment and mark its runs deleted."""

    @abc.abstractmethod
    def restore_experiment(self, experiment_id: str) -> None:
        """Undo :meth:`delete_experiment`, restoring the runs it deleted."""

    @abc.abstractmethod
    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None: ...

    @abc.abstractmethod
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None: ...

    @abc.abstractmethod
    def search_experiments(
        self,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]: ...

    # -- runs --------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_run(
        self,
        experiment_id: str,
        user_id: str | None = None,
        start_time: int | None = None,
        tags: Sequence[RunTag] = (),
        run_name: str | None = None,
    ) -> Run: ...

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run:
        """The run with its latest metrics, params, tags and inputs."""

    @abc.abstractmethod
    def update_run_info(
        self,
        run_id: str,
        run_status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo: ...

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def restore_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Log up to 1000 metrics, 100 params and 100 tags in one transaction."""

    @abc.abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None: ...

    @abc.abstractmethod
    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None: ...

    @abc.abstractmethod
    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        """Every point of one metric of one run, by step then timestamp; paged if asked."""

    @abc.abstractmethod
    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        metric_key: str,
        max_results: int,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[MetricWithRunId]:
        """Up to ``max_results`` points per run, spread evenly over the steps in range (the
        first and last steps always included): what a chart needs for up to 100 runs."""

    @abc.abstractmethod
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]: ...

    # -- conveniences over log_batch -----------------------------------------------------

    def log_metric(self, run_id: str, metric: Metric) -> None:
        self.log_batch(run_id, metrics=[metric])

    def log_param(self, run_id: str, param: Param) -> None:
        self.log_batch(run_id, params=[param])

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        self.log_batch(run_id, tags=[tag])

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections; the default holds nothing."""
