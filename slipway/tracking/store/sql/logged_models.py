"""Logged models on SQL: :class:`SqlLoggedModelMixin`, which :class:`SqlTrackingStore` inherits.

The mixin needs only the store's ``engine``; it reads and writes through the same engine helpers
as the rest of the store (``run_write`` for one write transaction, SQLite writers taking turns).
Searches compile to SQL: every filter on params, tags or metrics is ``model_id IN (subquery)``
over an indexed table, and ordering by a metric uses the model's latest point of that metric.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    String,
    Table,
    case,
    delete,
    false,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast

from slipway.artifacts.paths import join_uri
from slipway.entities import (
    LifecycleStage,
    LoggedModel,
    LoggedModelInput,
    LoggedModelMetric,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    PagedList,
)
from slipway.exceptions import (
    ExperimentNotFound,
    InvalidParameterValue,
    ResourceDoesNotExist,
    RunNotFound,
)
from slipway.tracking.search import Comparison
from slipway.tracking.store import logged_models as lm
from slipway.tracking.store.logged_models import (
    AbstractLoggedModelStore,
    DatasetFilter,
    LoggedModelOrder,
)
from slipway.tracking.store.sql import engine as sql_engine
from slipway.tracking.store.sql import query as q
from slipway.tracking.store.sql.loading import chunks, metric_value
from slipway.tracking.store.sql.models import (
    SqlLoggedModel,
    SqlLoggedModelMetric,
    SqlLoggedModelParam,
    SqlLoggedModelRun,
    SqlLoggedModelTag,
)
from slipway.tracking.store.sql.upsert import upsert
from slipway.utils import validation as v
from slipway.utils.names import generate_run_name

T = TypeVar("T")

models = cast(Table, SqlLoggedModel.__table__)
model_params = cast(Table, SqlLoggedModelParam.__table__)
model_tags = cast(Table, SqlLoggedModelTag.__table__)
model_metrics = cast(Table, SqlLoggedModelMetric.__table__)
model_runs = cast(Table, SqlLoggedModelRun.__table__)

ATTRIBUTE_COLUMNS: dict[str, Any] = {
    "name": models.c.name,
    "model_id": models.c.model_id,
    "experiment_id": models.c.experiment_id,
    "status": models.c.status,
    "source_run_id": models.c.source_run_id,
    "model_type": models.c.model_type,
    "artifact_location": models.c.artifact_location,
    "creation_timestamp": models.c.creation_timestamp,
    "last_updated_timestamp": models.c.last_updated_timestamp,
}
MODELS_FOLDER = "models"
ARTIFACTS_FOLDER = "artifacts"
_OUTPUT = "output"
_INPUT = "input"
_MAX_EXPERIMENT_KEY = 2**31 - 1


def _now_ms() -> int:
    return int(time.time() * 1000)


def new_model_id() -> str:
    """``m-`` and 32 hex digits, the form MLflow's clients expect."""
    return f"m-{uuid.uuid4().hex}"


