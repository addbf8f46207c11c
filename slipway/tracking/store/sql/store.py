"""``SqlTrackingStore``: the tracking store on SQLAlchemy 2 (SQLite, PostgreSQL, MySQL)."""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Connection, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from slipway.artifacts.paths import join_uri, validate_artifact_root
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
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    RunNotFound,
    TemporarilyUnavailable,
)
from slipway.tracking import search
from slipway.tracking.store.base import SEARCH_MAX_RESULTS_DEFAULT, AbstractTrackingStore
from slipway.tracking.store.sql import engine as sql_engine
from slipway.tracking.store.sql import query as q
from slipway.tracking.store.sql import writes
from slipway.tracking.store.sql.history import raw_rows, sampled_history
from slipway.tracking.store.sql.loading import (
    latest_metric_keys,
    load_experiments,
    load_runs,
    run_info_from_row,
)
from slipway.tracking.store.sql.logged_models import SqlLoggedModelMixin
from slipway.tracking.store.sql.query import (
    apply_experiment_order,
    apply_run_order,
    experiment_filter_clause,
    run_filter_clause,
)
from slipway.tracking.store.sql.upsert import upsert
from slipway.tracking.store.sql.writes import RUN_NAME_TAG
from slipway.utils import validation as v
from slipway.utils.names import generate_run_name

