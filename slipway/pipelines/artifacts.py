"""Artifacts between steps: the objects a component gets for its ``Input[...]`` and
``Output[...]`` arguments, the references the executor keeps, and their content digests.

A reference is a JSON dict ``{"uri", "digest": "sha256:<hex>", "type", "metadata",
"producer"}``. The digest is of the content (:func:`artifact_digest`), so the cache key of a
downstream step follows the data, not where it is stored.

Local URIs (a path or ``file://``) take a fast path: an input's ``path`` is the stored file
itself (nothing is copied) and an output's ``path`` is where it is stored (the component writes
there directly). Any other store (``s3://``, ``mlflow-artifacts:``, an artifact proxy URL) goes
through :func:`slipway.artifacts.get_artifact_repository`: inputs are downloaded once into a
cache folder keyed by digest, outputs are written to a staging folder and uploaded once the
component has returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from slipway.artifacts import get_artifact_repository
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.pipelines import types as ty
from slipway.pipelines.component import ComponentSpec

CACHE_DIR_ENV = "SLIPWAY_ARTIFACT_CACHE_DIR"
"""Where downloaded input artifacts are kept (``~/.cache/slipway/artifacts`` by default)."""

_FOLDER_HEADER = b"slipway-folder-digest-1\n"
EMPTY_FOLDER_DIGEST = "sha256:" + hashlib.sha256(_FOLDER_HEADER).hexdigest()
"""The digest of a folder with no files (object stores keep no empty folders, so a download
that finds nothing is this folder when the reference says so)."""


class OutputNotWritten(InvalidParameterValue):
    """A component returned without writing one of its output artifacts."""


# -- digests --------------------------------------------------------------------------------


def _file_hex(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def artifact_digest(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file's bytes, or of a folder: every file under it (symlinked
    folders are not followed, empty folders do not count) as its relative POSIX path and its
    own digest, in sorted order. The same content gives the same digest wherever it lies and
    however it was written."""
    root = Path(path)
    if root.is_file():
        return "sha256:" + _file_hex(root)
    if not root.is_dir():
        raise ResourceDoesNotExist(f"No file or folder at {str(root)!r}")
    entries: list[tuple[str, str]] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = Path(dirpath, name)
            entries.append((full.relative_to(root).as_posix(), _file_hex(full)))
    digest = hashlib.sha256(_FOLDER_HEADER)
    for rel, hex_digest in sorted(entries):
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0" + hex_digest.encode())
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


# -- where an artifact lives ----------------------------------------------------------------


def local_path(uri: str) -> str | None:
    """The local file system path that ``uri`` names, or None for any other store."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        return url2pathname(parts.path)
    if scheme == "" or (len(scheme) == 1 and scheme.isalpha()):  # a path (or a drive letter)
        return os.path.abspath(uri)
    return None


def _split_leaf(uri: str) -> tuple[str, str]:
    """``(parent URI, last path segment)`` of a remote artifact URI."""
    stripped = uri.rstrip("/")
    parent, sep, leaf = stripped.rpartition("/")
    if not sep or not leaf or parent.endswith(":") or parent.endswith(":/"):
        raise InvalidParameterValue(f"Artifact URI {uri!r} does not name a file or folder")
    return parent, leaf


def default_cache_dir() -> str:
    """The folder that keeps downloaded input artifacts: ``SLIPWAY_ARTIFACT_CACHE_DIR``, else
    ``~/.cache/slipway/artifacts``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    return os.path.join(os.path.expanduser("~"), ".cache", "slipway", "artifacts")


# -- inputs ---------------------------------------------------------------------------------


def _check_ref(name: str, ref: Any) -> Mapping[str, Any]:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("uri"), str) or not ref["uri"]:
        raise InvalidParameterValue(
            f"input artifact {name!r}: expected a reference with a 'uri', got {ref!r}"
        )
    return ref


