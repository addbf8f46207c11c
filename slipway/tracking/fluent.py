"""The fluent API: ``slipway.start_run()``, ``slipway.log_metric()`` and friends.

Logging is asynchronous and batched by default: calls validate their arguments and return at
once; a background flusher writes batches; ``end_run`` (and interpreter exit) flushes and
raises any error the writes met. ``set_async_logging(False)``, ``SLIPWAY_ASYNC_LOGGING=false``
or ``synchronous=True`` on a call makes writes synchronous.
"""

from __future__ import annotations

import atexit
import getpass
import os
import sys
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, overload

from slipway.entities import Experiment, Param, Run, RunStatus, RunTag, ViewType
from slipway.exceptions import ExperimentNotFound, InvalidParameterValue, SlipwayError
from slipway.tracking import uri as uris
from slipway.tracking.client import SlipwayClient, make_metric, now_ms
from slipway.tracking.datasets import dataset_from
from slipway.tracking.system_metrics import SystemMetricsMonitor
from slipway.utils import validation as v

EXPERIMENT_ID_ENV = "SLIPWAY_EXPERIMENT_ID"
EXPERIMENT_NAME_ENV = "SLIPWAY_EXPERIMENT_NAME"
RUN_ID_ENV = "SLIPWAY_RUN_ID"
ASYNC_ENV = "SLIPWAY_ASYNC_LOGGING"
PARENT_RUN_TAG = "mlflow.parentRunId"

_state = threading.local()
_experiment_id: str | None = None
_async_enabled: bool | None = None
_clients: dict[str, SlipwayClient] = {}
_clients_lock = threading.Lock()


class ActiveRun(Run):
    """The run that :func:`start_run` started; a context manager that ends it on exit
    (FINISHED, FAILED on an exception, KILLED on Ctrl-C)."""

    def __init__(self, run: Run) -> None:
        super().__init__(run.info, run.data, run.inputs)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        if exc_type is None:
            end_run(status, run_id=self.info.run_id)
            return
        try:  # the original exception matters more than a logging error at this point
            end_run(status, run_id=self.info.run_id)
        except SlipwayError as err:
            print(f"slipway: while ending run {self.info.run_id}: {err}", file=sys.stderr)


def _stack() -> list[ActiveRun]:
    stack: list[ActiveRun] | None = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def _monitors() -> dict[str, SystemMetricsMonitor]:
    monitors: dict[str, SystemMetricsMonitor] | None = getattr(_state, "monitors", None)
    if monitors is None:
        monitors = _state.monitors = {}
    return monitors


def get_client() -> SlipwayClient:
    """The client the fluent API uses for the tracking URI in effect (one per URI)."""
    uri = uris.get_tracking_uri()
    client = _clients.get(uri)  # the common case needs no lock
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(uri)
        if client is None:
            client = _clients[uri] = SlipwayClient(uri)
        return client


def set_tracking_uri(uri: str | os.PathLike[str] | None) -> None:
    """Log to ``uri``: a folder, ``sqlite:///...`` or ``postgresql://...``."""
    global _experiment_id
    if uris.get_tracking_uri() != (os.fspath(uri) if uri is not None else None):
        _experiment_id = None
    uris.set_tracking_uri(uri)


def get_tracking_uri() -> str:
    return uris.get_tracking_uri()


def set_async_logging(enabled: bool) -> None:
    """Turn asynchronous batched logging on (the default) or off for the fluent API."""
    global _async_enabled
    _async_enabled = enabled


def _synchronous(explicit: bool | None) -> bool:
    if explicit is not None:
        return explicit
    if _async_enabled is not None:
        return not _async_enabled
    return os.environ.get(ASYNC_ENV, "true").strip().lower() in ("0", "false", "no", "off")


