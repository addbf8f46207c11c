"""MLflow REST API 2.0: logged models (MLflow 3) and the models a run produced.

======  ===================================================  =====================================
method  path (under the API prefixes)                        what it does
======  ===================================================  =====================================
POST    ``/logged-models``                                   create a PENDING model
POST    ``/logged-models/search``                            search the models of experiments
GET     ``/logged-models/{model_id}``                        get (``allow_deleted=true`` optional)
PATCH   ``/logged-models/{model_id}``                        finalize: set the status
DELETE  ``/logged-models/{model_id}``                        delete (soft)
POST    ``/logged-models/{model_id}/params``                 add params
PATCH   ``/logged-models/{model_id}/tags``                   set tags
DELETE  ``/logged-models/{model_id}/tags/{tag_key}``         delete a tag
GET     ``/logged-models/{model_id}/artifacts/directories``  list the model's files
GET     ``/logged-models/{model_id}/artifacts/files``        download a file (attachment)
POST    ``/runs/outputs``                                    record models a run produced
======  ===================================================  =====================================

The status travels as MLflow's enum name (``LOGGED_MODEL_READY``; numbers and the short names
are accepted too). A model's files live at its ``artifact_uri``; with the artifact proxy that is
``mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts``, which clients upload to and
download from through the proxy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.artifacts.base import ArtifactRepository
from slipway.artifacts.paths import safe_relative_path
from slipway.entities import (
    LoggedModel,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
)
from slipway.exceptions import InvalidParameterValue, NotImplementedFeature
from slipway.server import protocol as p
from slipway.server.context import ServerContext
from slipway.server.routers.artifacts import PROXY_ANCHOR, _attachment
from slipway.tracking.store.logged_models import AbstractLoggedModelStore

CREATE = frozenset({"experiment_id", "name", "model_type", "source_run_id", "params", "tags"})
GET = frozenset({"model_id", "allow_deleted"})
FINALIZE = frozenset({"model_id", "status"})
DELETE = frozenset({"model_id"})
LOG_PARAMS = frozenset({"model_id", "params"})
SET_TAGS = frozenset({"model_id", "tags"})
DELETE_TAG = frozenset({"model_id", "tag_key"})
SEARCH = frozenset(
    {"experiment_ids", "filter", "datasets", "max_results", "order_by", "page_token"}
)
SEARCH_DATASET = frozenset({"dataset_name", "dataset_digest"})
SEARCH_ORDER = frozenset({"field_name", "ascending", "dataset_name", "dataset_digest"})
LIST_ARTIFACTS = frozenset({"model_id", "artifact_directory_path", "page_token"})
GET_ARTIFACT = frozenset({"model_id", "artifact_file_path"})
LOG_OUTPUTS = frozenset({"run_id", "models"})
MODEL_OUTPUT = frozenset({"model_id", "step"})


def model_json(model: LoggedModel) -> dict[str, Any]:
    """``{"model": <LoggedModel>}``, the body of create, get and finalize."""
    return {"model": model.to_dict()}


def _model_id(request: Request, fields: p.Fields) -> str:
    """The model id from the path; a body that names another model is refused."""
    model_id = str(request.path_params["model_id"])
    named = fields.string("model_id")
    if named and named != model_id:
        raise InvalidParameterValue(
            f"The request body names model {named!r} but the path names {model_id!r}"
        )
    return model_id


def _status(fields: p.Fields) -> LoggedModelStatus:
    raw = fields.value("status")
    if raw is None or raw == "":
        raise p.missing("status")
    return LoggedModelStatus.parse(raw)


def _objects(fields: p.Fields, name: str, allowed: frozenset[str]) -> list[p.Fields]:
    return [
        p.sub_fields(obj, allowed, f"{name}[{i}]") for i, obj in enumerate(fields.objects(name))
    ]


def model_repository(ctx: ServerContext, model: LoggedModel) -> ArtifactRepository:
    """The repository holding a model's files, as this server reaches it; like a run's, an
    ``http(s)://`` location is served only when it names this server's artifact proxy."""
    uri = model.artifact_location
    if urlsplit(uri).scheme.lower() not in ("http", "https"):
        return ctx.repository_for(uri)
    _, anchor, tail = urlsplit(uri).path.partition(PROXY_ANCHOR)
    if ctx.settings.serve_artifacts and anchor and (not tail or tail.startswith("/")):
        return ctx.destination_repository(unquote(tail).lstrip("/"))
    raise NotImplementedFeature(
        f"The files of logged model {model.model_id} live at {uri!r}, which this server does not "
        "proxy; fetch them from that address directly"
    )


