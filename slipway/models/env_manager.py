"""Virtual environments for models (``--env-manager venv``): built once, then reused.

A model says what it needs in ``requirements.txt`` and ``python_env.yaml``. Building that
environment takes tens of seconds, so each distinct one is built once and cached in
``$SLIPWAY_ENV_CACHE/<key>`` (default ``~/.cache/slipway/envs/<key>``). The key is a SHA-256
of the requirements file's content, the Python version (major.minor: the interpreter that
runs it) and Slipway's version, so two models with the same needs share one environment.

A build is ``python -m venv``, then one ``pip install`` of the model's requirements together
with Slipway's core dependencies (so pip resolves them as one set), then a copy of the
installed ``slipway`` package folder in the environment's site-packages. Slipway is pure
Python, so a copy works for editable and normal installs alike; unlike a ``.pth`` file
pointing back at this environment, it does not leak this environment's packages into the
model's. A ``slipway`` line in the model's requirements is left to that copy (its extras are
installed from Slipway's own metadata), since this version may not be on any index.

Builds of one key serialise on an ``fcntl`` lock file next to the environment, and a
``.ready`` marker is written last: a folder without it is a build that did not finish (a
crash, Ctrl-C, a lost machine), and is removed and built again. Ctrl-C during a build stops
pip and removes the half-built folder at once.

Slipway does not download interpreters: a model that asks for another Python version runs
under that version's ``pythonX.Y`` from ``PATH`` when there is one, and otherwise the error
says so and points at ``--env-manager local`` (this process's environment).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import yaml
from rich.console import Console
from rich.status import Status

import slipway
from slipway.exceptions import InvalidParameterValue, InvalidState
from slipway.models.environment import PYTHON_ENV_FILE, REQUIREMENTS_FILE, requirement_name

ENV_CACHE_VAR = "SLIPWAY_ENV_CACHE"
READY_MARKER = ".ready"
MIN_PYTHON = (3, 11)
"""Slipway's own floor (``requires-python``): the copy of Slipway must run in the env."""

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.\d+)?")
_EXTRA_MARKER = re.compile(r"""^\s*extra\s*==\s*["']([^"']+)["']\s*$""")
_EXTRAS = re.compile(r"\[([^\]]*)\]")


def env_cache_root() -> Path:
    """Where environments are kept: ``$SLIPWAY_ENV_CACHE``, else ``~/.cache/slipway/envs``."""
    configured = os.environ.get(ENV_CACHE_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "slipway" / "envs"


def env_python(env_dir: Path) -> Path:
    """The interpreter of the environment at ``env_dir``."""
    return env_dir / "bin" / "python"


@dataclass(frozen=True)
class EnvSpec:
    """What a model's environment is made of, and so what identifies it in the cache.

    Attributes:
        requirements: the content of the model's ``requirements.txt`` ("" when it has none).
        python_version: ``major.minor`` of the Python the model asks for.
        slipway_version: the Slipway copied into the environment.
    """

    requirements: str
    python_version: str
    slipway_version: str

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> EnvSpec:
        """The spec of the model at ``model_dir``.

        Raises:
            InvalidParameterValue: naming the file, for an unreadable requirements file or a
                Python version that does not parse.
        """
        path = model_dir / REQUIREMENTS_FILE
        try:
            requirements = path.read_text(encoding="utf-8") if path.is_file() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidParameterValue(f"Cannot read {str(path)!r}: {exc}") from None
        return cls(requirements, requested_python(model_dir), slipway.__version__)

    @property
    def key(self) -> str:
        """32 hex digits of the SHA-256 of the three fields (short, for short venv paths)."""
        body = json.dumps([self.requirements, self.python_version, self.slipway_version])
        return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]

    def requirement_lines(self) -> list[str]:
        """The requirements file's entries, without blank lines and comments."""
        entries = (line.split(" #", 1)[0].strip() for line in self.requirements.splitlines())
        return [entry for entry in entries if entry and not entry.startswith("#")]


def requested_python(model_dir: Path) -> str:
    """``major.minor`` of the Python the model asks for: ``python`` in ``python_env.yaml``,
    else ``python_version`` of the ``MLmodel``'s pyfunc flavor, else this interpreter's.

    Raises:
        InvalidParameterValue: naming the file, when it is not YAML or the version is invalid.
    """
    path = model_dir / PYTHON_ENV_FILE
    version: object = None
    if path.is_file():
        try:
            body = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InvalidParameterValue(f"Cannot read {str(path)!r}: {exc}") from None
        version = body.get("python") if isinstance(body, dict) else None
    else:
        from slipway.models.mlmodel import PYFUNC_FLAVOR, Model

        version = Model.load(model_dir).flavors.get(PYFUNC_FLAVOR, {}).get("python_version")
        path = model_dir / "MLmodel"
    if version is None:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    match = _VERSION.match(str(version))
    if match is None:
        raise InvalidParameterValue(f"{str(path)!r}: {version!r} is not a Python version")
    return f"{match.group(1)}.{match.group(2)}"