# -- experiments ---------------------------------------------------------------------------


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment active, creating it by name if it does not exist."""
    global _experiment_id
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidParameterValue("Pass exactly one of experiment_name and experiment_id")
    client = get_client()
    if experiment_id is not None:
        experiment = client.get_experiment(str(experiment_id))
    else:
        found = client.get_experiment_by_name(str(experiment_name))
        if found is None:
            try:
                client.create_experiment(str(experiment_name))
            except SlipwayError as exc:  # created by another process meanwhile
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            found = client.get_experiment_by_name(str(experiment_name))
        assert found is not None
        experiment = found
    if str(experiment.lifecycle_stage) != "active":
        raise InvalidParameterValue(
            f"Cannot set a deleted experiment {experiment.name!r} as the active experiment. "
            f"Restore it first (slipway experiments restore {experiment.experiment_id})."
        )
    _experiment_id = experiment.experiment_id
    return experiment


def _current_experiment_id() -> str:
    if _experiment_id is not None:
        return _experiment_id
    if os.environ.get(EXPERIMENT_ID_ENV):
        return os.environ[EXPERIMENT_ID_ENV]
    if os.environ.get(EXPERIMENT_NAME_ENV):
        return set_experiment(os.environ[EXPERIMENT_NAME_ENV]).experiment_id
    return Experiment.DEFAULT_EXPERIMENT_ID


# -- runs ----------------------------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool = False,
    system_metrics_interval: float = 10.0,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it active; use it as a context manager.

    Args:
        run_id: resume this run instead of creating one.
        experiment_id: where to create the run; the active experiment when omitted.
        run_name: a readable name; a generated one when omitted.
        nested: start a child of the active run (``mlflow.parentRunId``).
        tags: extra run tags.
        description: saved as the run's note (``mlflow.note.content``).
        log_system_metrics: sample CPU, memory, disk, network (and GPU) as ``system/*``.
        system_metrics_interval: seconds between samples.
    """
    stack = _stack()
    if stack and not nested:
        raise InvalidParameterValue(
            f"Run with UUID {stack[-1].info.run_id} is already active. To start a nested run, "
            "call start_run with nested=True, or end the active run with end_run()."
        )
    client = get_client()
    run_id = run_id or os.environ.get(RUN_ID_ENV) if not stack else run_id
    if run_id:
        run = client.get_run(run_id)
        if str(run.info.lifecycle_stage) != "active":
            raise InvalidParameterValue(f"Cannot start run {run_id}: it is deleted")
        client.update_run(run_id, RunStatus.RUNNING, run_name)
        run = client.get_run(run_id)
    else:
        run_tags = _default_tags()
        run_tags.update({k: str(val) for k, val in (tags or {}).items()})
        if stack:
            run_tags[PARENT_RUN_TAG] = stack[-1].info.run_id
        if description:
            run_tags["mlflow.note.content"] = description
        exp_id = str(experiment_id) if experiment_id is not None else _current_experiment_id()
        run = client.create_run(
            exp_id, tags=run_tags, run_name=run_name, user_id=run_tags.get("mlflow.user")
        )
    active = ActiveRun(run)
    stack.append(active)
    if log_system_metrics:
        rid = active.info.run_id
        _monitors()[rid] = SystemMetricsMonitor(
            lambda values, step: log_metrics(values, step=step, run_id=rid),
            interval=system_metrics_interval,
        ).start()
    return active


def _default_tags() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    source = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "<console>"
    return {"mlflow.user": user, "mlflow.source.name": source, "mlflow.source.type": "LOCAL"}


def active_run() -> ActiveRun | None:
    stack = _stack()
    return stack[-1] if stack else None


def last_active_run_id() -> str | None:
    return getattr(_state, "last_run_id", None)


def end_run(status: RunStatus | str = RunStatus.FINISHED, run_id: str | None = None) -> None:
    """End the active run (or ``run_id``): flush its buffered logs, then record the status.

    A logging error met in the background is raised here, after the run is marked FAILED."""
    final = RunStatus.parse(status)  # a bad status fails before anything changes
    stack = _stack()
    if run_id is None:
        if not stack:
            return
        run_id = stack[-1].info.run_id
    monitor = _monitors().pop(run_id, None)
    if monitor is not None:
        monitor.stop()
    for i in range(len(stack) - 1, -1, -1):
        if stack[i].info.run_id == run_id:
            del stack[i]
            break
    _state.last_run_id = run_id
    client = get_client()
    try:
        client.flush(run_id)
    except Exception:
        client.store.update_run_info(run_id, RunStatus.FAILED, now_ms())
        raise
    client.set_terminated(run_id, final)


