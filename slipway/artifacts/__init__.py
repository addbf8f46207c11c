"""Artifact stores: where runs keep their files.

:func:`get_artifact_repository` picks the store for a root URI. Every artifact path goes through
:func:`safe_relative_path` before any store uses it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from slipway.artifacts.base import ArtifactRepository, FileInfo
from slipway.artifacts.local import LocalArtifactRepository
from slipway.artifacts.paths import (
    join_relative,
    join_uri,
    resolve_within,
    safe_relative_path,
    validate_artifact_root,
)
from slipway.artifacts.s3 import S3ArtifactRepository
from slipway.exceptions import InvalidParameterValue, NotImplementedFeature

__all__ = [
    "ArtifactRepository",
    "FileInfo",
    "LocalArtifactRepository",
    "S3ArtifactRepository",
    "get_artifact_repository",
    "join_relative",
    "join_uri",
    "resolve_within",
    "safe_relative_path",
    "validate_artifact_root",
]

_NEEDS_SERVER = frozenset({"mlflow-artifacts", "http", "https"})


def get_artifact_repository(uri: str) -> ArtifactRepository:
    """The artifact store for root ``uri``: a local path or ``file://`` URI, or ``s3://``.

    Raises:
        InvalidParameterValue: for an unsafe URI or an unknown scheme.
        NotImplementedFeature: for ``mlflow-artifacts:`` and ``http(s)://`` roots, which are
            served through a tracking server.
    """
    validate_artifact_root(uri)
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and scheme.isalpha()):
        return LocalArtifactRepository(uri)
    if scheme == "s3":
        return S3ArtifactRepository(uri)
    if scheme in _NEEDS_SERVER:
        raise NotImplementedFeature(
            f"Artifact root {uri!r} ({scheme}) needs a tracking server to proxy artifacts, "
            "which this client does not support yet"
        )
    raise InvalidParameterValue(f"Unsupported artifact root scheme {scheme!r} in {uri!r}")
