"""Worker logs as run artifacts: each rank's stdout and stderr over every attempt, capped.

The elastic agent writes one file per stream, rank and attempt. A rank's files become one
artifact per stream (``logs/rank_<r>.stdout.txt``), the attempts in order under a header line
each. A log bigger than the cap keeps its beginning and its end (where a crash is) with a
line in between saying how much was left out, so a chatty job cannot fill the artifact store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_CAP_BYTES", "LOG_DIR", "AttemptLogs", "capped_log", "log_artifact_name"]

LOG_DIR = "logs"
DEFAULT_CAP_BYTES = 4 * 1024 * 1024
HEAD_SHARE = 0.25
"""The share of the cap kept from the beginning; the rest comes from the end."""


@dataclass
class AttemptLogs:
    """Where one attempt's workers wrote: per global rank, the stdout and stderr files."""

    attempt: int
    stdout: dict[int, str] = field(default_factory=dict)
    stderr: dict[int, str] = field(default_factory=dict)


def log_artifact_name(rank: int, stream: str) -> str:
    return f"{LOG_DIR}/rank_{rank}.{stream}.txt"


def capped_log(parts: Sequence[tuple[str, Path | None]], cap: int = DEFAULT_CAP_BYTES) -> bytes:
    """``parts`` (a header and a file, or None when the file is missing) joined, at most about
    ``cap`` bytes: the first quarter and the last three quarters when it is bigger."""
    pieces: list[tuple[bytes | Path, int]] = []
    for header, path in parts:
        if header:
            data = header.encode("utf-8")
            pieces.append((data, len(data)))
        if path is not None and path.is_file():
            pieces.append((path, path.stat().st_size))
    total = sum(size for _, size in pieces)
    if total <= cap:
        return b"".join(_read(piece, 0, size) for piece, size in pieces)
    head = int(cap * HEAD_SHARE)
    tail = cap - head
    omitted = total - head - tail
    marker = f"\n... [{omitted} bytes of log left out] ...\n".encode()
    return _slice(pieces, 0, head) + marker + _slice(pieces, total - tail, total)


def _slice(pieces: Sequence[tuple[bytes | Path, int]], start: int, end: int) -> bytes:
    """Bytes ``start:end`` of the pieces as if they were one stream."""
    out = []
    offset = 0
    for piece, size in pieces:
        lo, hi = max(start, offset), min(end, offset + size)
        if lo < hi:
            out.append(_read(piece, lo - offset, hi - lo))
        offset += size
    return b"".join(out)


def _read(piece: bytes | Path, start: int, length: int) -> bytes:
    if isinstance(piece, bytes):
        return piece[start : start + length]
    with piece.open("rb") as handle:
        handle.seek(start)
        return handle.read(length)