@atexit.register
def _end_runs_at_exit() -> None:
    """Runs still active when the interpreter exits end FINISHED, or FAILED (KILLED on
    Ctrl-C) when an uncaught exception is ending the program."""
    stack = _stack()
    if not stack:
        return
    last = getattr(sys, "last_value", None)
    if last is None:
        status = RunStatus.FINISHED
    else:
        status = RunStatus.KILLED if isinstance(last, KeyboardInterrupt) else RunStatus.FAILED
    while stack:
        run_id = stack[-1].info.run_id
        try:
            end_run(status, run_id=run_id)
        except Exception as exc:
            print(f"slipway: while ending run {run_id} at exit: {exc}", file=sys.stderr)
            if stack and stack[-1].info.run_id == run_id:
                stack.pop()


def _run_id(run_id: str | None) -> str:
    if run_id is not None:
        return run_id
    stack = _stack()
    if stack:
        return stack[-1].info.run_id
    return start_run().info.run_id


def flush() -> None:
    """Write buffered logs now; raise the first error they met."""
    get_client().flush()


def flush_open_clients() -> None:
    """Write the buffered logs of every client already open, without opening a store (a
    process about to exit that may never have logged anything)."""
    with _clients_lock:
        clients = list(_clients.values())
    for client in clients:
        client.flush()


def push_active_run(run: ActiveRun) -> None:
    """Make ``run`` the active run of this thread as it is, without asking the store (for a
    process handed a run that another process created, such as a pipeline step)."""
    _stack().append(run)


# -- logging -------------------------------------------------------------------------------


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    """Log a parameter (stored as a string; immutable once logged). Returns ``value``."""
    log_params({key: value}, synchronous=synchronous)
    return value


def log_params(
    params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    if not isinstance(params, dict):
        raise InvalidParameterValue(f"log_params expects a dict, got {type(params).__name__}")
    items = [v.validate_param(Param(k, _param_str(k, val))) for k, val in params.items()]
    _write(run_id, params=items, synchronous=synchronous)


def _param_str(key: object, value: Any) -> str:
    v.validate_key(key, "Param")
    return value if isinstance(value, str) else str(value)


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
) -> None:
    """Log one metric point (NaN and infinities accepted; step 0 when not given)."""
    _write(run_id, metrics=[make_metric(key, value, timestamp, step)], synchronous=synchronous)


def log_metrics(
    metrics: dict[str, float],
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
) -> None:
    if not isinstance(metrics, dict):
        raise InvalidParameterValue(f"log_metrics expects a dict, got {type(metrics).__name__}")
    items = [make_metric(k, val, timestamp, step) for k, val in metrics.items()]
    _write(run_id, metrics=items, synchronous=synchronous)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    set_tags({key: value}, synchronous=synchronous)


