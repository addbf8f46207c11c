"""``RestTrackingStore``: the tracking store of a remote tracking server, over MLflow's REST API.

Every :class:`~slipway.tracking.store.base.AbstractTrackingStore` method is a request to
``<server>/api/2.0/mlflow/...`` (a search is one request per page), so the store works with a
Slipway server and with an MLflow server alike. ``slipway.set_tracking_uri("http://host:5000")``
(or ``SLIPWAY_TRACKING_URI``) makes the SDK, the client and the CLI use it. Artifacts do not go
through this store: each run's ``artifact_uri`` (``mlflow-artifacts:/...`` when the server
proxies artifacts) tells the client where they live.

Errors
    The server's ``{"error_code", "message"}`` comes back as the matching
    :class:`~slipway.exceptions.SlipwayError` subclass with the server's message. Where the
    in-process store raises a more specific class than the error code tells, the store narrows
    it from the endpoint: ``RESOURCE_DOES_NOT_EXIST`` from an experiment call (or creating a
    run) is :class:`~slipway.exceptions.ExperimentNotFound`, from a run or metric call
    :class:`~slipway.exceptions.RunNotFound` (a missing *tag* stays a plain
    ``ResourceDoesNotExist``), and an ``INVALID_PARAMETER_VALUE`` about a search filter or
    order_by clause is :class:`~slipway.exceptions.InvalidFilter`.

Retries and timeouts
    See :mod:`slipway.tracking.store.rest.http`: reads and all logging calls are retried on
    connection errors, 408, 429 and 5xx with exponential backoff and jitter
    (``SLIPWAY_HTTP_MAX_RETRIES``, default 5; ``SLIPWAY_HTTP_TIMEOUT``, default 120 s); a 4xx
    is never retried; creating an experiment or a run is retried only where the server cannot
    have acted on it.

When the server is away
    Writes of run data (``log_batch`` and so ``log_metric``/``log_param``/``set_tag``,
    ``log_inputs``, ``delete_tag``, and ``update_run_info`` for a run this store has seen, which
    is how ``end_run`` finishes a run) try twice more quickly, then go to the spool
    (:mod:`slipway.tracking.store.rest.spool`) and return: a training job neither blocks nor
    loses data. Once anything is spooled, later writes queue behind it until a background
    thread has sent it all, in order. Reads, and writes that need the server's answer
    (creating a run or an experiment, searches), first send what is spooled; while the server
    is unreachable they raise :class:`~slipway.exceptions.TemporarilyUnavailable` (503) saying
    so. Writes spooled by a process that exited are sent by the next store for the same server
    URL. ``update_run_info`` answered from the spool returns the run info as it will be once
    the spooled writes arrive.

Validation
    ``log_batch`` checks its batch (sizes, keys, values) before sending, as the SQL store does,
    so that a spooled batch is one the server accepts; everything else is validated by the
    server. A batch of more than 1000 entities in all (the interface allows 1000 metrics, 100
    params and 100 tags; MLflow's server takes 1000 entities a request) is sent as two
    requests, params and tags in the first: like MLflow's, such a batch is not atomic.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from slipway.exceptions import (
    ExperimentNotFound,
    InvalidFilter,
    InvalidParameterValue,
    ResourceDoesNotExist,
    RunNotFound,
    SlipwayError,
    TemporarilyUnavailable,
)
from slipway.tracking.store.base import SEARCH_MAX_RESULTS_DEFAULT, AbstractTrackingStore
from slipway.tracking.store.rest import convert
from slipway.tracking.store.rest.http import HttpConfig, RestTransport, env_flag
from slipway.tracking.store.rest.spool import SPOOL_ENV, Spool, live_spools
from slipway.utils import validation as v

MAX_ENTITIES_PER_REQUEST = 1000
"""MLflow's cap on metrics, params and tags together in one log-batch request."""
QUICK_RETRIES = 2
"""Retries a spoolable write makes on an unreachable server before it is spooled."""
RUN_INFO_CACHE = 1024
_FILTER_MESSAGE = re.compile(r"^Invalid (?:[\w ]+ )?(?:filter|order_by)", re.IGNORECASE)
_TAG_MESSAGE = re.compile(r"\btag\b", re.IGNORECASE)