class SqlLoggedModelMixin(AbstractLoggedModelStore):
    """:class:`AbstractLoggedModelStore` for a SQL store that has an ``engine``."""

    engine: Engine

    # -- plumbing --------------------------------------------------------------------------

    def _models_read(self) -> Connection:
        sql_engine.pid_guard(self.engine)
        return self.engine.connect()

    def _models_write(self, work: Callable[[Connection], T]) -> T:
        sql_engine.pid_guard(self.engine)
        return sql_engine.run_write(self.engine, work)

    # -- models ----------------------------------------------------------------------------

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Sequence[LoggedModelTag] = (),
        params: Sequence[LoggedModelParameter] = (),
        model_type: str | None = None,
    ) -> LoggedModel:
        key = _experiment_key(experiment_id)
        name = lm.validate_logged_model_name(name) if name is not None else generate_run_name()
        model_type = lm.validate_optional_text(
            model_type, "Model type", lm.MAX_LOGGED_MODEL_TYPE_LENGTH
        )
        if source_run_id == "":
            source_run_id = None
        if source_run_id is not None:
            v.validate_run_id(source_run_id)
        tag_values = _tag_values(tags)
        param_values = _param_values(params)
        model_id = new_model_id()

        def work(conn: Connection) -> LoggedModel:
            experiment = conn.execute(
                select(q.experiments).where(q.experiments.c.experiment_id == key)
            ).first()
            if experiment is None:
                raise ExperimentNotFound(f"No Experiment with id={experiment_id} exists")
            if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
                raise InvalidParameterValue(
                    f"The experiment {experiment_id} must be in the 'active' state. "
                    f"Current state is {experiment.lifecycle_stage}."
                )
            if source_run_id is not None:
                _run_row(conn, source_run_id)
            now = _now_ms()
            conn.execute(
                insert(models).values(
                    model_id=model_id,
                    experiment_id=key,
                    name=name,
                    artifact_location=join_uri(
                        experiment.artifact_location, MODELS_FOLDER, model_id, ARTIFACTS_FOLDER
                    ),
                    creation_timestamp=now,
                    last_updated_timestamp=now,
                    status=str(LoggedModelStatus.PENDING),
                    model_type=model_type,
                    source_run_id=source_run_id,
                    lifecycle_stage=str(LifecycleStage.ACTIVE),
                )
            )
            _insert_key_values(conn, model_params, model_id, param_values)
            _insert_key_values(conn, model_tags, model_id, tag_values)
            return load_logged_models(conn, [model_id])[0]

        return self._models_write(work)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        with self._models_read() as conn:
            _model_row(conn, model_id, allow_deleted=allow_deleted)
            return load_logged_models(conn, [model_id])[0]

    def finalize_logged_model(self, model_id: str, status: LoggedModelStatus) -> LoggedModel:
        status = LoggedModelStatus.parse(status)

        def work(conn: Connection) -> LoggedModel:
            _model_row(conn, model_id)
            _touch(conn, model_id, status=str(status))
            return load_logged_models(conn, [model_id])[0]

        return self._models_write(work)

    def delete_logged_model(self, model_id: str) -> None:
        def work(conn: Connection) -> None:
            _model_row(conn, model_id)
            _touch(conn, model_id, lifecycle_stage=str(LifecycleStage.DELETED))

        self._models_write(work)

    def log_logged_model_params(
        self, model_id: str, params: Sequence[LoggedModelParameter]
    ) -> None:
        wanted = _param_values(params)

        def work(conn: Connection) -> None:
            _model_row(conn, model_id)
            if not wanted:
                return
            existing: dict[str, str] = {}
            for part in chunks(list(wanted)):
                rows = conn.execute(
                    select(model_params.c.key, model_params.c.value).where(
                        model_params.c.model_id == model_id, model_params.c.key.in_(part)
                    )
                )
                existing.update({row.key: row.value for row in rows})
            changed = sorted(k for k, val in wanted.items() if existing.get(k, val) != val)
            if changed:
                raise InvalidParameterValue(
                    f"Changing param values is not allowed. Params {changed} were already logged "
                    f"for model {model_id} with different values."
                )
            new = {k: val for k, val in wanted.items() if k not in existing}
            _insert_key_values(conn, model_params, model_id, new, skip_existing=True)
            _touch(conn, model_id)

        self._models_write(work)

    def set_logged_model_tags(self, model_id: str, tags: Sequence[LoggedModelTag]) -> None:
        values = _tag_values(tags)

        def work(conn: Connection) -> None:
            _model_row(conn, model_id)
            if not values:
                return
            upsert(
                conn,
                model_tags,
                [{"model_id": model_id, "key": k, "value": val} for k, val in values.items()],
                keys=["model_id", "key"],
                update=["value"],
            )
            _touch(conn, model_id)

        self._models_write(work)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        def work(conn: Connection) -> None:
            _model_row(conn, model_id)
            done = conn.execute(
                delete(model_tags).where(model_tags.c.model_id == model_id, model_tags.c.key == key)
            )
            if done.rowcount == 0:
                raise ResourceDoesNotExist(
                    f"No tag with key {key!r} found for model with ID {model_id!r}."
                )
            _touch(conn, model_id)

        self._models_write(work)

    # -- search ----------------------------------------------------------------------------

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        datasets: Sequence[Mapping[str, Any] | DatasetFilter] | None = None,
        max_results: int | None = None,
        order_by: Sequence[Mapping[str, Any] | str | LoggedModelOrder] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        experiment_ids = [str(e) for e in experiment_ids]
        if max_results is None:
            max_results = lm.SEARCH_LOGGED_MODELS_MAX_RESULTS_DEFAULT
        v.validate_max_results(max_results, v.MAX_SEARCH_RESULTS)
        comparisons = lm.parse_logged_model_filter(filter_string)
        dataset_filters = lm.parse_dataset_filters(datasets)
        orders = lm.parse_logged_model_order_by(order_by)
        fingerprint = lm.search_fingerprint(experiment_ids, filter_string, dataset_filters, orders)
        offset = lm.decode_search_token(page_token, fingerprint)
        keys = [_experiment_key(e, strict=False) for e in experiment_ids]
        keys = [k for k in keys if k is not None]
        if not keys:
            return PagedList([], None)
        query = select(models.c.model_id).where(
            models.c.experiment_id.in_(keys),
            models.c.lifecycle_stage == str(LifecycleStage.ACTIVE),
            *_filter_clauses(comparisons, dataset_filters),
        )
        query = _apply_order(query, orders).offset(offset).limit(max_results + 1)
        with self._models_read() as conn:
            ids = list(conn.execute(query).scalars())
            page = load_logged_models(conn, ids[:max_results])
        token = (
            lm.encode_search_token(offset + max_results, fingerprint)
            if len(ids) > max_results
            else None
        )
        return PagedList(page, token)

    # -- metrics and run links ------------------------------------------------------------

    def log_logged_model_metrics(self, run_id: str, metrics: Sequence[LoggedModelMetric]) -> None:
        if len(metrics) > v.MAX_METRICS_PER_BATCH:
            raise InvalidParameterValue(
                f"A batch can contain at most {v.MAX_METRICS_PER_BATCH} metrics, got {len(metrics)}"
            )
        rows = {}
        for m in metrics:
            row = _metric_row(run_id, m)
            point = (row["model_id"], row["key"], row["timestamp"], row["step"])
            rows[(*point, row["dataset_digest"])] = row
        if not rows:
            return

        def work(conn: Connection) -> None:
            _active_run_row(conn, run_id)
            _require_models(conn, {row["model_id"] for row in rows.values()})
            upsert(
                conn,
                model_metrics,
                list(rows.values()),
                keys=["model_id", "key", "timestamp", "step", "run_uuid", "dataset_digest"],
            )

        self._models_write(work)

    def log_outputs(self, run_id: str, models_: Sequence[LoggedModelOutput]) -> None:
        links = [(_model_id_of(m.model_id), _step_of(m.step)) for m in models_]
        self._link(run_id, _OUTPUT, links)

    def log_model_inputs(self, run_id: str, models_: Sequence[LoggedModelInput]) -> None:
        self._link(run_id, _INPUT, [(_model_id_of(m.model_id), 0) for m in models_])

    def _link(self, run_id: str, direction: str, links: list[tuple[str, int]]) -> None:
        def work(conn: Connection) -> None:
            _active_run_row(conn, run_id)
            if not links:
                return
            _require_models(conn, {model_id for model_id, _ in links})
            now = _now_ms()
            upsert(
                conn,
                model_runs,
                [
                    {
                        "run_uuid": run_id,
                        "model_id": model_id,
                        "direction": direction,
                        "step": step,
                        "timestamp": now,
                    }
                    for model_id, step in dict.fromkeys(links)
                ],
                keys=["run_uuid", "model_id", "direction", "step"],
            )

        self._models_write(work)

    def get_model_outputs(self, run_id: str) -> list[LoggedModelOutput]:
        rows = self._links(run_id, _OUTPUT)
        return [LoggedModelOutput(row.model_id, row.step) for row in rows]

    def get_model_inputs(self, run_id: str) -> list[LoggedModelInput]:
        rows = self._links(run_id, _INPUT)
        return [LoggedModelInput(model_id) for model_id in dict.fromkeys(r.model_id for r in rows)]

    def _links(self, run_id: str, direction: str) -> list[Row[Any, Any]]:
        with self._models_read() as conn:
            _run_row(conn, run_id)
            return list(
                conn.execute(
                    select(model_runs.c.model_id, model_runs.c.step)
                    .where(model_runs.c.run_uuid == run_id, model_runs.c.direction == direction)
                    .order_by(model_runs.c.timestamp, model_runs.c.model_id, model_runs.c.step)
                ).all()
            )


