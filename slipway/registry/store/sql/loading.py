"""Rows to entities, a page at a time: a page query (any ``SELECT`` of whole version or model
rows, filtered, ordered and limited) is run once for its rows and joined, as a subquery, to the
tag, alias and version tables, so a page costs a fixed number of queries whatever its size."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, func, select

from slipway.entities.registry import (
    STAGES,
    ModelVersion,
    ModelVersionStatus,
    RegisteredModel,
    RegisteredModelAlias,
)
from slipway.registry.store.sql import tables as t


def version_entity(row: Row[Any], tags: dict[str, str], aliases: list[str]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=str(row.version),
        creation_timestamp=row.creation_time,
        last_updated_timestamp=row.last_updated_time,
        source=row.source,
        run_id=row.run_id,
        run_link=row.run_link,
        description=row.description,
        user_id=row.user_id,
        current_stage=row.current_stage,
        status=ModelVersionStatus(row.status),
        status_message=row.status_message,
        tags=tags,
        aliases=sorted(aliases),
        model_id=row.model_id,
    )


def load_versions(conn: Connection, page: Select[Any]) -> list[ModelVersion]:
    """The versions that ``page`` (a ``SELECT`` of ``model_versions`` rows) returns, in its
    order, with their tags and aliases."""
    rows = conn.execute(page).all()
    if not rows:
        return []
    sub = page.subquery()
    on_tags = and_(t.version_tags.c.name == sub.c.name, t.version_tags.c.version == sub.c.version)
    tags: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for tag in conn.execute(
        select(
            t.version_tags.c.name,
            t.version_tags.c.version,
            t.version_tags.c.key,
            t.version_tags.c.value,
        ).join(sub, on_tags)
    ):
        tags[(tag.name, tag.version)][tag.key] = tag.value
    on_alias = and_(t.aliases.c.name == sub.c.name, t.aliases.c.version == sub.c.version)
    aliases: dict[tuple[str, int], list[str]] = defaultdict(list)
    for alias in conn.execute(
        select(t.aliases.c.name, t.aliases.c.version, t.aliases.c.alias).join(sub, on_alias)
    ):
        aliases[(alias.name, alias.version)].append(alias.alias)
    return [
        version_entity(r, dict(tags[(r.name, r.version)]), aliases[(r.name, r.version)])
        for r in rows
    ]


def version_query(name: str, version: int) -> Select[Any]:
    return select(t.versions).where(t.versions.c.name == name, t.versions.c.version == version)


def load_version(conn: Connection, name: str, version: int) -> ModelVersion:
    return load_versions(conn, version_query(name, version))[0]


def latest_versions_query(models: Any) -> Select[Any]:
    """The newest version in each stage of each model in ``models`` (a subquery or table with
    a ``name`` column; joined, not ``IN``, since MySQL refuses ``LIMIT`` in ``IN``)."""
    newest = (
        select(
            t.versions.c.name,
            t.versions.c.current_stage,
            func.max(t.versions.c.version).label("version"),
        )
        .join(models, t.versions.c.name == models.c.name)
        .group_by(t.versions.c.name, t.versions.c.current_stage)
        .subquery()
    )
    return select(t.versions).join(
        newest,
        and_(t.versions.c.name == newest.c.name, t.versions.c.version == newest.c.version),
    )


def load_models(conn: Connection, page: Select[Any]) -> list[RegisteredModel]:
    """The registered models that ``page`` (a ``SELECT`` of ``registered_models`` rows)
    returns, in its order, with tags, aliases and the newest version in each stage."""
    rows = conn.execute(page).all()
    if not rows:
        return []
    sub = page.subquery()
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    for tag in conn.execute(
        select(t.model_tags.c.name, t.model_tags.c.key, t.model_tags.c.value).join(
            sub, t.model_tags.c.name == sub.c.name
        )
    ):
        tags[tag.name][tag.key] = tag.value
    aliases: dict[str, list[RegisteredModelAlias]] = defaultdict(list)
    for alias in conn.execute(
        select(t.aliases.c.name, t.aliases.c.alias, t.aliases.c.version)
        .join(sub, t.aliases.c.name == sub.c.name)
        .order_by(t.aliases.c.alias)
    ):
        aliases[alias.name].append(RegisteredModelAlias(alias.alias, str(alias.version)))
    latest: dict[str, list[ModelVersion]] = defaultdict(list)
    order = {stage: i for i, stage in enumerate(STAGES)}
    for mv in load_versions(conn, latest_versions_query(sub)):
        latest[mv.name].append(mv)
    return [
        RegisteredModel(
            name=r.name,
            creation_timestamp=r.creation_time,
            last_updated_timestamp=r.last_updated_time,
            description=r.description,
            latest_versions=sorted(latest[r.name], key=lambda v: order.get(v.current_stage, 9)),
            tags=dict(tags[r.name]),
            aliases=list(aliases[r.name]),
        )
        for r in rows
    ]


def load_model(conn: Connection, name: str) -> RegisteredModel:
    return load_models(conn, select(t.registered_models).where(t.registered_models.c.name == name))[
        0
    ]
