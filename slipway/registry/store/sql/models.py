"""Registered models: create, rename, update, delete, get, search, tags, latest versions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from slipway.entities import PagedList
from slipway.entities.registry import STAGES, ModelVersion, RegisteredModel
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists
from slipway.registry import validation as v
from slipway.registry.search import (
    parse_model_filter,
    parse_model_order_by,
)
from slipway.registry.store.base import (
    SEARCH_REGISTERED_MODELS_DEFAULT,
    SEARCH_REGISTERED_MODELS_MAX,
)
from slipway.registry.store.sql import query as q
from slipway.registry.store.sql import tables as t
from slipway.registry.store.sql.base import SqlRegistryBase, model_row, now_ms, record
from slipway.registry.store.sql.loading import (
    latest_versions_query,
    load_model,
    load_models,
    load_versions,
)
from slipway.tracking.search import decode_page_token, encode_page_token
from slipway.tracking.store.sql.upsert import upsert


def validate_max_results(max_results: object, limit: int) -> int:
    """A positive integer no larger than ``limit``; INVALID_PARAMETER_VALUE naming the limit."""
    if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
        raise InvalidParameterValue(
            f"Invalid value for max_results. It must be a positive integer, but got {max_results}"
        )
    if max_results > limit:
        raise InvalidParameterValue(
            "Invalid value for request parameter max_results. It must be at most "
            f"{limit}, but got value {max_results}"
        )
    return max_results


def _already_exists(name: str) -> ResourceAlreadyExists:
    return ResourceAlreadyExists(f"Registered Model (name={name}) already exists.")


class SqlRegisteredModels(SqlRegistryBase):
    def create_registered_model(
        self,
        name: str,
        tags: Sequence[tuple[str, str]] = (),
        description: str | None = None,
        actor: str | None = None,
    ) -> RegisteredModel:
        v.validate_model_name(name)
        tag_values = v.validate_tags(tags)
        _check_description(description)

        def work(conn: Connection) -> RegisteredModel:
            if conn.execute(
                select(t.registered_models.c.name).where(t.registered_models.c.name == name)
            ).first():
                raise _already_exists(name)
            now = now_ms()
            conn.execute(
                insert(t.registered_models).values(
                    name=name,
                    creation_time=now,
                    last_updated_time=now,
                    description=description,
                    last_version=0,
                )
            )
            if tag_values:
                conn.execute(
                    insert(t.model_tags),
                    [{"name": name, "key": k, "value": val} for k, val in tag_values.items()],
                )
            record(conn, "create_model", name, actor=actor)
            return load_model(conn, name)

        try:
            return self._write(work)
        except IntegrityError as exc:  # the same name raced in from another writer
            raise _already_exists(name) from exc

    def rename_registered_model(
        self, name: str, new_name: str, actor: str | None = None
    ) -> RegisteredModel:
        v.validate_model_name(new_name, field="new_name")

        def work(conn: Connection) -> RegisteredModel:
            model_row(conn, name)
            if new_name == name:
                return load_model(conn, name)
            if conn.execute(
                select(t.registered_models.c.name).where(t.registered_models.c.name == new_name)
            ).first():
                raise _already_exists(new_name)
            now = now_ms()
            # ON UPDATE CASCADE moves versions, tags, aliases, policies, requests, deployments.
            conn.execute(
                update(t.registered_models)
                .where(t.registered_models.c.name == name)
                .values(name=new_name, last_updated_time=now)
            )
            conn.execute(
                update(t.versions)
                .where(t.versions.c.name == new_name)
                .values(last_updated_time=now)
            )
            record(conn, "rename_model", new_name, actor=actor, old_name=name)
            return load_model(conn, new_name)

        try:
            return self._write(work)
        except IntegrityError as exc:
            raise _already_exists(new_name) from exc

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        _check_description(description)

        def work(conn: Connection) -> RegisteredModel:
            model_row(conn, name)
            conn.execute(
                update(t.registered_models)
                .where(t.registered_models.c.name == name)
                .values(description=description, last_updated_time=now_ms())
            )
            return load_model(conn, name)

        return self._write(work)

    def delete_registered_model(self, name: str, actor: str | None = None) -> None:
        def work(conn: Connection) -> None:
            model_row(conn, name)
            # ON DELETE CASCADE removes versions, tags, aliases, policies, requests and
            # deployments; the audit log keeps its rows.
            conn.execute(delete(t.registered_models).where(t.registered_models.c.name == name))
            record(conn, "delete_model", name, actor=actor)

        self._write(work)

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self._read() as conn:
            model_row(conn, name)
            return load_model(conn, name)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_REGISTERED_MODELS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        validate_max_results(max_results, SEARCH_REGISTERED_MODELS_MAX)
        clauses = q.model_filter(parse_model_filter(filter_string))
        orders = parse_model_order_by(order_by)
        offset = decode_page_token(page_token)
        page = q.order_models(select(t.registered_models).where(*clauses), orders)
        page = page.offset(offset).limit(max_results + 1)
        with self._read() as conn:
            found = load_models(conn, page)
        more = len(found) > max_results
        token = encode_page_token(offset + max_results) if more else None
        return PagedList(found[:max_results], token)

    def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        if isinstance(stages, str):
            stages = [stages]
        wanted = {v.validate_stage(s) for s in stages} if stages else set(STAGES)
        with self._read() as conn:
            model_row(conn, name)
            one = select(t.registered_models.c.name).where(t.registered_models.c.name == name)
            latest = load_versions(conn, latest_versions_query(one.subquery()))
        order = {stage: i for i, stage in enumerate(STAGES)}
        return sorted(
            (mv for mv in latest if mv.current_stage in wanted),
            key=lambda mv: order[mv.current_stage],
        )

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        v.validate_tag(key, value)

        def work(conn: Connection) -> None:
            model_row(conn, name)
            upsert(
                conn,
                t.model_tags,
                [{"name": name, "key": key, "value": value}],
                keys=["name", "key"],
                update=["value"],
            )

        self._write(work)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        v.validate_tag_key(key)

        def work(conn: Connection) -> None:
            model_row(conn, name)
            conn.execute(
                delete(t.model_tags).where(t.model_tags.c.name == name, t.model_tags.c.key == key)
            )

        self._write(work)


def _check_description(description: object) -> None:
    if description is not None and not isinstance(description, str):
        raise InvalidParameterValue(
            f"description must be a string, got {type(description).__name__}"
        )
