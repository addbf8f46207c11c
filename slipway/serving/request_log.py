"""Sampled request and response logging into an artifact store, for drift analysis later.

``slipway serve --log-requests 0.1`` keeps one request in ten, with the answer it got, as a
JSON line::

    {"ts": 1718000000123, "endpoint": "iris", "version": "3",
     "request": [{"sepal_length": 5.1, ...}], "response": [0]}

``ts`` is milliseconds since the epoch (UTC), ``version`` the registry version that answered
(null for a model outside the registry), ``request`` and ``response`` plain JSON (data frames
as records, arrays as nested lists; see :func:`slipway.models.predict.jsonable`).

The lines go into the artifact store named by the destination (a local folder, ``s3://...``,
or ``mlflow-artifacts:/...`` through ``slipway server``) as files
``requests/<endpoint>/<YYYY-MM-DD>/<uuid>.jsonl``: one file per endpoint and day per flush,
never appended to, so several serving processes can log into the same place. A day's folder
is a ready-made partition for a drift job: read every ``*.jsonl`` under it.

The request path only draws a random number and, for a sampled request, puts a reference on a
bounded in-memory buffer; a background thread turns records into JSON and writes them every
``flush_seconds`` or ``flush_every`` records. When the buffer is full (the store is slower than
the traffic), new records are dropped and counted, and a store that fails loses that batch with
a warning; neither ever reaches the caller.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slipway.artifacts import ArtifactRepository, get_artifact_repository
from slipway.exceptions import InvalidParameterValue

__all__ = ["RequestLogStats", "RequestLogger", "default_destination", "log_file_prefix"]

_log = logging.getLogger(__name__)

LOG_FOLDER = "requests"
MAX_BUFFERED = 10_000
"""Records held in memory at most; beyond it new records are dropped (and counted)."""
CLOSE_TIMEOUT_S = 60.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class _Record:
    ts: int
    endpoint: str
    version: str | None
    request: Any
    response: Any


@dataclass(frozen=True)
class RequestLogStats:
    """What a :class:`RequestLogger` has done so far.

    Attributes:
        seen: requests offered to :meth:`RequestLogger.maybe_log`.
        sampled: those the sample kept.
        written: records stored in the artifact store.
        dropped: sampled records lost: the buffer was full, the store failed, or a record
            could not be turned into JSON.
        files: files written.
    """

    seen: int
    sampled: int
    written: int
    dropped: int
    files: int


def log_file_prefix(endpoint: str) -> str:
    """The folder (relative to the destination) that holds the logs of ``endpoint``:
    ``requests/<endpoint>``, with characters other than letters, digits, ``.``, ``_`` and
    ``-`` replaced by ``_`` so that any endpoint name is one safe path segment."""
    segment = _UNSAFE.sub("_", endpoint) or "_"
    if set(segment) == {"."}:
        segment = "_" + segment
    return f"{LOG_FOLDER}/{segment}"


def default_destination(tracking_uri: str | None = None) -> str:
    """Where request logs go when no destination is given: the artifact root of a database
    tracking URI, or the artifact proxy (``mlflow-artifacts:/``) of ``slipway server``."""
    from slipway.tracking import uri as uris

    _, artifact_root = uris.resolve(tracking_uri or uris.get_tracking_uri())
    return artifact_root or "mlflow-artifacts:/"


class RequestLogger:
    """Logs a random sample of requests with their responses into an artifact store.

    Args:
        sample_rate: the share of requests kept, from 0 (none) to 1 (all).
        destination: the artifact root the files go under (see the module docstring); None
            uses :func:`default_destination` of the tracking URI in effect.
        flush_every: write as soon as this many records are waiting.
        flush_seconds: write at least this often while records are waiting.
        max_buffered: records held in memory at most.
        tracking_uri: the server a ``mlflow-artifacts:`` destination is resolved against
            (the tracking URI in effect when None).

    Raises:
        InvalidParameterValue: for a rate outside [0, 1], non-positive flush settings, or a
            destination no artifact store accepts.
    """

    def __init__(
        self,
        sample_rate: float,
        destination: str | None,
        flush_every: int = 100,
        flush_seconds: float = 10.0,
        *,
        max_buffered: int = MAX_BUFFERED,
        tracking_uri: str | None = None,
    ) -> None:
        _check_settings(sample_rate, flush_every, flush_seconds, max_buffered)
        self.sample_rate = float(sample_rate)
        self.destination = destination or default_destination(tracking_uri)
        self.flush_every = flush_every
        self.flush_seconds = float(flush_seconds)
        self.max_buffered = max_buffered
        self._repo: ArtifactRepository = get_artifact_repository(self.destination, tracking_uri)
        self._buffer: deque[_Record] = deque()
        self._cond = threading.Condition()
        self._random = random.Random()
        self._closed = False
        self._seen = self._sampled = self._written = self._dropped = self._files = 0
        self._thread: threading.Thread | None = None
        if self.sample_rate > 0:
            self._thread = threading.Thread(
                target=self._run, name="slipway-request-log", daemon=True
            )
            self._thread.start()

    def maybe_log(self, endpoint: str, version: str | None, request: Any, response: Any) -> None:
        """Keep this request with its response, with probability ``sample_rate``. Returns at
        once: the record is turned into JSON and written in the background. The caller must
        not change ``request`` or ``response`` afterwards (answers never are)."""
        self._seen += 1  # a plain counter: an occasional lost update only blurs the stats
        if self.sample_rate <= 0 or self._random.random() >= self.sample_rate:
            return
        record = _Record(time.time_ns() // 1_000_000, endpoint, version, request, response)
        with self._cond:
            if self._closed:
                return
            self._sampled += 1
            if len(self._buffer) >= self.max_buffered:
                self._dropped += 1
                return
            self._buffer.append(record)
            if len(self._buffer) >= self.flush_every:
                self._cond.notify()

    def flush(self) -> None:
        """Write every waiting record now (in the caller's thread)."""
        with self._cond:
            batch = list(self._buffer)
            self._buffer.clear()
        self._write(batch)

    def close(self) -> None:
        """Write what is left (waiting at most :data:`CLOSE_TIMEOUT_S` seconds for the store)
        and stop the background thread; later records are ignored. Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        if self._thread is None:
            return
        self._thread.join(CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            _log.warning(
                "The request log store did not take the last records within %.0f s: %s",
                CLOSE_TIMEOUT_S,
                self.destination,
            )

    @property
    def stats(self) -> RequestLogStats:
        with self._cond:
            return RequestLogStats(
                self._seen, self._sampled, self._written, self._dropped, self._files
            )

    # -- the background thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.flush_seconds
                while not self._closed and len(self._buffer) < self.flush_every:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = list(self._buffer)
                self._buffer.clear()
                closing = self._closed
            self._write(batch)
            if closing:
                return

    def _write(self, batch: list[_Record]) -> None:
        if not batch:
            return
        files: dict[str, list[str]] = {}
        lost = 0
        for record in batch:
            line = _json_line(record)
            if line is None:
                lost += 1
                continue
            day = datetime.fromtimestamp(record.ts / 1000, UTC).strftime("%Y-%m-%d")
            files.setdefault(f"{log_file_prefix(record.endpoint)}/{day}", []).append(line)
        written = 0
        for folder, lines in files.items():
            path = f"{folder}/{uuid.uuid4().hex}.jsonl"
            try:
                self._repo.log_bytes("".join(lines).encode("utf-8"), path)
            except Exception as exc:  # a failing store must never reach the request path
                lost += len(lines)
                _log.warning(
                    "Could not write %d request log records to %s/%s: %s",
                    len(lines),
                    self.destination,
                    path,
                    exc,
                )
                continue
            written += len(lines)
            with self._cond:
                self._files += 1
        with self._cond:
            self._written += written
            self._dropped += lost


def _json_line(record: _Record) -> str | None:
    from slipway.models.predict import jsonable

    try:
        body = {
            "ts": record.ts,
            "endpoint": record.endpoint,
            "version": record.version,
            "request": jsonable(record.request),
            "response": jsonable(record.response),
        }
        return json.dumps(body, allow_nan=False, separators=(",", ":")) + "\n"
    except (TypeError, ValueError, RecursionError) as exc:
        _log.warning("Could not log a request of endpoint %s as JSON: %s", record.endpoint, exc)
        return None


def _check_settings(
    sample_rate: float, flush_every: int, flush_seconds: float, max_buffered: int
) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float):
        raise InvalidParameterValue(f"Invalid request log sample rate {sample_rate!r}")
    if not 0.0 <= float(sample_rate) <= 1.0:
        raise InvalidParameterValue(
            f"Invalid request log sample rate {sample_rate}: use a number from 0 to 1"
        )
    for label, value in (("flush_every", flush_every), ("max_buffered", max_buffered)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameterValue(f"Invalid {label} {value!r}: use a positive integer")
    if isinstance(flush_seconds, bool) or not isinstance(flush_seconds, int | float):
        raise InvalidParameterValue(f"Invalid flush_seconds {flush_seconds!r}")
    if not (math.isfinite(flush_seconds) and flush_seconds > 0):
        raise InvalidParameterValue(f"Invalid flush_seconds {flush_seconds}: use a positive number")