def set_tags(
    tags: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    if not isinstance(tags, dict):
        raise InvalidParameterValue(f"set_tags expects a dict, got {type(tags).__name__}")
    items = [
        v.validate_tag(RunTag(k, val if isinstance(val, str) else str(val)))
        for k, val in tags.items()
    ]
    _write(run_id, tags=items, synchronous=synchronous)


def delete_tag(key: str) -> None:
    get_client().delete_tag(_run_id(None), key)


def _write(
    run_id: str | None,
    metrics: Sequence[Any] = (),
    params: Sequence[Param] = (),
    tags: Sequence[RunTag] = (),
    synchronous: bool | None = None,
) -> None:
    run_id = _run_id(run_id)
    client = get_client()
    if _synchronous(synchronous):
        client.flush(run_id)  # keep the order with anything logged asynchronously before
        for start in range(0, len(params), v.MAX_PARAMS_PER_BATCH):
            client.store.log_batch(run_id, params=params[start : start + v.MAX_PARAMS_PER_BATCH])
        for start in range(0, len(tags), v.MAX_TAGS_PER_BATCH):
            client.store.log_batch(run_id, tags=tags[start : start + v.MAX_TAGS_PER_BATCH])
        for start in range(0, len(metrics), v.MAX_METRICS_PER_BATCH):
            client.store.log_batch(run_id, metrics=metrics[start : start + v.MAX_METRICS_PER_BATCH])
        return
    logger = client._logger()
    if metrics:
        logger.log_metrics(run_id, list(metrics))
    if params:
        logger.log_params(run_id, list(params))
    if tags:
        logger.set_tags(run_id, list(tags))


# -- artifacts and datasets ----------------------------------------------------------------


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    get_client().log_artifact(_run_id(None), local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    get_client().log_artifacts(_run_id(None), local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    get_client().log_text(_run_id(None), text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str) -> None:
    get_client().log_dict(_run_id(None), dictionary, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> None:
    get_client().log_figure(_run_id(None), figure, artifact_file)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    from slipway.artifacts.paths import join_uri, safe_relative_path

    uri = get_client().get_run(_run_id(None)).info.artifact_uri
    return join_uri(uri, safe_relative_path(artifact_path)) if artifact_path else uri


def log_input(
    dataset: Any,
    name: str | None = None,
    context: str | None = None,
    source: str | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Record a dataset used by the active run; its digest is computed from the content."""
    item = dataset_from(dataset, name=name, source=source, context=context, tags=tags)
    get_client().log_inputs(_run_id(None), [item])


# -- search --------------------------------------------------------------------------------


@overload
def search_runs(
    experiments: Sequence[str] | str | None = ...,
    filter_string: str | None = ...,
    order_by: Sequence[str] | None = ...,
    max_results: int = ...,
    run_view_type: ViewType | str | int = ...,
    output_format: Literal["list"] = ...,
) -> list[Run]: ...


@overload
def search_runs(
    experiments: Sequence[str] | str | None = ...,
    filter_string: str | None = ...,
    order_by: Sequence[str] | None = ...,
    max_results: int = ...,
    run_view_type: ViewType | str | int = ...,
    *,
    output_format: Literal["pandas"],
) -> Any: ...


def search_runs(
    experiments: Sequence[str] | str | None = None,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 100_000,
    run_view_type: ViewType | str | int = ViewType.ACTIVE_ONLY,
    output_format: Literal["list", "pandas"] = "list",
) -> Any:
    """Runs of the given experiments (names or ids; the active experiment when omitted) that
    match ``filter_string``, as a list or, with ``output_format="pandas"``, a DataFrame with
    ``metrics.*``, ``params.*`` and ``tags.*`` columns."""
    client = get_client()
    ids = resolve_experiment_ids(client, experiments)
    runs: list[Run] = []
    token: str | None = None
    while len(runs) < max_results:
        page = client.search_runs(
            ids,
            filter_string,
            run_view_type,
            min(v.MAX_SEARCH_RESULTS, max_results - len(runs)),
            order_by,
            token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    if output_format == "pandas":
        return runs_to_dataframe(runs)
    if output_format != "list":
        raise InvalidParameterValue(
            f"output_format must be 'list' or 'pandas', got {output_format!r}"
        )
    return runs


def resolve_experiment_ids(
    client: SlipwayClient, experiments: Sequence[str] | str | None
) -> list[str]:
    """Experiment names or ids to ids; a name wins over an id that looks the same."""
    if experiments is None:
        return [_current_experiment_id()]
    if isinstance(experiments, str):
        experiments = [experiments]
    ids = []
    for item in experiments:
        found = client.get_experiment_by_name(str(item))
        if found is not None:
            ids.append(found.experiment_id)
        elif str(item).isdigit():
            ids.append(client.get_experiment(str(item)).experiment_id)
        else:
            raise ExperimentNotFound(f"No experiment named {item!r}")
    return ids


def runs_to_dataframe(runs: Sequence[Run]) -> Any:
    import pandas as pd

    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "experiment_id": run.info.experiment_id,
            "status": str(run.info.status),
            "artifact_uri": run.info.artifact_uri,
            "start_time": _timestamp(run.info.start_time),
            "end_time": _timestamp(run.info.end_time),
        }
        row.update({f"metrics.{k}": val for k, val in run.data.metrics.items()})
        row.update({f"params.{k}": val for k, val in run.data.params.items()})
        row.update({f"tags.{k}": val for k, val in run.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _timestamp(ms: int | None) -> Any:
    import pandas as pd

    return pd.NaT if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")