def find_interpreter(version: str) -> str:
    """An interpreter for ``major.minor``: this one, or ``pythonX.Y`` on ``PATH``.

    Raises:
        InvalidState: for a version older than Slipway supports, or one not installed here.
    """
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    major, minor = (int(part) for part in version.split("."))
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if (major, minor) < MIN_PYTHON:
        raise InvalidState(
            f"The model asks for Python {version}, but Slipway needs Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer inside the environment. Run it in this "
            f"environment (Python {running}) with --env-manager local."
        )
    found = shutil.which(f"python{version}")
    if found is None:
        raise InvalidState(
            f"The model asks for Python {version}, but this is Python {running} and no "
            f"python{version} is on PATH; Slipway does not download interpreters. Install "
            f"Python {version}, or run the model in this environment with --env-manager local."
        )
    return found


def slipway_requirements(extras: Iterable[str] = ()) -> list[str]:
    """Slipway's core runtime requirements, plus those of ``extras``, from its metadata.

    Raises:
        InvalidState: when Slipway is importable but not installed as a distribution.
    """
    try:
        declared = importlib.metadata.requires("slipway") or []
    except importlib.metadata.PackageNotFoundError:
        raise InvalidState(
            "Slipway is not installed as a package (no metadata to read its dependencies "
            "from); install it with pip, e.g. pip install -e ."
        ) from None
    wanted, seen, out = list(extras), set(), []
    for entry in declared:
        requirement, _, marker = entry.partition(";")
        if not marker.strip():
            out.append(requirement.strip())
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for entry in declared:
            requirement, _, marker = entry.partition(";")
            match = _EXTRA_MARKER.match(marker)
            if match is None or match.group(1) != extra:
                continue
            if requirement_name(requirement) == "slipway":  # an extra made of other extras
                wanted.extend(_extras_of(requirement))
            else:
                out.append(requirement.strip())
        # markers other than extras (python_version, ...) stay: pip evaluates them itself
    return list(dict.fromkeys(out))


def _extras_of(requirement: str) -> list[str]:
    match = _EXTRAS.search(requirement.split(";", 1)[0])
    return [e.strip() for e in match.group(1).split(",") if e.strip()] if match else []


def install_lines(spec: EnvSpec, model_dir: Path) -> list[str]:
    """What the environment's one ``pip install -r`` gets: the model's requirements, less
    any ``slipway`` line (the copy provides it), plus Slipway's requirements and those of the
    extras that line named. ``-r``/``-c`` paths are made absolute against ``model_dir``."""
    lines: list[str] = []
    extras: list[str] = []
    for line in spec.requirement_lines():
        if requirement_name(line) == "slipway":
            extras.extend(_extras_of(line))
            continue
        option, _, target = line.partition(" ")
        if option in ("-r", "-c", "--requirement", "--constraint") and target.strip():
            line = f"{option} {(model_dir / target.strip()).resolve()}"
        lines.append(line)
    return [*lines, *slipway_requirements(extras)]


def get_or_create_env(
    model_dir: Path, *, cache_root: Path | None = None, console: Console | None = None
) -> Path:
    """The environment for the model at ``model_dir``, built first if it is not cached.

    Args:
        model_dir: a local model directory.
        cache_root: where environments live; :func:`env_cache_root` when omitted.
        console: where progress goes; stderr when omitted (stdout is for predictions).

    Raises:
        InvalidState: the Python version is not available, or the build failed (the message
            names the requirement pip could not install, when pip says which).
    """
    spec = EnvSpec.from_model_dir(model_dir)
    interpreter = find_interpreter(spec.python_version)
    root = cache_root if cache_root is not None else env_cache_root()
    env_dir = root / spec.key
    if (env_dir / READY_MARKER).is_file():
        return env_dir
    console = console if console is not None else Console(stderr=True, highlight=False)
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / f"{spec.key}.lock", console):
        if (env_dir / READY_MARKER).is_file():  # another process built it while we waited
            return env_dir
        if env_dir.exists():
            console.print(f"Removing an unfinished environment build at {env_dir}", markup=False)
            shutil.rmtree(env_dir)
        try:
            _build(spec, model_dir, env_dir, interpreter, console)
        except BaseException as exc:  # Ctrl-C included: never leave a half-built folder
            shutil.rmtree(env_dir, ignore_errors=True)
            if isinstance(exc, KeyboardInterrupt):
                console.print("Interrupted: the unfinished environment was removed.")
            raise
    return env_dir