class RestTrackingStore(AbstractTrackingStore):
    """Experiments and runs kept by a tracking server.

    Args:
        server_url: ``http(s)://host[:port][/prefix]`` (credentials in the URL are used for
            Basic auth and never shown).
        config: transport settings; from the environment (see
            :mod:`slipway.tracking.store.rest.http`) when omitted.
        spool: spool writes while the server is away; ``SLIPWAY_SPOOL`` (default true) when
            None.
        spool_dir: the spool root; ``SLIPWAY_SPOOL_DIR`` or ``~/.slipway/spool`` when omitted.
    """

    def __init__(
        self,
        server_url: str,
        config: HttpConfig | None = None,
        spool: bool | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.transport = RestTransport(server_url, config)
        self.server_url = self.transport.base_url
        self._infos: OrderedDict[str, RunInfo] = OrderedDict()
        self._infos_lock = threading.Lock()
        if spool is None:
            spool = env_flag(os.environ, SPOOL_ENV, True)
        self.spool: Spool | None = (
            Spool(
                self.server_url,
                self._send_spooled,
                root=Path(spool_dir) if spool_dir is not None else None,
            )
            if spool
            else None
        )

    @property
    def db_uri(self) -> str:
        """The tracking URI that names this store (the server URL), as
        ``SqlTrackingStore.db_uri`` names a database."""
        return self.server_url

    def __repr__(self) -> str:
        return f"RestTrackingStore({self.server_url!r})"

    def close(self) -> None:
        """Try once more to send spooled writes, then release the spool and connections."""
        if self.spool is not None:
            self.spool.close()
        self.transport.close()

    # -- plumbing --------------------------------------------------------------------------

    def _send_spooled(self, method: str, endpoint: str, body: dict[str, Any]) -> None:
        self.transport.call(method, endpoint, body, retries=0, unavailable_retries=0)

    def _call(
        self,
        method: str,
        endpoint: str,
        fields: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
        not_found: type[ResourceDoesNotExist] = ResourceDoesNotExist,
        search: bool = False,
    ) -> dict[str, Any]:
        """A request that needs the server's answer: spooled writes go first."""
        if self.spool is not None and self.spool.active:
            self.spool.drain()  # raises TemporarilyUnavailable while the server is away
        try:
            return self.transport.call(method, endpoint, fields, idempotent=idempotent)
        except SlipwayError as exc:
            raise _narrow(exc, not_found, search) from None

    def _write(
        self,
        endpoint: str,
        body: dict[str, Any],
        not_found: type[ResourceDoesNotExist] = RunNotFound,
    ) -> dict[str, Any] | None:
        """A write that may be spooled; the answer, or None when it was spooled."""
        spool = self.spool
        if spool is None:
            return self._call("POST", endpoint, body, not_found=not_found)
        try:
            if spool.append_if_active("POST", endpoint, body):
                return None
        except OSError as exc:
            raise _unspoolable(spool, exc, None) from None
        try:
            return self.transport.call(
                "POST",
                endpoint,
                body,
                unavailable_retries=min(QUICK_RETRIES, self.transport.config.max_retries),
            )
        except TemporarilyUnavailable as unavailable:
            try:
                spool.append("POST", endpoint, body)
            except OSError as exc:
                raise _unspoolable(spool, exc, unavailable) from None
            return None
        except SlipwayError as exc:
            raise _narrow(exc, not_found, False) from None

    def _remember(self, info: RunInfo) -> RunInfo:
        with self._infos_lock:
            self._infos[info.run_id] = info
            self._infos.move_to_end(info.run_id)
            while len(self._infos) > RUN_INFO_CACHE:
                self._infos.popitem(last=False)
        return info

    def _forget(self, run_id: str) -> None:
        with self._infos_lock:
            self._infos.pop(run_id, None)

    def _known(self, run_id: str) -> RunInfo | None:
        with self._infos_lock:
            return self._infos.get(run_id)

    # -- experiments ---------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Sequence[ExperimentTag] = (),
    ) -> str:
        data = self._call(
            "POST",
            "experiments/create",
            {
                "name": name,
                "artifact_location": artifact_location or None,
                "tags": convert.key_value_fields(tags) or None,
            },
            idempotent=False,
            not_found=ExperimentNotFound,
        )
        return convert.parse(lambda d: str(d["experiment_id"]), data, "experiment id")

    def get_experiment(self, experiment_id: str) -> Experiment:
        data = self._call(
            "GET",
            "experiments/get",
            {"experiment_id": _id(experiment_id)},
            not_found=ExperimentNotFound,
        )
        return convert.parse(lambda d: convert.experiment(d["experiment"]), data, "experiment")

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            data = self._call(
                "GET",
                "experiments/get-by-name",
                {"experiment_name": name},
                not_found=ExperimentNotFound,
            )
        except ResourceDoesNotExist:
            return None
        return convert.parse(lambda d: convert.experiment(d["experiment"]), data, "experiment")

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._call(
            "POST",
            "experiments/update",
            {"experiment_id": _id(experiment_id), "new_name": new_name},
            not_found=ExperimentNotFound,
        )

    def delete_experiment(self, experiment_id: str) -> None:
        self._call(
            "POST",
            "experiments/delete",
            {"experiment_id": _id(experiment_id)},
            not_found=ExperimentNotFound,
        )

    def restore_experiment(self, experiment_id: str) -> None:
        self._call(
            "POST",
            "experiments/restore",
            {"experiment_id": _id(experiment_id)},
            not_found=ExperimentNotFound,
        )

    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None:
        self._call(
            "POST",
            "experiments/set-experiment-tag",
            {"experiment_id": _id(experiment_id), "key": tag.key, "value": tag.value},
            not_found=ExperimentNotFound,
        )

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._call(
            "POST",
            "experiments/delete-experiment-tag",
            {"experiment_id": _id(experiment_id), "key": key},
            not_found=ExperimentNotFound,
        )

    def search_experiments(
        self,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        data = self._call(
            "POST",
            "experiments/search",
            {
                "view_type": ViewType.parse(view_type).name,
                "max_results": max_results,
                "filter": filter_string or None,
                "order_by": list(order_by) if order_by else None,
                "page_token": page_token or None,
            },
            not_found=ExperimentNotFound,
            search=True,
        )
        return convert.parse(
            lambda d: PagedList(
                [convert.experiment(e) for e in d.get("experiments") or []],
                d.get("next_page_token") or None,
            ),
            data,
            "experiment search result",
        )

    # -- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        user_id: str | None = None,
        start_time: int | None = None,
        tags: Sequence[RunTag] = (),
        run_name: str | None = None,
    ) -> Run:
        data = self._call(
            "POST",
            "runs/create",
            {
                "experiment_id": _id(experiment_id),
                "user_id": user_id,
                "start_time": start_time,
                "tags": convert.key_value_fields(tags) or None,
                "run_name": run_name,
            },
            idempotent=False,
            not_found=ExperimentNotFound,
        )
        run = convert.parse(lambda d: convert.run(d["run"]), data, "run")
        self._remember(run.info)
        return run

    def get_run(self, run_id: str) -> Run:
        data = self._call("GET", "runs/get", {"run_id": run_id}, not_found=RunNotFound)
        run = convert.parse(lambda d: convert.run(d["run"]), data, "run")
        self._remember(run.info)
        return run

    def update_run_info(
        self,
        run_id: str,
        run_status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        status = RunStatus.parse(run_status) if run_status is not None else None
        body = {
            "run_id": run_id,
            "status": str(status) if status is not None else None,
            "end_time": end_time,
            "run_name": run_name,
        }
        known = self._known(run_id)
        if known is None or self.spool is None:
            data = self._call("POST", "runs/update", body, not_found=RunNotFound)
        else:
            answer = self._write("runs/update", {k: x for k, x in body.items() if x is not None})
            if answer is None:  # spooled: the info as it will be
                changes: dict[str, Any] = {}
                if status is not None:
                    changes["status"] = status
                if end_time is not None:
                    changes["end_time"] = end_time
                if run_name:
                    changes["run_name"] = run_name
                return self._remember(dataclasses.replace(known, **changes))
            data = answer
        info = convert.parse(lambda d: convert.run_info(d["run_info"]), data, "run info")
        return self._remember(info)

    def delete_run(self, run_id: str) -> None:
        self._call("POST", "runs/delete", {"run_id": run_id}, not_found=RunNotFound)
        self._forget(run_id)

    def restore_run(self, run_id: str) -> None:
        self._call("POST", "runs/restore", {"run_id": run_id}, not_found=RunNotFound)
        self._forget(run_id)

    # -- logging ---------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        v.validate_batch(metrics, params, tags)
        if not (metrics or params or tags):  # nothing to write: check the run, as SQL does
            self._call("POST", "runs/log-batch", {"run_id": run_id}, not_found=RunNotFound)
            return
        # MLflow's server also caps a request at 1000 entities in all; a batch the store
        # interface accepts (1000 metrics, 100 params, 100 tags) may take two requests.
        room = MAX_ENTITIES_PER_REQUEST - len(params) - len(tags)
        chunks = [metrics[:room]] + [
            metrics[i : i + MAX_ENTITIES_PER_REQUEST]
            for i in range(room, len(metrics), MAX_ENTITIES_PER_REQUEST)
        ]
        for n, chunk in enumerate(chunks):
            body: dict[str, Any] = {"run_id": run_id}
            if chunk:
                body["metrics"] = [convert.metric_fields(m) for m in chunk]
            if n == 0 and params:
                body["params"] = convert.key_value_fields(params)
            if n == 0 and tags:
                body["tags"] = convert.key_value_fields(tags)
            self._write("runs/log-batch", body)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._write("runs/delete-tag", {"run_id": run_id, "key": key})

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        if not datasets:
            return
        self._write(
            "runs/log-inputs",
            {"run_id": run_id, "datasets": convert.dataset_input_fields(datasets)},
        )

    # -- metric history --------------------------------------------------------------------

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        data = self._call(
            "GET",
            "metrics/get-history",
            {
                "run_id": run_id,
                "metric_key": metric_key,
                "max_results": max_results,
                "page_token": page_token or None,
            },
            not_found=RunNotFound,
        )
        return convert.parse(
            lambda d: PagedList(
                [convert.metric(m) for m in d.get("metrics") or []],
                d.get("next_page_token") or None,
            ),
            data,
            "metric history",
        )

    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        metric_key: str,
        max_results: int,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[MetricWithRunId]:
        data = self._call(
            "GET",
            "metrics/get-history-bulk-interval",
            {
                "run_ids": [run_ids] if isinstance(run_ids, str) else list(run_ids),
                "metric_key": metric_key,
                "max_results": max_results,
                "start_step": start_step,
                "end_step": end_step,
            },
            not_found=RunNotFound,
        )
        return convert.parse(
            lambda d: [convert.metric_with_run_id(m) for m in d.get("metrics") or []],
            data,
            "metric history",
        )

    # -- search ------------------------------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        data = self._call(
            "POST",
            "runs/search",
            {
                "experiment_ids": [_id(e) for e in ids],
                "filter": filter_string or None,
                "run_view_type": ViewType.parse(run_view_type).name,
                "max_results": max_results,
                "order_by": list(order_by) if order_by else None,
                "page_token": page_token or None,
            },
            not_found=ExperimentNotFound,
            search=True,
        )
        return convert.parse(
            lambda d: PagedList(
                [convert.run(r) for r in d.get("runs") or []], d.get("next_page_token") or None
            ),
            data,
            "run search result",
        )


