"""Artifact routes: listing under the tracking API, downloads, uploads, and the proxy.

=======  ===============================================  ======================================
method   path                                             what it does
=======  ===============================================  ======================================
GET      ``<api>/artifacts/list``                         a run's files (``run_id``, ``path``)
POST     ``<api>/upload-artifact``                        a run's file from the raw body
GET      ``/get-artifact``                                a run's file, as an attachment
GET      ``/model-versions/get-artifact``                 a model version's file, as an attachment
GET      ``/api/2.0/mlflow-artifacts/artifacts?path=``    a directory of the destination
GET      ``/api/2.0/mlflow-artifacts/artifacts/<path>``   download, as an attachment
PUT      ``/api/2.0/mlflow-artifacts/artifacts/<path>``   upload from the raw body
DELETE   ``/api/2.0/mlflow-artifacts/artifacts/<path>``   delete a file or a directory
POST     ``/api/2.0/mlflow-artifacts/mpu/...``            501: multipart uploads are not offered
=======  ===============================================  ======================================

Bytes stream both ways: a download reads the store a chunk at a time in a worker thread, and an
upload hands the store a blocking stream whose reads pull the request body from the event loop,
so neither holds a whole file in memory. Every user path passes through
:func:`~slipway.artifacts.paths.safe_relative_path` before any store sees it, and downloads are
always attachments with a content type a browser will not run.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import quote, unquote, urlsplit

import anyio
import anyio.from_thread
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from slipway.artifacts.base import ArtifactRepository, FileInfo
from slipway.artifacts.local import LocalArtifactRepository
from slipway.artifacts.paths import join_uri, safe_relative_path
from slipway.entities.run import Run
from slipway.exceptions import (
    InvalidParameterValue,
    NotImplementedFeature,
    PermissionDenied,
    SlipwayError,
)
from slipway.server.context import ServerContext
from slipway.server.protocol import Fields, missing

__all__ = [
    "content_type_for",
    "model_version_repository",
    "proxy_routes",
    "served_repository",
    "top_level_routes",
    "tracking_routes",
]

CHUNK_SIZE = 1024 * 1024
UPLOAD_THREADS = 16
PROXY_ANCHOR = "/api/2.0/mlflow-artifacts/artifacts"

# MLflow's client recognises this opening and falls back to a single streamed PUT.
MULTIPART_UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"

_TEXT_TYPE = "text/plain; charset=utf-8"
# Markup and scripts are served as plain text: a browser must never render or run them.
_TEXT_EXTENSIONS = frozenset({
    "txt", "log", "err", "out", "cfg", "conf", "ini", "properties", "toml", "yaml", "yml",
    "json", "jsonl", "xml", "csv", "tsv", "md", "rst", "py", "r", "sql", "sh", "ipynb",
    "html", "htm", "xhtml", "svg", "js", "mjs", "css",
})  # fmt: skip
_TEXT_NAMES = frozenset({"MLmodel", "MLproject", "Dockerfile", "LICENSE"})
_BINARY_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "gz": "application/gzip",
    "zip": "application/zip",
    "parquet": "application/vnd.apache.parquet",
}
_OCTETS = "application/octet-stream"


def content_type_for(name: str) -> str:
    """The content type a download of ``name`` is served with.

    Text of every kind (markup and scripts included) is ``text/plain``, a few image and archive
    types keep their own type, and everything else is ``application/octet-stream``; what the
    request asks for plays no part.
    """
    base = posixpath.basename(name)
    stem, dot, extension = base.rpartition(".")
    if not dot or not stem:
        return _TEXT_TYPE if base in _TEXT_NAMES else _OCTETS
    extension = extension.lower()
    if extension in _TEXT_EXTENSIONS:
        return _TEXT_TYPE
    return _BINARY_TYPES.get(extension, _OCTETS)


def content_disposition(name: str) -> str:
    """``attachment`` with the file's base name: a plain ASCII ``filename`` and, for other
    names, the UTF-8 ``filename*`` form of RFC 6266."""
    base = posixpath.basename(name) or "download"
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in base)
    if plain == base:
        return f'attachment; filename="{plain}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(base, safe='')}"


# -- streaming -------------------------------------------------------------------------------


class RequestBodyStream(io.RawIOBase):
    """A request body as a blocking binary stream, for a store writing in a worker thread.

    Each read that finds nothing buffered waits on the event loop for the next chunk of the
    body, so at most one chunk is held here. It must be read from a thread started by
    :func:`anyio.to_thread.run_sync`.

    Args:
        request: the request whose body is read.
        require_data: refuse (``InvalidParameterValue``) a body that turns out to be empty; the
            error reaches the store as a failed stream, so nothing is written.
    """

    def __init__(self, request: Request, require_data: bool = False) -> None:
        super().__init__()
        self._chunks = request.stream().__aiter__()
        self._pending = memoryview(b"")
        self._ended = False
        self._require_data = require_data
        self.received = 0

    def readable(self) -> bool:
        return True

    async def _next_chunk(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._ended:
            chunk = anyio.from_thread.run(self._next_chunk)
            if chunk is None:
                self._ended = True
            else:
                self._pending = memoryview(chunk)
                self.received += len(chunk)
        if not self._pending:
            if self._require_data and self.received == 0:
                raise InvalidParameterValue("The request body is empty: it must hold the file")
            return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class UploadSlots:
    """How many uploads may write at once: each holds a worker thread for as long as its client
    sends, so uploads get threads of their own rather than the pool every other route uses."""

    def __init__(self, total: int = UPLOAD_THREADS) -> None:
        self.total = total
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # made on first use, inside the server's event loop
            self._limiter = anyio.CapacityLimiter(self.total)
        return self._limiter


async def _store_body(
    request: Request,
    repo: ArtifactRepository,
    path: str,
    slots: UploadSlots,
    require_data: bool = False,
) -> Response | None:
    """Stream the request body into ``path`` of ``repo``; a response only if the client left."""
    body = cast(BinaryIO, RequestBodyStream(request, require_data=require_data))
    try:
        await anyio.to_thread.run_sync(
            repo.write_artifact_stream, path, body, limiter=slots.limiter
        )
    except ClientDisconnect:
        # Nobody is left to read an answer; the store has already dropped the partial file.
        return Response(status_code=400)
    return None


def _stream_size(stream: BinaryIO) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


async def _chunks(stream: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await anyio.to_thread.run_sync(stream.read, CHUNK_SIZE):
            yield chunk
    finally:
        stream.close()


async def _attachment(repo: ArtifactRepository, path: str) -> Response:
    """The file at ``path`` of ``repo``, streamed as an attachment."""
    stream = await anyio.to_thread.run_sync(repo.open_artifact, path)
    headers = {
        "Content-Disposition": content_disposition(path),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    size = _stream_size(stream)
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(_chunks(stream), headers=headers, media_type=content_type_for(path))


# -- request fields -----------------------------------------------------------------------------


def _query_fields(request: Request) -> Fields:
    """The query string as typed fields, extra keys ignored (routes outside MLflow's proto API
    are as lenient as MLflow's own)."""
    data: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        data.setdefault(key, []).append(value)
    return Fields(data, from_query=True)


def _run_id(fields: Fields, names: tuple[str, ...] = ("run_id", "run_uuid")) -> str:
    for name in names:
        value = fields.string(name)
        if value:
            return str(value)
    raise missing(names[0])


def _path_field(fields: Fields, file: bool = False) -> str:
    """The ``path`` field, checked; ``""`` names the root, which a ``file`` path cannot."""
    value = fields.string("path", required=file)
    if file and not value:
        raise missing("path")
    rel = safe_relative_path(value)
    if file and not rel:
        raise InvalidParameterValue("Invalid path: a file path is required")
    return rel


def _file_path_param(request: Request) -> str:
    """The artifact path of a proxy URL, checked, refused when it names the root."""
    rel = safe_relative_path(request.path_params["path"])
    if not rel:
        raise InvalidParameterValue("Invalid path: an artifact path is required")
    return rel


# -- where a run's artifacts live ----------------------------------------------------------------


def _run_repository(ctx: ServerContext, run: Run) -> ArtifactRepository:
    """The repository holding ``run``'s artifacts, as this server reaches it."""
    return served_repository(ctx, run.info.artifact_uri, f"run {run.info.run_id}")


def served_repository(ctx: ServerContext, uri: str, owner: str) -> ArtifactRepository:
    """The repository at ``uri`` (the artifact root of ``owner``, named in errors), as this
    server serves it.

    ``mlflow-artifacts:`` roots, and ``http(s)://`` roots naming this proxy, map into the
    artifacts destination; the server never fetches a URL a client supplied. A root on this
    machine's disk is served only inside the server's own artifact folders, so that an
    experiment created with ``artifact_location="/etc"`` (or a model version whose source is a
    server folder) cannot read or write the server's files.
    """
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        _, anchor, tail = urlsplit(uri).path.partition(PROXY_ANCHOR)
        if not (ctx.settings.serve_artifacts and anchor and (not tail or tail.startswith("/"))):
            raise NotImplementedFeature(
                f"The artifacts of {owner} live at {uri!r}, which this server does not proxy; "
                "fetch them from that address directly"
            )
        repo = ctx.destination_repository(unquote(tail).lstrip("/"))
    else:
        repo = ctx.repository_for(uri)
    if isinstance(repo, LocalArtifactRepository) and not _inside_served_folders(ctx, repo):
        raise PermissionDenied(
            f"The artifacts of {owner} live at {uri!r}, outside the folders this server keeps "
            "artifacts in; it does not serve other files of its machine"
        )
    return repo


def _local_folder(root: object) -> Path | None:
    """The folder an artifact root names on this machine; None for no root or another kind."""
    if not isinstance(root, str) or not root:
        return None
    scheme = urlsplit(root).scheme.lower()
    if scheme not in ("", "file") and len(scheme) != 1:  # one letter: a Windows drive
        return None
    try:
        return LocalArtifactRepository(root).root.resolve()
    except SlipwayError:
        return None


def _inside_served_folders(ctx: ServerContext, repo: LocalArtifactRepository) -> bool:
    roots = (
        ctx.artifacts_destination,
        ctx.settings.default_artifact_root,
        getattr(ctx.store, "default_artifact_root", None),
    )
    target = repo.root.resolve()
    folders = [folder for folder in map(_local_folder, roots) if folder is not None]
    return any(target.is_relative_to(folder) for folder in folders)


def _uri_inside(uri: str, root: object) -> bool:
    if not isinstance(root, str) or not root:
        return False
    target, base = urlsplit(uri), urlsplit(root)
    segments = [s for s in target.path.split("/") if s]
    prefix = [s for s in base.path.split("/") if s]
    return (target.scheme.lower(), target.netloc) == (
        base.scheme.lower(),
        base.netloc,
    ) and segments[: len(prefix)] == prefix


def _resolve_runs_uri(ctx: ServerContext, uri: str) -> str:
    """``runs:/<run_id>/<path>`` as the artifact URI it names; any other URI unchanged."""
    if urlsplit(uri).scheme.lower() != "runs":
        return uri
    run_id, _, rel = urlsplit(uri).path.lstrip("/").partition("/")
    return join_uri(ctx.store.get_run(run_id).info.artifact_uri, safe_relative_path(rel))


def model_version_repository(ctx: ServerContext, name: str, version: str) -> ArtifactRepository:
    """The repository holding a model version's files, as this server serves them.

    Beyond :func:`served_repository`'s rules, a bucket source is served only inside the
    server's own artifact roots or the artifact root of the version's run: registering a
    version must not turn the server's storage credentials into a reader of any bucket.
    """
    registry = ctx.registry_store
    uri = _resolve_runs_uri(ctx, registry.get_model_version_download_uri(name, version))
    owner = f"model version {version} of {name!r}"
    repo = served_repository(ctx, uri, owner)
    if isinstance(repo, LocalArtifactRepository) or _is_proxied_uri(uri):
        return repo
    roots: list[object] = [
        ctx.artifacts_destination,
        ctx.settings.default_artifact_root,
        getattr(ctx.store, "default_artifact_root", None),
    ]
    run_id = registry.get_model_version(name, version).run_id
    if run_id:
        with contextlib.suppress(SlipwayError):
            roots.append(ctx.store.get_run(run_id).info.artifact_uri)
    if not any(_uri_inside(uri, root) for root in roots):
        raise PermissionDenied(
            f"The artifacts of {owner} live at {uri!r}, outside this server's artifact stores "
            "and its run's artifacts; fetch them from that address directly"
        )
    return repo


def _is_proxied_uri(uri: str) -> bool:
    """Whether ``uri`` names the artifact proxy (which maps into the destination)."""
    scheme = urlsplit(uri).scheme.lower()
    return scheme == "mlflow-artifacts" or (
        scheme in ("http", "https") and PROXY_ANCHOR in urlsplit(uri).path
    )


async def _get_run(ctx: ServerContext, run_id: str) -> Run:
    return await anyio.to_thread.run_sync(ctx.store.get_run, run_id)


# -- tracking API routes ------------------------------------------------------------------------


def tracking_routes(ctx: ServerContext) -> list[BaseRoute]:
    """``/artifacts/list`` and ``/upload-artifact``, mounted under the tracking API prefixes."""
    slots = UploadSlots()

    async def list_run_artifacts(request: Request) -> Response:
        fields = await Fields.read(request, ("run_id", "run_uuid", "path", "page_token"))
        rel = _path_field(fields)
        run_id = _run_id(fields)
        token = fields.string("page_token") or None
        run = await _get_run(ctx, run_id)
        repo = _run_repository(ctx, run)
        page = await anyio.to_thread.run_sync(
            lambda: repo.list_artifacts(rel or None, page_token=token)
        )
        body: dict[str, object] = {
            "root_uri": run.info.artifact_uri,
            "files": [info.to_dict() for info in page],
        }
        if page.token:
            body["next_page_token"] = page.token
        return JSONResponse(body)

    async def upload_run_artifact(request: Request) -> Response:
        fields = _query_fields(request)
        run_id = _run_id(fields, ("run_uuid", "run_id"))
        rel = _path_field(fields, file=True)
        run = await _get_run(ctx, run_id)
        if request.headers.get("content-length") == "0":
            raise InvalidParameterValue("The request body is empty: it must hold the file")
        repo = _run_repository(ctx, run)
        gone = await _store_body(request, repo, rel, slots, require_data=True)
        return gone or JSONResponse({})

    return [
        Route("/artifacts/list", list_run_artifacts, methods=["GET"]),
        Route("/upload-artifact", upload_run_artifact, methods=["POST"]),
    ]


# -- routes at the root -------------------------------------------------------------------------


def top_level_routes(ctx: ServerContext) -> list[BaseRoute]:
    """``/get-artifact`` and ``/model-versions/get-artifact``, outside the API prefixes."""

    async def get_run_artifact(request: Request) -> Response:
        fields = _query_fields(request)
        rel = _path_field(fields, file=True)
        run = await _get_run(ctx, _run_id(fields))
        return await _attachment(_run_repository(ctx, run), rel)

    async def get_model_version_artifact(request: Request) -> Response:
        fields = _query_fields(request)
        rel = _path_field(fields, file=True)
        name = str(fields.string("name", required=True))
        version = str(fields.string("version", required=True))
        repo = await anyio.to_thread.run_sync(model_version_repository, ctx, name, version)
        return await _attachment(repo, rel)

    return [
        Route("/get-artifact", get_run_artifact, methods=["GET"]),
        Route("/model-versions/get-artifact", get_model_version_artifact, methods=["GET"]),
    ]


# -- the artifact proxy -------------------------------------------------------------------------


def _listing_entry(info: FileInfo) -> dict[str, object]:
    """A proxy listing entry: MLflow's clients expect base names here."""
    return FileInfo(posixpath.basename(info.path), info.is_dir, info.file_size).to_dict()


def proxy_routes(ctx: ServerContext) -> list[BaseRoute]:
    """The ``mlflow-artifacts`` service, mounted under ``/api/2.0/mlflow-artifacts``; paths are
    relative to the artifacts destination."""
    slots = UploadSlots()
    destination = ctx.destination_repository()  # one store (and S3 client) for every request

    async def list_directory(request: Request) -> Response:
        fields = await Fields.read(request, ("path",))
        rel = _path_field(fields)
        listing = await anyio.to_thread.run_sync(destination.list_artifacts, rel or None)
        return JSONResponse({"files": [_listing_entry(info) for info in listing]})

    async def download(request: Request) -> Response:
        return await _attachment(destination, _file_path_param(request))

    async def upload(request: Request) -> Response:
        rel = _file_path_param(request)
        gone = await _store_body(request, destination, rel, slots)
        return gone or JSONResponse({})

    async def delete(request: Request) -> Response:
        rel = _file_path_param(request)
        await anyio.to_thread.run_sync(destination.delete_artifacts, rel)
        return JSONResponse({})

    async def multipart(request: Request) -> Response:
        _file_path_param(request)
        raise NotImplementedFeature(
            f"{MULTIPART_UNSUPPORTED}: upload the file with a single PUT to "
            f"{PROXY_ANCHOR}/<path>, which streams without a size limit"
        )

    return [
        Route("/artifacts", list_directory, methods=["GET"]),
        Route("/artifacts/{path:path}", download, methods=["GET"]),
        Route("/artifacts/{path:path}", upload, methods=["PUT"]),
        Route("/artifacts/{path:path}", delete, methods=["DELETE"]),
        Route("/mpu/{action:str}/{path:path}", multipart, methods=["POST"]),
    ]