# ---------------------------------------------------------------------------------------------
# Loading


def load_logged_models(conn: Connection, model_ids: Sequence[str]) -> list[LoggedModel]:
    """Full models (info, params, tags, metric points) in the order of ``model_ids``."""
    found: dict[str, LoggedModel] = {}
    for part in chunks(model_ids):
        for row in conn.execute(select(models).where(models.c.model_id.in_(part))):
            found[row.model_id] = LoggedModel(
                model_id=row.model_id,
                experiment_id=str(row.experiment_id),
                name=row.name,
                artifact_location=row.artifact_location,
                creation_timestamp=row.creation_timestamp,
                last_updated_timestamp=row.last_updated_timestamp,
                status=LoggedModelStatus(row.status),
                model_type=row.model_type,
                source_run_id=row.source_run_id,
                status_message=row.status_message,
                lifecycle_stage=LifecycleStage(row.lifecycle_stage),
            )
        for table, attr in ((model_params, "params"), (model_tags, "tags")):
            query = select(table.c.model_id, table.c.key, table.c.value)
            for row in conn.execute(query.where(table.c.model_id.in_(part)).order_by(table.c.key)):
                getattr(found[row.model_id], attr)[row.key] = row.value
        for row in conn.execute(
            select(model_metrics)
            .where(model_metrics.c.model_id.in_(part))
            .order_by(
                model_metrics.c.key,
                model_metrics.c.step,
                model_metrics.c.timestamp,
                model_metrics.c.id,
            )
        ):
            found[row.model_id].metrics.append(
                LoggedModelMetric(
                    model_id=row.model_id,
                    key=row.key,
                    value=metric_value(row.value, row.is_nan),
                    timestamp=row.timestamp,
                    step=row.step,
                    run_id=row.run_uuid or None,
                    dataset_name=row.dataset_name,
                    dataset_digest=row.dataset_digest or None,
                )
            )
    return [found[model_id] for model_id in model_ids if model_id in found]