def _download(
    name: str,
    uri: str,
    digest: str | None,
    cache_dir: str,
    tracking_uri: str | None,
    scratch_dir: str | None,
) -> str:
    """A local copy of remote ``uri``: the cached one when its digest is known and there,
    else a fresh download (checked against the digest, then cached). Without a digest there is
    nothing to key the cache by: the copy goes to ``scratch_dir`` (a new temporary folder when
    None) and is not reused."""
    parent, leaf = _split_leaf(uri)
    try:
        repo = get_artifact_repository(parent, tracking_uri=tracking_uri)
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(f"input artifact {name!r} at {uri}: {exc.message}") from None
    hex_digest = digest.split(":", 1)[1] if digest and digest.startswith("sha256:") else None
    if hex_digest is None:
        if scratch_dir is not None:
            os.makedirs(scratch_dir, exist_ok=True)
        target = tempfile.mkdtemp(prefix="input-", dir=scratch_dir)
        try:
            return str(repo.download_artifacts(leaf, target))
        except ResourceDoesNotExist:
            raise ResourceDoesNotExist(
                f"input artifact {name!r}: nothing is stored at {uri}"
            ) from None
    slot = Path(cache_dir, hex_digest)
    if (slot / leaf).exists():
        return str(slot / leaf)
    slot.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=slot))
    try:
        try:
            local = Path(repo.download_artifacts(leaf, scratch))
        except ResourceDoesNotExist:
            if digest != EMPTY_FOLDER_DIGEST:
                raise ResourceDoesNotExist(
                    f"input artifact {name!r}: nothing is stored at {uri}"
                ) from None
            local = scratch / leaf
            local.mkdir()
        found = artifact_digest(local)
        if found != digest:
            raise InvalidParameterValue(
                f"input artifact {name!r} at {uri} has changed since it was written "
                f"(digest {found}, expected {digest})"
            )
        try:
            os.rename(local, slot / leaf)
        except OSError:  # another step downloaded the same content meanwhile
            if not (slot / leaf).exists():
                raise
        return str(slot / leaf)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def input_artifact(
    name: str,
    ref: Mapping[str, Any],
    declared: type[ty.Artifact] = ty.Artifact,
    *,
    cache_dir: str | None = None,
    tracking_uri: str | None = None,
    scratch_dir: str | None = None,
) -> ty.Artifact:
    """The artifact object for input ``name`` from its reference, with a local ``path``.

    ``declared`` is the class the component annotated; for ``Input[Artifact]`` the object is
    of the reference's own type (a Dataset stays a Dataset). Remote content is downloaded into
    ``cache_dir`` (:func:`default_cache_dir` when None), or ``scratch_dir`` for a reference
    without a digest.

    Raises:
        InvalidParameterValue: for a malformed reference or content that no longer matches
            its digest.
        ResourceDoesNotExist: when nothing is stored at the reference's URI.
    """
    ref = _check_ref(name, ref)
    uri = str(ref["uri"])
    digest = ref.get("digest")
    cls = declared
    stored = ty.ARTIFACT_TYPES.get(str(ref.get("type") or ""))
    if declared is ty.Artifact and stored is not None:
        cls = stored
    path = local_path(uri)
    if path is not None:
        if not os.path.exists(path):
            raise ResourceDoesNotExist(f"input artifact {name!r}: nothing is stored at {uri}")
    else:
        path = _download(
            name,
            uri,
            str(digest) if digest else None,
            cache_dir or default_cache_dir(),
            tracking_uri,
            scratch_dir,
        )
    return cls(name=name, uri=uri, path=path, metadata=dict(ref.get("metadata") or {}))


def build_inputs(
    spec: ComponentSpec,
    refs: Mapping[str, Any],
    *,
    cache_dir: str | None = None,
    tracking_uri: str | None = None,
    scratch_dir: str | None = None,
) -> dict[str, ty.Artifact | list[ty.Artifact]]:
    """The artifact arguments of a component: one object per ``Input[X]`` in ``refs``, a list
    for ``Input[list[X]]``. An input left out of ``refs`` is left out here (its default, None,
    applies)."""
    out: dict[str, ty.Artifact | list[ty.Artifact]] = {}
    for name, input_spec in spec.inputs.items():
        if input_spec.artifact is None or name not in refs:
            continue
        declared = input_spec.artifact.cls
        given = refs[name]
        options = {"cache_dir": cache_dir, "tracking_uri": tracking_uri, "scratch_dir": scratch_dir}
        if input_spec.artifact.is_list:
            if not isinstance(given, list):
                raise InvalidParameterValue(
                    f"input artifact {name!r} is a list; got {type(given).__name__}"
                )
            out[name] = [
                input_artifact(f"{name}[{i}]", ref, declared, **options)
                for i, ref in enumerate(given)
            ]
        else:
            if isinstance(given, list):
                raise InvalidParameterValue(
                    f"input artifact {name!r} takes one artifact; got a list of {len(given)}"
                )
            out[name] = input_artifact(name, given, declared, **options)
    return out


