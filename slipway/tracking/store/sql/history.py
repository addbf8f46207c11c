"""Downsampled metric history: what a chart needs, without reading every point."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from slipway.entities import MetricWithRunId
from slipway.tracking.store.sql import query as q
from slipway.tracking.store.sql.loading import chunks, metric_value


def sampled_history(
    conn: Connection,
    run_id: str,
    key: str,
    max_results: int,
    start_step: int | None,
    end_step: int | None,
) -> list[MetricWithRunId]:
    """Points at up to ``max_results`` steps spread evenly over the distinct steps in range,
    always including the first and the last; the distinct steps come from the index."""
    where: list[Any] = [q.metrics.c.run_uuid == run_id, q.metrics.c.key == key]
    if start_step is not None and end_step is not None:
        where.append(q.metrics.c.step.between(start_step, end_step))
    steps = list(
        conn.execute(
            select(q.metrics.c.step).where(*where).distinct().order_by(q.metrics.c.step)
        ).scalars()
    )
    if len(steps) > max_results:
        last = len(steps) - 1
        picks = (
            sorted({round(i * last / (max_results - 1)) for i in range(max_results)})
            if max_results > 1
            else [0]
        )
        steps = [steps[i] for i in picks]
    rows: list[Any] = []
    for part in chunks(steps):
        rows.extend(
            conn.execute(
                select(
                    q.metrics.c.key,
                    q.metrics.c.value,
                    q.metrics.c.is_nan,
                    q.metrics.c.timestamp,
                    q.metrics.c.step,
                )
                .where(
                    q.metrics.c.run_uuid == run_id,
                    q.metrics.c.key == key,
                    q.metrics.c.step.in_(part),
                )
                .order_by(q.metrics.c.step, q.metrics.c.timestamp, q.metrics.c.id)
            ).all()
        )
    if len(rows) > max_results:  # many points per step: thin them the same way
        last = len(rows) - 1
        rows = (
            [rows[round(i * last / (max_results - 1))] for i in range(max_results)]
            if max_results > 1
            else rows[:1]
        )
    return [
        MetricWithRunId(run_id, r.key, metric_value(r.value, r.is_nan), r.timestamp, r.step)
        for r in rows
    ]
