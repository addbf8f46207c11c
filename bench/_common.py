"""What both benchmarks share: a temporary root, SIGTERM as Ctrl-C, package versions."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any


def interrupt(_signum: int, _frame: Any) -> None:
    """A SIGTERM handler that stops a benchmark the way Ctrl-C does."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def temporary_root(prefix: str, keep: bool) -> Iterator[Path]:
    """A fresh folder for one benchmark run, removed afterwards unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def package_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"
