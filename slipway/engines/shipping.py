"""Shipping a job's working directory to the nodes of a cluster.

The launcher packs the folder into one zip (:func:`pack`), leaving out what never belongs in it
(:data:`EXCLUDES`: version control, virtual environments, caches, local tracking), and puts it
in Ray's object store once; each rank's actor unpacks it on its node (:func:`unpack`) and runs
the worker there. So a script, the modules next to it and its small data files need not exist
on the nodes, and what ran is exactly what was on the launcher's machine when the job started.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from slipway.exceptions import InvalidParameterValue

__all__ = ["EXCLUDES", "MAX_BYTES", "Package", "folder_to_ship", "pack", "unpack"]

EXCLUDES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".slipway",
        "mlruns",
        "node_modules",
    }
)
"""Folder names left out wherever they are in the tree."""
MAX_BYTES = 256 * 1024 * 1024
"""The most a shipped folder may hold (its files' sizes, before compression): data sets and
checkpoints belong in the artifact store, not in the code's folder."""


def folder_to_ship(working_dir: str | os.PathLike[str]) -> str:
    """``working_dir`` as an absolute path, checked to be a folder (INVALID_PARAMETER_VALUE
    otherwise)."""
    folder = Path(working_dir).expanduser().resolve()
    if not folder.is_dir():
        raise InvalidParameterValue(f"working_dir {str(working_dir)!r} is not a folder")
    return str(folder)


@dataclass(frozen=True)
class Package:
    """A packed folder: the zip's bytes, and how many files it holds."""

    data: bytes
    files: int


def pack(folder: str | os.PathLike[str], limit: int = MAX_BYTES) -> Package:
    """Zip ``folder`` (files only, symbolic links followed inside it, :data:`EXCLUDES` left
    out, permissions kept).

    Raises:
        InvalidParameterValue: the folder holds more than ``limit`` bytes.
    """
    root = Path(folder)
    buffer = io.BytesIO()
    files = size = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for current, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in EXCLUDES)
            for name in sorted(names):
                path = Path(current) / name
                try:
                    info = path.stat()
                except OSError:  # a dangling link: nothing to ship
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                size += info.st_size
                if size > limit:
                    raise InvalidParameterValue(
                        f"working_dir {root} holds more than {limit // (1024 * 1024)} MiB; "
                        "ship only the code (put data sets in the artifact store) or list "
                        "big folders under one of: " + ", ".join(sorted(EXCLUDES))
                    )
                entry = zipfile.ZipInfo.from_file(path, path.relative_to(root).as_posix())
                entry.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as source, zf.open(entry, "w") as target:
                    while chunk := source.read(1 << 20):
                        target.write(chunk)
                files += 1
    return Package(buffer.getvalue(), files)


def unpack(data: bytes, dest: str | os.PathLike[str]) -> Path:
    """Unzip a :func:`pack` package into ``dest`` (created), keeping file permissions; entries
    that would land outside ``dest`` are refused."""
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for entry in zf.infolist():
            name = PurePosixPath(entry.filename)
            if name.is_absolute() or ".." in name.parts:
                raise InvalidParameterValue(f"refusing to unpack {entry.filename!r}")
            path = target.joinpath(*name.parts)
            if entry.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(entry) as source, open(path, "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            mode = (entry.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)
    return target