def import_artifact(
    uri: str,
    type_name: str = "Artifact",
    *,
    metadata: Mapping[str, Any] | None = None,
    cache_dir: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """The reference of an artifact that no step wrote (an importer's URI), with the digest of
    its content as it is now. Remote content is downloaded once to digest it and left in the
    cache under that digest, where the step that reads it next finds it.

    Raises:
        InvalidParameterValue: for an unknown type name or an unsupported URI.
        ResourceDoesNotExist: when nothing is stored at ``uri``.
    """
    if type_name not in ty.ARTIFACT_TYPES:
        raise InvalidParameterValue(
            f"unknown artifact type {type_name!r} (one of {', '.join(ty.ARTIFACT_TYPES)})"
        )
    path = local_path(uri)
    if path is not None:
        if not os.path.exists(path):
            raise ResourceDoesNotExist(f"nothing is stored at {uri}")
        digest = artifact_digest(path)
    else:
        parent, leaf = _split_leaf(uri)
        try:
            repo = get_artifact_repository(parent, tracking_uri=tracking_uri)
        except InvalidParameterValue as exc:
            raise InvalidParameterValue(f"cannot import {uri}: {exc.message}") from None
        root = cache_dir or default_cache_dir()
        os.makedirs(root, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
        try:
            try:
                local = Path(repo.download_artifacts(leaf, scratch))
            except ResourceDoesNotExist:
                raise ResourceDoesNotExist(f"nothing is stored at {uri}") from None
            digest = artifact_digest(local)
            slot = Path(root, digest.split(":", 1)[1])
            slot.mkdir(exist_ok=True)
            try:
                os.rename(local, slot / leaf)
            except OSError:  # the same content is cached already
                if not (slot / leaf).exists():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "uri": uri,
        "digest": digest,
        "type": type_name,
        "metadata": _json_metadata("import", dict(metadata or {})),
    }


# -- outputs --------------------------------------------------------------------------------


class OutputSlot:
    """An output artifact being written: the object the component gets, and where its content
    goes once it has returned (kept apart from the object, which the component may change)."""

    def __init__(self, artifact: ty.Artifact, uri: str, path: str, remote: bool) -> None:
        self.artifact = artifact
        self.uri = uri
        self.path = path
        self.remote = remote

    @property
    def name(self) -> str:
        return self.artifact.name


def output_slot(
    name: str, uri: str, cls: type[ty.Artifact], staging_dir: str | os.PathLike[str]
) -> OutputSlot:
    """The output artifact ``name`` to be stored at ``uri``. Its ``path`` is where the component
    writes one file or one folder: the stored location itself for a local URI (its parent
    folder is created), else a path under ``staging_dir``."""
    path = local_path(uri)
    remote = path is None
    if path is None:
        _, leaf = _split_leaf(uri)
        path = os.path.join(os.fspath(staging_dir), name, leaf)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return OutputSlot(cls(name=name, uri=uri, path=path), uri, path, remote)


def build_outputs(
    spec: ComponentSpec, output_uris: Mapping[str, str], staging_dir: str | os.PathLike[str]
) -> dict[str, OutputSlot]:
    """One :class:`OutputSlot` per ``Output[X]`` argument of the component.

    Raises:
        InvalidParameterValue: when ``output_uris`` misses one of them.
    """
    slots: dict[str, OutputSlot] = {}
    for name, out in spec.outputs.items():
        if out.artifact is None:
            continue
        uri = output_uris.get(name)
        if not uri:
            raise InvalidParameterValue(f"output artifact {name!r} has no destination URI")
        slots[name] = output_slot(name, uri, out.artifact.cls, staging_dir)
    return slots


def _json_metadata(name: str, metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise InvalidParameterValue(
            f"output artifact {name!r}: metadata must be a dict, got {type(metadata).__name__}"
        )
    try:
        text = json.dumps(dict(metadata), allow_nan=True, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(
            f"output artifact {name!r}: metadata is not JSON-serialisable ({exc})"
        ) from None
    value: dict[str, Any] = json.loads(text)
    return value


def finish_output(slot: OutputSlot, tracking_uri: str | None = None) -> dict[str, Any]:
    """The reference of an output the component has written (uploaded first when its store is
    remote). A Metrics output left unwritten but holding metadata is written as that metadata
    in JSON.

    Raises:
        OutputNotWritten: when nothing is at the output's path.
        InvalidParameterValue: when its metadata is not JSON.
    """
    artifact = slot.artifact
    metadata = _json_metadata(slot.name, artifact.metadata)
    if not os.path.lexists(slot.path):
        if isinstance(artifact, ty.Metrics) and metadata:
            with open(slot.path, "w", encoding="utf-8") as stream:
                json.dump(metadata, stream, indent=2, sort_keys=True)
        else:
            raise OutputNotWritten(f"output artifact '{slot.name}' was not written")
    digest = artifact_digest(slot.path)
    if slot.remote:
        if os.path.isdir(slot.path):
            get_artifact_repository(slot.uri, tracking_uri=tracking_uri).log_artifacts(slot.path)
        else:
            parent, _ = _split_leaf(slot.uri)
            repo = get_artifact_repository(parent, tracking_uri=tracking_uri)
            repo.log_artifact(slot.path)
    return {
        "uri": slot.uri,
        "digest": digest,
        "type": type(artifact).__name__,
        "metadata": metadata,
    }


def read_log_capped(path: str | os.PathLike[str], limit: int = 1_000_000) -> str:
    """The text of a log file, at most about ``limit`` bytes of it: a longer log keeps its
    first and last halves with a line saying how much was left out between them."""
    if limit < 2:
        raise InvalidParameterValue(f"limit must be at least 2 bytes, got {limit}")
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        if size <= limit:
            return stream.read().decode("utf-8", "replace")
        half = limit // 2
        head = stream.read(half)
        stream.seek(size - half)
        tail = stream.read(half)
    marker = f"\n... [{size - 2 * half} bytes left out] ...\n".encode()
    return (head + marker + tail).decode("utf-8", "replace")


__all__ = [
    "CACHE_DIR_ENV",
    "EMPTY_FOLDER_DIGEST",
    "OutputNotWritten",
    "OutputSlot",
    "artifact_digest",
    "build_inputs",
    "build_outputs",
    "default_cache_dir",
    "finish_output",
    "import_artifact",
    "input_artifact",
    "local_path",
    "output_slot",
    "read_log_capped",
]
