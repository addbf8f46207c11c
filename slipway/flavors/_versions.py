"""Library versions in model directories: pinning them at save, and naming them when a model
written by another version fails to load.

Every flavor records the version of the library that wrote its files (``pytorch_version``,
``xgb_version``, ...). Loading with another version usually works, so a difference alone is
only logged; but when loading fails, the error names both versions, since a file written by
another major version is the usual cause (XGBoost 3 no longer reads the binary format of
XGBoost 1, a pickled ``torch.nn.Module`` needs the classes that wrote it, ...).
"""

from __future__ import annotations

import logging
from pathlib import Path

from slipway.exceptions import InvalidParameterValue


def pinned_version(distribution: str, version: str) -> str:
    """``distribution==version`` without a local version label: ``torch==2.13.0`` for
    ``2.13.0+cpu``, since pip can install only the former from PyPI.

    The version comes from the imported module rather than the installed distribution's
    metadata, because a library may be installed under another name (``xgboost-cpu``
    provides ``xgboost``).
    """
    return f"{distribution}=={version.split('+', 1)[0]}"


def major(version: object) -> str | None:
    """The major version of ``version`` (``"2"`` for ``"2.13.0+cpu"``), None when unknown."""
    if not isinstance(version, str) or not version:
        return None
    head = version.split(".", 1)[0]
    return head if head.isdigit() else None


def load_error(
    library: str, package: str, path: Path, exc: BaseException, saved: object, installed: str
) -> InvalidParameterValue:
    """The error for a model file that ``library`` (installed as ``package``) could not load:
    it names the file, the cause, the version that wrote it and the one installed, and what
    to do about a difference of major versions."""
    written = saved if isinstance(saved, str) and saved else "of an unknown version"
    message = (
        f"Cannot load the {library} model {str(path)!r}: {type(exc).__name__}: "
        f"{first_line(exc)}. It was saved with {library} {written}; this is {library} "
        f"{installed}."
    )
    saved_major, installed_major = major(saved), major(installed)
    if saved_major is not None and installed_major is not None and saved_major != installed_major:
        message += (
            f" Files written by {library} {saved_major}.x may not load with {library} "
            f"{installed_major}.x: install {package}=={written} to load it, or save the model "
            f"again with {library} {installed}."
        )
    else:
        message += f" A truncated or corrupt file, or a different {library} version, causes this."
    return InvalidParameterValue(message)


def log_other_version(
    log: logging.Logger, library: str, path: Path, saved: object, installed: str
) -> None:
    """Log a warning when the model at ``path`` was written by another version of
    ``library`` (it loaded, but its predictions may differ)."""
    if isinstance(saved, str) and saved and saved != installed:
        log.warning(
            "The model at %s was saved with %s %s and is loaded with %s; its predictions may "
            "differ",
            path,
            library,
            saved,
            installed,
        )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: native libraries append stack traces."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["first_line", "load_error", "log_other_version", "major", "pinned_version"]
