"""Model URIs, and how each becomes a local model directory.

==================================  ==========================================================
URI                                 where the model is
==================================  ==========================================================
``runs:/<run_id>/<path>``           ``<path>`` in the run's artifacts (the tracking store says
                                    where they are)
``models:/<name>/<version>``        that registered model version's source
``models:/<name>@<alias>``          the version the alias points at
``models:/<name>/latest``           the newest version
``models:/<name>/<stage>``          the newest version in a legacy stage (``Production``, ...)
``models:/<model_id>``              an MLflow 3 logged model (``m-...``), by its id
a local path, ``file:///...``       right there (nothing is copied)
``mlflow-artifacts:/...``,          an artifact store, through
``s3://...``, ``http(s)://...``     :func:`~slipway.artifacts.get_artifact_repository`
==================================  ==========================================================

A registered version's source is itself a URI (a run's artifact folder, or another
``models:/`` URI for a copied version), and is resolved the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.registry.uris import parse_models_uri, parse_runs_uri, resolve_version

_MAX_REDIRECTS = 8
"""How many ``models:/`` sources may point at other ``models:/`` URIs before we give up."""

_REMOTE_SCHEMES = frozenset({"mlflow-artifacts", "s3", "http", "https"})


def download_model(uri: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None) -> Path:
    """The local directory of the model at ``uri``: the path itself for a local model,
    otherwise a copy downloaded under ``dst`` (a new temporary directory when omitted).

    Raises:
        InvalidParameterValue: for a malformed URI or an unsupported scheme.
        ResourceDoesNotExist: for an unknown run, registered model, version or alias, or a
            path where nothing is stored.
    """
    text = os.fspath(uri)
    for _ in range(_MAX_REDIRECTS):
        if not isinstance(text, str) or not text.strip():
            raise InvalidParameterValue(f"Invalid model URI {text!r}: it is empty")
        if not text.startswith("models:"):
            return _download(text, dst)
        text = registered_model_source(text)
    raise InvalidParameterValue(
        f"Model URI {os.fspath(uri)!r} refers to other models:/ URIs more than "
        f"{_MAX_REDIRECTS} times"
    )


def _download(uri: str, dst: str | os.PathLike[str] | None) -> Path:
    scheme = _scheme(uri)
    if scheme == "runs":
        return _download_run_artifacts(uri, dst)
    if scheme in ("", "file"):
        return _local_path(uri)
    if scheme in _REMOTE_SCHEMES:
        return download_artifact_uri(uri, dst)
    raise InvalidParameterValue(
        f"Unsupported model URI {uri!r}: use runs:/, models:/, a local path, file://, "
        "mlflow-artifacts:/, s3:// or an http(s) artifact URL"
    )


def _scheme(uri: str) -> str:
    scheme = urlsplit(uri).scheme.lower()
    if len(scheme) == 1 and scheme.isalpha():  # a Windows drive letter, not a scheme
        return ""
    return scheme


def _local_path(uri: str) -> Path:
    if _scheme(uri) == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise InvalidParameterValue(f"Invalid file URI {uri!r}: it names a remote host")
        path = Path(unquote(parts.path))
    else:
        path = Path(uri).expanduser()
    if not path.exists():
        raise ResourceDoesNotExist(f"No model at {str(path)!r}: the path does not exist")
    return path


def download_artifact_uri(uri: str, dst: str | os.PathLike[str] | None = None) -> Path:
    """Download the file or folder at an artifact-store URI (``s3://b/x/model``,
    ``mlflow-artifacts:/x/model``, ...) to ``dst / <its last name>``; a local path or
    ``file://`` URI is returned as it is."""
    from slipway.artifacts import get_artifact_repository

    if _scheme(uri) in ("", "file"):
        return _local_path(uri)
    trimmed = uri.rstrip("/")
    if not urlsplit(trimmed).path.strip("/"):
        raise InvalidParameterValue(f"Invalid artifact URI {uri!r}: it names no file or folder")
    root, _, name = trimmed.rpartition("/")
    if root.endswith(":"):  # mlflow-artifacts:/model
        root += "/"
    return get_artifact_repository(root).download_artifacts(name, dst)


def _download_run_artifacts(uri: str, dst: str | os.PathLike[str] | None) -> Path:
    """``runs:/<run_id>/<path>``: the run's artifact root from the tracking store."""
    from slipway.artifacts import get_artifact_repository
    from slipway.artifacts.paths import safe_relative_path
    from slipway.tracking import uri as tracking_uris

    run_id, path = parse_runs_uri(uri)
    run = tracking_uris.get_store().get_run(run_id)
    repo = get_artifact_repository(run.info.artifact_uri)
    return repo.download_artifacts(safe_relative_path(path), dst)


def registered_model_source(uri: str) -> str:
    """Where the model a ``models:/`` URI names is stored (a URI to resolve in turn).

    Raises:
        InvalidParameterValue: for a malformed URI.
        ResourceDoesNotExist: for an unknown model, version or alias, or a stage (or
            ``latest``) that has no version.
    """
    from slipway.registry.store import get_registry_store

    name, kind, ref = parse_models_uri(uri)
    if kind == "model_id":
        return _logged_model_location(ref)
    store = get_registry_store()
    version = resolve_version(store, name, kind, ref).version
    return store.get_model_version_download_uri(name, version)


def _logged_model_location(model_id: str) -> str:
    from slipway.tracking import uri as tracking_uris
    from slipway.tracking.store.logged_models import AbstractLoggedModelStore

    store = tracking_uris.get_store()
    if not isinstance(store, AbstractLoggedModelStore):
        raise InvalidParameterValue(
            f"Cannot resolve models:/{model_id}: this tracking store has no logged models"
        )
    return store.get_logged_model(model_id).artifact_location


__all__ = [
    "download_artifact_uri",
    "download_model",
    "parse_models_uri",
    "parse_runs_uri",
    "registered_model_source",
]
