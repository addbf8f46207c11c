"""How ``slipway serve`` runs: one frozen object built by the CLI (or a test), handed to the app
and, through the environment, to every worker process."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from slipway.exceptions import InvalidParameterValue

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServingSettings:
    """Settings of the model server.

    Args:
        host, port: the address to listen on (port 0 picks a free one).
        workers: server processes sharing the port; each loads every model.
        max_batch_size: rows merged into one ``predict`` call; 1 turns batching off.
        max_batch_delay_ms: how long a request may wait for others to join its batch.
        max_request_bytes: the largest request body accepted (413 above it).
        request_timeout_s: the longest a request may take, reading its body included
            (504 after it; a body that stalls past it gets 408).
        allowed_hosts: Host header values accepted (``host`` or ``host:port``; ``*`` allows any).
            Others get 403: a guard against DNS rebinding.
        reload_interval_s: how often ``models:/name@alias`` routes look for a new version.
        tracking_uri: the registry that ``models:/`` URIs resolve against, and where
            deployments are recorded.
        log_requests_rate: the share of requests (0 to 1) logged for later drift analysis.
        log_requests_to: where logged requests go (an artifact URI); the default lives next
            to the tracking store.
        record_deployments: record each served model version as a deployment in the registry.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_batch_size: int = 1
    max_batch_delay_ms: float = 0.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    request_timeout_s: float = 60.0
    allowed_hosts: tuple[str, ...] = field(default=DEFAULT_ALLOWED_HOSTS)
    reload_interval_s: float = 10.0
    tracking_uri: str | None = None
    log_requests_rate: float = 0.0
    log_requests_to: str | None = None
    record_deployments: bool = True

    def __post_init__(self) -> None:
        checks = (
            (self.workers >= 1, "workers must be at least 1"),
            (self.max_batch_size >= 1, "max_batch_size must be at least 1"),
            (self.max_batch_delay_ms >= 0, "max_batch_delay_ms cannot be negative"),
            (self.max_request_bytes >= 1, "max_request_bytes must be at least 1"),
            (self.request_timeout_s > 0, "request_timeout_s must be positive"),
            (self.reload_interval_s >= 0, "reload_interval_s cannot be negative"),
            (0.0 <= self.log_requests_rate <= 1.0, "log_requests_rate must be between 0 and 1"),
            (0 <= self.port <= 65535, "port must be between 0 and 65535"),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidParameterValue(message)

    def to_json_dict(self) -> dict[str, Any]:
        """The settings as JSON types (for the environment of worker processes)."""
        values = asdict(self)
        values["allowed_hosts"] = list(self.allowed_hosts)
        return values

    @classmethod
    def from_json_dict(cls, values: dict[str, Any]) -> ServingSettings:
        """The inverse of :meth:`to_json_dict`; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs = {key: value for key, value in values.items() if key in known}
        if "allowed_hosts" in kwargs:
            kwargs["allowed_hosts"] = tuple(kwargs["allowed_hosts"])
        return cls(**kwargs)


__all__ = ["DEFAULT_ALLOWED_HOSTS", "DEFAULT_MAX_REQUEST_BYTES", "ServingSettings"]
