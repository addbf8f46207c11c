"""Artifacts behind a tracking server's artifact proxy, over HTTP (urllib3).

Two kinds of root reach this store:

* ``http(s)://host[:port][/prefix]/api/2.0/mlflow-artifacts/artifacts[/path]``, the proxy's own
  URL;
* ``mlflow-artifacts:/path`` and ``mlflow-artifacts://host:port/path``, which name a path in the
  artifact destination of the tracking server in effect
  (:func:`slipway.tracking.uri.get_tracking_uri`, which must then be ``http(s)://``); a host in
  the URI replaces the tracking server's host. See :func:`resolve_proxy_uri`.

Uploads and downloads stream a chunk at a time in both directions. The proxy lists one directory
unpaged; paging is done here, on the client. Credentials come from
``SLIPWAY_TRACKING_TOKEN`` (a bearer token) or ``SLIPWAY_TRACKING_USERNAME`` and
``SLIPWAY_TRACKING_PASSWORD`` (basic auth), each falling back to its ``MLFLOW_`` namesake;
``SLIPWAY_TRACKING_SERVER_CERT_PATH`` names a CA bundle and ``SLIPWAY_TRACKING_INSECURE_TLS=true``
turns certificate checks off.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import urllib3

from slipway.artifacts.atomic import atomic_file
from slipway.artifacts.base import ArtifactRepository, FileInfo, LocalPath
from slipway.artifacts.paths import (
    join_relative,
    resolve_within,
    safe_relative_path,
    validate_artifact_root,
)
from slipway.entities.paged import PagedList
from slipway.exceptions import (
    InvalidParameterValue,
    NotImplementedFeature,
    SlipwayError,
    TemporarilyUnavailable,
)

__all__ = ["PROXY_PATH", "PROXY_SCHEME", "HttpArtifactRepository", "resolve_proxy_uri"]

_log = logging.getLogger(__name__)

PROXY_SCHEME = "mlflow-artifacts"
PROXY_PATH = "/api/2.0/mlflow-artifacts/artifacts"

CHUNK_SIZE = 1024 * 1024
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 300.0

# Error codes for answers that carry no MLflow error body.
_STATUS_TO_CODE = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    429: "REQUEST_LIMIT_EXCEEDED",
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _env(name: str) -> str:
    """``SLIPWAY_<name>``, else ``MLFLOW_<name>``, else ``""``."""
    return os.environ.get(f"SLIPWAY_{name}") or os.environ.get(f"MLFLOW_{name}") or ""


def resolve_proxy_uri(uri: str, tracking_uri: str | None = None) -> str:
    """The proxy URL behind a ``mlflow-artifacts:`` URI.

    ``mlflow-artifacts:/0/abc/artifacts`` with tracking URI ``http://host:5000`` gives
    ``http://host:5000/api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts``. A host in the URI
    (``mlflow-artifacts://other:5000/...``) takes the tracking server's place.

    Args:
        uri: the ``mlflow-artifacts:`` URI.
        tracking_uri: the tracking server; defaults to the tracking URI in effect.

    Raises:
        NotImplementedFeature: when the URI names no host and the tracking URI is not
            ``http(s)://``: such a root is only reachable through a tracking server.
        InvalidParameterValue: for a URI that is not ``mlflow-artifacts:`` or an unsafe path.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != PROXY_SCHEME:
        raise InvalidParameterValue(f"Not a {PROXY_SCHEME}: URI: {uri!r}")
    if tracking_uri is None:
        from slipway.tracking.uri import get_tracking_uri

        tracking_uri = get_tracking_uri()
    tracking = urlsplit(tracking_uri)
    scheme = tracking.scheme.lower()
    if scheme not in ("http", "https"):
        if not parts.netloc:
            raise NotImplementedFeature(
                f"Artifact root {uri!r} is served by a tracking server's artifact proxy, but the "
                f"tracking URI in effect ({tracking_uri!r}) is not an http(s):// tracking server; "
                "set SLIPWAY_TRACKING_URI to the server's address"
            )
        scheme = "http"
    if parts.netloc and parts.hostname is None:
        raise InvalidParameterValue(f"Invalid artifact root {uri!r}: a port needs a host")
    netloc = parts.netloc or tracking.netloc
    prefix = tracking.path.rstrip("/") if tracking.scheme.lower() in ("http", "https") else ""
    rel = safe_relative_path(parts.path.lstrip("/"))
    path = f"{prefix}{PROXY_PATH}" + (f"/{quote(rel, safe='/')}" if rel else "")
    return urlunsplit((scheme, netloc, path, "", ""))


def _split_proxy_url(uri: str) -> tuple[str, str]:
    """``(server base URL, path relative to the destination)`` of a proxy URL."""
    parts = urlsplit(uri)
    head, anchor, tail = parts.path.partition(PROXY_PATH)
    if not anchor or (tail and not tail.startswith("/")) or not parts.hostname:
        raise NotImplementedFeature(
            f"Artifact root {uri!r} is not a tracking server's artifact proxy URL "
            f"(http(s)://host{PROXY_PATH}/...); other HTTP stores are not supported"
        )
    base = urlunsplit((parts.scheme.lower(), parts.netloc, head.rstrip("/"), "", ""))
    return base, safe_relative_path(unquote(tail).lstrip("/"))


class _Body:
    """The chunks of an upload body; remembers an error the source stream raised, so that it
    reaches the caller as itself rather than as a transport error."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self.stream.read(CHUNK_SIZE)
            except BaseException as error:
                self.error = error
                raise
            if not chunk:
                return
            yield bytes(chunk)


class _ResponseStream(io.RawIOBase):
    """A streamed response body as a binary stream; closing it early drops the connection."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        super().__init__()
        self._response = response
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._done:
            return 0
        data = self._response.read(len(buffer))
        if not data:
            self._done = True
            return 0
        count = len(data)
        buffer[:count] = data
        return count

    def close(self) -> None:
        if not self.closed:
            if self._done:
                self._response.release_conn()
            else:
                self._response.close()
        super().close()


class HttpArtifactRepository(ArtifactRepository):
    """Artifacts kept by a tracking server and reached through its artifact proxy.

    Args:
        root_uri: ``http(s)://host[:port][/prefix]/api/2.0/mlflow-artifacts/artifacts[/path]``,
            or a ``mlflow-artifacts:`` URI (resolved with :func:`resolve_proxy_uri`; the
            repository's ``root_uri`` is then the proxy URL).
        tracking_uri: the tracking server a ``mlflow-artifacts:`` URI is resolved against;
            defaults to the tracking URI in effect.
        timeout: ``(connect, read)`` timeouts in seconds.
    """

    def __init__(
        self,
        root_uri: str,
        tracking_uri: str | None = None,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
    ) -> None:
        if urlsplit(root_uri).scheme.lower() == PROXY_SCHEME:
            # Checked before resolving: a "?" or "#" would otherwise vanish into the URL.
            root_uri = resolve_proxy_uri(validate_artifact_root(root_uri), tracking_uri)
        super().__init__(root_uri)
        self.base_url, self.prefix = _split_proxy_url(root_uri)
        self.timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self._pool: urllib3.PoolManager | None = None

    # -- transport ---------------------------------------------------------------------------

    @property
    def pool(self) -> urllib3.PoolManager:
        """The connection pool, made on first use."""
        if self._pool is None:
            options: dict[str, Any] = {}
            if _env("TRACKING_INSECURE_TLS").lower() == "true":
                options["cert_reqs"] = "CERT_NONE"
            elif cert := _env("TRACKING_SERVER_CERT_PATH"):
                options["ca_certs"] = cert
            self._pool = urllib3.PoolManager(num_pools=4, maxsize=8, **options)
        return self._pool

    @staticmethod
    def _auth_headers() -> dict[str, str]:
        if token := _env("TRACKING_TOKEN"):
            return {"Authorization": f"Bearer {token}"}
        user = _env("TRACKING_USERNAME")
        if user:
            return urllib3.make_headers(basic_auth=f"{user}:{_env('TRACKING_PASSWORD')}")
        return {}

    def _url(self, rel: str) -> str:
        remote = join_relative(self.prefix, rel)
        suffix = f"/{quote(remote, safe='/')}" if remote else ""
        return f"{self.base_url}{PROXY_PATH}{suffix}"

    def _request(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        retries: urllib3.Retry | bool | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One request; a non-2xx answer becomes the matching :class:`SlipwayError`."""
        if retries is None:
            retries = urllib3.Retry(
                total=3,
                backoff_factor=0.3,
                status_forcelist=(502, 503, 504),
                allowed_methods=frozenset({"GET", "DELETE"}),
                raise_on_status=False,
            )
        try:
            response = self.pool.request(
                method,
                url,
                body=body,
                headers={**self._auth_headers(), **(headers or {})},
                preload_content=not stream,
                timeout=self.timeout,
                retries=retries,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as error:
            raise TemporarilyUnavailable(
                f"Could not reach the artifact proxy at {self.base_url}: {error}"
            ) from error
        if response.status >= 300:
            raise self._error(response, method, url, stream)
        return response

    @staticmethod
    def _error(
        response: urllib3.BaseHTTPResponse, method: str, url: str, streamed: bool
    ) -> SlipwayError:
        if streamed:
            raw = response.read(64 * 1024)
            response.close()
        else:
            raw = response.data[: 64 * 1024]
        try:
            body = json.loads(raw)
            code, message = str(body["error_code"]), str(body["message"])
        except (ValueError, TypeError, KeyError):
            fallback = "BAD_REQUEST" if response.status < 500 else "INTERNAL_ERROR"
            code = _STATUS_TO_CODE.get(response.status, fallback)
            text = raw.decode("utf-8", "replace").strip()[:500]
            message = f"{method} {url} answered {response.status}" + (f": {text}" if text else "")
        return SlipwayError.from_code(code, message)

    # -- the repository contract -------------------------------------------------------------

    def _upload(self, rel: str, stream: BinaryIO, size: int | None) -> None:
        body = _Body(stream)
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        try:
            response = self._request(
                "PUT", self._url(rel), body=iter(body), headers=headers, retries=False
            )
        except BaseException:
            if body.error is not None:
                raise body.error from None
            raise
        response.release_conn()

    def log_artifact(self, local_file: LocalPath, artifact_path: str | None = None) -> None:
        source = self._local_source_file(local_file)
        rel = join_relative(artifact_path, source.name)
        with source.open("rb") as stream:
            self._upload(rel, stream, os.fstat(stream.fileno()).st_size)

    def log_artifacts(self, local_dir: LocalPath, artifact_path: str | None = None) -> None:
        base = safe_relative_path(artifact_path)
        for source, rel_dir in self._local_source_tree(local_dir):
            self.log_artifact(source, join_relative(base, rel_dir))

    def write_artifact_stream(self, path: str, stream: BinaryIO) -> None:
        self._upload(self._file_path(path), stream, None)

    def _list(self, rel: str) -> list[FileInfo]:
        """Every entry of directory ``rel``, as the proxy lists it (one unpaged answer)."""
        remote = join_relative(self.prefix, rel)
        query = urlencode({"path": remote}) if remote else ""
        url = f"{self.base_url}{PROXY_PATH}" + (f"?{query}" if query else "")
        answer = json.loads(self._request("GET", url).data or b"{}")
        entries: list[FileInfo] = []
        for entry in answer.get("files", []):
            name = str(entry.get("path", ""))
            if not _single_segment(name):
                _log.warning("Skipping an artifact the proxy listed with an unsafe name: %r", name)
                continue
            is_dir = bool(entry.get("is_dir", False))
            size = None if is_dir or entry.get("file_size") is None else int(entry["file_size"])
            entries.append(FileInfo(join_relative(rel, name), is_dir, size))
        return entries

    def list_artifacts(
        self,
        path: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[FileInfo]:
        return self._paginate(self._list(safe_relative_path(path)), max_results, page_token)

    def open_artifact(self, path: str) -> BinaryIO:
        response = self._request("GET", self._url(self._file_path(path)), stream=True)
        return cast(BinaryIO, io.BufferedReader(_ResponseStream(response), CHUNK_SIZE))

    @staticmethod
    def _copy(stream: BinaryIO, local: Path) -> None:
        with atomic_file(local) as handle:
            while chunk := stream.read(CHUNK_SIZE):
                handle.write(chunk)

    def download_artifacts(self, artifact_path: str, dst_path: LocalPath | None = None) -> Path:
        rel = safe_relative_path(artifact_path)
        entries = self._list(rel)
        if not entries and rel:
            # A file, or nothing at all (ResourceDoesNotExist): the download says which.
            with self.open_artifact(rel) as stream:
                local = resolve_within(self._destination_root(dst_path), rel)
                self._copy(stream, local)
            return local
        dst_root = self._destination_root(dst_path)
        local = resolve_within(dst_root, rel)
        local.mkdir(parents=True, exist_ok=True)
        self._download_tree(entries, dst_root)
        return local

    def _download_tree(self, entries: list[FileInfo], dst_root: Path) -> None:
        for info in entries:
            target = resolve_within(dst_root, info.path)
            if info.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                self._download_tree(self._list(info.path), dst_root)
            else:
                with self.open_artifact(info.path) as stream:
                    self._copy(stream, target)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        rel = safe_relative_path(artifact_path)
        if not join_relative(self.prefix, rel):
            # The proxy refuses to delete its whole destination in one call.
            for info in self._list(""):
                self.delete_artifacts(info.path)
            return
        self._request("DELETE", self._url(rel)).release_conn()


def _single_segment(name: str) -> bool:
    if not name or "/" in name:
        return False
    try:
        return safe_relative_path(name) == name
    except InvalidParameterValue:
        return False
