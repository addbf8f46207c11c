"""Downsampled metric history: what a chart needs, without reading every point."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, func, select

from slipway.entities import MetricWithRunId
from slipway.tracking.store.sql import query as q
from slipway.tracking.store.sql.loading import chunks, metric_value


def raw_rows(conn: Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
    """All rows of ``query`` as the driver's plain tuples: for reads of many thousands of
    points, building result rows costs as much as the query itself. (Booleans come back as the
    driver gives them, 0/1 on SQLite.)"""
    result = conn.execute(query)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _spread(count: int, wanted: int) -> list[int]:
    """``wanted`` indexes spread evenly over ``range(count)``, the first and last included."""
    if count <= wanted:
        return list(range(count))
    if wanted == 1:
        return [0]
    last = count - 1
    return sorted({round(i * last / (wanted - 1)) for i in range(wanted)})


def _sampled_steps(conn: Connection, where: list[Any], max_results: int) -> list[int]:
    """The steps to read. A training loop logs every step from first to last, so when the
    distinct steps are contiguous the picks follow from MIN and MAX (read off the index) without
    fetching every step into Python."""
    step = q.metrics.c.step
    low, high, count = conn.execute(
        select(func.min(step), func.max(step), func.count()).where(*where)
    ).one()
    if not count:
        return []
    if count == high - low + 1:  # one point per step, none missing: no need to read them
        return [low + i for i in _spread(count, max_results)]
    steps = [row[0] for row in conn.execute(select(step).where(*where).distinct().order_by(step))]
    return [steps[i] for i in _spread(len(steps), max_results)]


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
    steps = _sampled_steps(conn, where, max_results)
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
        rows = [rows[i] for i in _spread(len(rows), max_results)]
    return [
        MetricWithRunId(run_id, r.key, metric_value(r.value, r.is_nan), r.timestamp, r.step)
        for r in rows
    ]