@contextmanager
def _exclusive(lock_path: Path, console: Console) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock_path``; released when the process dies."""
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print("Another process is building this environment; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(
    spec: EnvSpec, model_dir: Path, env_dir: Path, interpreter: str, console: Console
) -> None:
    with _step(console, f"Creating a virtual environment (Python {spec.python_version})"):
        _run([interpreter, "-m", "venv", str(env_dir)], "python -m venv")
    python = env_python(env_dir)
    requirements = env_dir / "slipway-requirements.txt"
    requirements.write_text("\n".join(install_lines(spec, model_dir)) + "\n", encoding="utf-8")
    with _step(console, "Installing the model's requirements") as status:
        _pip_install(python, requirements, model_dir, status, console)
    with _step(console, f"Installing slipway {spec.slipway_version}"):
        _copy_slipway(python)
    marker = {
        "python_version": spec.python_version,
        "slipway_version": spec.slipway_version,
        "requirements": spec.requirements,
    }
    (env_dir / READY_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    console.print(f"Environment ready: {env_dir}", markup=False)


@contextmanager
def _step(console: Console, text: str) -> Iterator[Status]:
    """A spinner for one build step, then a check mark line once it is done."""
    with console.status(text) as status:
        yield status
    console.print(f"[green]✓[/green] {text}")


def _child_env() -> dict[str, str]:
    """This process's environment without what would leak its packages into the child."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_NO_INPUT"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=_child_env(), check=False)
    if done.returncode != 0:
        raise InvalidState(f"{what} failed (exit code {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _pip_install(
    python: Path, requirements: Path, cwd: Path, status: Status, console: Console
) -> None:
    """``pip install -r requirements``, showing its progress on the status line and its
    errors as they come; raises naming the requirement that failed."""
    command = [str(python), "-I", "-m", "pip", "install", "-r", str(requirements)]
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            for line in _lines(process.stdout):
                lines.append(line)
                if line.startswith("ERROR:"):
                    console.print(line, style="red", markup=False, highlight=False)
                elif line.startswith(("Collecting", "Downloading", "Installing", "Building")):
                    status.update(f"Installing the model's requirements: {line[:70]}")
            code = process.wait()
        except BaseException:  # Ctrl-C: stop pip before the caller removes its folder
            process.kill()
            raise
    if code != 0:
        raise InvalidState(pip_failure(lines, code))


def _lines(stream: IO[str] | None) -> Iterator[str]:
    if stream is not None:
        for line in stream:
            yield line.rstrip()


_FAILED = (
    re.compile(r"No matching distribution found for (\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
    re.compile(r"Invalid requirement: '([^']+)'"),
    re.compile(r"Failed (?:building wheel|to build) (?:for )?(\S+)"),
    re.compile(r"Cannot install (.+?) because these package versions have conflicting"),
)


def pip_failure(lines: list[str], code: int) -> str:
    """A message for a failed ``pip install``: the requirement it names, then its errors."""
    failed = next((m.group(1) for rx in _FAILED for line in lines if (m := rx.search(line))), None)
    errors = [line for line in lines if line.startswith("ERROR:")] or lines[-10:]
    head = (
        f"pip could not install {failed!r} for the model's environment"
        if failed
        else f"pip failed (exit code {code}) installing the model's environment"
    )
    return head + ":\n" + "\n".join(errors)


def _copy_slipway(python: Path) -> None:
    """Copy this Slipway's package folder into the environment, with a minimal
    ``.dist-info`` so that pip and ``importlib.metadata`` see it as installed there."""
    purelib = Path(
        _run(
            [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            "finding the environment's site-packages",
        ).strip()
    )
    source = Path(slipway.__file__).resolve().parent
    shutil.copytree(
        source, purelib / "slipway", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    info = purelib / f"slipway-{slipway.__version__}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {line}\n" for line in slipway_requirements())
    metadata = f"Metadata-Version: 2.1\nName: slipway\nVersion: {slipway.__version__}\n"
    (info / "METADATA").write_text(metadata + requires, encoding="utf-8")
    (info / "INSTALLER").write_text("slipway\n", encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")


__all__ = [
    "ENV_CACHE_VAR",
    "MIN_PYTHON",
    "READY_MARKER",
    "EnvSpec",
    "env_cache_root",
    "env_python",
    "find_interpreter",
    "get_or_create_env",
    "install_lines",
    "pip_failure",
    "requested_python",
    "slipway_requirements",
]
