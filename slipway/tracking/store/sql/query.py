"""Compile parsed search filters and order_by clauses to SQL (never by loading runs into Python).

Each comparison on metrics, params, tags or datasets becomes ``run_uuid IN (subquery)`` over an
indexed table, so the database does the filtering; attributes compare columns of ``runs``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    case,
    false,
    literal,
    select,
)
from sqlalchemy.sql.elements import ColumnClause

from slipway.entities import DatasetInput
from slipway.exceptions import InvalidParameterValue
from slipway.tracking.search import Comparison, OrderBy
from slipway.tracking.store.sql.models import (
    SqlDataset,
    SqlDatasetInput,
    SqlExperiment,
    SqlExperimentTag,
    SqlInputTag,
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)

runs = cast(Table, SqlRun.__table__)
latest = cast(Table, SqlLatestMetric.__table__)
metrics = cast(Table, SqlMetric.__table__)
params = cast(Table, SqlParam.__table__)
tags = cast(Table, SqlTag.__table__)
datasets = cast(Table, SqlDataset.__table__)
dataset_inputs = cast(Table, SqlDatasetInput.__table__)
input_tags = cast(Table, SqlInputTag.__table__)
experiments = cast(Table, SqlExperiment.__table__)
experiment_tags = cast(Table, SqlExperimentTag.__table__)

RUN_ATTRIBUTE_COLUMNS: dict[str, Any] = {
    "run_id": runs.c.run_uuid,
    "run_name": runs.c.name,
    "status": runs.c.status,
    "user_id": runs.c.user_id,
    "artifact_uri": runs.c.artifact_uri,
    "experiment_id": runs.c.experiment_id,
    "lifecycle_stage": runs.c.lifecycle_stage,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
}
EXPERIMENT_COLUMNS: dict[str, Any] = {
    "name": experiments.c.name,
    "experiment_id": experiments.c.experiment_id,
    "creation_time": experiments.c.creation_time,
    "last_update_time": experiments.c.last_update_time,
}


def compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    """``column <op> value`` for the operators of the search grammar."""
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == "LIKE":
        return column.like(value, escape="\\")  # type: ignore[no-any-return]
    if op == "ILIKE":
        return column.ilike(value, escape="\\")  # type: ignore[no-any-return]
    if op == "IN":
        return column.in_(value)  # type: ignore[no-any-return]
    if op == "NOT IN":
        return column.not_in(value)  # type: ignore[no-any-return]
    raise InvalidParameterValue(f"Unsupported comparison operator {op!r}")


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def compare_integer(column: Any, op: str, value: float) -> ColumnElement[bool]:
    """``column <op> value`` for an integer column and any number: a fraction is rounded the
    way that keeps the comparison's meaning, and a value beyond 64 bits never reaches the
    database (it compares as all or nothing)."""
    everything = column.is_not(None)
    if value > _INT64_MAX or value < _INT64_MIN:
        above = value > _INT64_MAX
        if op == "!=" or (op in ("<", "<=") and above) or (op in (">", ">=") and not above):
            return everything  # type: ignore[no-any-return]
        return false()
    if op in ("=", "!=") and not float(value).is_integer():
        return everything if op == "!=" else false()
    if op in ("<", ">="):
        return compare(column, op, math.ceil(value))
    if op in (">", "<="):
        return compare(column, op, math.floor(value))
    return compare(column, op, int(value))


def run_filter_clause(cmp: Comparison) -> ColumnElement[bool]:
    if cmp.kind == "metric":
        sub = select(latest.c.run_uuid).where(
            latest.c.key == cmp.key,
            latest.c.is_nan == false(),
            compare(latest.c.value, cmp.op, cmp.value),
        )
        return runs.c.run_uuid.in_(sub)
    if cmp.kind in ("param", "tag"):
        table = params if cmp.kind == "param" else tags
        sub = select(table.c.run_uuid).where(
            table.c.key == cmp.key, compare(table.c.value, cmp.op, cmp.value)
        )
        return runs.c.run_uuid.in_(sub)
    if cmp.kind == "dataset":
        return _dataset_clause(cmp)
    column = RUN_ATTRIBUTE_COLUMNS[cmp.key]
    value: Any = cmp.value
    if cmp.key in ("start_time", "end_time"):
        return compare_integer(column, cmp.op, float(value))
    if cmp.key == "experiment_id":
        value = _experiment_id_values(value)
    return compare(column, cmp.op, value)


def _experiment_id_values(value: Any) -> Any:
    try:
        return tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)
    except ValueError as exc:
        raise InvalidParameterValue(f"Invalid experiment id in filter: {value!r}") from exc


def _dataset_clause(cmp: Comparison) -> ColumnElement[bool]:
    if cmp.key == "context":
        sub = select(input_tags.c.run_uuid).where(
            input_tags.c.key == DatasetInput.CONTEXT_TAG,
            compare(input_tags.c.value, cmp.op, cmp.value),
        )
    else:
        column = datasets.c.name if cmp.key == "name" else datasets.c.digest
        sub = (
            select(dataset_inputs.c.run_uuid)
            .join(datasets, datasets.c.dataset_uuid == dataset_inputs.c.dataset_uuid)
            .where(compare(column, cmp.op, cmp.value))
        )
    return runs.c.run_uuid.in_(sub)


def apply_run_order(query: Select[Any], order_by: Sequence[OrderBy]) -> Select[Any]:
    """ORDER BY the given clauses (missing values last), then start_time DESC, run_id."""
    columns: list[Any] = []
    for i, ob in enumerate(order_by):
        if ob.kind == "attribute":
            column: ColumnClause[Any] | Any = RUN_ATTRIBUTE_COLUMNS[ob.key]
            missing: Any = column.is_(None)
        else:
            table = {"metric": latest, "param": params, "tag": tags}[ob.kind]
            alias = table.alias(f"order_{i}")
            query = query.outerjoin(
                alias, and_(alias.c.run_uuid == runs.c.run_uuid, alias.c.key == ob.key)
            )
            column = alias.c.value
            missing = column.is_(None)
            if ob.kind == "metric":
                missing = missing | (alias.c.is_nan == literal(True))
        columns.append(case((missing, 1), else_=0))
        # Missing values (and NaN) tie among themselves on every backend; the tie-break
        # below orders them.
        value = case((missing, None), else_=column)
        columns.append(value.asc() if ob.ascending else value.desc())
    columns += [runs.c.start_time.desc(), runs.c.run_uuid]
    return query.order_by(*columns)


def experiment_filter_clause(cmp: Comparison) -> ColumnElement[bool]:
    if cmp.kind == "tag":
        sub = select(experiment_tags.c.experiment_id).where(
            experiment_tags.c.key == cmp.key,
            compare(experiment_tags.c.value, cmp.op, cmp.value),
        )
        return experiments.c.experiment_id.in_(sub)
    value: Any = cmp.value
    if cmp.key in ("creation_time", "last_update_time"):
        return compare_integer(EXPERIMENT_COLUMNS[cmp.key], cmp.op, float(value))
    return compare(EXPERIMENT_COLUMNS[cmp.key], cmp.op, value)


def apply_experiment_order(query: Select[Any], order_by: Sequence[OrderBy]) -> Select[Any]:
    columns: list[Any] = []
    for ob in order_by:
        column = EXPERIMENT_COLUMNS[ob.key]
        columns.append(column.asc() if ob.ascending else column.desc())
    if not order_by:
        columns.append(experiments.c.creation_time.desc())
    columns.append(experiments.c.experiment_id.desc())
    return query.order_by(*columns)
