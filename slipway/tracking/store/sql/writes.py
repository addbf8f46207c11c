"""The write paths of the SQL tracking store: params, tags, metrics (with the latest value per
key) and dataset-input checks. Each runs inside the caller's write transaction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, tuple_, update

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


def _metric_row(run_id: str, m: Metric) -> dict[str, Any]:
    value = float(m.value)
    is_nan = math.isnan(value)
    return {
        "run_uuid": run_id,
        "key": m.key,
        "value": 0.0 if is_nan else value,
        "is_nan": is_nan,
        "timestamp": int(m.timestamp),
        "step": int(m.step),
    }


def _latest_order(row: dict[str, Any]) -> tuple[int, int, float]:
    """The same key as the SQL upsert compares (a NaN is stored as 0.0), so the latest value
    never depends on how points were batched."""
    return (row["step"], row["timestamp"], row["value"])


def log_metrics(conn: Connection, run_id: str, items: Sequence[Metric]) -> None:
    rows = [_metric_row(run_id, m) for m in items]
    conn.execute(insert(q.metrics), rows)
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        best = newest.get(row["key"])
        if best is None or _latest_order(row) > _latest_order(best):
            newest[row["key"]] = row
    upsert(
        conn,
        q.latest,
        [newest[k] for k in sorted(newest)],
        keys=["run_uuid", "key"],
        update=["value", "is_nan", "timestamp", "step"],
        where=lambda new: (
            tuple_(new.step, new.timestamp, new.value)
            > tuple_(q.latest.c.step, q.latest.c.timestamp, q.latest.c.value)
        ),
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
