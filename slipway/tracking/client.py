"""``SlipwayClient``: the full tracking store API plus artifacts, for one tracking URI."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slipway.artifacts import get_artifact_repository
from slipway.artifacts.base import ArtifactRepository, FileInfo
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
from slipway.exceptions import InvalidParameterValue
from slipway.tracking import uri as uris
from slipway.tracking.async_logging import AsyncBatchLogger
from slipway.tracking.store.base import SEARCH_MAX_RESULTS_DEFAULT, AbstractTrackingStore
from slipway.utils import validation as v


def now_ms() -> int:
    return int(time.time() * 1000)


class SlipwayClient:
    """Low-level access to experiments, runs and artifacts.

    Args:
        tracking_uri: a folder, ``sqlite:///...`` or ``postgresql://...``; the tracking URI in
            effect (see :func:`slipway.get_tracking_uri`) when omitted.

    Writes are synchronous unless ``synchronous=False`` is passed; asynchronous writes are
    buffered and batched, and :meth:`flush` writes them and raises any error they met.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri or uris.get_tracking_uri()
        self.store: AbstractTrackingStore = uris.get_store(self.tracking_uri)
        self._async: AsyncBatchLogger | None = None
        self._async_lock = threading.Lock()

    # -- experiments -----------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        return self.store.create_experiment(
            name, artifact_location, [ExperimentTag(k, str(val)) for k, val in (tags or {}).items()]
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.store.rename_experiment(str(experiment_id), new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        self.store.delete_experiment(str(experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        self.store.restore_experiment(str(experiment_id))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self.store.set_experiment_tag(str(experiment_id), ExperimentTag(key, str(value)))

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self.store.delete_experiment_tag(str(experiment_id), key)

    def search_experiments(
        self,
        view_type: ViewType | str | int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        return self.store.search_experiments(
            ViewType.parse(view_type), max_results, filter_string, order_by, page_token
        )

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
        user_id: str | None = None,
    ) -> Run:
        run_tags = [RunTag(k, str(val)) for k, val in (tags or {}).items()]
        return self.store.create_run(str(experiment_id), user_id, start_time, run_tags, run_name)

    def get_run(self, run_id: str) -> Run:
        self._flush_quietly()
        return self.store.get_run(run_id)

    def update_run(
        self, run_id: str, status: RunStatus | str | None = None, name: str | None = None
    ) -> RunInfo:
        status_ = RunStatus.parse(status) if status is not None else None
        return self.store.update_run_info(run_id, status_, None, name)

    def set_terminated(
        self, run_id: str, status: RunStatus | str = RunStatus.FINISHED, end_time: int | None = None
    ) -> RunInfo:
        """Flush buffered writes of the run, then mark it ended with ``status``."""
        self.flush(run_id)
        return self.store.update_run_info(run_id, RunStatus.parse(status), end_time or now_ms())

    def delete_run(self, run_id: str) -> None:
        self.store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self.store.restore_run(run_id)

    def search_runs(
        self,
        experiment_ids: Sequence[str] | str,
        filter_string: str | None = None,
        run_view_type: ViewType | str | int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        self._flush_quietly()
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        return self.store.search_runs(
            [str(i) for i in ids],
            filter_string,
            ViewType.parse(run_view_type),
            max_results,
            order_by,
            page_token,
        )

    # -- logging ---------------------------------------------------------------------------

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool = True,
    ) -> None:
        metric = make_metric(key, value, timestamp, step)
        if synchronous:
            self.store.log_batch(run_id, metrics=[metric])
        else:
            self._logger().log_metrics(run_id, [metric])

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool = True) -> None:
        param = v.validate_param(Param(key, str(value)))
        if synchronous:
            self.store.log_batch(run_id, params=[param])
        else:
            self._logger().log_params(run_id, [param])

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool = True) -> None:
        tag = v.validate_tag(RunTag(key, str(value)))
        if synchronous:
            self.store.log_batch(run_id, tags=[tag])
        else:
            self._logger().set_tags(run_id, [tag])

    def delete_tag(self, run_id: str, key: str) -> None:
        self.flush()
        self.store.delete_tag(run_id, key)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool = True,
    ) -> None:
        if synchronous:
            self.store.log_batch(run_id, list(metrics), list(params), list(tags))
            return
        logger = self._logger()
        for m in metrics:
            v.validate_metric(m)
        for p in params:
            v.validate_param(p)
        for t in tags:
            v.validate_tag(t)
        logger.log_metrics(run_id, list(metrics))
        logger.log_params(run_id, list(params))
        logger.set_tags(run_id, list(tags))

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        self.store.log_inputs(run_id, list(datasets))

    def flush(self, run_id: str | None = None) -> None:
        """Write buffered asynchronous writes; raise the first error they met (of ``run_id``
        only, when given)."""
        if self._async is not None:
            self._async.flush(run_id)

    def _flush_quietly(self) -> None:
        """Reads see this client's own buffered writes; their errors wait for flush()."""
        if self._async is not None:
            self._async._drain()

    def _logger(self) -> AsyncBatchLogger:
        if self._async is None:
            with self._async_lock:
                if self._async is None:
                    self._async = AsyncBatchLogger(self.store)
        return self._async

    # -- metric history --------------------------------------------------------------------

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of one metric, by step then timestamp (one query on a database; a
        server that pages its answer is followed page by page)."""
        self._flush_quietly()
        page = self.store.get_metric_history(run_id, key)
        out: list[Metric] = list(page)
        while page.token:
            page = self.store.get_metric_history(
                run_id, key, max_results=25_000, page_token=page.token
            )
            out.extend(page)
        return out

    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        key: str,
        max_results: int = 320,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[MetricWithRunId]:
        self._flush_quietly()
        return self.store.get_metric_history_bulk_interval(
            run_ids, key, max_results, start_step, end_step
        )

    # -- artifacts -------------------------------------------------------------------------

    def artifact_repository(self, run_id: str) -> ArtifactRepository:
        return get_artifact_repository(
            self.store.get_run(run_id).info.artifact_uri, tracking_uri=self.tracking_uri
        )

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        path = Path(local_path)
        if not path.is_file():
            raise InvalidParameterValue(f"Cannot log artifact {str(path)!r}: no such file")
        self.artifact_repository(run_id).log_artifact(path, artifact_path)

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        path = Path(local_dir)
        if not path.is_dir():
            raise InvalidParameterValue(f"Cannot log artifacts from {str(path)!r}: no such folder")
        self.artifact_repository(run_id).log_artifacts(path, artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.artifact_repository(run_id).log_bytes(text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        """JSON, or YAML when the file name ends in ``.yaml``/``.yml``."""
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(dictionary, sort_keys=False, default_flow_style=False)
        else:
            text = json.dumps(dictionary, indent=2, default=str)
        self.log_text(run_id, text, artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        """A matplotlib figure (or a plotly one, as HTML or an image)."""
        suffix = Path(artifact_file).suffix or ".png"
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp, Path(artifact_file).name)
            if hasattr(figure, "savefig"):
                figure.savefig(local, format=suffix.lstrip("."))
            elif hasattr(figure, "write_html") and suffix == ".html":
                figure.write_html(str(local))
            elif hasattr(figure, "write_image"):
                figure.write_image(str(local))
            else:
                raise InvalidParameterValue(
                    f"Cannot log a {type(figure).__name__} as a figure: pass a matplotlib or "
                    "plotly figure"
                )
            parent = str(Path(artifact_file).parent)
            self.log_artifact(run_id, local, None if parent == "." else parent)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        return list(self.artifact_repository(run_id).list_artifacts(path))

    def download_artifacts(
        self, run_id: str, path: str = "", dst_path: str | os.PathLike[str] | None = None
    ) -> Path:
        return self.artifact_repository(run_id).download_artifacts(path, dst_path)


def make_metric(
    key: str, value: Any, timestamp: int | None = None, step: int | None = None
) -> Metric:
    """A validated :class:`Metric`; the timestamp defaults to now and the step to 0."""
    v.validate_key(key, "Metric")
    metric = Metric(
        key,
        v.coerce_metric_value(key, value),
        now_ms() if timestamp is None else timestamp,
        0 if step is None else step,
    )
    return v.validate_metric(metric)
