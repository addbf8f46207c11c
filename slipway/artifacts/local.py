"""Artifacts in a directory on the local file system."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit
from urllib.request import url2pathname

from slipway.artifacts.atomic import is_temp_name, write_atomically
from slipway.artifacts.base import ArtifactRepository, FileInfo, LocalPath
from slipway.artifacts.paths import join_relative, resolve_within, safe_relative_path
from slipway.entities.paged import PagedList
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist

__all__ = ["LocalArtifactRepository"]

_BINARY = getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _local_root(root_uri: str) -> Path:
    if urlsplit(root_uri).scheme.lower() == "file":
        return Path(url2pathname(urlsplit(root_uri).path))
    return Path(root_uri)


class LocalArtifactRepository(ArtifactRepository):
    """Artifacts stored as plain files under a local directory.

    Nothing outside the root directory is ever read or written: every path is resolved (with
    symlinks followed) and checked to stay inside the root, and writes go through a temporary
    file that is renamed into place.

    Args:
        root_uri: the root directory, as a plain path or a ``file://`` URI. It need not exist
            yet; it is created on the first write.
    """

    def __init__(self, root_uri: str) -> None:
        super().__init__(root_uri)
        self.root = _local_root(root_uri).absolute()

    def _resolve(self, rel: str | None) -> Path:
        return resolve_within(self.root, safe_relative_path(rel))

    def log_artifact(self, local_file: LocalPath, artifact_path: str | None = None) -> None:
        source = self._local_source_file(local_file)
        dest = self._resolve(join_relative(artifact_path, source.name))
        with source.open("rb") as stream:
            write_atomically(dest, stream)

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
        directory = self._resolve(rel)
        entries: list[FileInfo] = []
        if directory.is_dir():
            for name in os.listdir(directory):
                if is_temp_name(name):
                    continue
                info = self._file_info(rel, name)
                if info is not None:
                    entries.append(info)
        return self._paginate(entries, max_results, page_token)

    def _file_info(self, directory: str, name: str) -> FileInfo | None:
        """The listing entry for ``name``; None for names and links that cannot be addressed."""
        try:
            rel = join_relative(directory, name)
            target = self._resolve(rel)
        except InvalidParameterValue:
            return None
        if target.is_dir():
            return FileInfo(rel, is_dir=True)
        if target.is_file():
            return FileInfo(rel, is_dir=False, file_size=target.stat().st_size)
        return None

    def download_artifacts(self, artifact_path: str, dst_path: LocalPath | None = None) -> Path:
        rel = safe_relative_path(artifact_path)
        source = self._resolve(rel)
        if not source.exists() and rel:
            raise ResourceDoesNotExist(f"No artifact at {rel!r}")
        dst_root = self._destination_root(dst_path)
        local = resolve_within(dst_root, rel)
        if source.is_file():
            self._download_file(rel, local)
            return local
        local.mkdir(parents=True, exist_ok=True)
        self._download_tree(rel, dst_root, frozenset())
        return local

    def _download_tree(self, rel_dir: str, dst_root: Path, above: frozenset[Path]) -> None:
        """Copy directory ``rel_dir``; ``above`` holds the real directories being copied."""
        real = self._resolve(rel_dir)
        if real in above:
            return  # a link back up the tree: following it would never end
        for info in self.list_artifacts(rel_dir):
            if info.is_dir:
                resolve_within(dst_root, info.path).mkdir(parents=True, exist_ok=True)
                self._download_tree(info.path, dst_root, above | {real})
            else:
                self._download_file(info.path, resolve_within(dst_root, info.path))

    def _download_file(self, rel: str, local: Path) -> None:
        with self.open_artifact(rel) as stream:
            write_atomically(local, stream)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        target = self._resolve(artifact_path)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    def open_artifact(self, path: str) -> BinaryIO:
        rel = self._file_path(path)
        target = self._resolve(rel)
        if not target.is_file():
            raise ResourceDoesNotExist(f"No artifact file at {rel!r}")
        # The path is fully resolved; O_NOFOLLOW refuses a link swapped in since then.
        fd = os.open(target, os.O_RDONLY | _BINARY | _NOFOLLOW)
        return os.fdopen(fd, "rb")

    def write_artifact_stream(self, path: str, stream: BinaryIO) -> None:
        write_atomically(self._resolve(self._file_path(path)), stream)
