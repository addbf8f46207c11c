"""Registry searches compiled to SQL: the database filters, orders and pages, never Python.

Tag comparisons become ``EXISTS`` / ``IN`` subqueries on the tag tables; prompts (models or
versions tagged ``mlflow.prompt.is_prompt = 'true'``) are left out unless the filter asks for
them, as in MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, select

from slipway.registry.search import IS_PROMPT_TAG, asks_for_prompts
from slipway.registry.store.sql import tables as t
from slipway.tracking.search import Comparison, OrderBy
from slipway.tracking.store.sql.query import compare, compare_integer

_MODEL_ORDER_COLUMNS: dict[str, Any] = {
    "name": t.registered_models.c.name,
    "creation_timestamp": t.registered_models.c.creation_time,
    "last_updated_timestamp": t.registered_models.c.last_updated_time,
}
_VERSION_COLUMNS: dict[str, Any] = {
    "name": t.versions.c.name,
    "run_id": t.versions.c.run_id,
    "source_path": t.versions.c.source,
    "version_number": t.versions.c.version,
    "creation_timestamp": t.versions.c.creation_time,
    "last_updated_timestamp": t.versions.c.last_updated_time,
}
DEFAULT_VERSION_ORDER = (
    OrderBy("attribute", "last_updated_timestamp", ascending=False),
    OrderBy("attribute", "name", ascending=True),
    OrderBy("attribute", "version_number", ascending=False),
)


def _without_prompt_clauses(comparisons: Sequence[Comparison]) -> tuple[list[Comparison], bool]:
    """The comparisons to compile, and whether prompts are wanted. When they are not, clauses
    on the prompt tag are dropped: a model without the tag would fail ``!= 'true'``."""
    prompts = asks_for_prompts(comparisons)
    if prompts:
        return list(comparisons), True
    return [c for c in comparisons if not (c.kind == "tag" and c.key == IS_PROMPT_TAG)], False


def model_filter(comparisons: Sequence[Comparison]) -> list[ColumnElement[bool]]:
    """WHERE clauses over ``registered_models`` for a parsed registered model filter."""
    kept, prompts = _without_prompt_clauses(comparisons)
    name = t.registered_models.c.name
    clauses: list[ColumnElement[bool]] = []
    for cmp in kept:
        if cmp.kind == "tag":
            sub = select(t.model_tags.c.name).where(
                t.model_tags.c.key == cmp.key, compare(t.model_tags.c.value, cmp.op, cmp.value)
            )
            clauses.append(name.in_(sub))
        else:
            clauses.append(compare(name, cmp.op, cmp.value))
    if not prompts:
        flagged = select(t.model_tags.c.name).where(
            t.model_tags.c.key == IS_PROMPT_TAG, t.model_tags.c.value == "true"
        )
        clauses.append(name.not_in(flagged))
    return clauses


def _version_tag(key: str, *condition: ColumnElement[bool]) -> Any:
    return exists(
        select(t.version_tags.c.key).where(
            t.version_tags.c.name == t.versions.c.name,
            t.version_tags.c.version == t.versions.c.version,
            t.version_tags.c.key == key,
            *condition,
        )
    )


def version_filter(comparisons: Sequence[Comparison]) -> list[ColumnElement[bool]]:
    """WHERE clauses over ``model_versions`` for a parsed model version filter."""
    kept, prompts = _without_prompt_clauses(comparisons)
    clauses: list[ColumnElement[bool]] = []
    for cmp in kept:
        if cmp.kind == "tag":
            clauses.append(
                _version_tag(cmp.key, compare(t.version_tags.c.value, cmp.op, cmp.value))
            )
        elif cmp.key == "version_number":
            assert isinstance(cmp.value, float)
            clauses.append(compare_integer(t.versions.c.version, cmp.op, cmp.value))
        else:
            clauses.append(compare(_VERSION_COLUMNS[cmp.key], cmp.op, cmp.value))
    if not prompts:
        clauses.append(~_version_tag(IS_PROMPT_TAG, t.version_tags.c.value == "true"))
    return clauses


def order_models(query: Select[Any], order_by: Sequence[OrderBy]) -> Select[Any]:
    """ORDER BY the given keys, then ``name`` ascending (names are unique: a total order)."""
    columns = [
        _MODEL_ORDER_COLUMNS[o.key].asc() if o.ascending else _MODEL_ORDER_COLUMNS[o.key].desc()
        for o in order_by
    ]
    if not any(o.key == "name" for o in order_by):
        columns.append(t.registered_models.c.name.asc())
    return query.order_by(*columns)


def order_versions(query: Select[Any], order_by: Sequence[OrderBy]) -> Select[Any]:
    """ORDER BY the given keys (MLflow's default: newest update first), then ``name``
    ascending and ``version_number`` descending, unless named already."""
    order_by = list(order_by) or list(DEFAULT_VERSION_ORDER)
    columns = [
        _VERSION_COLUMNS[o.key].asc() if o.ascending else _VERSION_COLUMNS[o.key].desc()
        for o in order_by
    ]
    keys = {o.key for o in order_by}
    if "name" not in keys:
        columns.append(t.versions.c.name.asc())
    if "version_number" not in keys:
        columns.append(t.versions.c.version.desc())
    return query.order_by(*columns)
