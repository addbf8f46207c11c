"""The HTTP transport of the REST tracking store: one urllib3 pool, retries, auth and TLS.

Requests follow MLflow's REST API 2.0 conventions: ``GET`` fields travel as query parameters
(a list as a repeated key, ``run_ids=a&run_ids=b``), every other method sends a JSON object body.
A response below 400 is a JSON object (an empty body reads as ``{}``). An error response
``{"error_code": ..., "message": ...}`` becomes the matching :class:`~slipway.exceptions.
SlipwayError` subclass through :meth:`SlipwayError.from_code`, with the server's message kept.
An error without such a body (a proxy's HTML page, say) is mapped from the HTTP status.

Retries
    A request is retried, with exponential backoff and jitter, when the server could not be
    reached (connection refused or reset, DNS failure, timeouts) and on HTTP 408, 429, 500,
    502, 503 and 504. A ``Retry-After`` header is honoured up to the backoff cap. 4xx answers
    other than 408 and 429 are never retried: sending the same request again would fail the
    same way. A call that is not idempotent (creating an experiment or a run) is retried only
    when the server cannot have acted on it: the connection was never made, or the answer was
    408, 429 or 503. The delay before retry ``n`` (from 0) is
    ``min(backoff_max, backoff_factor * 2**n)``, scaled by a random factor in ``[0.5, 1]``.

    When the retries are used up, an unreachable server raises :class:`ServerUnreachable`, a
    :class:`~slipway.exceptions.TemporarilyUnavailable` (``TEMPORARILY_UNAVAILABLE``, 503); so
    do 502, 503 and 504 answers that carry no error body. Callers treat that class as "try
    again later" (the REST store spools writes on it). Every error made from an answer carries
    the HTTP status as ``response_status``.

Configuration (environment, read when a store is created)
    ===================================  ====================================================
    ``SLIPWAY_HTTP_MAX_RETRIES``         retries after the first attempt (default 5)
    ``SLIPWAY_HTTP_TIMEOUT``             seconds to wait for an answer (default 120)
    ``SLIPWAY_HTTP_CONNECT_TIMEOUT``     seconds to wait for a connection (default 10)
    ``SLIPWAY_HTTP_BACKOFF_FACTOR``      first retry delay in seconds (default 0.2)
    ``SLIPWAY_HTTP_BACKOFF_MAX``         longest delay between retries (default 30)
    ``SLIPWAY_TRACKING_TOKEN``           sent as ``Authorization: Bearer <token>``
    ``SLIPWAY_TRACKING_USERNAME``,       HTTP Basic auth (also taken from
    ``SLIPWAY_TRACKING_PASSWORD``        ``http://user:password@host`` in the URL)
    ``SLIPWAY_TRACKING_INSECURE_TLS``    ``true`` skips TLS certificate checks (testing only)
    ``SLIPWAY_TRACKING_CA_BUNDLE``       a PEM file of CA certificates to trust
    ===================================  ====================================================

Credentials are sent in headers only; they never appear in messages, logs or the spool.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    InsecureRequestWarning,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

import slipway
from slipway.exceptions import (
    InvalidParameterValue,
    SlipwayError,
    TemporarilyUnavailable,
)

API_PREFIX = "/api/2.0/mlflow"

MAX_RETRIES_ENV = "SLIPWAY_HTTP_MAX_RETRIES"
TIMEOUT_ENV = "SLIPWAY_HTTP_TIMEOUT"
CONNECT_TIMEOUT_ENV = "SLIPWAY_HTTP_CONNECT_TIMEOUT"
BACKOFF_FACTOR_ENV = "SLIPWAY_HTTP_BACKOFF_FACTOR"
BACKOFF_MAX_ENV = "SLIPWAY_HTTP_BACKOFF_MAX"
TOKEN_ENV = "SLIPWAY_TRACKING_TOKEN"  # noqa: S105 - a variable name, not a secret
USERNAME_ENV = "SLIPWAY_TRACKING_USERNAME"
PASSWORD_ENV = "SLIPWAY_TRACKING_PASSWORD"  # noqa: S105 - a variable name
INSECURE_TLS_ENV = "SLIPWAY_TRACKING_INSECURE_TLS"
CA_BUNDLE_ENV = "SLIPWAY_TRACKING_CA_BUNDLE"

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers worth another try: the server is busy, restarting or briefly broken."""
NOT_ACTED_STATUSES = frozenset({408, 429, 503})
"""Answers that say the request was not carried out, so even a create may be sent again."""
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
"""Answers that mean the tracking server itself is not there (behind a proxy, say)."""

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "ENDPOINT_NOT_FOUND",
    405: "BAD_REQUEST",
    408: "DEADLINE_EXCEEDED",
    409: "RESOURCE_CONFLICT",
    413: "RESOURCE_EXHAUSTED",
    429: "REQUEST_LIMIT_EXCEEDED",
    501: "NOT_IMPLEMENTED",
    502: "TEMPORARILY_UNAVAILABLE",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "TEMPORARILY_UNAVAILABLE",
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class ServerUnreachable(TemporarilyUnavailable):
    """No answer came from the tracking server (refused, reset, timed out, unknown host)."""


