"""Artifact stores: where runs keep their files.

:func:`get_artifact_repository` picks the store for a root URI. Every artifact path goes through
:func:`safe_relative_path` before any store uses it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from slipway.artifacts.base import ArtifactRepository, FileInfo
from slipway.artifacts.http import HttpArtifactRepository
from slipway.artifacts.local import LocalArtifactRepository
from slipway.artifacts.paths import (
    join_relative,
    join_uri,
    resolve_within,
    safe_relative_path,
    validate_artifact_root,
)
from slipway.artifacts.s3 import S3ArtifactRepository
from slipway.exceptions import InvalidParameterValue

__all__ = [
    "ArtifactRepository",
    "FileInfo",
    "HttpArtifactRepository",
    "LocalArtifactRepository",
    "S3ArtifactRepository",
    "get_artifact_repository",
    "join_relative",
    "join_uri",
    "resolve_within",
    "safe_relative_path",
    "validate_artifact_root",
]

_PROXIED = frozenset({"mlflow-artifacts", "http", "https"})


def get_artifact_repository(uri: str, tracking_uri: str | None = None) -> ArtifactRepository:
    """The artifact store for root ``uri``: a local path or ``file://`` URI, ``s3://``, or a
    tracking server's artifact proxy (``mlflow-artifacts:`` URIs and the proxy's
    ``http(s)://.../api/2.0/mlflow-artifacts/artifacts/...`` URLs).

    Args:
        uri: the root.
        tracking_uri: the tracking server a ``mlflow-artifacts:`` root is resolved against;
            the tracking URI in effect when omitted.

    Raises:
        InvalidParameterValue: for an unsafe URI or an unknown scheme.
        NotImplementedFeature: for a ``mlflow-artifacts:`` root while the tracking URI in effect
            is not an ``http(s)://`` server, and for ``http(s)://`` roots that are not an
            artifact proxy URL.
    """
    validate_artifact_root(uri)
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and scheme.isalpha()):
        return LocalArtifactRepository(uri)
    if scheme == "s3":
        return S3ArtifactRepository(uri)
    if scheme in _PROXIED:
        return HttpArtifactRepository(uri, tracking_uri=tracking_uri)
    raise InvalidParameterValue(f"Unsupported artifact root scheme {scheme!r} in {uri!r}")
