"""Checkpoints in the job's run: ``checkpoints/step-<n>.pt``, the last few kept.

Every rank calls :func:`save_checkpoint` at the same point of the loop; rank 0 alone writes,
and with ``barrier=True`` the others wait until it has, so a rank that dies right after sees
the checkpoint on restart like the rest. Writing is two-phase: the ``torch.save`` file first
(into a temporary file renamed into place on a local store, one upload elsewhere), then
``checkpoints/index.json``, which names the checkpoints in the order they were written. A
checkpoint that was being written when the worker died is therefore never the one
:func:`load_latest_checkpoint` picks. Checkpoints beyond ``keep`` are deleted after the index
no longer names them.

Before writing, rank 0 flushes the metrics it logged, so that what a restart resumes from and
what the run shows agree.

Where: the job run's artifacts when the job was launched by Slipway; otherwise (plain
``torchrun``) the folder or ``s3://`` URI in ``SLIPWAY_CHECKPOINT_URI`` or ``uri=``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from slipway.artifacts import (
    ArtifactRepository,
    LocalArtifactRepository,
    get_artifact_repository,
    join_relative,
    resolve_within,
)
from slipway.artifacts.atomic import atomic_file
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.training import env

__all__ = [
    "CHECKPOINT_DIR",
    "INDEX_FILE",
    "checkpoint_steps",
    "latest_checkpoint_step",
    "load_latest_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_DIR = "checkpoints"
INDEX_FILE = "index.json"
_NAME = re.compile(r"^step-(\d+)\.pt$")


class _Location:
    """A checkpoint folder in an artifact store."""

    def __init__(self, repo: ArtifactRepository, prefix: str) -> None:
        self.repo = repo
        self.prefix = prefix

    def path(self, name: str) -> str:
        return join_relative(self.prefix, name) if self.prefix else name

    def file_name(self, step: int) -> str:
        return self.path(f"step-{step}.pt")

    def local_file(self, rel: str) -> Path | None:
        if isinstance(self.repo, LocalArtifactRepository):
            return resolve_within(self.repo.root, rel)
        return None


def _location(uri: str | None) -> _Location:
    tracking_uri = os.environ.get("SLIPWAY_TRACKING_URI") or None
    root = uri or os.environ.get(env.CHECKPOINT_URI_ENV) or None
    if root:
        return _Location(get_artifact_repository(root, tracking_uri=tracking_uri), "")
    artifact_uri = os.environ.get(env.ARTIFACT_URI_ENV) or None
    if artifact_uri:
        return _Location(
            get_artifact_repository(artifact_uri, tracking_uri=tracking_uri), CHECKPOINT_DIR
        )
    raise InvalidParameterValue(
        "No place for checkpoints: launch the job with `slipway train` or "
        f"slipway.training.launch(), or name a folder or s3:// URI with {env.CHECKPOINT_URI_ENV} "
        "or uri="
    )


def _check_step(step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InvalidParameterValue(f"Invalid checkpoint step {step!r}: use an integer >= 0")
    return step


def _check_keep(keep: object) -> int | None:
    if keep is None:
        return None
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidParameterValue(
            f"Invalid keep {keep!r}: use an integer >= 1, or None to keep every checkpoint"
        )
    return keep


# -- reading --------------------------------------------------------------------------------


def _read_index(location: _Location) -> list[int] | None:
    """The steps the index names, oldest first; None when there is no usable index."""
    try:
        with location.repo.open_artifact(location.path(INDEX_FILE)) as handle:
            body = json.loads(handle.read().decode("utf-8"))
    except ResourceDoesNotExist:
        return None
    except (ValueError, UnicodeError):
        return None  # a damaged index: the files themselves are listed instead
    steps = body.get("steps") if isinstance(body, dict) else None
    if not isinstance(steps, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in steps
    ):
        return None
    return list(steps)


def _listed_steps(location: _Location) -> list[int]:
    found = []
    for info in location.repo.list_artifacts(location.prefix or None):
        match = _NAME.match(info.path.rsplit("/", 1)[-1])
        if match and not info.is_dir:
            found.append(int(match.group(1)))
    return sorted(found)


def checkpoint_steps(uri: str | None = None) -> list[int]:
    """The steps of the kept checkpoints, oldest written first."""
    location = _location(uri)
    steps = _read_index(location)
    return _listed_steps(location) if steps is None else steps


def latest_checkpoint_step(uri: str | None = None) -> int | None:
    """The step of the newest checkpoint, or None when there is none."""
    steps = checkpoint_steps(uri)
    return steps[-1] if steps else None


def load_latest_checkpoint(
    uri: str | None = None, map_location: Any = "cpu", weights_only: bool = True
) -> Any | None:
    """The state saved by the newest checkpoint, or None when there is none yet (a fresh
    start). Every rank reads it.

    Args:
        uri: a checkpoint folder to use instead of the job run's.
        map_location: where tensors are loaded (``torch.load``'s argument); the CPU by default,
            so a GPU job's checkpoint loads anywhere.
        weights_only: ``torch.load``'s safe mode (tensors, containers and numbers only); pass
            False for states holding other objects, from a store you trust.
    """
    import torch

    location = _location(uri)
    steps = _read_index(location)
    candidates = _listed_steps(location) if steps is None else steps
    for step in reversed(candidates):
        rel = location.file_name(step)
        local = location.local_file(rel)
        if local is not None:
            if not local.is_file():
                continue  # deleted by hand: fall back to the one before
            return torch.load(local, map_location=map_location, weights_only=weights_only)
        with tempfile.TemporaryDirectory(prefix="slipway-checkpoint-") as tmp:
            try:
                path = location.repo.download_artifacts(rel, tmp)
            except ResourceDoesNotExist:
                continue
            return torch.load(path, map_location=map_location, weights_only=weights_only)
    return None


# -- writing --------------------------------------------------------------------------------


def save_checkpoint(
    state: Any,
    step: int | None = None,
    keep: int | None = 3,
    *,
    barrier: bool = True,
    uri: str | None = None,
) -> int | None:
    """Save ``state`` (anything ``torch.save`` takes) as checkpoint ``step``; call it on every
    rank, rank 0 writes.

    Args:
        state: e.g. ``{"model": model.state_dict(), "optimizer": opt.state_dict(),
            "step": step}``.
        step: the checkpoint's number; one more than the newest checkpoint's when omitted.
        keep: how many checkpoints to keep (the newest); None keeps all.
        barrier: wait, on every rank, until rank 0 has written (a no-op without an
            initialised process group).
        uri: a checkpoint folder to use instead of the job run's.

    Returns:
        The step written on rank 0 (and on every rank when ``step`` is given), else None.
    """
    if step is not None:
        step = _check_step(step)
    keep = _check_keep(keep)
    location = _location(uri)
    written: int | None = step
    if env.is_main():
        written = _write(location, state, step, keep)
    if barrier:
        _barrier()
    return written


def _write(location: _Location, state: Any, step: int | None, keep: int | None) -> int:
    import torch

    _flush_fluent()
    steps = _read_index(location)
    if steps is None:
        steps = _listed_steps(location)
    if step is None:
        step = max(steps) + 1 if steps else 0
    rel = location.file_name(step)
    local = location.local_file(rel)
    if local is not None:
        with atomic_file(local) as handle:
            torch.save(state, handle)
    else:
        with tempfile.TemporaryDirectory(prefix="slipway-checkpoint-") as tmp:
            path = Path(tmp, rel.rsplit("/", 1)[-1])
            torch.save(state, path)
            location.repo.log_artifact(path, location.prefix or None)
    ordered = [s for s in steps if s != step] + [step]
    kept = ordered if keep is None else ordered[-keep:]
    index = {"latest": step, "steps": kept}
    location.repo.log_bytes(json.dumps(index).encode("utf-8"), location.path(INDEX_FILE))
    for old in ordered:
        if old not in kept:
            location.repo.delete_artifacts(location.file_name(old))
    return step


def _flush_fluent() -> None:
    fluent = sys.modules.get("slipway.tracking.fluent")
    if fluent is not None and fluent.active_run() is not None:
        fluent.flush()


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
