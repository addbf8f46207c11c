"""Artifacts in an S3 bucket (or any S3-compatible object store), through boto3.

boto3 is an optional extra (``pip install slipway[s3]``); it is imported only when an
S3 repository first talks to the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from slipway.artifacts.atomic import atomic_file
from slipway.artifacts.base import ArtifactRepository, FileInfo, LocalPath
from slipway.artifacts.paths import join_relative, resolve_within, safe_relative_path
from slipway.entities.paged import PagedList
from slipway.exceptions import (
    InvalidParameterValue,
    PermissionDenied,
    ResourceDoesNotExist,
    SlipwayError,
)

__all__ = ["S3ArtifactRepository", "s3_endpoint_url"]

_log = logging.getLogger(__name__)

# Slipway's own variable wins over MLflow's.
ENDPOINT_ENV_VARS = ("SLIPWAY_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")

_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED_CODES = frozenset({"403", "AccessDenied", "Forbidden"})


def s3_endpoint_url() -> str | None:
    """The S3 endpoint from ``SLIPWAY_S3_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL``, if set."""
    for name in ENDPOINT_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3ArtifactRepository(ArtifactRepository):
    """Artifacts stored as objects under ``s3://bucket/prefix``.

    The endpoint comes from ``SLIPWAY_S3_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL`` (for
    MinIO and other S3-compatible stores; AWS when neither is set), credentials and region from
    boto3's usual sources such as ``AWS_ACCESS_KEY_ID`` and ``AWS_DEFAULT_REGION``. Large files
    go up and down in parallel multipart transfers.

    Args:
        root_uri: ``s3://bucket`` or ``s3://bucket/prefix``.
    """

    def __init__(self, root_uri: str) -> None:
        super().__init__(root_uri)
        parts = urlsplit(root_uri)
        if parts.scheme.lower() != "s3":
            raise InvalidParameterValue(f"Not an s3:// URI: {root_uri!r}")
        self.bucket = parts.netloc
        self.prefix = safe_relative_path(parts.path.lstrip("/"))
        self.endpoint_url = s3_endpoint_url()
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        if self._client is None:
            import boto3

            session = boto3.session.Session()
            self._client = session.client("s3", endpoint_url=self.endpoint_url)
        return self._client

    def _key(self, rel: str) -> str:
        return join_relative(self.prefix, rel)

    def _dir_prefix(self, rel: str) -> str:
        key = self._key(rel)
        return f"{key}/" if key else ""

    @contextlib.contextmanager
    def _errors(self, rel: str) -> Iterator[None]:
        """Turn the store's "missing" and "denied" answers into Slipway errors."""
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as error:
            code = _error_code(error)
            if code == "NoSuchBucket":
                raise ResourceDoesNotExist(f"No S3 bucket {self.bucket!r}") from error
            if code in _MISSING_CODES:
                raise ResourceDoesNotExist(f"No artifact at {rel!r}") from error
            if code in _DENIED_CODES:
                raise PermissionDenied(f"Access denied to {rel!r} in {self.root_uri}") from error
            raise

    def _objects(self, prefix: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        """Every ListObjectsV2 page under ``prefix``."""
        options: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            options["Delimiter"] = delimiter
        with self._errors(prefix):
            yield from self.client.get_paginator("list_objects_v2").paginate(**options)

    def _keys_under(self, rel: str) -> Iterator[str]:
        """Every object key in directory ``rel``, recursively, whatever its name."""
        for page in self._objects(self._dir_prefix(rel)):
            for entry in page.get("Contents", []):
                yield entry["Key"]

    def _files_under(self, rel: str) -> Iterator[tuple[str, str]]:
        """(key, path relative to the root) of every file in directory ``rel``, recursively."""
        root_prefix = self._dir_prefix("")
        for key in self._keys_under(rel):
            if key.endswith("/"):
                continue  # a "directory" marker object
            path = key[len(root_prefix) :]
            if _addressable(path):
                yield key, path
            else:
                _log.warning("Skipping S3 object with an unsafe name: %r", key)

    def _is_file(self, rel: str) -> bool:
        try:
            with self._errors(rel):
                self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
        except ResourceDoesNotExist:
            return False
        return True

    def log_artifact(self, local_file: LocalPath, artifact_path: str | None = None) -> None:
        source = self._local_source_file(local_file)
        rel = join_relative(artifact_path, source.name)
        # upload_fileobj rather than upload_file: the same multipart transfer, but failures
        # arrive as ClientError, which _errors understands.
        with source.open("rb") as stream, self._errors(rel):
            self.client.upload_fileobj(stream, self.bucket, self._key(rel))

    def log_artifacts(self, local_dir: LocalPath, artifact_path: str | None = None) -> None:
        base = safe_relative_path(artifact_path)
        for source, rel_dir in self._local_source_tree(local_dir):
            self.log_artifact(source, join_relative(base, rel_dir))

    def list_artifacts(
        self,
        path: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[FileInfo]:
        rel = safe_relative_path(path)
        prefix = self._dir_prefix(rel)
        entries: list[FileInfo] = []
        for page in self._objects(prefix, delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) : -1]
                if _addressable(name, single=True):
                    entries.append(FileInfo(join_relative(rel, name), is_dir=True))
            for entry in page.get("Contents", []):
                name = entry["Key"][len(prefix) :]
                if _addressable(name, single=True):
                    entries.append(FileInfo(join_relative(rel, name), False, int(entry["Size"])))
        return self._paginate(entries, max_results, page_token)

    def download_artifacts(self, artifact_path: str, dst_path: LocalPath | None = None) -> Path:
        rel = safe_relative_path(artifact_path)
        if rel and self._is_file(rel):
            local = resolve_within(self._destination_root(dst_path), rel)
            self._download(self._key(rel), local, rel)
            return local
        files = list(self._files_under(rel))
        if rel and not files:
            raise ResourceDoesNotExist(f"No artifact at {rel!r}")
        dst_root = self._destination_root(dst_path)
        local = resolve_within(dst_root, rel)
        local.mkdir(parents=True, exist_ok=True)
        for key, path in files:
            self._download(key, resolve_within(dst_root, path), path)
        return local

    def _download(self, key: str, local: Path, rel: str) -> None:
        with self._errors(rel), atomic_file(local) as handle:
            self.client.download_fileobj(self.bucket, key, handle)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        rel = safe_relative_path(artifact_path)
        keys = list(self._keys_under(rel))
        if rel:
            keys.append(self._key(rel))
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
            with self._errors(rel):
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if answer.get("Errors"):
                failed = answer["Errors"][0]
                error = PermissionDenied if failed.get("Code") in _DENIED_CODES else SlipwayError
                raise error(f"Could not delete {failed.get('Key')!r}: {failed.get('Message')}")

    def open_artifact(self, path: str) -> BinaryIO:
        rel = self._file_path(path)
        with self._errors(rel):
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))
        return cast(BinaryIO, answer["Body"])

    def write_artifact_stream(self, path: str, stream: BinaryIO) -> None:
        rel = self._file_path(path)
        source = stream if _seekable(stream) else _FullReads(stream)
        with self._errors(rel):
            self.client.upload_fileobj(source, self.bucket, self._key(rel))


def _addressable(path: str, single: bool = False) -> bool:
    """Whether an object name can be reached through Slipway's path checks unchanged."""
    if not path or (single and "/" in path):
        return False
    try:
        return safe_relative_path(path) == path
    except InvalidParameterValue:
        return False


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class _FullReads:
    """A stream whose ``read(n)`` returns ``n`` bytes unless the stream ends first.

    boto3 takes a short read from a stream that cannot seek as its end and then reads all the
    rest at once; this keeps its reads, and so its memory, bounded by its part size.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._stream.read()
        parts: list[bytes] = []
        missing = size
        while missing > 0:
            chunk = self._stream.read(missing)
            if not chunk:
                break
            parts.append(chunk)
            missing -= len(chunk)
        return b"".join(parts)
