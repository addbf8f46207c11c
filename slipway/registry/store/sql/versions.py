"""Model versions: create (with the source check and a never-reused number), update, delete,
get, search, tags."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, update

from slipway.entities import PagedList
from slipway.entities.registry import ModelVersion, ModelVersionStatus
from slipway.exceptions import InvalidParameterValue, SlipwayError
from slipway.registry import validation as v
from slipway.registry.search import (
    parse_version_filter,
    parse_version_order_by,
)
from slipway.registry.sources import SourceKind, validate_source
from slipway.registry.store.base import SEARCH_MODEL_VERSIONS_DEFAULT, SEARCH_MODEL_VERSIONS_MAX
from slipway.registry.store.sql import query as q
from slipway.registry.store.sql import tables as t
from slipway.registry.store.sql.base import (
    SqlRegistryBase,
    model_row,
    now_ms,
    record,
    touch_model,
    version_row,
)
from slipway.registry.store.sql.loading import load_version, load_versions
from slipway.registry.store.sql.models import validate_max_results
from slipway.registry.store.sql.moves import check_version_unprotected
from slipway.tracking.search import decode_page_token, encode_page_token
from slipway.tracking.store.sql.upsert import upsert
from slipway.utils.user import current_user

MAX_RUN_LINK_LENGTH = 2000


class SqlModelVersions(SqlRegistryBase):
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        run_link: str | None = None,
        description: str | None = None,
        model_id: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        v.validate_model_name(name)
        tag_values = v.validate_tags(tags)
        run_id, model_id = _optional_id(run_id, "run_id"), _optional_id(model_id, "model_id")
        if run_link is not None and len(str(run_link)) > MAX_RUN_LINK_LENGTH:
            raise InvalidParameterValue(
                f"'run_link' exceeds the maximum length of {MAX_RUN_LINK_LENGTH} characters"
            )
        if model_id and not run_id:
            run_id = self._source_run_of(model_id)
        kind = validate_source(source, run_id, model_id, self.tracking)
        if kind is SourceKind.RUNS and not run_id:
            run_id = source.split(":", 1)[1].lstrip("/").split("/", 1)[0]  # for lineage
        storage, source_run = self._storage_location(source, kind)
        run_id = run_id or source_run
        user = actor or current_user()

        def work(conn: Connection) -> ModelVersion:
            model_row(conn, name, lock=True)
            stored_source, location, run = source, storage, run_id
            if location is None:  # models:/<name>/<version>: a version of this registry
                stored_source, location, run = _registered_source(conn, source, run_id)
            now = now_ms()
            # The counter row is updated before it is read: the update takes the row's write
            # lock, so concurrent writers get successive numbers, and none is ever reused.
            conn.execute(
                update(t.registered_models)
                .where(t.registered_models.c.name == name)
                .values(last_version=t.registered_models.c.last_version + 1, last_updated_time=now)
            )
            number = conn.execute(
                select(t.registered_models.c.last_version).where(t.registered_models.c.name == name)
            ).scalar_one()
            conn.execute(
                insert(t.versions).values(
                    name=name,
                    version=number,
                    creation_time=now,
                    last_updated_time=now,
                    description=description,
                    user_id=user,
                    current_stage="None",
                    source=stored_source,
                    storage_location=location,
                    run_id=run,
                    run_link=run_link,
                    status=str(ModelVersionStatus.READY),
                    model_id=model_id,
                )
            )
            if tag_values:
                conn.execute(
                    insert(t.version_tags),
                    [
                        {"name": name, "version": number, "key": k, "value": val}
                        for k, val in tag_values.items()
                    ],
                )
            record(conn, "create_version", name, number, actor=user, source=stored_source)
            return load_version(conn, name, number)

        return self._write(work)

    def _source_run_of(self, model_id: str) -> str | None:
        """The run that produced logged model ``model_id`` (MLflow fills ``run_id`` in so)."""
        try:
            return self.tracking.get_logged_model(model_id).source_run_id
        except SlipwayError:
            return None  # the source check reports an unknown model_id

    def _storage_location(self, source: str, kind: SourceKind) -> tuple[str | None, str | None]:
        """Where the files are, and the run that made them when the source says: a
        ``models:/<model_id>`` source resolves to the logged model's artifacts and run here;
        ``models:/<name>/<version>`` resolves inside the write transaction (None); any other
        source is its own location."""
        if kind is not SourceKind.MODELS:
            return source, None
        body = source.split(":", 1)[1].lstrip("/")
        if "/" in body or "@" in body:
            return None, None
        try:
            model = self.tracking.get_logged_model(body)
        except SlipwayError:
            raise InvalidParameterValue(
                f"Unable to fetch model from model URI source artifact location '{source}': "
                f"no logged model with id '{body}'."
            ) from None
        return model.artifact_location, model.source_run_id

    def update_model_version(
        self, name: str, version: str, description: str | None
    ) -> ModelVersion:
        if description is not None and not isinstance(description, str):
            raise InvalidParameterValue(
                f"description must be a string, got {type(description).__name__}"
            )

        def work(conn: Connection) -> ModelVersion:
            row = version_row(conn, name, version)
            conn.execute(
                update(t.versions)
                .where(t.versions.c.name == name, t.versions.c.version == row.version)
                .values(description=description, last_updated_time=now_ms())
            )
            return load_version(conn, name, row.version)

        return self._write(work)

    def delete_model_version(self, name: str, version: str, actor: str | None = None) -> None:
        def work(conn: Connection) -> None:
            row = version_row(conn, name, version)
            check_version_unprotected(conn, name, row.version, row.current_stage)
            # ON DELETE CASCADE removes its tags and the aliases that point at it.
            conn.execute(
                delete(t.versions).where(
                    t.versions.c.name == name, t.versions.c.version == row.version
                )
            )
            touch_model(conn, name, now_ms())
            record(conn, "delete_version", name, row.version, actor=actor)

        self._write(work)

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        with self._read() as conn:
            row = version_row(conn, name, version)
            return load_version(conn, name, row.version)

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        with self._read() as conn:
            location: str = version_row(conn, name, version).storage_location
            return location

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_MODEL_VERSIONS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        validate_max_results(max_results, SEARCH_MODEL_VERSIONS_MAX)
        clauses = q.version_filter(parse_version_filter(filter_string))
        orders = parse_version_order_by(order_by)
        offset = decode_page_token(page_token)
        page = q.order_versions(select(t.versions).where(*clauses), orders)
        page = page.offset(offset).limit(max_results + 1)
        with self._read() as conn:
            found = load_versions(conn, page)
        more = len(found) > max_results
        token = encode_page_token(offset + max_results) if more else None
        return PagedList(found[:max_results], token)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        v.validate_tag(key, value)

        def work(conn: Connection) -> None:
            row = version_row(conn, name, version)
            upsert(
                conn,
                t.version_tags,
                [{"name": name, "version": row.version, "key": key, "value": value}],
                keys=["name", "version", "key"],
                update=["value"],
            )

        self._write(work)

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        v.validate_tag_key(key)

        def work(conn: Connection) -> None:
            row = version_row(conn, name, version)
            conn.execute(
                delete(t.version_tags).where(
                    t.version_tags.c.name == name,
                    t.version_tags.c.version == row.version,
                    t.version_tags.c.key == key,
                )
            )

        self._write(work)


def _optional_id(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameterValue(f"{field} must be a string, got {type(value).__name__}")
    return value


def _registered_source(
    conn: Connection, source: str, run_id: str | None
) -> tuple[str, str, str | None]:
    """For ``models:/<name>/<version>`` (or ``@alias``, a stage, ``latest``): the source
    pinned to the version it names now, that version's storage location, and its run (which
    a given ``run_id`` must match)."""
    from slipway.registry.store.sql.moves import resolve_models_uri

    row = resolve_models_uri(conn, source)
    if run_id and row.run_id and run_id != row.run_id:
        raise InvalidParameterValue(
            f"Invalid model version source: '{source}'. The run_id request parameter must "
            "match the referenced model version."
        )
    return f"models:/{row.name}/{row.version}", row.storage_location, run_id or row.run_id