# ---------------------------------------------------------------------------------------------
# Helpers that run inside a transaction


def _experiment_key(experiment_id: object, strict: bool = True) -> Any:
    """The integer key of an experiment id; an id no row can have is not found (or, with
    ``strict=False``, None)."""
    text = v.validate_experiment_id(experiment_id)
    if not text.isdigit() or int(text) > _MAX_EXPERIMENT_KEY:
        if not strict:
            return None
        raise ExperimentNotFound(f"No Experiment with id={experiment_id} exists")
    return int(text)


def _run_row(conn: Connection, run_id: str) -> Any:
    row = conn.execute(select(q.runs).where(q.runs.c.run_uuid == run_id)).first()
    if row is None:
        raise RunNotFound(f"Run with id={run_id} not found")
    return row


def _active_run_row(conn: Connection, run_id: str) -> Any:
    if not isinstance(run_id, str) or not run_id:
        raise InvalidParameterValue(f"Invalid run ID: {run_id!r}")
    row = _run_row(conn, run_id)
    if row.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidParameterValue(
            f"The run {run_id} must be in the 'active' state. "
            f"Current state is {row.lifecycle_stage}."
        )
    return row


def _not_found(model_id: object) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")


def _model_row(conn: Connection, model_id: str, allow_deleted: bool = False) -> Any:
    """The model's row; not found when it does not exist or (unless allowed) is deleted."""
    if not isinstance(model_id, str) or not model_id:
        raise InvalidParameterValue(f"Invalid model ID: {model_id!r}")
    row = conn.execute(select(models).where(models.c.model_id == model_id)).first()
    if row is None or (not allow_deleted and row.lifecycle_stage != LifecycleStage.ACTIVE):
        raise _not_found(model_id)
    return row


