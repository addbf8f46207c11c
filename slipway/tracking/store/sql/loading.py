"""Turn rows into entities, loading many runs or experiments with one query per table."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from slipway.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    LifecycleStage,
    Metric,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
)
from slipway.tracking.store.sql.query import (
    dataset_inputs,
    datasets,
    experiment_tags,
    experiments,
    input_tags,
    latest,
    params,
    runs,
    tags,
)

IN_CHUNK = 900  # stays under every database's limit on bound parameters


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def metric_value(value: float, is_nan: bool) -> float:
    return math.nan if is_nan else float(value)


def run_info_from_row(row: Row[Any]) -> RunInfo:
    return RunInfo(
        run_id=row.run_uuid,
        experiment_id=str(row.experiment_id),
        run_name=row.name,
        user_id=row.user_id,
        status=RunStatus(row.status),
        start_time=row.start_time,
        end_time=row.end_time,
        artifact_uri=row.artifact_uri,
        lifecycle_stage=LifecycleStage(row.lifecycle_stage),
    )


def load_runs(
    conn: Connection, run_ids: Sequence[str], metric_keys: Collection[str] | None = None
) -> list[Run]:
    """Full runs (info, latest metrics, params, tags, inputs) in the order of ``run_ids``;
    with ``metric_keys``, only those latest metrics (a table of runs that each have a thousand
    metrics shows a few of them)."""
    found: dict[str, Run] = {}
    for part in chunks(run_ids):
        for row in conn.execute(select(runs).where(runs.c.run_uuid.in_(part))):
            found[row.run_uuid] = Run(
                info=run_info_from_row(row), data=RunData(), inputs=RunInputs()
            )
        metrics_query = select(latest).where(latest.c.run_uuid.in_(part))
        if metric_keys is not None:
            metrics_query = metrics_query.where(latest.c.key.in_(list(metric_keys)))
        if metric_keys is None or metric_keys:
            for row in conn.execute(metrics_query.order_by(latest.c.key)):
                found[row.run_uuid].data.metric_records.append(
                    Metric(row.key, metric_value(row.value, row.is_nan), row.timestamp, row.step)
                )
        for table, attr in ((params, "params"), (tags, "tags")):
            query = select(table.c.run_uuid, table.c.key, table.c.value)
            for row in conn.execute(query.where(table.c.run_uuid.in_(part)).order_by(table.c.key)):
                getattr(found[row.run_uuid].data, attr)[row.key] = row.value
        _load_inputs(conn, part, found)
    return [found[run_id] for run_id in run_ids if run_id in found]


def latest_metric_keys(conn: Connection, run_ids: Sequence[str]) -> list[str]:
    """Every metric key that one of ``run_ids`` has logged, sorted."""
    keys: set[str] = set()
    for part in chunks(run_ids):
        keys.update(
            conn.execute(select(latest.c.key).where(latest.c.run_uuid.in_(part)).distinct())
            .scalars()
            .all()
        )
    return sorted(keys)


def _load_inputs(conn: Connection, run_ids: Sequence[str], found: dict[str, Run]) -> None:
    rows = conn.execute(
        select(dataset_inputs.c.run_uuid, datasets)
        .join(datasets, datasets.c.dataset_uuid == dataset_inputs.c.dataset_uuid)
        .where(dataset_inputs.c.run_uuid.in_(run_ids))
        .order_by(datasets.c.name, datasets.c.digest)
    ).all()
    if not rows:
        return
    input_tag_rows: dict[tuple[str, str], list[InputTag]] = defaultdict(list)
    for row in conn.execute(
        select(input_tags).where(input_tags.c.run_uuid.in_(run_ids)).order_by(input_tags.c.key)
    ):
        input_tag_rows[(row.run_uuid, row.dataset_uuid)].append(InputTag(row.key, row.value))
    for row in rows:
        dataset = Dataset(
            row.name, row.digest, row.source_type, row.source, row.schema, row.profile
        )
        tags_ = tuple(input_tag_rows.get((row.run_uuid, row.dataset_uuid), ()))
        found[row.run_uuid].inputs.dataset_inputs.append(DatasetInput(dataset, tags_))


def load_experiments(conn: Connection, experiment_ids: Sequence[int]) -> list[Experiment]:
    found: dict[int, Experiment] = {}
    for part in chunks(experiment_ids):
        for row in conn.execute(select(experiments).where(experiments.c.experiment_id.in_(part))):
            found[row.experiment_id] = Experiment(
                experiment_id=str(row.experiment_id),
                name=row.name,
                artifact_location=row.artifact_location,
                lifecycle_stage=LifecycleStage(row.lifecycle_stage),
                creation_time=row.creation_time,
                last_update_time=row.last_update_time,
            )
        for row in conn.execute(
            select(experiment_tags)
            .where(experiment_tags.c.experiment_id.in_(part))
            .order_by(experiment_tags.c.key)
        ):
            found[row.experiment_id].tags[row.key] = row.value
    return [found[i] for i in experiment_ids if i in found]