def routes(ctx: ServerContext) -> list[BaseRoute]:
    def store() -> AbstractLoggedModelStore:
        found = ctx.store
        if not isinstance(found, AbstractLoggedModelStore):
            raise NotImplementedFeature(
                f"The tracking store of this server ({type(found).__name__}) does not keep "
                "logged models"
            )
        return found

    async def create(request: Request) -> Response:
        f = await p.Fields.read(request, CREATE)
        experiment_id = f.string("experiment_id", required=True)
        params = [LoggedModelParameter(k, v) for k, v in p.key_values(f, "params")]
        tags = [LoggedModelTag(k, v) for k, v in p.key_values(f, "tags")]
        model = await run_in_threadpool(
            store().create_logged_model,
            experiment_id,
            f.string("name") or None,
            f.string("source_run_id") or None,
            tags,
            params,
            f.string("model_type") or None,
        )
        return p.json_response(model_json(model))

    async def get(request: Request) -> Response:
        f = await p.Fields.read(request, GET)
        model_id = _model_id(request, f)
        allow_deleted = f.boolean("allow_deleted")
        model = await run_in_threadpool(store().get_logged_model, model_id, allow_deleted)
        return p.json_response(model_json(model))

    async def finalize(request: Request) -> Response:
        f = await p.Fields.read(request, FINALIZE)
        model_id = _model_id(request, f)
        status = _status(f)
        model = await run_in_threadpool(store().finalize_logged_model, model_id, status)
        return p.json_response(model_json(model))

    async def delete(request: Request) -> Response:
        f = await p.Fields.read(request, DELETE)
        await run_in_threadpool(store().delete_logged_model, _model_id(request, f))
        return p.empty_response()

    async def log_params(request: Request) -> Response:
        f = await p.Fields.read(request, LOG_PARAMS)
        model_id = _model_id(request, f)
        params = [LoggedModelParameter(k, v) for k, v in p.key_values(f, "params")]
        await run_in_threadpool(store().log_logged_model_params, model_id, params)
        return p.empty_response()

    async def set_tags(request: Request) -> Response:
        f = await p.Fields.read(request, SET_TAGS)
        model_id = _model_id(request, f)
        tags = [LoggedModelTag(k, v) for k, v in p.key_values(f, "tags")]
        await run_in_threadpool(store().set_logged_model_tags, model_id, tags)
        return p.empty_response()

    async def delete_tag(request: Request) -> Response:
        f = await p.Fields.read(request, DELETE_TAG)
        model_id = _model_id(request, f)
        key = str(request.path_params["tag_key"])
        named = f.string("tag_key")
        if named and named != key:
            raise InvalidParameterValue(
                f"The request body names tag {named!r} but the path names {key!r}"
            )
        await run_in_threadpool(store().delete_logged_model_tag, model_id, key)
        return p.empty_response()

    async def search(request: Request) -> Response:
        f = await p.Fields.read(request, SEARCH)
        experiment_ids = f.strings("experiment_ids", required=True)
        datasets = [
            {
                "dataset_name": d.string("dataset_name", required=True),
                "dataset_digest": d.string("dataset_digest") or None,
            }
            for d in _objects(f, "datasets", SEARCH_DATASET)
        ]
        order_by = [
            {
                "field_name": o.string("field_name", required=True),
                "ascending": o.boolean("ascending", default=True),
                "dataset_name": o.string("dataset_name") or None,
                "dataset_digest": o.string("dataset_digest") or None,
            }
            for o in _objects(f, "order_by", SEARCH_ORDER)
        ]
        page = await run_in_threadpool(
            store().search_logged_models,
            experiment_ids,
            f.string("filter") or None,
            datasets or None,
            f.integer("max_results") or None,
            order_by or None,
            f.string("page_token") or None,
        )
        items = [m.to_dict() for m in page]
        return p.json_response(p.page_json("models", items, page.token))

    async def list_artifacts(request: Request) -> Response:
        f = await p.Fields.read(request, LIST_ARTIFACTS)
        model_id = _model_id(request, f)
        rel = safe_relative_path(f.string("artifact_directory_path"))
        token = f.string("page_token") or None
        model = await run_in_threadpool(store().get_logged_model, model_id)
        repo = model_repository(ctx, model)
        listing = await anyio.to_thread.run_sync(
            lambda: repo.list_artifacts(rel or None, page_token=token)
        )
        body: dict[str, Any] = {"root_uri": model.artifact_location}
        if listing:
            body["files"] = [info.to_dict() for info in listing]
        if listing.token:
            body["next_page_token"] = listing.token
        return p.json_response(body)

    async def get_artifact(request: Request) -> Response:
        f = await p.Fields.read(request, GET_ARTIFACT)
        model_id = _model_id(request, f)
        rel = safe_relative_path(f.string("artifact_file_path", required=True))
        if not rel:
            raise InvalidParameterValue("Invalid path: a file path is required")
        model = await run_in_threadpool(store().get_logged_model, model_id)
        return await _attachment(model_repository(ctx, model), rel)

    async def log_outputs(request: Request) -> Response:
        f = await p.Fields.read(request, LOG_OUTPUTS)
        run_id = f.string("run_id", required=True)
        models = [
            LoggedModelOutput(m.string("model_id", required=True), m.integer("step", default=0))
            for m in _objects(f, "models", MODEL_OUTPUT)
        ]
        await run_in_threadpool(store().log_outputs, run_id, models)
        return p.empty_response()

    base = "/logged-models/{model_id}"
    return [
        Route("/logged-models", create, methods=["POST"]),
        Route("/logged-models/search", search, methods=["POST"]),
        Route(base, get, methods=["GET"]),
        Route(base, finalize, methods=["PATCH"]),
        Route(base, delete, methods=["DELETE"]),
        Route(f"{base}/params", log_params, methods=["POST"]),
        Route(f"{base}/tags", set_tags, methods=["PATCH"]),
        Route(base + "/tags/{tag_key:path}", delete_tag, methods=["DELETE"]),
        Route(f"{base}/artifacts/directories", list_artifacts, methods=["GET"]),
        Route(f"{base}/artifacts/files", get_artifact, methods=["GET"]),
        Route("/runs/outputs", log_outputs, methods=["POST"]),
    ]
