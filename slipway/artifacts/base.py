"""The contract every artifact store keeps, and the pieces the stores share."""

from __future__ import annotations

import abc
import base64
import binascii
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from slipway.artifacts.paths import safe_relative_path, validate_artifact_root
from slipway.entities.paged import PagedList
from slipway.exceptions import InvalidParameterValue

__all__ = ["ArtifactRepository", "FileInfo", "LocalPath"]

# A path on this machine, as the caller has it.
LocalPath = str | os.PathLike[str]


@dataclass(frozen=True)
class FileInfo:
    """One entry of an artifact listing.

    Attributes:
        path: posix path relative to the repository root.
        is_dir: whether the entry is a directory.
        file_size: size in bytes for files, None for directories.
    """

    path: str
    is_dir: bool
    file_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """MLflow's JSON shape: ``{"path", "is_dir", "file_size"}``, no size for directories."""
        body: dict[str, Any] = {"path": self.path, "is_dir": self.is_dir}
        if not self.is_dir and self.file_size is not None:
            body["file_size"] = self.file_size
        return body


class ArtifactRepository(abc.ABC):
    """A tree of artifact files under one root URI.

    Every artifact path argument is relative to the root and is checked with
    :func:`~slipway.artifacts.paths.safe_relative_path`; unsafe paths raise
    :class:`~slipway.exceptions.InvalidParameterValue` before anything is read or written.

    Args:
        root_uri: where the tree lives, checked with
            :func:`~slipway.artifacts.paths.validate_artifact_root`.
    """

    def __init__(self, root_uri: str) -> None:
        self.root_uri = validate_artifact_root(root_uri)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"

    @abc.abstractmethod
    def log_artifact(self, local_file: LocalPath, artifact_path: str | None = None) -> None:
        """Upload one local file into directory ``artifact_path`` (the root when None)."""

    @abc.abstractmethod
    def log_artifacts(self, local_dir: LocalPath, artifact_path: str | None = None) -> None:
        """Upload every file under ``local_dir``, recursively, into directory ``artifact_path``."""

    @abc.abstractmethod
    def list_artifacts(
        self,
        path: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[FileInfo]:
        """The entries directly inside directory ``path``, sorted by path, one page at a time.

        A path that is a file or does not exist lists as empty. The returned list's ``token``
        fetches the next page, and is None on the last one.
        """

    @abc.abstractmethod
    def download_artifacts(self, artifact_path: str, dst_path: LocalPath | None = None) -> Path:
        """Copy a file or a whole directory to ``dst_path / artifact_path`` and return that path.

        ``dst_path`` defaults to a new temporary directory.

        Raises:
            ResourceDoesNotExist: when nothing is stored at ``artifact_path``.
        """

    @abc.abstractmethod
    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        """Delete a file or a directory tree (everything when None); missing paths are fine."""

    @abc.abstractmethod
    def open_artifact(self, path: str) -> BinaryIO:
        """A binary stream reading the file at ``path``; the caller closes it.

        Raises:
            ResourceDoesNotExist: when there is no file at ``path``.
        """

    @abc.abstractmethod
    def write_artifact_stream(self, path: str, stream: BinaryIO) -> None:
        """Store everything read from ``stream`` as the file ``path``, in bounded memory.

        A file at ``path`` appears complete or not at all, also when ``stream`` fails.
        """

    def log_bytes(self, data: bytes, artifact_path_with_filename: str) -> None:
        """Store ``data`` as the file ``artifact_path_with_filename``."""
        self.write_artifact_stream(artifact_path_with_filename, io.BytesIO(data))

    # Helpers shared by the stores.

    @staticmethod
    def _file_path(path: str) -> str:
        """``path`` checked, refused when it names the root rather than a file."""
        clean = safe_relative_path(path)
        if not clean:
            raise InvalidParameterValue("Invalid path: a file path is required")
        return clean

    @staticmethod
    def _local_source_file(local_file: LocalPath) -> Path:
        source = Path(local_file)
        if not source.is_file():
            raise InvalidParameterValue(f"Not a local file: {str(source)!r}")
        return source

    @staticmethod
    def _local_source_tree(local_dir: LocalPath) -> Iterator[tuple[Path, str]]:
        """Each file under ``local_dir`` with the relative directory it sits in."""
        source = Path(local_dir)
        if not source.is_dir():
            raise InvalidParameterValue(f"Not a local directory: {str(source)!r}")
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(source).as_posix()
            for name in sorted(filenames):
                yield Path(dirpath, name), "" if rel_dir == "." else rel_dir

    @staticmethod
    def _destination_root(dst_path: LocalPath | None) -> Path:
        if dst_path is None:
            return Path(tempfile.mkdtemp(prefix="slipway-artifacts-"))
        root = Path(dst_path)
        root.mkdir(parents=True, exist_ok=True)
        return root

    @staticmethod
    def _paginate(
        entries: list[FileInfo], max_results: int | None, page_token: str | None
    ) -> PagedList[FileInfo]:
        """One page of ``entries`` (sorted here by path) after the one ``page_token`` ended."""
        if max_results is not None and (isinstance(max_results, bool) or max_results < 1):
            raise InvalidParameterValue(f"max_results must be a positive integer: {max_results}")
        ordered = sorted(entries, key=lambda entry: entry.path)
        if page_token:
            after = _decode_token(page_token)
            ordered = [entry for entry in ordered if entry.path > after]
        if max_results is None or len(ordered) <= max_results:
            return PagedList(ordered)
        page = ordered[:max_results]
        return PagedList(page, token=_encode_token(page[-1].path))


def _encode_token(last_path: str) -> str:
    raw = json.dumps({"after": last_path}).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        after = body["after"]
    except (binascii.Error, UnicodeError, ValueError, TypeError, KeyError):
        raise InvalidParameterValue(f"Invalid page token: {token!r}") from None
    if not isinstance(after, str):
        raise InvalidParameterValue(f"Invalid page token: {token!r}")
    return after