def _id(value: Any) -> Any:
    """Experiment ids are strings on the wire; an int is sent as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _unspoolable(
    spool: Spool, error: OSError, unavailable: TemporarilyUnavailable | None
) -> TemporarilyUnavailable:
    why = f"{unavailable.message}; " if unavailable is not None else ""
    return TemporarilyUnavailable(
        f"{why}the write could not be spooled in {spool.directory} ({error}); it was not "
        "recorded. Free the disk or set SLIPWAY_SPOOL_DIR to a writable folder."
    )


def _narrow(
    error: SlipwayError, not_found: type[ResourceDoesNotExist], search: bool
) -> SlipwayError:
    """The more specific class the in-process store would raise for this endpoint."""
    cls: type[SlipwayError] | None = None
    if type(error) is ResourceDoesNotExist and not _TAG_MESSAGE.search(error.message):
        cls = not_found
    elif search and type(error) is InvalidParameterValue and _FILTER_MESSAGE.search(error.message):
        cls = InvalidFilter
    if cls is None or cls is type(error):
        return error
    narrowed = cls(error.message, **error.details)
    if error.error_code != cls.error_code:
        narrowed.error_code = error.error_code  # type: ignore[misc]
    return narrowed


@atexit.register
def _close_spools_at_exit() -> None:
    """Let buffered asynchronous writes reach the stores (and so the spool), then make a last
    attempt to send what is spooled; what is left stays on disk for the next process."""
    if not live_spools():
        return
    from slipway.tracking import async_logging

    async_logging._flush_all_at_exit()
    for spool in live_spools():
        spool.flush_at_exit()


__all__ = ["RestTrackingStore"]
