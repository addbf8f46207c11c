"""The write spool of the REST tracking store: writes wait on disk while the server is away.

Why
    A training job that logs to a tracking server must neither lose metrics nor stall when the
    server restarts or the network drops. When a write (``log_batch``, ``log_inputs``, a tag,
    the end of a run) finds the server unreachable after a few quick retries, the store appends
    it to this spool and returns at once; a background thread sends the spooled writes, in the
    order they were made, when the server answers again.

Order
    Once a store has spooled a write, every later write of that store goes into the spool
    behind it, even if the server is back, until the spool is empty: the server sees the
    writes in the order they were made. Reads (and writes that cannot be spooled, such as
    creating a run) first send what is spooled, so a process reads its own writes; while the
    server is away they raise :class:`~slipway.exceptions.TemporarilyUnavailable`.

Files
    ``$SLIPWAY_SPOOL_DIR`` (default ``~/.slipway/spool``) holds one folder per server URL
    (``<host>_<port>-<hash of the URL>``), and in it one file per store and spooling episode,
    ``seg-<time in ns>-<pid>-<random>.jsonl``, JSON lines:

    - a header: ``{"slipway_spool": 1, "server": URL, "pid": PID, "created": ms}``;
    - one line per write: ``{"seq": N, "method": "POST", "endpoint": "runs/log-batch",
      "body": {...}}`` (the REST request itself; never a credential), written and ``fsync``'d
      before the call returns;
    - ``{"ack": N}`` lines, appended as writes reach the server, so that a process that dies
      half way through a replay does not send them twice.

    The file is deleted once everything in it has been sent. Its owner holds an exclusive
    ``flock`` on it for as long as it lives (it is made under a draft name and renamed once
    locked), so a file nobody holds was left by a process that exited (or crashed) with
    writes still in it. A new spool for the same server adopts such files when it starts,
    oldest first, and sends them before any write of its own (which queue behind them). A
    torn last line (a crash during a write) is skipped.

Replay
    Consecutive ``log-batch`` writes of one run are merged into batches of up to 1000
    metrics, 100 params and 100 tags, 1000 in all (no param key twice, under 512 KB), so an
    outage of single-metric calls replays in few requests. The replayer retries with
    exponential backoff and jitter, from 0.5 s up to ``$SLIPWAY_SPOOL_RETRY_MAX`` seconds
    (default 10), for as long as the server is unreachable, answers 502/503/504, 408 or 429.
    A write the server refuses (a 4xx: the run was deleted, a param changed value) cannot
    succeed later: a merged batch is retried write by write, and a refused write is moved to
    ``rejected.jsonl`` in the same folder, with the error, and reported through the
    ``slipway.tracking.spool`` logger. Other server errors (500) count as refusals after five
    tries.

Exit and fork
    A process that exits with writes still spooled makes one last attempt to send them (after
    the asynchronous loggers have flushed into the store); what is left stays on disk and a
    message on stderr says where. A child made by ``fork`` starts with
    an empty spool of its own; the parent's files stay the parent's.

``SLIPWAY_SPOOL=false`` turns spooling off: writes then fail with ``TemporarilyUnavailable``
when the server is away.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import secrets
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slipway.exceptions import SlipwayError, TemporarilyUnavailable
from slipway.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
)

SPOOL_DIR_ENV = "SLIPWAY_SPOOL_DIR"
SPOOL_ENV = "SLIPWAY_SPOOL"
SPOOL_RETRY_MAX_ENV = "SLIPWAY_SPOOL_RETRY_MAX"
FORMAT_VERSION = 1
LOG_BATCH = "runs/log-batch"
REJECTED_FILE = "rejected.jsonl"
MAX_MERGED_BYTES = 512 * 1024
MAX_ENTITIES_PER_REQUEST = 1000  # MLflow's server cap on one log-batch request
_READ_CHUNK = 1 << 20
_READ_ENTRIES = 5000
_BLOCKING_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"})
_BLOCKING_STATUSES = frozenset({408, 429, 502, 503, 504})

log = logging.getLogger("slipway.tracking.spool")

Sender = Callable[[str, str, dict[str, Any]], object]
"""``send(method, endpoint, body)``: one request, no retries; raises SlipwayError."""


def default_root() -> Path:
    """``$SLIPWAY_SPOOL_DIR`` or ``~/.slipway/spool``."""
    return Path(os.environ.get(SPOOL_DIR_ENV) or Path.home() / ".slipway" / "spool").expanduser()


def server_folder_name(server_url: str) -> str:
    """A readable, collision-free folder name for a server URL (without credentials)."""
    parts = urlsplit(server_url)
    label = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{parts.hostname or 'server'}_{parts.port or ''}")
    digest = hashlib.sha256(server_url.encode("utf-8")).hexdigest()[:12]
    return f"{label.strip('_')[:60]}-{digest}"


class SpoolBlocked(TemporarilyUnavailable):
    """The spool could not be sent: the server is unreachable, unavailable or throttling."""


@dataclass
class Entry:
    seq: int
    method: str
    endpoint: str
    body: dict[str, Any]
    end: int  # file offset just after its line
    size: int


@dataclass
class _Group:
    """Spooled writes sent as one request (several log-batch writes of one run, merged)."""

    entries: list[Entry]
    body: dict[str, Any]
    param_keys: set[str] = field(default_factory=set)
    size: int = 0

    @classmethod
    def of(cls, entry: Entry) -> _Group:
        body = dict(entry.body)
        if entry.endpoint == LOG_BATCH:
            for name in ("metrics", "params", "tags"):
                body[name] = list(body.get(name) or [])
        group = cls([entry], body, size=entry.size)
        group.param_keys = {str(p.get("key")) for p in body.get("params") or []}
        return group

    @property
    def method(self) -> str:
        return self.entries[0].method

    @property
    def endpoint(self) -> str:
        return self.entries[0].endpoint

    def merge(self, entry: Entry) -> bool:
        """Add ``entry`` if it can travel in the same log-batch request."""
        if self.endpoint != LOG_BATCH or entry.endpoint != LOG_BATCH:
            return False
        other = entry.body
        if other.get("run_id") != self.body.get("run_id") or len(other) > 4:
            return False
        metrics = other.get("metrics") or []
        params = other.get("params") or []
        tags = other.get("tags") or []
        keys = {str(p.get("key")) for p in params}
        total = sum(len(self.body[name]) for name in ("metrics", "params", "tags"))
        if (
            total + len(metrics) + len(params) + len(tags) > MAX_ENTITIES_PER_REQUEST
            or len(self.body["metrics"]) + len(metrics) > MAX_METRICS_PER_BATCH
            or len(self.body["params"]) + len(params) > MAX_PARAMS_PER_BATCH
            or len(self.body["tags"]) + len(tags) > MAX_TAGS_PER_BATCH
            or len(keys) != len(params)
            or keys & self.param_keys
            or self.size + entry.size > MAX_MERGED_BYTES
        ):
            return False
        self.body["metrics"].extend(metrics)
        self.body["params"].extend(params)
        self.body["tags"].extend(tags)
        self.param_keys |= keys
        self.size += entry.size
        self.entries.append(entry)
        return True


def coalesce(entries: list[Entry]) -> list[_Group]:
    groups: list[_Group] = []
    for entry in entries:
        if not groups or not groups[-1].merge(entry):
            groups.append(_Group.of(entry))
    return groups


class _Segment:
    """One spool file: this spool's own (appended to) or one adopted from an exited process.

    The descriptor is opened with ``O_APPEND`` and holds the file's ``flock``; reads use
    ``pread`` below ``size``, the bytes known to be complete."""

    def __init__(self, path: Path, fd: int, own: bool) -> None:
        self.path = path
        self.fd = fd
        self.own = own
        self.size = os.fstat(fd).st_size
        self.read_pos = 0
        self.acked = 0
        self.next_seq = 1
        self.pending = 0

    def write(self, record: dict[str, Any], sync: bool) -> int:
        data = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        if sync:
            os.fsync(self.fd)
        self.size += len(data)
        return len(data)

    def lines(self, start: int, end: int) -> Iterator[tuple[bytes, int]]:
        """``(line, offset after it)`` for the complete lines in ``[start, end)``; a last line
        without its newline (a torn write) is yielded as ``b""`` with the end offset."""
        pos = start
        chunk = _READ_CHUNK
        while pos < end:
            data = os.pread(self.fd, min(chunk, end - pos), pos)
            if not data:
                return
            cut = data.rfind(b"\n")
            if cut < 0:
                if pos + len(data) >= end:
                    log.warning("skipping a torn last line in spool file %s", self.path)
                    yield b"", end
                    return
                chunk *= 2  # one line longer than the chunk
                continue
            offset = pos
            for line in data[: cut + 1].splitlines(keepends=True):
                offset += len(line)
                yield line, offset
            pos = offset

    def scan(self) -> None:
        """Count the writes still to send in an adopted file and find its last ack."""
        seqs: list[int] = []
        for line, _ in self.lines(0, self.size):
            record = _parse_line(line, self.path)
            if record is None:
                continue
            try:
                if "ack" in record:
                    self.acked = max(self.acked, int(record["ack"]))
                elif "seq" in record:
                    seqs.append(int(record["seq"]))
            except (TypeError, ValueError):
                continue
        self.pending = sum(1 for s in seqs if s > self.acked)
        self.next_seq = max(seqs, default=0) + 1

    def read(self) -> tuple[list[Entry], int]:
        """Up to a few thousand unsent writes after ``read_pos``, and the offset read to."""
        entries: list[Entry] = []
        pos = self.read_pos
        last = pos
        for line, end in self.lines(pos, self.size):
            record = _parse_line(line, self.path)
            size, last = end - last, end
            if record is None:
                continue
            if "ack" in record:
                with contextlib.suppress(TypeError, ValueError):
                    self.acked = max(self.acked, int(record["ack"]))
                continue
            try:
                seq = int(record["seq"])
                entry = Entry(
                    seq,
                    str(record["method"]),
                    str(record["endpoint"]),
                    dict(record["body"]),
                    end,
                    size,
                )
            except (KeyError, TypeError, ValueError):
                if "slipway_spool" not in record:
                    log.warning("skipping an unreadable record in spool file %s", self.path)
                continue
            if seq <= self.acked:
                continue
            entries.append(entry)
            if len(entries) >= _READ_ENTRIES:
                break
        return entries, last

    def ack(self, entry: Entry) -> None:
        if entry.seq > self.acked:
            self.write({"ack": entry.seq}, sync=False)
            self.acked = entry.seq
            self.pending = max(0, self.pending - 1)
        self.read_pos = max(self.read_pos, entry.end)

    def close(self, unlink: bool) -> None:
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self.fd)  # releases the flock


def _parse_line(line: bytes, path: Path) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError:
        log.warning("skipping an unreadable line in spool file %s", path)
        return None
    return record if isinstance(record, dict) else None


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


class Spool:
    """The spool of one store for one server.

    Args:
        server_url: the server, without credentials (it names the folder).
        send: sends one request without retries; raises SlipwayError.
        root: the spool root; ``$SLIPWAY_SPOOL_DIR`` or ``~/.slipway/spool`` when omitted.
        min_interval, max_interval: the replayer's backoff between attempts, in seconds.
        max_failures: server errors (500) a write may meet before it counts as refused.
        background: send from a background thread as soon as possible; when False, only
            :meth:`drain` sends.

    Files left by exited processes are adopted at once (and whenever the spool is used again
    after :meth:`close`), and sent by the background replayer.
    """

    def __init__(
        self,
        server_url: str,
        send: Sender,
        root: Path | None = None,
        min_interval: float = 0.5,
        max_interval: float | None = None,
        max_failures: int = 5,
        background: bool = True,
    ) -> None:
        self.server_url = server_url
        self.directory = (root or default_root()) / server_folder_name(server_url)
        self._send = send
        self.min_interval = min_interval
        if max_interval is None:
            raw = os.environ.get(SPOOL_RETRY_MAX_ENV, "").strip()
            try:
                max_interval = float(raw) if raw else 10.0
            except ValueError:
                max_interval = 10.0
        self.max_interval = max(min_interval, max_interval)
        self.max_failures = max_failures
        self.background = background
        self.rejected = 0
        self._lock = threading.RLock()
        self._replay_lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._own: _Segment | None = None
        self._opened = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._failures: dict[tuple[str, int], int] = {}
        _LIVE.add(self)
        self._ensure_open()

    # -- state -----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether writes are waiting (so new writes must queue behind them)."""
        with self._lock:
            self._ensure_open()
            return bool(self._segments)

    @property
    def pending(self) -> int:
        """Writes not yet sent (adopted ones included)."""
        with self._lock:
            return sum(s.pending for s in self._segments)

    @property
    def files(self) -> list[Path]:
        with self._lock:
            return [s.path for s in self._segments]

    def describe(self) -> str:
        """A sentence for messages: how much is spooled, and where."""
        count = self.pending
        what = "1 write waits" if count == 1 else f"{count} writes wait"
        return (
            f"{what} in the spool at {self.directory} and will be sent, in order, when the "
            "server answers again"
        )

    def _ensure_open(self) -> None:
        if self._opened:
            return
        self._opened = True
        self._adopt()

    def _adopt(self) -> None:
        """Take over the files of processes that exited with writes still spooled."""
        try:
            names = sorted(p for p in self.directory.glob("seg-*.jsonl"))
        except OSError:
            return
        for draft in self.directory.glob(".draft-seg-*.jsonl"):  # a crash while creating one
            with contextlib.suppress(OSError):
                fd = os.open(draft, os.O_RDWR | os.O_CLOEXEC)
                try:
                    if _try_lock(fd):
                        draft.unlink()
                finally:
                    os.close(fd)
        adopted = 0
        for path in names:
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            except OSError:
                continue  # finished and deleted by its owner meanwhile
            try:
                if not _try_lock(fd) or os.stat(path).st_ino != os.fstat(fd).st_ino:
                    os.close(fd)  # alive, or finished and replaced
                    continue
            except OSError:
                os.close(fd)
                continue
            segment = _Segment(path, fd, own=False)
            segment.scan()
            if segment.pending == 0:
                segment.close(unlink=True)
                continue
            self._segments.append(segment)
            adopted += segment.pending
        if adopted:
            log.info(
                "found %d spooled write(s) for %s left by an earlier process; sending them",
                adopted,
                self.server_url,
            )
            self._start_replayer()

    # -- writing ---------------------------------------------------------------------------

    def append(self, method: str, endpoint: str, body: dict[str, Any]) -> None:
        """Spool one write (durably) and make sure the replayer runs."""
        with self._lock:
            self._ensure_open()
            own = self._own
            if own is None:
                own = self._own = self._new_segment()
                self._segments.append(own)
            own.write(
                {"seq": own.next_seq, "method": method, "endpoint": endpoint, "body": body},
                sync=True,
            )
            own.next_seq += 1
            own.pending += 1
            self._start_replayer()

    def append_if_active(self, method: str, endpoint: str, body: dict[str, Any]) -> bool:
        """Spool the write if others are waiting (to keep the order); False if none are."""
        with self._lock:
            if not self.active:
                return False
            self.append(method, endpoint, body)
            return True

    def _new_segment(self) -> _Segment:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        path = self.directory / name
        # Made and locked under another name, so that no other process can take it first.
        draft = self.directory / f".draft-{name}"
        fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        segment = _Segment(path, fd, own=True)
        segment.write(
            {
                "slipway_spool": FORMAT_VERSION,
                "server": self.server_url,
                "pid": os.getpid(),
                "created": int(time.time() * 1000),
            },
            sync=True,
        )
        os.rename(draft, path)
        with contextlib.suppress(OSError):  # make the new name itself durable
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        log.warning(
            "the tracking server at %s is unreachable; writes are spooled to %s and will be "
            "sent when it answers",
            self.server_url,
            path,
        )
        return segment

    # -- replaying ---------------------------------------------------------------------------

    def drain(self) -> None:
        """Send every spooled write now, in order, in this thread.

        Raises:
            SpoolBlocked: the server is unreachable, unavailable or throttling; what is left
                stays spooled (and the replayer keeps trying).
        """
        with self._replay_lock:
            self._drain_locked()

    def _drain_locked(self) -> None:
        while True:
            with self._lock:
                if not self._segments:
                    return
                segment = self._segments[0]
                entries, read_to = segment.read()
                if not entries:
                    if read_to <= segment.read_pos < segment.size:
                        log.warning("spool file %s is shorter than written", segment.path)
                        read_to = segment.size
                    segment.read_pos = max(segment.read_pos, read_to)
                    if segment.read_pos >= segment.size:
                        self._finish(segment)
                    continue
            for group in coalesce(entries):
                self._replay(segment, group)

    def _finish(self, segment: _Segment) -> None:
        segment.close(unlink=True)
        self._segments.remove(segment)
        if segment is self._own:
            self._own = None
        self._failures = {k: v for k, v in self._failures.items() if k[0] != str(segment.path)}

    def _replay(self, segment: _Segment, group: _Group) -> None:
        key = (str(segment.path), group.entries[0].seq)
        try:
            self._send(group.method, group.endpoint, group.body)
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, SlipwayError)
                else SlipwayError(f"{type(exc).__name__}: {exc}")
            )
            if (
                isinstance(error, TemporarilyUnavailable)
                or getattr(error, "response_status", None) in _BLOCKING_STATUSES
                or error.error_code in _BLOCKING_CODES
            ):
                raise SpoolBlocked(
                    f"{error.message} ({self.describe()})", error_code=error.error_code
                ) from None
            refused = error.http_status < 500
            if not refused:
                self._failures[key] = self._failures.get(key, 0) + 1
                refused = self._failures[key] >= self.max_failures
            if not refused:
                raise SpoolBlocked(
                    f"The tracking server failed to take spooled writes: {error} "
                    f"({self.describe()})",
                    error_code=error.error_code,
                ) from None
            self._failures.pop(key, None)
            if len(group.entries) > 1:  # find the write it refuses; send the others
                for entry in group.entries:
                    self._replay(segment, _Group.of(entry))
                return
            self._reject(group.entries[0], error)
        self._failures.pop(key, None)
        with self._lock:
            for entry in group.entries:
                segment.ack(entry)

    def _reject(self, entry: Entry, error: SlipwayError) -> None:
        self.rejected += 1
        record = {
            "rejected_at": int(time.time() * 1000),
            "error_code": error.error_code,
            "message": error.message,
            "method": entry.method,
            "endpoint": entry.endpoint,
            "body": entry.body,
        }
        target = self.directory / REJECTED_FILE
        try:
            with target.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, allow_nan=False) + "\n")
        except OSError as exc:
            log.error("could not record a refused spooled write in %s: %s", target, exc)
        log.warning(
            "the tracking server at %s refused a spooled %s (run %s): %s; the write is kept in %s",
            self.server_url,
            entry.endpoint,
            entry.body.get("run_id", "?"),
            error,
            target,
        )

    def _start_replayer(self) -> None:
        # Called with self._lock held.
        if not self.background:
            return
        if self._closing or (self._thread is not None and self._thread.is_alive()):
            self._wake.set()
            return
        self._thread = threading.Thread(
            target=self._replayer, name="slipway-spool-replayer", daemon=True
        )
        self._thread.start()

    def _replayer(self) -> None:
        delay = self.min_interval
        while True:
            with self._lock:
                if self._closing or not self._segments:
                    self._thread = None
                    return
            try:
                self.drain()
                delay = self.min_interval
            except SpoolBlocked:
                self._wake.wait(delay * random.uniform(0.5, 1.0))
                self._wake.clear()
                delay = min(delay * 2, self.max_interval)
            except Exception:  # never let the thread die with writes waiting
                log.exception("spool replay failed; retrying")
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(delay * 2, self.max_interval)

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the replayer to empty the spool."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._segments:
                    return True
            time.sleep(0.02)
        return not self.active

    # -- closing -----------------------------------------------------------------------------

    def close(self, final_attempt: bool = True, timeout: float = 5.0) -> None:
        """Stop the replayer, try once more to send what is spooled (``final_attempt``), and
        release the files; anything left stays on disk for the next spool of this server."""
        with self._lock:
            self._closing = True
            thread = self._thread
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if not self._replay_lock.acquire(timeout=timeout):
            # A send is still under way; the files are released when the process exits.
            self._closing = False
            return
        try:
            if final_attempt and self._segments:
                with contextlib.suppress(SpoolBlocked):
                    self._drain_locked()
            with self._lock:
                left = sum(s.pending for s in self._segments)
                files = [s.path for s in self._segments]
                for segment in self._segments:
                    segment.close(unlink=False)
                self._segments.clear()
                self._own = None
                self._opened = False  # used again: adopt what was left, then go on
                self._closing = False
                self._thread = None
        finally:
            self._replay_lock.release()
        self._notice(left, files)

    def flush_at_exit(self, timeout: float = 5.0) -> None:
        """One last attempt to send what is spooled, at interpreter exit; stderr says what
        stays on disk. The files stay held, so writes made later in the shutdown (a run ended
        at exit) join them."""
        with self._lock:
            if not self._segments:
                return
        if self._replay_lock.acquire(timeout=timeout):
            try:
                with contextlib.suppress(SpoolBlocked):
                    self._drain_locked()
            finally:
                self._replay_lock.release()
        with self._lock:
            left = sum(s.pending for s in self._segments)
            files = [s.path for s in self._segments]
        self._notice(left, files)

    def _notice(self, left: int, files: list[Path]) -> None:
        if left:
            print(
                f"slipway: the tracking server at {self.server_url} could not be reached; "
                f"{left} write{'' if left == 1 else 's'} stay spooled in "
                f"{', '.join(str(f) for f in files)} and will be sent by the next Slipway "
                "process that logs to this server.",
                file=sys.stderr,
            )

    def _after_fork_in_child(self) -> None:
        """The parent's files and thread stay the parent's; the child starts empty."""
        for segment in self._segments:
            with contextlib.suppress(OSError):
                os.close(segment.fd)  # the child's copy only: the parent keeps its lock
        self._segments = []
        self._own = None
        self._opened = True  # adopting now would take files the parent still writes
        self._closing = False
        self._thread = None
        self._lock = threading.RLock()
        self._replay_lock = threading.Lock()
        self._wake = threading.Event()
        self._failures = {}


_LIVE: weakref.WeakSet[Spool] = weakref.WeakSet()


def live_spools() -> list[Spool]:
    return list(_LIVE)


def _reset_after_fork() -> None:
    for spool in list(_LIVE):
        spool._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)

__all__ = [
    "SPOOL_DIR_ENV",
    "SPOOL_ENV",
    "SPOOL_RETRY_MAX_ENV",
    "Entry",
    "Spool",
    "SpoolBlocked",
    "coalesce",
    "default_root",
    "live_spools",
    "server_folder_name",
]
