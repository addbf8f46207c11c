"""Aliases and stages: the two ways a version is promoted, and what approval policies guard.

:func:`apply_alias` and :func:`apply_stage` make the move inside a caller's transaction; the
public methods check the policy first, and approving a request calls them directly (the
approval is the permission).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, func, select, update

from slipway.entities.registry import ModelVersion, TransitionTarget
from slipway.exceptions import (
    InvalidParameterValue,
    PermissionDenied,
    ResourceDoesNotExist,
    SlipwayError,
)
from slipway.registry import validation as v
from slipway.registry.store.sql import tables as t
from slipway.registry.store.sql.base import (
    SqlRegistryBase,
    model_row,
    now_ms,
    record,
    touch_model,
    version_row,
)
from slipway.registry.store.sql.loading import load_version
from slipway.tracking.store.sql.upsert import upsert


def policy_row(conn: Connection, name: str, kind: TransitionTarget, target: str) -> Row[Any] | None:
    return conn.execute(
        select(t.policies).where(
            t.policies.c.name == name,
            t.policies.c.target_kind == str(kind),
            t.policies.c.target == target,
        )
    ).first()


def check_unprotected(conn: Connection, name: str, kind: TransitionTarget, target: str) -> None:
    """PERMISSION_DENIED when a policy protects ``target`` of model ``name``."""
    if policy_row(conn, name, kind, target) is not None:
        what = f"alias '{target}'" if kind is TransitionTarget.ALIAS else f"stage '{target}'"
        raise PermissionDenied(
            f"Moving {what} of registered model '{name}' requires an approved transition "
            "request; use request_transition"
        )


def check_version_unprotected(conn: Connection, name: str, version: int, stage: str) -> None:
    """PERMISSION_DENIED when taking ``version`` away (deleting it) would move a protected
    alias that points at it, or empty a protected stage it is in."""
    check_unprotected(conn, name, TransitionTarget.STAGE, stage)
    held = conn.execute(
        select(t.aliases.c.alias).where(t.aliases.c.name == name, t.aliases.c.version == version)
    ).scalars()
    for alias in held:
        check_unprotected(conn, name, TransitionTarget.ALIAS, alias)


def apply_alias(
    conn: Connection,
    name: str,
    alias: str,
    version: int,
    actor: str | None,
    request_id: str | None = None,
) -> None:
    """Point ``alias`` at ``version`` (which exists) and record it."""
    previous = conn.execute(
        select(t.aliases.c.version).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
    ).scalar()
    upsert(
        conn,
        t.aliases,
        [{"name": name, "alias": alias, "version": version}],
        keys=["name", "alias"],
        update=["version"],
    )
    record(
        conn,
        "set_alias",
        name,
        version,
        actor=actor,
        alias=alias,
        previous_version=str(previous) if previous is not None else None,
        request_id=request_id,
    )


def apply_stage(
    conn: Connection,
    name: str,
    row: Row[Any],
    stage: str,
    archive_existing_versions: bool,
    actor: str | None,
    request_id: str | None = None,
) -> None:
    """Move version ``row`` to ``stage`` (optionally archiving the others there) and record
    it."""
    now = now_ms()
    archived: list[int] = []
    if archive_existing_versions:
        others = (
            t.versions.c.name == name,
            t.versions.c.version != row.version,
            t.versions.c.current_stage == stage,
        )
        archived = list(conn.execute(select(t.versions.c.version).where(*others)).scalars())
        conn.execute(
            update(t.versions)
            .where(*others)
            .values(current_stage="Archived", last_updated_time=now)
        )
    conn.execute(
        update(t.versions)
        .where(t.versions.c.name == name, t.versions.c.version == row.version)
        .values(current_stage=stage, last_updated_time=now)
    )
    touch_model(conn, name, now)
    record(
        conn,
        "transition_stage",
        name,
        row.version,
        actor=actor,
        stage=stage,
        previous_stage=row.current_stage,
        archived_versions=[str(n) for n in archived] or None,
        request_id=request_id,
    )


def resolve_models_uri(conn: Connection, source: str) -> Row[Any]:
    """The version row that ``models:/<name>/<version|stage|latest>`` or
    ``models:/<name>@<alias>`` names now; INVALID_PARAMETER_VALUE if it names none."""
    body = source.split(":", 1)[1].lstrip("/")
    try:
        if "@" in body:
            name, _, alias = body.partition("@")
            return alias_target(conn, name, alias)
        name, _, ref = body.partition("/")
        if ref.isdigit():
            return version_row(conn, name, ref)
        model_row(conn, name)
        query = select(func.max(t.versions.c.version)).where(t.versions.c.name == name)
        if ref.lower() != "latest":
            query = query.where(t.versions.c.current_stage == v.validate_stage(ref))
        number = conn.execute(query).scalar()
        if number is None:
            raise InvalidParameterValue(f"no version of '{name}' matches '{ref}'")
        return version_row(conn, name, number)
    except SlipwayError as exc:
        raise InvalidParameterValue(
            f"Unable to fetch model from model URI source artifact location '{source}'. "
            f"Error: {exc.message}"
        ) from None


def alias_target(conn: Connection, name: str, alias: str) -> Row[Any]:
    """The version row ``alias`` points at (``latest``: the highest version)."""
    v.validate_alias(alias)
    model_row(conn, name)
    if alias.lower() == "latest":
        number = conn.execute(
            select(func.max(t.versions.c.version)).where(t.versions.c.name == name)
        ).scalar()
        if number is None:
            raise ResourceDoesNotExist(f"Latest version not found for model {name}.")
        return version_row(conn, name, number)
    number = conn.execute(
        select(t.aliases.c.version).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
    ).scalar()
    if number is None:
        raise InvalidParameterValue(f"Registered model alias {alias} not found.")
    return version_row(conn, name, number)


class SqlModelMoves(SqlRegistryBase):
    def set_registered_model_alias(
        self, name: str, alias: str, version: str, actor: str | None = None
    ) -> None:
        v.validate_model_name(name)
        v.validate_settable_alias(alias)

        def work(conn: Connection) -> None:
            row = version_row(conn, name, version)
            check_unprotected(conn, name, TransitionTarget.ALIAS, alias)
            apply_alias(conn, name, alias, row.version, actor)

        self._write(work)

    def delete_registered_model_alias(
        self, name: str, alias: str, actor: str | None = None
    ) -> None:
        v.validate_model_name(name)
        v.validate_alias(alias)

        def work(conn: Connection) -> None:
            model_row(conn, name)
            check_unprotected(conn, name, TransitionTarget.ALIAS, alias)
            previous = conn.execute(
                select(t.aliases.c.version).where(
                    t.aliases.c.name == name, t.aliases.c.alias == alias
                )
            ).scalar()
            if previous is None:
                return  # as in MLflow: deleting an alias that is not there is not an error
            conn.execute(
                delete(t.aliases).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
            )
            record(conn, "delete_alias", name, previous, actor=actor, alias=alias)

        self._write(work)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        with self._read() as conn:
            row = alias_target(conn, name, alias)
            return load_version(conn, name, row.version)

    def transition_model_version_stage(
        self,
        name: str,
        version: str,
        stage: str,
        archive_existing_versions: bool = False,
        actor: str | None = None,
    ) -> ModelVersion:
        canonical = v.validate_stage(stage)
        v.validate_archive(canonical, archive_existing_versions)

        def work(conn: Connection) -> ModelVersion:
            row = version_row(conn, name, version)
            check_unprotected(conn, name, TransitionTarget.STAGE, canonical)
            if row.current_stage != canonical:  # leaving a protected stage moves it too
                check_unprotected(conn, name, TransitionTarget.STAGE, row.current_stage)
            apply_stage(conn, name, row, canonical, archive_existing_versions, actor)
            return load_version(conn, name, row.version)

        return self._write(work)
