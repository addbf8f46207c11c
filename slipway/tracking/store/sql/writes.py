"""The write paths of the SQL tracking store: params, tags, metrics (with the latest value per
key) and dataset-input checks. Each runs inside the caller's write transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, tuple_, update

from slipway.entities import DatasetInput, Metric, Param, RunTag
from slipway.exceptions import InvalidParameterValue
from slipway.tracking.store.sql import query as q
from slipway.tracking.store.sql.loading import chunks
from slipway.tracking.store.sql.upsert import upsert
from slipway.utils import validation as v

RUN_NAME_TAG = "mlflow.runName"


def log_params(conn: Connection, run_id: str, items: Sequence[Param]) -> None:
    wanted = {p.key: p.value for p in items}
    existing: dict[str, str] = {}
    for part in chunks(list(wanted)):
        rows = conn.execute(
            select(q.params.c.key, q.params.c.value).where(
                q.params.c.run_uuid == run_id, q.params.c.key.in_(part)
            )
        )
        existing.update({row.key: row.value for row in rows})
    changed = {
        k: (existing[k], val) for k, val in wanted.items() if k in existing and existing[k] != val
    }
    if changed:
        detail = ", ".join(f"{k!r}: old={old!r}, new={new!r}" for k, (old, new) in changed.items())
        raise InvalidParameterValue(
            f"Changing param values is not allowed. Params were already logged for run ID="
            f"'{run_id}' with different values ({detail})."
        )
    upsert(
        conn,
        q.params,
        [
            {"run_uuid": run_id, "key": k, "value": val}
            for k, val in wanted.items()
            if k not in existing
        ],
        keys=["run_uuid", "key"],
    )


def set_tags(conn: Connection, run_id: str, items: Sequence[RunTag]) -> None:
    last = {t.key: t.value for t in items}  # the last value of a key in one batch wins
    upsert(
        conn,
        q.tags,
        [{"run_uuid": run_id, "key": k, "value": val} for k, val in last.items()],
        keys=["run_uuid", "key"],
        update=["value"],
    )
    if RUN_NAME_TAG in last:
        conn.execute(
            update(q.runs)
            .where(q.runs.c.run_uuid == run_id)
            .values(name=last[RUN_NAME_TAG][: v.MAX_RUN_NAME_LENGTH])
        )


_METRIC_COLUMNS = ("run_uuid", "key", "value", "is_nan", "timestamp", "step")
MetricRow = tuple[str, str, float, bool, int, int]


def _metric_row(run_id: str, m: Metric) -> MetricRow:
    value = float(m.value)
    is_nan = value != value  # NaN is the one value unequal to itself
    return (run_id, m.key, 0.0 if is_nan else value, is_nan, int(m.timestamp), int(m.step))


def _insert_metric_rows(conn: Connection, rows: list[MetricRow]) -> None:
    """The hot path of every training loop: one executemany of plain tuples, in the driver's
    own parameter style (three times faster than a Core insert of dicts)."""
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(quote(c) for c in _METRIC_COLUMNS)
    marks = ", ".join([mark] * len(_METRIC_COLUMNS))
    conn.exec_driver_sql(f"INSERT INTO {quote('metrics')} ({columns}) VALUES ({marks})", rows)


def log_metrics(conn: Connection, run_id: str, items: Sequence[Metric]) -> None:
    rows = [_metric_row(run_id, m) for m in items]
    _insert_metric_rows(conn, rows)
    # The latest point per key: greatest (step, timestamp, value), the key the SQL upsert
    # below compares too (a NaN is stored as 0.0), so it never depends on the batching.
    newest: dict[str, MetricRow] = {}
    for row in rows:
        best = newest.get(row[1])
        if best is None or (row[5], row[4], row[2]) > (best[5], best[4], best[2]):
            newest[row[1]] = row
    upsert(
        conn,
        q.latest,
        [dict(zip(_METRIC_COLUMNS, newest[k], strict=True)) for k in sorted(newest)],
        keys=["run_uuid", "key"],
        update=["value", "is_nan", "timestamp", "step"],
        where=_newer_than_latest,
    )


def _newer_than_latest(new: Any) -> ColumnElement[bool]:
    return tuple_(new.step, new.timestamp, new.value) > tuple_(
        q.latest.c.step, q.latest.c.timestamp, q.latest.c.value
    )


def validate_dataset_inputs(items: Sequence[DatasetInput]) -> None:
    if len(items) > v.MAX_DATASETS_PER_BATCH:
        raise InvalidParameterValue(
            f"A batch can contain at most {v.MAX_DATASETS_PER_BATCH} dataset inputs, "
            f"got {len(items)}"
        )
    for item in items:
        ds = item.dataset
        for what, value, limit in (
            ("name", ds.name, v.MAX_DATASET_NAME_LENGTH),
            ("digest", ds.digest, v.MAX_DATASET_DIGEST_LENGTH),
            ("source", ds.source, v.MAX_DATASET_SOURCE_LENGTH),
            ("schema", ds.schema or "", v.MAX_DATASET_SCHEMA_LENGTH),
            ("profile", ds.profile or "", v.MAX_DATASET_PROFILE_LENGTH),
        ):
            if not isinstance(value, str):
                raise InvalidParameterValue(f"Dataset {what} must be a string")
            if len(value) > limit:
                raise InvalidParameterValue(
                    f"Dataset {what} is {len(value)} characters long; the limit is {limit}"
                )
        if not ds.name or not ds.digest:
            raise InvalidParameterValue("A dataset needs a name and a digest")
        for tag in item.tags:
            if (
                len(tag.key) > v.MAX_INPUT_TAG_KEY_LENGTH
                or len(tag.value) > v.MAX_INPUT_TAG_VALUE_LENGTH
            ):
                raise InvalidParameterValue(
                    f"Input tag {tag.key[:40]!r} is too long (key limit "
                    f"{v.MAX_INPUT_TAG_KEY_LENGTH}, value limit {v.MAX_INPUT_TAG_VALUE_LENGTH})"
                )
