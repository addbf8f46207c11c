"""A Docker build context that serves a model: ``slipway models dockerfile URI -o DIR``.

:func:`write_dockerfile` downloads the model into ``DIR/model/`` and writes ``DIR/Dockerfile``
and ``DIR/.dockerignore``; ``docker build DIR`` then makes an image that serves the model on
port 8080. The image:

* starts from ``python:<major.minor>-slim`` for the Python the model was saved with (the
  minor version is what pickles and wheels depend on; the newest patch release brings its
  security fixes);
* installs the model's ``requirements.txt`` and ``slipway[server]`` at this Slipway's version
  in one ``pip install``, in a layer that only the requirements invalidate;
* copies the model to ``/opt/model`` and runs as an unprivileged user;
* runs ``slipway serve /opt/model --host 0.0.0.0 --port 8080``.

``slipway serve`` (the model-serving command: ``/invocations``, ``/ping``, ...) is being built
as a separate piece of work; until it ships, images built from this Dockerfile do not start.
The build context is written the same way either way, so it can be checked in and built once
the command exists.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import slipway
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists
from slipway.models.env_manager import MIN_PYTHON, requested_python
from slipway.models.environment import REQUIREMENTS_FILE

MODEL_DIR = "model"
"""The model's folder inside the build context."""
IMAGE_MODEL_DIR = "/opt/model"
"""Where the model lives inside the image."""
PORT = 8080

DOCKERIGNORE = """\
# Only the Dockerfile and the model belong in the image's build context.
**/__pycache__
**/*.pyc
**/.DS_Store
.git
"""


def write_dockerfile(model_uri: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write a Docker build context for the model at ``model_uri`` into ``out_dir``.

    Args:
        model_uri: any model URI (``runs:/``, ``models:/``, a local path, ...).
        out_dir: the build context folder; created when missing. It must not already hold a
            ``Dockerfile`` or a ``model`` folder: nothing is overwritten.

    Returns:
        The path of the ``Dockerfile``.

    Raises:
        ResourceAlreadyExists: when ``out_dir`` already has a Dockerfile or a model folder.
        InvalidParameterValue: for a bad URI or model, or an ``out_dir`` that is a file.
        ResourceDoesNotExist: when nothing is at ``model_uri``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidParameterValue(f"Output {str(out)!r} exists and is not a folder")
    for name in ("Dockerfile", MODEL_DIR):
        if (out / name).exists():
            raise ResourceAlreadyExists(
                f"{str(out / name)!r} already exists; choose an empty output folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    model_dir = _fetch_model(model_uri, out)
    if not (model_dir / REQUIREMENTS_FILE).exists():  # the Dockerfile copies it
        (model_dir / REQUIREMENTS_FILE).write_text("", encoding="utf-8")
    dockerfile = out / "Dockerfile"
    dockerfile.write_text(render_dockerfile(requested_python(model_dir)), encoding="utf-8")
    (out / ".dockerignore").write_text(DOCKERIGNORE, encoding="utf-8")
    return dockerfile


def _fetch_model(model_uri: str | os.PathLike[str], out: Path) -> Path:
    """The model, downloaded (or copied, when it is local) to ``out/model``; checked to be a
    model directory before anything is left there."""
    from slipway.models.mlmodel import Model
    from slipway.models.uri import download_model

    target = out / MODEL_DIR
    with tempfile.TemporaryDirectory(prefix=".slipway-model-", dir=out) as tmp:
        fetched = download_model(model_uri, tmp)
        Model.load(fetched)  # a clear error for something that is not a model
        if fetched.resolve().is_relative_to(Path(tmp).resolve()):
            fetched.rename(target)
        else:
            shutil.copytree(fetched, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def render_dockerfile(python_version: str) -> str:
    """The Dockerfile text for a model that asks for Python ``python_version`` (major.minor).

    A model saved under a Python older than Slipway supports gets Slipway's oldest one: the
    server has to run, and a comment in the Dockerfile says so."""
    model = IMAGE_MODEL_DIR
    base = python_version
    note = ""
    major, minor = (int(part) for part in python_version.split("."))
    if (major, minor) < MIN_PYTHON:
        base = f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}"
        note = (
            f"# The model was saved under Python {python_version}; Slipway needs {base} or "
            f"newer,\n# so the image uses Python {base}.\n"
        )
    return f"""\
# Serves the model in ./{MODEL_DIR} on port {PORT}. Build: docker build -t my-model .
{note}FROM python:{base}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The requirements first, so that a changed model file does not reinstall them.
COPY {MODEL_DIR}/{REQUIREMENTS_FILE} {model}/{REQUIREMENTS_FILE}
RUN pip install -r {model}/{REQUIREMENTS_FILE} "slipway[server]=={slipway.__version__}"

COPY {MODEL_DIR}/ {model}/

RUN useradd --system --no-create-home --shell /usr/sbin/nologin slipway
USER slipway

EXPOSE {PORT}
CMD ["slipway", "serve", "{model}", "--host", "0.0.0.0", "--port", "{PORT}"]
"""


__all__ = ["IMAGE_MODEL_DIR", "MODEL_DIR", "PORT", "render_dockerfile", "write_dockerfile"]