def _require_models(conn: Connection, model_ids: set[str]) -> None:
    found: set[str] = set()
    for part in chunks(sorted(model_ids)):
        found.update(
            conn.execute(
                select(models.c.model_id).where(
                    models.c.model_id.in_(part),
                    models.c.lifecycle_stage == str(LifecycleStage.ACTIVE),
                )
            ).scalars()
        )
    missing = sorted(model_ids - found)
    if missing:
        raise _not_found(missing[0])


def _touch(conn: Connection, model_id: str, **values: Any) -> None:
    conn.execute(
        update(models)
        .where(models.c.model_id == model_id)
        .values(last_updated_timestamp=_now_ms(), **values)
    )


def _insert_key_values(
    conn: Connection,
    table: Table,
    model_id: str,
    values: Mapping[str, str],
    skip_existing: bool = False,
) -> None:
    rows = [{"model_id": model_id, "key": k, "value": val} for k, val in values.items()]
    if not rows:
        return
    if skip_existing:  # a concurrent writer may have added the same key meanwhile
        upsert(conn, table, rows, keys=["model_id", "key"])
    else:
        conn.execute(insert(table), rows)


def _tag_values(tags: Sequence[LoggedModelTag]) -> dict[str, str]:
    """Checked tags as a dict; the last value of a repeated key wins."""
    out: dict[str, str] = {}
    for tag in tags:
        v.validate_key(tag.key, "Tag")
        out[tag.key] = lm.validate_value(tag.key, tag.value, "Tag")
    return out


def _param_values(params: Sequence[LoggedModelParameter]) -> dict[str, str]:
    """Checked params as a dict; a key given twice with different values is refused."""
    out: dict[str, str] = {}
    for param in params:
        v.validate_key(param.key, "Param")
        value = lm.validate_value(param.key, param.value, "Param")
        if out.get(param.key, value) != value:
            raise InvalidParameterValue(
                f"Duplicate parameter keys have been submitted: ['{param.key}']. Please ensure "
                "the request contains only one param value per param key."
            )
        out[param.key] = value
    return out


def _model_id_of(model_id: object) -> str:
    if not isinstance(model_id, str) or not model_id:
        raise InvalidParameterValue(f"Invalid model ID: {model_id!r}")
    return model_id


