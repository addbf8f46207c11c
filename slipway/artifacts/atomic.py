"""Writing local files so that they appear complete or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from slipway.exceptions import InvalidParameterValue

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "atomic_file", "is_temp_name", "write_atomically"]

# Files being written carry names like this until they are renamed into place.
TEMP_PREFIX, TEMP_SUFFIX = ".slipway-", ".part"

_CHUNK = 1024 * 1024
_BINARY = getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of :func:`atomic_file`'s unfinished temporary files."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


@contextlib.contextmanager
def atomic_file(dest: Path) -> Iterator[BinaryIO]:
    """A binary file to write that replaces ``dest`` only once the ``with`` block succeeds.

    The data goes to a temporary file beside ``dest`` (creating missing parent directories),
    which is renamed over ``dest`` at the end. If the block raises, the temporary file is removed
    and ``dest`` is left as it was.
    """
    if dest.is_dir():
        raise InvalidParameterValue(f"Invalid path: {dest.name!r} is a directory")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidParameterValue(
            f"Invalid path: a parent directory of {dest.name!r} is a file"
        ) from None
    tmp = dest.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
    # Mode 0o666 lets the umask decide the permissions, as for any other new file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY | _NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_atomically(dest: Path, stream: BinaryIO) -> None:
    """Copy ``stream`` into ``dest`` through :func:`atomic_file`, a chunk at a time."""
    with atomic_file(dest) as handle:
        shutil.copyfileobj(stream, handle, _CHUNK)
