"""Server settings: one frozen object built by the CLI (or a test) and handed to create_app."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


@dataclass(frozen=True)
class ServerSettings:
    """How ``slipway server`` runs.

    Args:
        backend_store_uri: the tracking store (a folder, ``sqlite:///``, ``postgresql://``).
        default_artifact_root: where new experiments keep artifacts. Defaults to
            ``mlflow-artifacts:/`` when the server proxies artifacts, otherwise to
            ``artifacts_destination``.
        artifacts_destination: where proxied artifact bytes live (a folder or ``s3://``);
            defaults to the store's own artifacts folder.
        serve_artifacts: proxy artifact bytes through ``/api/2.0/mlflow-artifacts`` (default),
            so clients need no storage credentials.
        allowed_hosts: Host header values accepted (``host`` or ``host:port``; ``*`` allows
            any). Requests naming another host get 403, which guards against DNS rebinding.
        max_request_bytes: the largest JSON request body accepted (artifact uploads stream
            and are not limited by it).
    """

    backend_store_uri: str = ".slipway"
    default_artifact_root: str | None = None
    artifacts_destination: str | None = None
    serve_artifacts: bool = True
    allowed_hosts: tuple[str, ...] = field(default=DEFAULT_ALLOWED_HOSTS)
    max_request_bytes: int = 16 * 1024 * 1024