_MAX_EXPERIMENT_KEY = 2**31 - 1  # the experiment id column is a 32-bit integer


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqlTrackingStore(AbstractTrackingStore, SqlLoggedModelMixin):
    """Tracking data in a SQL database.

    Args:
        db_uri: ``sqlite:///path.db``, ``postgresql://user@host/db`` or ``mysql://...``.
        default_artifact_root: where new experiments keep their artifacts (a local folder,
            ``file://``, ``s3://`` or ``mlflow-artifacts:/`` URI); each experiment gets
            ``<root>/<experiment_id>`` unless it names its own location.

    Opening a store brings the schema up to date (once, under a lock) and makes sure the
    "Default" experiment with id "0" exists.
    """

    def __init__(self, db_uri: str, default_artifact_root: str) -> None:
        self.db_uri = db_uri
        self.default_artifact_root = validate_artifact_root(default_artifact_root)
        self.engine = sql_engine.create_sql_engine(db_uri)
        sql_engine.pid_guard(self.engine)
        try:
            sql_engine.ensure_schema(self.engine)
            self._ensure_default_experiment()
        except OperationalError as exc:
            self.engine.dispose()
            raise TemporarilyUnavailable(
                f"Cannot open the tracking database {sql_engine.safe_uri(db_uri)}: "
                f"{str(exc.orig).strip() or exc.__class__.__name__}"
            ) from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- plumbing --------------------------------------------------------------------------

    def _read(self) -> Connection:
        sql_engine.pid_guard(self.engine)
        return self.engine.connect()

    def _write(self, work: Any) -> Any:
        sql_engine.pid_guard(self.engine)
        return sql_engine.run_write(self.engine, work)

    def _ensure_default_experiment(self) -> None:
        with self._read() as conn:
            if conn.execute(
                select(q.experiments.c.experiment_id).where(q.experiments.c.experiment_id == 0)
            ).first():
                return

        def work(conn: Connection) -> None:
            now = _now_ms()
            upsert(
                conn,
                q.experiments,
                [
                    {
                        "experiment_id": 0,
                        "name": Experiment.DEFAULT_EXPERIMENT_NAME,
                        "artifact_location": join_uri(self.default_artifact_root, "0"),
                        "lifecycle_stage": "active",
                        "creation_time": now,
                        "last_update_time": now,
                    }
                ],
                keys=["experiment_id"],
            )

        # IntegrityError: the name "Default" raced in from another process.
        with contextlib.suppress(IntegrityError):
            self._write(work)

    # -- experiments ---------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Sequence[ExperimentTag] = (),
    ) -> str:
        v.validate_experiment_name(name)
        if artifact_location:
            if artifact_location.startswith("runs:"):
                raise InvalidParameterValue(
                    f"Artifact location cannot be a runs:/ URI. Given: '{artifact_location}'"
                )
            artifact_location = validate_artifact_root(artifact_location)
        for tag in tags:
            v.validate_experiment_tag_value(tag.key, tag.value)

        def work(conn: Connection) -> str:
            if conn.execute(
                select(q.experiments.c.experiment_id).where(q.experiments.c.name == name)
            ).first():
                raise ResourceAlreadyExists(f"Experiment '{name}' already exists.")
            now = _now_ms()
            result = conn.execute(
                insert(q.experiments).values(
                    name=name,
                    artifact_location=artifact_location or "",
                    lifecycle_stage="active",
                    creation_time=now,
                    last_update_time=now,
                )
            )
            experiment_id = result.inserted_primary_key[0]  # type: ignore[index]
            if not artifact_location:
                conn.execute(
                    update(q.experiments)
                    .where(q.experiments.c.experiment_id == experiment_id)
                    .values(
                        artifact_location=join_uri(self.default_artifact_root, str(experiment_id))
                    )
                )
            if tags:
                conn.execute(
                    insert(q.experiment_tags),
                    [
                        {"experiment_id": experiment_id, "key": t.key, "value": t.value}
                        for t in tags
                    ],
                )
            return str(experiment_id)

        try:
            result: str = self._write(work)
        except IntegrityError as exc:
            raise ResourceAlreadyExists(f"Experiment '{name}' already exists.") from exc
        return result

    def _experiment_row(self, conn: Connection, experiment_id: str) -> Any:
        key = _experiment_key(experiment_id)
        row = conn.execute(
            select(q.experiments).where(q.experiments.c.experiment_id == key)
        ).first()
        if row is None:
            raise ExperimentNotFound(f"No Experiment with id={experiment_id} exists")
        return row

    def get_experiment(self, experiment_id: str) -> Experiment:
        with self._read() as conn:
            row = self._experiment_row(conn, experiment_id)
            return load_experiments(conn, [row.experiment_id])[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._read() as conn:
            row = conn.execute(
                select(q.experiments.c.experiment_id).where(q.experiments.c.name == name)
            ).first()
            return load_experiments(conn, [row.experiment_id])[0] if row else None

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        v.validate_experiment_name(new_name)

        def work(conn: Connection) -> None:
            row = self._experiment_row(conn, experiment_id)
            if row.lifecycle_stage != "active":
                raise InvalidParameterValue("Cannot rename a non-active experiment.")
            if row.name == new_name:
                return
            if conn.execute(
                select(q.experiments.c.experiment_id).where(q.experiments.c.name == new_name)
            ).first():
                raise ResourceAlreadyExists(f"Experiment '{new_name}' already exists.")
            conn.execute(
                update(q.experiments)
                .where(q.experiments.c.experiment_id == row.experiment_id)
                .values(name=new_name, last_update_time=_now_ms())
            )

        try:
            self._write(work)
        except IntegrityError as exc:
            raise ResourceAlreadyExists(f"Experiment '{new_name}' already exists.") from exc

    def delete_experiment(self, experiment_id: str) -> None:
        if str(experiment_id) == Experiment.DEFAULT_EXPERIMENT_ID:
            raise InvalidParameterValue("Cannot delete the default experiment '0'.")

        def work(conn: Connection) -> None:
            row = self._experiment_row(conn, experiment_id)
            if row.lifecycle_stage != "active":
                raise InvalidParameterValue(
                    f"Cannot delete experiment {experiment_id}: it is already deleted."
                )
            # The deletion time marks the runs deleted with the experiment (restore brings
            # back exactly those): it is later than any run deleted on its own before.
            latest_run_deletion = conn.execute(
                select(func.max(q.runs.c.deleted_time)).where(
                    q.runs.c.experiment_id == row.experiment_id
                )
            ).scalar()
            now = max(_now_ms(), (latest_run_deletion or 0) + 1)
            conn.execute(
                update(q.experiments)
                .where(q.experiments.c.experiment_id == row.experiment_id)
                .values(lifecycle_stage="deleted", last_update_time=now, deleted_time=now)
            )
            conn.execute(
                update(q.runs)
                .where(
                    q.runs.c.experiment_id == row.experiment_id,
                    q.runs.c.lifecycle_stage == "active",
                )
                .values(lifecycle_stage="deleted", deleted_time=now)
            )

        self._write(work)

    def restore_experiment(self, experiment_id: str) -> None:
        def work(conn: Connection) -> None:
            row = self._experiment_row(conn, experiment_id)
            if row.lifecycle_stage != "deleted":
                raise InvalidParameterValue(
                    f"Cannot restore an active experiment. Experiment {experiment_id} is active."
                )
            conn.execute(
                update(q.experiments)
                .where(q.experiments.c.experiment_id == row.experiment_id)
                .values(lifecycle_stage="active", last_update_time=_now_ms(), deleted_time=None)
            )
            # Only the runs deleted together with the experiment come back.
            conn.execute(
                update(q.runs)
                .where(
                    q.runs.c.experiment_id == row.experiment_id,
                    q.runs.c.deleted_time == row.deleted_time,
                )
                .values(lifecycle_stage="active", deleted_time=None)
            )

        self._write(work)

    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None:
        v.validate_experiment_tag_value(tag.key, tag.value)

        def work(conn: Connection) -> None:
            row = self._experiment_row(conn, experiment_id)
            _require_active_experiment(row)
            upsert(
                conn,
                q.experiment_tags,
                [{"experiment_id": row.experiment_id, "key": tag.key, "value": tag.value}],
                keys=["experiment_id", "key"],
                update=["value"],
            )

        self._write(work)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        def work(conn: Connection) -> None:
            row = self._experiment_row(conn, experiment_id)
            _require_active_experiment(row)
            done = conn.execute(
                delete(q.experiment_tags).where(
                    q.experiment_tags.c.experiment_id == row.experiment_id,
                    q.experiment_tags.c.key == key,
                )
            )
            if done.rowcount == 0:
                raise ResourceDoesNotExist(
                    f"No tag with name: {key} in experiment with id {experiment_id}"
                )

        self._write(work)

    def search_experiments(
        self,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        view_type = ViewType.parse(view_type)
        v.validate_max_results(max_results, v.MAX_SEARCH_RESULTS)
        clauses = search.parse_experiment_filter(filter_string)
        orders = search.parse_order_by(list(order_by or []), experiments=True)
        offset = search.decode_page_token(page_token)
        query = select(q.experiments.c.experiment_id).where(
            q.experiments.c.lifecycle_stage.in_([str(s) for s in view_type.stages()]),
            *[experiment_filter_clause(c) for c in clauses],
        )
        query = apply_experiment_order(query, orders).offset(offset).limit(max_results + 1)
        with self._read() as conn:
            ids = list(conn.execute(query).scalars())
            page = load_experiments(conn, ids[:max_results])
        token = search.encode_page_token(offset + max_results) if len(ids) > max_results else None
        return PagedList(page, token)

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        user_id: str | None = None,
        start_time: int | None = None,
        tags: Sequence[RunTag] = (),
        run_name: str | None = None,
    ) -> Run:
        tags = list(tags)
        for tag in tags:
            v.validate_tag(tag)
        tag_name = next((t.value for t in tags if t.key == RUN_NAME_TAG), None)
        if run_name and tag_name and run_name != tag_name:
            raise InvalidParameterValue(
                f"Both 'run_name' argument and '{RUN_NAME_TAG}' tag are specified, but with "
                f"different values (run_name='{run_name}', {RUN_NAME_TAG}='{tag_name}')."
            )
        name = run_name or tag_name or generate_run_name()
        if len(name) > v.MAX_RUN_NAME_LENGTH:
            raise InvalidParameterValue(f"Run name is longer than {v.MAX_RUN_NAME_LENGTH}")
        tags = [t for t in tags if t.key != RUN_NAME_TAG] + [RunTag(RUN_NAME_TAG, name)]
        run_id = uuid.uuid4().hex

        def work(conn: Connection) -> Run:
            row = self._experiment_row(conn, experiment_id)
            if row.lifecycle_stage != "active":
                raise InvalidParameterValue(
                    f"The experiment {experiment_id} must be in the 'active' state. "
                    f"Current state is {row.lifecycle_stage}."
                )
            artifact_uri = join_uri(row.artifact_location, run_id, "artifacts")
            conn.execute(
                insert(q.runs).values(
                    run_uuid=run_id,
                    name=name,
                    experiment_id=row.experiment_id,
                    user_id=user_id or "",
                    status=str(RunStatus.RUNNING),
                    start_time=_now_ms() if start_time is None else start_time,
                    end_time=None,
                    lifecycle_stage="active",
                    artifact_uri=artifact_uri,
                )
            )
            conn.execute(
                insert(q.tags),
                [
                    {"run_uuid": run_id, "key": t.key, "value": t.value}
                    for t in {t.key: t for t in tags}.values()
                ],
            )
            return load_runs(conn, [run_id])[0]

        result: Run = self._write(work)
        return result

    def _run_row(self, conn: Connection, run_id: str) -> Any:
        row = conn.execute(select(q.runs).where(q.runs.c.run_uuid == run_id)).first()
        if row is None:
            raise RunNotFound(f"Run with id={run_id} not found")
        return row

    def _active_run_row(self, conn: Connection, run_id: str) -> Any:
        row = self._run_row(conn, run_id)
        if row.lifecycle_stage != "active":
            raise InvalidParameterValue(
                f"The run {run_id} must be in the 'active' state. "
                f"Current state is {row.lifecycle_stage}."
            )
        return row

    def get_run(self, run_id: str) -> Run:
        if not isinstance(run_id, str):
            raise InvalidParameterValue(f"Invalid run ID: {run_id!r}")
        with self._read() as conn:
            self._run_row(conn, run_id)
            return load_runs(conn, [run_id])[0]

    def update_run_info(
        self,
        run_id: str,
        run_status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        status = RunStatus.parse(run_status) if run_status is not None else None
        if run_name is not None and len(run_name) > v.MAX_RUN_NAME_LENGTH:
            raise InvalidParameterValue(f"Run name is longer than {v.MAX_RUN_NAME_LENGTH}")

        def work(conn: Connection) -> RunInfo:
            self._active_run_row(conn, run_id)
            values: dict[str, Any] = {}
            if status is not None:
                values["status"] = str(status)
            if end_time is not None:
                values["end_time"] = end_time
            if run_name:
                values["name"] = run_name
                upsert(
                    conn,
                    q.tags,
                    [{"run_uuid": run_id, "key": RUN_NAME_TAG, "value": run_name}],
                    keys=["run_uuid", "key"],
                    update=["value"],
                )
            if values:
                conn.execute(update(q.runs).where(q.runs.c.run_uuid == run_id).values(**values))
            return run_info_from_row(self._run_row(conn, run_id))

        result: RunInfo = self._write(work)
        return result

    def delete_run(self, run_id: str) -> None:
        def work(conn: Connection) -> None:
            row = self._run_row(conn, run_id)
            if row.lifecycle_stage == "deleted":
                return  # keep the deletion time: it says whether it went with its experiment
            conn.execute(
                update(q.runs)
                .where(q.runs.c.run_uuid == run_id)
                .values(lifecycle_stage="deleted", deleted_time=_now_ms())
            )

        self._write(work)

    def restore_run(self, run_id: str) -> None:
        def work(conn: Connection) -> None:
            row = self._run_row(conn, run_id)
            stage = conn.execute(
                select(q.experiments.c.lifecycle_stage).where(
                    q.experiments.c.experiment_id == row.experiment_id
                )
            ).scalar()
            if stage != "active":
                raise InvalidParameterValue(
                    f"Cannot restore run {run_id}: its experiment {row.experiment_id} is deleted;"
                    " restore the experiment first."
                )
            conn.execute(
                update(q.runs)
                .where(q.runs.c.run_uuid == run_id)
                .values(lifecycle_stage="active", deleted_time=None)
            )

        self._write(work)

    # -- logging ---------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        v.validate_batch(metrics, params, tags)
        if not (metrics or params or tags):
            with self._read() as conn:
                self._active_run_row(conn, run_id)
            return

        def work(conn: Connection) -> None:
            self._active_run_row(conn, run_id)
            if params:
                writes.log_params(conn, run_id, params)
            if tags:
                writes.set_tags(conn, run_id, tags)
            if metrics:
                writes.log_metrics(conn, run_id, metrics)

        self._write(work)

    def delete_tag(self, run_id: str, key: str) -> None:
        def work(conn: Connection) -> None:
            self._active_run_row(conn, run_id)
            done = conn.execute(
                delete(q.tags).where(q.tags.c.run_uuid == run_id, q.tags.c.key == key)
            )
            if done.rowcount == 0:
                raise ResourceDoesNotExist(f"No tag with name: {key} in run with id {run_id}")

        self._write(work)

    def log_inputs(self, run_id: str, datasets_: Sequence[DatasetInput]) -> None:
        writes.validate_dataset_inputs(datasets_)
        if not datasets_:
            return

        def work(conn: Connection) -> None:
            row = self._active_run_row(conn, run_id)
            for item in datasets_:
                ds = item.dataset
                found = conn.execute(
                    select(q.datasets.c.dataset_uuid).where(
                        q.datasets.c.experiment_id == row.experiment_id,
                        q.datasets.c.name == ds.name,
                        q.datasets.c.digest == ds.digest,
                    )
                ).scalar()
                if found is None:
                    found = uuid.uuid4().hex
                    conn.execute(
                        insert(q.datasets).values(
                            dataset_uuid=found,
                            experiment_id=row.experiment_id,
                            name=ds.name,
                            digest=ds.digest,
                            source_type=ds.source_type,
                            source=ds.source,
                            schema=ds.schema,
                            profile=ds.profile,
                        )
                    )
                upsert(
                    conn,
                    q.dataset_inputs,
                    [{"run_uuid": run_id, "dataset_uuid": found}],
                    keys=["run_uuid", "dataset_uuid"],
                )
                upsert(
                    conn,
                    q.input_tags,
                    [
                        {"run_uuid": run_id, "dataset_uuid": found, "key": t.key, "value": t.value}
                        for t in item.tags
                    ],
                    keys=["run_uuid", "dataset_uuid", "key"],
                    update=["value"],
                )

        self._write(work)

    # -- metric history --------------------------------------------------------------------

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        offset = search.decode_page_token(page_token)
        if max_results is not None:
            v.validate_max_results(max_results, 10**9)
        query = (
            select(q.metrics.c.value, q.metrics.c.is_nan, q.metrics.c.timestamp, q.metrics.c.step)
            .where(q.metrics.c.run_uuid == run_id, q.metrics.c.key == metric_key)
            .order_by(q.metrics.c.step, q.metrics.c.timestamp, q.metrics.c.id)
            .offset(offset)
        )
        if max_results is not None:
            query = query.limit(max_results + 1)
        with self._read() as conn:
            self._run_row(conn, run_id)
            rows = raw_rows(conn, query)
        more = max_results is not None and len(rows) > max_results
        rows = rows[:max_results] if max_results is not None else rows
        nan = math.nan
        # Positional unpacking: reading row fields by name costs as much as the query.
        page = [
            Metric(metric_key, nan if is_nan else value, timestamp, step)
            for value, is_nan, timestamp, step in rows
        ]
        token = search.encode_page_token(offset + len(rows)) if more else None
        return PagedList(page, token)

    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        metric_key: str,
        max_results: int,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[MetricWithRunId]:
        run_ids = list(dict.fromkeys(run_ids))
        if not run_ids:
            raise InvalidParameterValue(
                "GetMetricHistoryBulkInterval request must specify at least one run_id."
            )
        if len(run_ids) > v.MAX_HISTORY_BULK_RUNS:
            raise InvalidParameterValue(
                f"GetMetricHistoryBulkInterval request cannot specify more than "
                f"{v.MAX_HISTORY_BULK_RUNS} run_ids. Received {len(run_ids)} run_ids."
            )
        v.validate_max_results(max_results, v.MAX_HISTORY_INTERVAL_RESULTS)
        if (start_step is None) != (end_step is None):
            raise InvalidParameterValue(
                "If either start step or end step are specified, both must be specified."
            )
        if start_step is not None and end_step is not None and start_step > end_step:
            raise InvalidParameterValue(
                "end_step must be greater than start_step. Found "
                f"start_step={start_step} and end_step={end_step}."
            )
        out: list[MetricWithRunId] = []
        with self._read() as conn:
            for run_id in run_ids:
                out.extend(
                    sampled_history(conn, run_id, metric_key, max_results, start_step, end_step)
                )
        return out

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
        query, offset = self._run_page_query(
            experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
        )
        if query is None:
            return PagedList([], None)
        with self._read() as conn:
            ids = list(conn.execute(query).scalars())
            page = load_runs(conn, ids[:max_results])
        token = search.encode_page_token(offset + max_results) if len(ids) > max_results else None
        return PagedList(page, token)

    def search_runs_for_table(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None,
        run_view_type: ViewType,
        max_results: int,
        order_by: Sequence[str] | None,
        page_token: str | None,
        pick_metrics: Callable[[list[str]], Collection[str]],
    ) -> tuple[PagedList[Run], list[str]]:
        """:meth:`search_runs` for a table that shows a few of many metrics: every metric key
        the page's runs have, and the runs with only the latest metrics that
        ``pick_metrics(keys)`` chooses (a page of 100 runs with 1,000 metrics each would
        otherwise build 100,000 of them)."""
        query, offset = self._run_page_query(
            experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
        )
        if query is None:
            return PagedList([], None), []
        with self._read() as conn:
            ids = list(conn.execute(query).scalars())
            metric_keys = latest_metric_keys(conn, ids[:max_results])
            page = load_runs(conn, ids[:max_results], set(pick_metrics(metric_keys)))
        token = search.encode_page_token(offset + max_results) if len(ids) > max_results else None
        return PagedList(page, token), metric_keys

    def _run_page_query(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None,
        run_view_type: ViewType,
        max_results: int,
        order_by: Sequence[str] | None,
        page_token: str | None,
    ) -> tuple[Select[Any] | None, int]:
        """The query for one page of run ids (one more than ``max_results``, to know whether
        another page follows) and its offset; None when no experiment is named."""
        view_type = ViewType.parse(run_view_type)
        v.validate_max_results(max_results, v.MAX_SEARCH_RESULTS)
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        keys = [_experiment_key(e) for e in experiment_ids]
        clauses = search.parse_run_filter(filter_string)
        orders = search.parse_order_by(list(order_by or []))
        offset = search.decode_page_token(page_token)
        if not keys:
            return None, offset
        query = select(q.runs.c.run_uuid).where(
            q.runs.c.experiment_id.in_(keys),
            q.runs.c.lifecycle_stage.in_([str(s) for s in view_type.stages()]),
            *[run_filter_clause(c) for c in clauses],
        )
        return apply_run_order(query, orders).offset(offset).limit(max_results + 1), offset


# ---------------------------------------------------------------------------------------------
# Helpers that run inside a write transaction


def _experiment_key(experiment_id: object) -> int:
    """The integer key of an experiment id; an id no row can have is simply not found."""
    text = v.validate_experiment_id(experiment_id)
    if not text.isdigit() or int(text) > _MAX_EXPERIMENT_KEY:
        raise ExperimentNotFound(f"No Experiment with id={experiment_id} exists")
    return int(text)


def _require_active_experiment(row: Any) -> None:
    if row.lifecycle_stage != "active":
        raise InvalidParameterValue(
            f"The experiment {row.experiment_id} must be in the 'active' state. "
            f"Current state is {row.lifecycle_stage}."
        )


__all__ = ["SqlTrackingStore"]
