"""MLflow REST API 2.0: the model registry (``registered-models/*`` and ``model-versions/*``).

======  =============================================  ==========================================
method  path (under the API prefixes)                  answer
======  =============================================  ==========================================
POST    ``/registered-models/create``                  ``{"registered_model"}``
POST    ``/registered-models/rename``                  ``{"registered_model"}``
PATCH   ``/registered-models/update``                  ``{"registered_model"}``
DELETE  ``/registered-models/delete``                  ``{}``
GET     ``/registered-models/get``                     ``{"registered_model"}``
GET     ``/registered-models/search``                  ``{"registered_models", "next_page_token"}``
POST    ``/registered-models/get-latest-versions``     ``{"model_versions"}`` (GET too)
POST    ``/registered-models/set-tag``                 ``{}``
DELETE  ``/registered-models/delete-tag``              ``{}``
POST    ``/registered-models/alias``                   ``{}`` (set, or move, an alias)
DELETE  ``/registered-models/alias``                   ``{}``
GET     ``/registered-models/alias``                   ``{"model_version"}``
POST    ``/model-versions/create``                     ``{"model_version"}``
PATCH   ``/model-versions/update``                     ``{"model_version"}``
POST    ``/model-versions/transition-stage``           ``{"model_version"}``
DELETE  ``/model-versions/delete``                     ``{}``
GET     ``/model-versions/get``                        ``{"model_version"}``
GET     ``/model-versions/search``                     ``{"model_versions", "next_page_token"}``
GET     ``/model-versions/get-download-uri``           ``{"artifact_uri"}``
POST    ``/model-versions/set-tag``                    ``{}``
DELETE  ``/model-versions/delete-tag``                 ``{}``
======  =============================================  ==========================================

Methods, field names and answers are MLflow's, so ``mlflow.MlflowClient`` works unchanged. The
changes the audit log records (creates, renames, deletes, alias and stage moves) name their actor
(:func:`~slipway.server.actor.request_actor`), which the store's approval rules also check. A
version's files are served by ``/model-versions/get-artifact`` (see
:mod:`slipway.server.routers.artifacts`).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.exceptions import NotImplementedFeature
from slipway.registry.store.base import (
    SEARCH_MODEL_VERSIONS_DEFAULT,
    SEARCH_MODEL_VERSIONS_MAX,
    SEARCH_REGISTERED_MODELS_DEFAULT,
    SEARCH_REGISTERED_MODELS_MAX,
)
from slipway.server import protocol as p
from slipway.server.actor import request_actor
from slipway.server.context import ServerContext
from slipway.server.registry_json import model_version_json, registered_model_json

CREATE_MODEL = frozenset({"name", "tags", "description", "deployment_job_id"})
RENAME_MODEL = frozenset({"name", "new_name"})
UPDATE_MODEL = frozenset({"name", "description", "deployment_job_id"})
BY_NAME = frozenset({"name"})
SEARCH = frozenset({"filter", "max_results", "order_by", "page_token"})
LATEST = frozenset({"name", "stages"})
SET_MODEL_TAG = frozenset({"name", "key", "value"})
DELETE_MODEL_TAG = frozenset({"name", "key"})
SET_ALIAS = frozenset({"name", "alias", "version"})
BY_ALIAS = frozenset({"name", "alias"})
CREATE_VERSION = frozenset(
    {"name", "source", "run_id", "tags", "run_link", "description", "model_id"}
)
UPDATE_VERSION = frozenset({"name", "version", "description"})
TRANSITION = frozenset({"name", "version", "stage", "archive_existing_versions"})
BY_VERSION = frozenset({"name", "version"})
SET_VERSION_TAG = frozenset({"name", "version", "key", "value"})
DELETE_VERSION_TAG = frozenset({"name", "version", "key"})


def version_of(fields: p.Fields, name: str = "version") -> str:
    """A required version number, sent as a string (as MLflow's proto has it) or a number.
    Whether it is an integer is the store's to say, with MLflow's message."""
    value = fields.value(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(fields.string(name, required=True))


def max_results_of(fields: p.Fields, default: int, limit: int) -> int:
    value: int = fields.integer("max_results", default=default)
    if value > limit:
        raise p.invalid("max_results", value, f"at most {limit}")
    return value


def _no_deployment_job(fields: p.Fields) -> None:
    if fields.string("deployment_job_id"):
        raise NotImplementedFeature("Deployment jobs are not offered by this server")


def model_routes(ctx: ServerContext) -> list[BaseRoute]:
    """The ``registered-models/*`` routes."""
    store = ctx.registry_store

    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, CREATE_MODEL)
        name = f.string("name", required=True)
        _no_deployment_job(f)
        tags = p.key_values(f, "tags")
        description = f.string("description")
        actor = request_actor(request)
        model = await run_in_threadpool(
            store.create_registered_model, name, tags, description, actor
        )
        return p.json_response({"registered_model": registered_model_json(model)})

    async def rename(request: Request) -> Response:
        f = await p.Fields.read(request, RENAME_MODEL)
        name = f.string("name", required=True)
        new_name = f.string("new_name", required=True)
        actor = request_actor(request)
        model = await run_in_threadpool(store.rename_registered_model, name, new_name, actor)
        return p.json_response({"registered_model": registered_model_json(model)})

    async def update(request: Request) -> Response:
        f = await p.Fields.read(request, UPDATE_MODEL)
        name = f.string("name", required=True)
        _no_deployment_job(f)
        model = await run_in_threadpool(
            store.update_registered_model, name, f.string("description")
        )
        return p.json_response({"registered_model": registered_model_json(model)})

    async def delete(request: Request) -> Response:
        f = await p.Fields.read(request, BY_NAME)
        name = f.string("name", required=True)
        await run_in_threadpool(store.delete_registered_model, name, request_actor(request))
        return p.empty_response()

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, BY_NAME)
        model = await run_in_threadpool(store.get_registered_model, f.string("name", required=True))
        return p.json_response({"registered_model": registered_model_json(model)})

    async def search(request: Request) -> Response:
        f = await p.Fields.read(request, SEARCH)
        max_results = max_results_of(
            f, SEARCH_REGISTERED_MODELS_DEFAULT, SEARCH_REGISTERED_MODELS_MAX
        )
        page = await run_in_threadpool(
            store.search_registered_models,
            f.string("filter") or None,
            max_results,
            f.strings("order_by"),
            f.string("page_token") or None,
        )
        items = [registered_model_json(m) for m in page]
        return p.json_response(p.page_json("registered_models", items, page.token))

    async def latest_versions(request: Request) -> Response:
        f = await p.Fields.read(request, LATEST)
        name = f.string("name", required=True)
        versions = await run_in_threadpool(store.get_latest_versions, name, f.strings("stages"))
        items = [model_version_json(v) for v in versions]
        return p.json_response({"model_versions": items} if items else {})

    async def set_tag(request: Request) -> Response:
        f = await p.Fields.read(request, SET_MODEL_TAG)
        name = f.string("name", required=True)
        key = f.string("key", required=True)
        value = f.string("value", default="")
        await run_in_threadpool(store.set_registered_model_tag, name, key, value)
        return p.empty_response()

    async def delete_tag(request: Request) -> Response:
        f = await p.Fields.read(request, DELETE_MODEL_TAG)
        name = f.string("name", required=True)
        key = f.string("key", required=True)
        await run_in_threadpool(store.delete_registered_model_tag, name, key)
        return p.empty_response()

    async def set_alias(request: Request) -> Response:
        f = await p.Fields.read(request, SET_ALIAS)
        name = f.string("name", required=True)
        alias = f.string("alias", required=True)
        version = version_of(f)
        actor = request_actor(request)
        await run_in_threadpool(store.set_registered_model_alias, name, alias, version, actor)
        return p.empty_response()

    async def delete_alias(request: Request) -> Response:
        f = await p.Fields.read(request, BY_ALIAS)
        name = f.string("name", required=True)
        alias = f.string("alias", required=True)
        actor = request_actor(request)
        await run_in_threadpool(store.delete_registered_model_alias, name, alias, actor)
        return p.empty_response()

    async def get_by_alias(request: Request) -> Response:
        f = await p.Fields.read(request, BY_ALIAS)
        name = f.string("name", required=True)
        alias = f.string("alias", required=True)
        version = await run_in_threadpool(store.get_model_version_by_alias, name, alias)
        return p.json_response({"model_version": model_version_json(version)})

    base = "/registered-models"
    return [
        Route(f"{base}/create", create, methods=["POST"]),
        Route(f"{base}/rename", rename, methods=["POST"]),
        Route(f"{base}/update", update, methods=["PATCH"]),
        Route(f"{base}/delete", delete, methods=["DELETE"]),
        Route(f"{base}/get", get, methods=["GET"]),
        Route(f"{base}/search", search, methods=["GET"]),
        Route(f"{base}/get-latest-versions", latest_versions, methods=["POST", "GET"]),
        Route(f"{base}/set-tag", set_tag, methods=["POST"]),
        Route(f"{base}/delete-tag", delete_tag, methods=["DELETE"]),
        Route(f"{base}/alias", set_alias, methods=["POST"]),
        Route(f"{base}/alias", delete_alias, methods=["DELETE"]),
        Route(f"{base}/alias", get_by_alias, methods=["GET"]),
    ]


def version_routes(ctx: ServerContext) -> list[BaseRoute]:
    """The ``model-versions/*`` routes (the version's files are in the artifacts router)."""
    store = ctx.registry_store

    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, CREATE_VERSION)
        name = f.string("name", required=True)
        source = f.string("source", required=True)
        version = await run_in_threadpool(
            store.create_model_version,
            name,
            source,
            f.string("run_id") or None,
            p.key_values(f, "tags"),
            f.string("run_link") or None,
            f.string("description"),
            f.string("model_id") or None,
            request_actor(request),
        )
        return p.json_response({"model_version": model_version_json(version)})

    async def update(request: Request) -> Response:
        f = await p.Fields.read(request, UPDATE_VERSION)
        name = f.string("name", required=True)
        version = version_of(f)
        description = f.string("description")
        updated = await run_in_threadpool(store.update_model_version, name, version, description)
        return p.json_response({"model_version": model_version_json(updated)})

    async def transition(request: Request) -> Response:
        f = await p.Fields.read(request, TRANSITION)
        name = f.string("name", required=True)
        version = version_of(f)
        stage = f.string("stage", required=True)
        archive = f.boolean("archive_existing_versions")
        moved = await run_in_threadpool(
            store.transition_model_version_stage,
            name,
            version,
            stage,
            archive,
            request_actor(request),
        )
        return p.json_response({"model_version": model_version_json(moved)})

    async def delete(request: Request) -> Response:
        f = await p.Fields.read(request, BY_VERSION)
        name = f.string("name", required=True)
        version = version_of(f)
        actor = request_actor(request)
        await run_in_threadpool(store.delete_model_version, name, version, actor)
        return p.empty_response()

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, BY_VERSION)
        name = f.string("name", required=True)
        found = await run_in_threadpool(store.get_model_version, name, version_of(f))
        return p.json_response({"model_version": model_version_json(found)})

    async def search(request: Request) -> Response:
        f = await p.Fields.read(request, SEARCH)
        max_results = max_results_of(f, SEARCH_MODEL_VERSIONS_DEFAULT, SEARCH_MODEL_VERSIONS_MAX)
        page = await run_in_threadpool(
            store.search_model_versions,
            f.string("filter") or None,
            max_results,
            f.strings("order_by"),
            f.string("page_token") or None,
        )
        items = [model_version_json(v) for v in page]
        return p.json_response(p.page_json("model_versions", items, page.token))

    async def download_uri(request: Request) -> Response:
        f = await p.Fields.read(request, BY_VERSION)
        name = f.string("name", required=True)
        uri = await run_in_threadpool(store.get_model_version_download_uri, name, version_of(f))
        return p.json_response({"artifact_uri": uri})

    async def set_tag(request: Request) -> Response:
        f = await p.Fields.read(request, SET_VERSION_TAG)
        name = f.string("name", required=True)
        version = version_of(f)
        key = f.string("key", required=True)
        value = f.string("value", default="")
        await run_in_threadpool(store.set_model_version_tag, name, version, key, value)
        return p.empty_response()

    async def delete_tag(request: Request) -> Response:
        f = await p.Fields.read(request, DELETE_VERSION_TAG)
        name = f.string("name", required=True)
        version = version_of(f)
        key = f.string("key", required=True)
        await run_in_threadpool(store.delete_model_version_tag, name, version, key)
        return p.empty_response()

    base = "/model-versions"
    return [
        Route(f"{base}/create", create, methods=["POST"]),
        Route(f"{base}/update", update, methods=["PATCH"]),
        Route(f"{base}/transition-stage", transition, methods=["POST"]),
        Route(f"{base}/delete", delete, methods=["DELETE"]),
        Route(f"{base}/get", get, methods=["GET"]),
        Route(f"{base}/search", search, methods=["GET"]),
        Route(f"{base}/get-download-uri", download_uri, methods=["GET"]),
        Route(f"{base}/set-tag", set_tag, methods=["POST"]),
        Route(f"{base}/delete-tag", delete_tag, methods=["DELETE"]),
    ]


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Every registry route, to mount under the MLflow API prefixes."""
    return [*model_routes(ctx), *version_routes(ctx)]
