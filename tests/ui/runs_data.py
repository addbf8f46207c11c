"""Runs for the runs pages' tests, made through the SDK against the live server."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence

from slipway.entities import Metric, Param, RunTag
from slipway.tracking.client import SlipwayClient

T0 = 1_800_000_000_000  # a fixed epoch millisecond, so times on the pages are predictable


def make_run(
    client: SlipwayClient,
    experiment_id: str,
    name: str,
    *,
    params: Mapping[str, str] | None = None,
    metrics: Mapping[str, Sequence[float]] | None = None,
    tags: Mapping[str, str] | None = None,
    start: int = T0,
    seconds: float | None = 1.0,
) -> str:
    """A run with ``params``, metric histories (value i at step i, a second apart) and
    ``tags``, ended ``seconds`` after ``start`` (still running when None)."""
    run = client.create_run(experiment_id, start_time=start, run_name=name)
    run_id = run.info.run_id
    points = [
        Metric(key, value, start + i * 1000, i)
        for key, values in (metrics or {}).items()
        for i, value in enumerate(values)
    ]
    for first in range(0, max(len(points), 1), 1000):
        client.log_batch(
            run_id,
            metrics=points[first : first + 1000],
            params=[Param(k, v) for k, v in (params or {}).items()] if first == 0 else [],
            tags=[RunTag(k, v) for k, v in (tags or {}).items()] if first == 0 else [],
        )
    if seconds is not None:
        client.set_terminated(run_id, end_time=start + int(seconds * 1000))
    return run_id


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    """A valid PNG of a red rectangle, built by hand (no imaging library needed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
