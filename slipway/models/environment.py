"""The environment a model needs, written next to it as MLflow writes it.

Three files describe the same pip requirements, so any tool can rebuild the environment:

* ``requirements.txt``: one requirement a line, pinned to the installed versions
  (``scikit-learn==1.5.2``);
* ``python_env.yaml``: the Python version, the build tools (pip, setuptools, wheel) and
  ``-r requirements.txt``, which is what ``virtualenv``/``uv`` environment managers read;
* ``conda.yaml``: the same for conda.

And ``code_paths``: local files or folders the model's code imports, copied into ``code/``
and put first on ``sys.path`` before the model loads.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from slipway.exceptions import InvalidParameterValue

REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"
CONDA_ENV_FILE = "conda.yaml"
CODE_DIR = "code"
BUILD_PACKAGES = ("pip", "setuptools", "wheel")

Requirements = Sequence[str] | str | os.PathLike[str]
"""Requirement strings, or the path of a requirements file."""

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def python_version() -> str:
    """This interpreter's version, ``major.minor.micro``."""
    info = sys.version_info
    return f"{info.major}.{info.minor}.{info.micro}"


def pinned(distribution: str) -> str:
    """``distribution==<installed version>``, or the bare name when it is not installed."""
    try:
        return f"{distribution}=={importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return distribution


def requirement_name(requirement: str) -> str | None:
    """The normalised project name a requirement line installs (None for ``-r``, URLs, ...)."""
    match = _NAME.match(requirement)
    if match is None or requirement.lstrip().startswith("-"):
        return None
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def read_requirements(requirements: Requirements, argument: str) -> list[str]:
    """Requirement strings from a list, or from the lines of a requirements file.

    Raises:
        InvalidParameterValue: naming ``argument`` for a missing file or a bad entry.
    """
    if isinstance(requirements, (str, os.PathLike)):
        path = Path(requirements)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidParameterValue(
                f"{argument}: cannot read requirements file {str(path)!r}: {exc}"
            ) from None
        entries = [line.split(" #", 1)[0].strip() for line in lines]
        return [entry for entry in entries if entry and not entry.startswith("#")]
    if not isinstance(requirements, Sequence):
        raise InvalidParameterValue(
            f"{argument} must be a list of requirement strings or a requirements file path"
        )
    out: list[str] = []
    for entry in requirements:
        if not isinstance(entry, str) or not entry.strip() or "\n" in entry:
            raise InvalidParameterValue(f"{argument}: invalid requirement {entry!r}")
        out.append(entry.strip())
    return out


def resolve_requirements(
    defaults: Sequence[str],
    pip_requirements: Requirements | None = None,
    extra_pip_requirements: Requirements | None = None,
) -> list[str]:
    """The model's pip requirements, chosen as MLflow chooses them.

    Args:
        defaults: the distributions the flavor needs (``"scikit-learn"``), pinned here to the
            installed versions.
        pip_requirements: replaces the defaults entirely.
        extra_pip_requirements: added to the defaults; an entry for a package the defaults
            name replaces that default.

    Raises:
        InvalidParameterValue: when both arguments are given, or an entry is invalid.
    """
    if pip_requirements is not None and extra_pip_requirements is not None:
        raise InvalidParameterValue(
            "Only one of pip_requirements and extra_pip_requirements can be given"
        )
    if pip_requirements is not None:
        return _deduplicated(read_requirements(pip_requirements, "pip_requirements"))
    extra = (
        read_requirements(extra_pip_requirements, "extra_pip_requirements")
        if extra_pip_requirements is not None
        else []
    )
    overridden = {requirement_name(entry) for entry in extra} - {None}
    base = [pinned(name) for name in defaults if requirement_name(name) not in overridden]
    return _deduplicated([*base, *extra])


def _deduplicated(requirements: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for entry in requirements:
        key = requirement_name(entry) or entry
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def write_environment(model_dir: Path, requirements: Sequence[str]) -> dict[str, str]:
    """Write the three environment files; return the ``env`` entry of the pyfunc flavor."""
    (model_dir / REQUIREMENTS_FILE).write_text("\n".join(requirements) + "\n", encoding="utf-8")
    build = [pinned(name) for name in BUILD_PACKAGES]
    python_env: dict[str, Any] = {
        "python": python_version(),
        "build_dependencies": build,
        "dependencies": [f"-r {REQUIREMENTS_FILE}"],
    }
    _write_yaml(model_dir / PYTHON_ENV_FILE, python_env)
    pip = pinned("pip")
    conda = {
        "name": "slipway-env",
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={python_version()}",
            pip.replace("==", "<=") if "==" in pip else pip,
            {"pip": list(requirements)},
        ],
    }
    _write_yaml(model_dir / CONDA_ENV_FILE, conda)
    return {"conda": CONDA_ENV_FILE, "virtualenv": PYTHON_ENV_FILE}


def _write_yaml(path: Path, body: Mapping[str, Any]) -> None:
    path.write_text(
        yaml.safe_dump(dict(body), sort_keys=False, default_flow_style=False), encoding="utf-8"
    )


def copy_code_paths(
    model_dir: Path, code_paths: Sequence[str | os.PathLike[str]] | None
) -> str | None:
    """Copy each file or folder into ``model_dir/code/``; the subdirectory name, or None.

    Raises:
        InvalidParameterValue: for a path that does not exist, or two with the same name.
    """
    if not code_paths:
        return None
    if isinstance(code_paths, (str, os.PathLike)):
        raise InvalidParameterValue("code_paths must be a list of paths, not a single path")
    target = model_dir / CODE_DIR
    target.mkdir()
    for entry in code_paths:
        source = Path(entry)
        if not source.exists():
            raise InvalidParameterValue(f"code_paths: {str(source)!r} does not exist")
        destination = target / source.name
        if destination.exists():
            raise InvalidParameterValue(
                f"code_paths: two entries are named {source.name!r}; names must be unique"
            )
        if source.is_dir():
            shutil.copytree(
                source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, destination)
    return CODE_DIR


def add_code_to_path(model_dir: Path, pyfunc_conf: Mapping[str, Any]) -> None:
    """Put the model's ``code/`` folder first on ``sys.path`` (once), as MLflow does."""
    code = pyfunc_conf.get("code")
    if not code:
        return
    from slipway.artifacts.paths import safe_relative_path

    folder = str(model_dir / safe_relative_path(str(code)))
    if folder not in sys.path:
        sys.path.insert(0, folder)


__all__ = [
    "BUILD_PACKAGES",
    "CODE_DIR",
    "CONDA_ENV_FILE",
    "PYTHON_ENV_FILE",
    "REQUIREMENTS_FILE",
    "Requirements",
    "add_code_to_path",
    "copy_code_paths",
    "pinned",
    "python_version",
    "read_requirements",
    "requirement_name",
    "resolve_requirements",
    "write_environment",
]