def _env_number(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterValue(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise InvalidParameterValue(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def env_flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean environment variable (true/false, 1/0, yes/no, on/off)."""
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParameterValue(f"{name}={raw!r} is not a boolean: use true or false")


@dataclass(frozen=True)
class HttpConfig:
    """How the transport talks to a server; :meth:`from_env` reads the variables above."""

    max_retries: int = 5
    timeout: float = 120.0
    connect_timeout: float = 10.0
    backoff_factor: float = 0.2
    backoff_max: float = 30.0
    token: str | None = None
    username: str | None = None
    password: str | None = None
    insecure_tls: bool = False
    ca_bundle: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpConfig:
        env = os.environ if environ is None else environ
        return cls(
            max_retries=int(_env_number(env, MAX_RETRIES_ENV, 5, 0)),
            timeout=_env_number(env, TIMEOUT_ENV, 120.0, 0.001),
            connect_timeout=_env_number(env, CONNECT_TIMEOUT_ENV, 10.0, 0.001),
            backoff_factor=_env_number(env, BACKOFF_FACTOR_ENV, 0.2, 0.0),
            backoff_max=_env_number(env, BACKOFF_MAX_ENV, 30.0, 0.0),
            token=env.get(TOKEN_ENV) or None,
            username=env.get(USERNAME_ENV) or None,
            password=env.get(PASSWORD_ENV) or None,
            insecure_tls=env_flag(env, INSECURE_TLS_ENV, False),
            ca_bundle=env.get(CA_BUNDLE_ENV) or None,
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (0 for the first retry), with jitter."""
        delay = min(self.backoff_max, self.backoff_factor * (2.0**attempt))
        return delay * random.uniform(0.5, 1.0)


def split_server_url(url: str) -> tuple[str, str | None, str | None]:
    """``(base URL without credentials or trailing slash, username, password)``.

    Raises:
        InvalidParameterValue: for anything but an ``http(s)://host[:port][/path]`` URL.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterValue(f"Not a tracking server URL: {url!r} (use http(s)://host)")
    if parts.query or parts.fragment:
        raise InvalidParameterValue(
            f"Tracking server URL {safe_url(url)!r} must not have a query or a fragment"
        )
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise InvalidParameterValue(f"Tracking server URL {url!r} has a bad port") from None
    netloc = f"{host}:{port}" if port is not None else host
    base = urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return base, user, password


def safe_url(url: str) -> str:
    """``url`` with any ``user:password@`` removed, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _query(fields: Mapping[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in fields.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                item = "true" if item else "false"
            pairs.append((key, str(item)))
    return urlencode(pairs, quote_via=quote)


def _json_body(fields: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(
            {k: v for k, v in fields.items() if v is not None}, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"The request cannot be sent as JSON: {exc}") from None


class RestTransport:
    """Sends MLflow REST requests to one server and turns answers into dicts or errors.

    Args:
        server_url: ``http(s)://host[:port][/prefix]``; the API lives under
            ``<server_url>/api/2.0/mlflow``.
        config: retries, timeouts, credentials and TLS; from the environment when omitted.

    Thread-safe; after ``fork`` the child opens its own connections.
    """

    def __init__(self, server_url: str, config: HttpConfig | None = None) -> None:
        self.base_url, url_user, url_password = split_server_url(server_url)
        self.config = config or HttpConfig.from_env()
        self.headers = {
            "User-Agent": f"slipway/{slipway.__version__}",
            "Accept": "application/json",
        }
        username = self.config.username or url_user
        password = self.config.password if self.config.username else url_password
        if self.config.token:
            self.headers["Authorization"] = f"Bearer {self.config.token}"
        elif username is not None:
            self.headers.update(urllib3.make_headers(basic_auth=f"{username}:{password or ''}"))
        if self.config.insecure_tls:
            # Asked for explicitly: do not warn on every request.
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        self._pool_lock = threading.Lock()
        self._pool = self._new_pool()
        _LIVE.add(self)

    def _new_pool(self) -> urllib3.PoolManager:
        tls: dict[str, Any] = {}
        if self.base_url.startswith("https:"):
            if self.config.insecure_tls:
                tls["cert_reqs"] = "CERT_NONE"
            elif self.config.ca_bundle:
                tls["ca_certs"] = self.config.ca_bundle
        return urllib3.PoolManager(
            num_pools=4,
            maxsize=16,
            retries=False,
            timeout=urllib3.Timeout(
                connect=min(self.config.connect_timeout, self.config.timeout),
                read=self.config.timeout,
            ),
            **tls,
        )

    def close(self) -> None:
        with self._pool_lock:
            self._pool.clear()

    def _after_fork_in_child(self) -> None:
        self._pool_lock = threading.Lock()
        self._pool = self._new_pool()

    # -- requests --------------------------------------------------------------------------

    def url_for(self, endpoint: str) -> str:
        return f"{self.base_url}{API_PREFIX}/{endpoint.lstrip('/')}"

    def call(
        self,
        method: str,
        endpoint: str,
        fields: Mapping[str, Any] | None = None,
        *,
        idempotent: bool = True,
        retries: int | None = None,
        unavailable_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the JSON answer.

        Args:
            method: ``GET`` (fields as query parameters) or ``POST``/``PATCH``/``DELETE``
                (fields as a JSON body; None values are left out).
            endpoint: the path below ``/api/2.0/mlflow``, such as ``runs/log-batch``.
            idempotent: whether sending the request twice is harmless (see the module notes).
            retries: retries on 408/429/500 answers; ``config.max_retries`` when None.
            unavailable_retries: retries when the server is unreachable or answers 502/503/
                504; ``retries`` when None.
            extra_headers: headers for this request only (the registry store names the
                acting user this way).

        Raises:
            ServerUnreachable: no answer after the retries.
            SlipwayError: the server's error, as its own subclass.
        """
        retries = self.config.max_retries if retries is None else retries
        unavailable_retries = retries if unavailable_retries is None else unavailable_retries
        fields = fields or {}
        url = self.url_for(endpoint)
        body: bytes | None = None
        headers = {**self.headers, **(extra_headers or {})}
        if method == "GET":
            query = _query(fields)
            if query:
                url = f"{url}?{query}"
        else:
            body = _json_body(fields)
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            try:
                response = self._pool.request(
                    method, url, body=body, headers=headers, redirect=False
                )
            except SSLError as exc:
                raise SlipwayError(
                    f"TLS failed with the tracking server at {self.base_url}: {exc}. Set "
                    f"{CA_BUNDLE_ENV} to trust its certificate authority, or "
                    f"{INSECURE_TLS_ENV}=true to skip certificate checks (testing only)."
                ) from None
            except (NewConnectionError, ConnectTimeoutError) as exc:
                # The connection was never made: any request may be sent again.
                if attempt >= unavailable_retries:
                    raise self._unreachable(method, endpoint, exc, attempt) from None
                delay = self.config.backoff(attempt)
            except (ProtocolError, ReadTimeoutError, HTTPError) as exc:
                # Sent, but no answer: only requests that are safe to repeat go again.
                if not idempotent or attempt >= unavailable_retries:
                    raise self._unreachable(method, endpoint, exc, attempt) from None
                delay = self.config.backoff(attempt)
            else:
                status = response.status
                if status < 300:
                    return self._parse_ok(response, method, endpoint)
                limit = unavailable_retries if status in UNAVAILABLE_STATUSES else retries
                if (
                    status not in RETRY_STATUSES
                    or (not idempotent and status not in NOT_ACTED_STATUSES)
                    or attempt >= limit
                ):
                    raise self._error(response, method, endpoint)
                delay = self._retry_after(response, attempt)
            time.sleep(delay)
            attempt += 1

    def _retry_after(self, response: urllib3.BaseHTTPResponse, attempt: int) -> float:
        raw = response.headers.get("Retry-After", "")
        if raw.strip().isdigit():
            return min(float(raw.strip()), self.config.backoff_max)
        return self.config.backoff(attempt)

    def _unreachable(
        self, method: str, endpoint: str, exc: Exception, attempt: int
    ) -> ServerUnreachable:
        reason = getattr(exc, "reason", None) or exc
        tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
        return ServerUnreachable(
            f"The tracking server at {self.base_url} is unreachable ({method} {endpoint}, "
            f"{tries}): {reason.__class__.__name__}: {reason}"
        )

    def _parse_ok(
        self, response: urllib3.BaseHTTPResponse, method: str, endpoint: str
    ) -> dict[str, Any]:
        data = response.data
        if not data.strip():
            return {}
        try:
            payload = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            raise SlipwayError(
                f"The tracking server at {self.base_url} answered {method} {endpoint} with "
                f"something other than a JSON object (Content-Type "
                f"{response.headers.get('Content-Type', 'unknown')!r}): "
                f"{_snippet(data)!r}. Is {self.base_url} a Slipway or MLflow tracking server?"
            )
        return payload

    def _error(
        self, response: urllib3.BaseHTTPResponse, method: str, endpoint: str
    ) -> SlipwayError:
        error = self._error_of(response, method, endpoint)
        error.response_status = response.status  # type: ignore[attr-defined]
        return error

    def _error_of(
        self, response: urllib3.BaseHTTPResponse, method: str, endpoint: str
    ) -> SlipwayError:
        status = response.status
        if 300 <= status < 400:
            return SlipwayError(
                f"The tracking server at {self.base_url} redirected {method} {endpoint} to "
                f"{response.headers.get('Location', '?')!r}; use the final address as the "
                "tracking URI",
                error_code="BAD_REQUEST",
            )
        try:
            payload = json.loads(response.data)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error_code"), str):
            message = payload.get("message")
            return SlipwayError.from_code(
                payload["error_code"], message if isinstance(message, str) else str(message)
            )
        code = _STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
        return SlipwayError.from_code(
            code,
            f"HTTP {status} from the tracking server at {self.base_url} on {method} "
            f"{endpoint}: {_snippet(response.data)!r}",
        )


def _snippet(data: bytes, limit: int = 200) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


_LIVE: weakref.WeakSet[RestTransport] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for transport in list(_LIVE):
        transport._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)

__all__ = [
    "API_PREFIX",
    "HttpConfig",
    "RestTransport",
    "ServerUnreachable",
    "env_flag",
    "safe_url",
    "split_server_url",
]