def _step_of(step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or not -(2**63) <= step < 2**63:
        raise InvalidParameterValue(f"Invalid step {step!r}: expected a 64-bit integer")
    return step


def _metric_row(run_id: str, m: LoggedModelMetric) -> dict[str, Any]:
    v.validate_key(m.key, "Metric")
    value = v.coerce_metric_value(m.key, m.value)
    timestamp: object = m.timestamp
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise InvalidParameterValue(
            f"Got invalid timestamp {timestamp!r} for metric '{m.key}': it must be a "
            "non-negative 64-bit integer"
        )
    if m.dataset_name is not None and len(m.dataset_name) > v.MAX_DATASET_NAME_LENGTH:
        raise InvalidParameterValue(f"Dataset name of metric '{m.key}' is too long")
    if m.dataset_digest is not None and len(m.dataset_digest) > v.MAX_DATASET_DIGEST_LENGTH:
        raise InvalidParameterValue(f"Dataset digest of metric '{m.key}' is too long")
    if m.run_id and m.run_id != run_id:
        raise InvalidParameterValue(
            f"Metric '{m.key}' names run {m.run_id!r} but is logged by run {run_id!r}"
        )
    is_nan = math.isnan(value)
    return {
        "model_id": _model_id_of(m.model_id),
        "key": m.key,
        "value": 0.0 if is_nan else value,
        "is_nan": is_nan,
        "timestamp": timestamp,
        "step": _step_of(m.step),
        "run_uuid": run_id,
        "dataset_name": m.dataset_name or None,
        "dataset_digest": m.dataset_digest or "",
    }


# ---------------------------------------------------------------------------------------------
# Compiling searches


def _dataset_clause(datasets: Sequence[DatasetFilter]) -> ColumnElement[bool] | None:
    if not datasets:
        return None
    clauses = []
    for d in datasets:
        clause = model_metrics.c.dataset_name == d.dataset_name
        if d.dataset_digest:
            clause = clause & (model_metrics.c.dataset_digest == d.dataset_digest)
        clauses.append(clause)
    return or_(*clauses)


def _filter_clauses(
    comparisons: Sequence[Comparison], datasets: Sequence[DatasetFilter]
) -> list[ColumnElement[bool]]:
    on_datasets = _dataset_clause(datasets)
    out: list[ColumnElement[bool]] = []
    for cmp in comparisons:
        if cmp.kind == "metric":
            where = [
                model_metrics.c.key == cmp.key,
                model_metrics.c.is_nan == false(),
                q.compare(model_metrics.c.value, cmp.op, cmp.value),
            ]
            if on_datasets is not None:
                where.append(on_datasets)
            out.append(models.c.model_id.in_(select(model_metrics.c.model_id).where(*where)))
        elif cmp.kind in ("param", "tag"):
            table = model_params if cmp.kind == "param" else model_tags
            sub = select(table.c.model_id).where(
                table.c.key == cmp.key, q.compare(table.c.value, cmp.op, cmp.value)
            )
            out.append(models.c.model_id.in_(sub))
        else:
            out.append(_attribute_clause(cmp))
    if on_datasets is not None and not any(c.kind == "metric" for c in comparisons):
        sub = select(model_metrics.c.model_id).where(on_datasets)
        out.append(models.c.model_id.in_(sub))
    return out


def _attribute_clause(cmp: Comparison) -> ColumnElement[bool]:
    column = ATTRIBUTE_COLUMNS[cmp.key]
    value: Any = cmp.value
    if cmp.key in lm.NUMERIC_ATTRIBUTES:
        number = float(cast(float, value))
        # An integral value within 64 bits binds as an integer; anything else as a double,
        # which every database compares with a BIGINT column without overflowing.
        value = int(number) if number.is_integer() and abs(number) < 2**63 else number
    elif cmp.key == "experiment_id":
        if cmp.op in ("LIKE", "ILIKE"):
            column = sql_cast(column, String)
        else:
            try:
                value = tuple(int(x) for x in value) if isinstance(value, tuple) else int(value)
            except ValueError as exc:
                raise InvalidParameterValue(f"Invalid experiment id in filter: {value!r}") from exc
    return q.compare(column, cmp.op, value)


def _apply_order(query: Any, orders: Sequence[LoggedModelOrder]) -> Any:
    """ORDER BY the clauses (missing values last), then newest first, then model id."""
    columns: list[Any] = []
    for ob in orders:
        if ob.kind == "attribute":
            column: Any = ATTRIBUTE_COLUMNS[ob.key]
        else:
            where = [
                model_metrics.c.model_id == models.c.model_id,
                model_metrics.c.key == ob.key,
                model_metrics.c.is_nan == false(),
            ]
            if ob.dataset_name:
                where.append(model_metrics.c.dataset_name == ob.dataset_name)
            if ob.dataset_digest:
                where.append(model_metrics.c.dataset_digest == ob.dataset_digest)
            column = (
                select(model_metrics.c.value)
                .where(*where)
                .order_by(
                    model_metrics.c.timestamp.desc(),
                    model_metrics.c.step.desc(),
                    model_metrics.c.id.desc(),
                )
                .limit(1)
                .correlate(models)
                .scalar_subquery()
            )
        columns.append(case((column.is_(None), 1), else_=0))
        columns.append(column.asc() if ob.ascending else column.desc())
    ordered = {ob.key for ob in orders if ob.kind == "attribute"}
    if "creation_timestamp" not in ordered:
        columns.append(models.c.creation_timestamp.desc())
    if "model_id" not in ordered:
        columns.append(models.c.model_id.asc())
    return query.order_by(*columns)


__all__ = ["SqlLoggedModelMixin", "load_logged_models", "new_model_id"]
