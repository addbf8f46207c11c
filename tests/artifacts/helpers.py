"""Small file-tree helpers for the artifact tests."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from slipway.artifacts import ArtifactRepository


def make_tree(base: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative posix path -> content) under ``base`` and return ``base``."""
    for rel, content in files.items():
        target = base / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    base.mkdir(parents=True, exist_ok=True)
    return base


def read_tree(base: Path) -> dict[str, bytes]:
    """Every file under ``base`` as relative posix path -> content (links not followed)."""
    return {
        path.relative_to(base).as_posix(): path.read_bytes()
        for path in sorted(base.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def snapshot(base: Path) -> dict[str, bytes | None]:
    """Every entry under ``base``: file contents, None for directories and links."""
    return {
        path.relative_to(base).as_posix(): (
            path.read_bytes() if path.is_file() and not path.is_symlink() else None
        )
        for path in sorted(base.rglob("*"))
    }


def every_operation(
    repo: ArtifactRepository, path: str, src: Path, dst: Path
) -> dict[str, Callable[[], object]]:
    """Each repository operation applied to artifact ``path``, ready to call.

    ``src`` must be a local directory holding ``a.txt``; ``dst`` is where downloads go.
    """
    return {
        "log_artifact": lambda: repo.log_artifact(src / "a.txt", path),
        "log_artifacts": lambda: repo.log_artifacts(src, path),
        "log_bytes": lambda: repo.log_bytes(b"evil", path),
        "write_artifact_stream": lambda: repo.write_artifact_stream(path, io.BytesIO(b"evil")),
        "open_artifact": lambda: repo.open_artifact(path),
        "list_artifacts": lambda: repo.list_artifacts(path),
        "download_artifacts": lambda: repo.download_artifacts(path, dst),
        "delete_artifacts": lambda: repo.delete_artifacts(path),
    }


_CYCLE = bytes(range(251))


def pattern(offset: int, count: int) -> bytes:
    """``count`` bytes of a fixed pattern, starting ``offset`` bytes into it."""
    start = offset % len(_CYCLE)
    return (_CYCLE * ((start + count) // len(_CYCLE) + 1))[start : start + count]


class ChunkedStream(io.RawIOBase):
    """A readable stream of ``pattern(0, size)`` that refuses unbounded reads before its end.

    ``fail_after`` makes it raise :class:`StreamBroke` once that many bytes have gone out.
    """

    def __init__(self, size: int, *, fail_after: int | None = None, max_read: int = 16 << 20):
        super().__init__()
        self.remaining = size
        self.sent = 0
        self.fail_after = fail_after
        self.max_read = max_read
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if len(buffer) > self.max_read:
            raise AssertionError(f"read of {len(buffer)} bytes at once")
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise StreamBroke("the stream broke")
        limit = self.remaining
        if self.fail_after is not None:
            limit = min(limit, self.fail_after - self.sent)
        count = min(len(buffer), limit)
        buffer[:count] = pattern(self.sent, count)
        self.remaining -= count
        self.sent += count
        self.reads += 1
        return count

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            if self.fail_after is not None and self.sent >= self.fail_after:
                raise StreamBroke("the stream broke")
            if self.remaining:
                raise AssertionError("unbounded read before the end of the stream")
            return b""
        return super().read(size) or b""


class StreamBroke(RuntimeError):
    pass
