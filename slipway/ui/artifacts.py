"""Artifact previews for the run page: text, JSON, YAML, CSV (as a table), images, models.

A preview reads at most :data:`PREVIEW_BYTES` of a file, whatever its size, and says so when
it stopped early. Bytes that are not text are never shown as text: a file with NUL bytes, or
that is not UTF-8, is described as "binary file, N bytes" and offered as a download.

Raw bytes go to the browser through :func:`raw_response`, which picks the content type from
the file name (never from the request or the bytes), serves images inline and everything else
as an attachment, with ``nosniff`` and a sandboxing content security policy, so a stored HTML
or SVG file can never run as a page of this site.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import posixpath
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import anyio.to_thread
import yaml
from starlette.responses import StreamingResponse

from slipway.artifacts.base import ArtifactRepository
from slipway.server.routers.artifacts import content_disposition, content_type_for

__all__ = [
    "CSV_ROWS",
    "PREVIEW_BYTES",
    "ModelSummary",
    "Preview",
    "breadcrumbs",
    "file_kind",
    "has_model",
    "make_preview",
    "model_summary",
    "raw_response",
    "read_model_summary",
    "read_preview",
    "size_text",
]

PREVIEW_BYTES = 256 * 1024
MLMODEL_BYTES = 1024 * 1024
CSV_ROWS = 200
CSV_COLUMNS = 60
CHUNK = 256 * 1024

Kind = Literal["image", "json", "yaml", "csv", "tsv", "text", "other"]
PreviewKind = Literal["image", "json", "yaml", "csv", "text", "binary", "empty"]

# Shown with <img> and served inline; SVG is not here: it can hold script, so it is text.
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "bmp", "webp"})
_EXTENSION_KINDS: dict[str, Kind] = {
    "json": "json",
    "jsonl": "text",
    "yaml": "yaml",
    "yml": "yaml",
    "csv": "csv",
    "tsv": "tsv",
}
_YAML_NAMES = frozenset({"MLmodel", "MLproject"})


def file_kind(path: str) -> Kind:
    """How a file is previewed, from its name alone."""
    base = posixpath.basename(path)
    if base in _YAML_NAMES:
        return "yaml"
    stem, dot, extension = base.rpartition(".")
    extension = extension.lower() if dot and stem else ""
    if extension in IMAGE_EXTENSIONS:
        return "image"
    if extension in _EXTENSION_KINDS:
        return _EXTENSION_KINDS[extension]
    return "text" if content_type_for(path).startswith("text/") else "other"


@dataclass
class Preview:
    """What the artifact page shows for one file.

    Attributes:
        kind: how to show it; ``binary`` means only the note and a download link.
        size: the file's size in bytes, when known.
        text: the text shown (JSON pretty-printed when it parsed).
        rows: a CSV or TSV file's first rows (the first is the header).
        truncated: only the start of the file is shown.
        notes: what a reader should know (truncated, more rows, not valid JSON, ...).
    """

    path: str
    kind: PreviewKind
    size: int | None = None
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


def size_text(size: int) -> str:
    """``812 bytes``, ``1.5 MB (1,572,864 bytes)``."""
    if size < 1024:
        return f"{size} bytes"
    value, unit = size / 1024, "KB"
    for bigger in ("MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit} ({size:,} bytes)"


def _decode(data: bytes, complete: bool) -> str | None:
    """``data`` as UTF-8 text, or None when it is not text. A file cut off for the preview may
    end inside a character; that tail is dropped rather than taken as a sign of binary."""
    if b"\x00" in data:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        text = decoder.decode(data, final=complete)
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\t\n\r\f\v\x1b")
    if controls > max(8, len(text[:4096]) // 50):
        return None
    return text


def _csv_rows(text: str, delimiter: str, complete: bool) -> tuple[list[list[str]], bool]:
    """The first rows of a CSV text, and whether there are more."""
    if not complete:  # the last line may be cut off: leave it out
        text = text[: text.rfind("\n") + 1] if "\n" in text else ""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if len(rows) > CSV_ROWS:
                return rows[: CSV_ROWS + 1], True
            rows.append(row[:CSV_COLUMNS])
    except csv.Error:
        return rows, False
    return rows, not complete


def make_preview(path: str, data: bytes, complete: bool, size: int | None) -> Preview:
    """The preview of ``path`` from its first bytes (``complete``: ``data`` is the whole
    file). Pure: :func:`read_preview` does the reading."""
    if complete:
        size = len(data)
    kind = file_kind(path)
    if kind == "image":
        return Preview(path, "image", size)
    if size == 0:
        return Preview(path, "empty", 0, notes=["The file is empty."])
    text = _decode(data, complete)
    if text is None:
        described = size_text(size) if size is not None else f"over {size_text(len(data))}"
        return Preview(path, "binary", size, notes=[f"Binary file, {described}."])
    preview = Preview(path, "text", size, text=text, truncated=not complete)
    if not complete:
        whole = f" of {size_text(size)}" if size is not None else ""
        preview.notes.append(
            f"Showing the first {size_text(len(data))}{whole}; download the file for the rest."
        )
    if kind == "json" and complete:
        try:
            preview.text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            preview.kind = "json"
        except ValueError:
            preview.notes.append("Not valid JSON: shown as text.")
    elif kind == "yaml":
        preview.kind = "yaml"
    elif kind in ("csv", "tsv"):
        rows, more = _csv_rows(text, "," if kind == "csv" else "\t", complete)
        if rows:
            preview.kind = "csv"
            preview.rows = rows
            if more:
                preview.notes.append(f"Showing the first {len(rows) - 1} rows.")
    return preview


def _stream_size(stream: BinaryIO) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _read_head(stream: BinaryIO, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes, and whether that was all of it."""
    buffer = bytearray()
    while len(buffer) <= limit:
        chunk = stream.read(limit + 1 - len(buffer))
        if not chunk:
            return bytes(buffer), True
        buffer.extend(chunk)
    return bytes(buffer[:limit]), False


def read_preview(repo: ArtifactRepository, path: str) -> Preview:
    """Open ``path`` and build its preview from at most :data:`PREVIEW_BYTES` (blocking).

    Raises:
        ResourceDoesNotExist: when there is no file at ``path``.
    """
    if file_kind(path) == "image":
        with repo.open_artifact(path) as stream:
            return Preview(path, "image", _stream_size(stream))
    with repo.open_artifact(path) as stream:
        size = _stream_size(stream)
        data, complete = _read_head(stream, PREVIEW_BYTES)
    return make_preview(path, data, complete, size)


# -- models ---------------------------------------------------------------------------------------


@dataclass
class ModelSummary:
    """What an ``MLmodel`` file says, for a table: its flavors (each with its settings), the
    signature's inputs, outputs and params as rows, and a few facts."""

    flavors: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)
    outputs: list[dict[str, str]] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


def _plain(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _schema_rows(text: Any) -> list[dict[str, str]]:
    """A signature part (a JSON string of column or tensor specs) as table rows."""
    if not isinstance(text, str) or not text:
        return []
    try:
        specs = json.loads(text)
    except ValueError:
        return [{"name": "", "type": "(not valid JSON)", "detail": _plain(text)}]
    rows = []
    for spec in specs if isinstance(specs, list) else []:
        if not isinstance(spec, dict):
            continue
        kind = spec.get("type", "")
        detail: list[str] = []
        if kind == "tensor" and isinstance(spec.get("tensor-spec"), dict):
            tensor = spec["tensor-spec"]
            kind = f"tensor {tensor.get('dtype', '')}"
            detail.append(f"shape {_plain(tensor.get('shape'))}")
        if "default" in spec:
            detail.append(f"default {_plain(spec.get('default'))}")
        if spec.get("shape") is not None and kind != "tensor":
            detail.append(f"shape {_plain(spec.get('shape'))}")
        if spec.get("required") is False:
            detail.append("optional")
        rows.append({
            "name": _plain(spec.get("name", "")),
            "type": _plain(kind),
            "detail": ", ".join(detail),
        })  # fmt: skip
    return rows


def model_summary(text: str) -> ModelSummary:
    """The summary of an ``MLmodel`` file's text; a file that cannot be read gives a summary
    with ``error`` set, not an exception (the page still shows the folder)."""
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return ModelSummary(error=f"MLmodel is not valid YAML: {str(exc).splitlines()[0]}")
    if not isinstance(body, dict):
        return ModelSummary(error="MLmodel is not a YAML mapping")
    summary = ModelSummary()
    flavors = body.get("flavors")
    if isinstance(flavors, dict):
        for name, conf in sorted(flavors.items(), key=lambda item: str(item[0])):
            settings = (
                [(str(k), _plain(v)) for k, v in sorted(conf.items(), key=lambda i: str(i[0]))]
                if isinstance(conf, dict)
                else []
            )
            summary.flavors.append((str(name), settings))
    signature = body.get("signature")
    if isinstance(signature, dict):
        summary.inputs = _schema_rows(signature.get("inputs"))
        summary.outputs = _schema_rows(signature.get("outputs"))
        summary.params = _schema_rows(signature.get("params"))
    for key in ("run_id", "artifact_path", "utc_time_created", "model_uuid", "model_size_bytes"):
        if body.get(key) is not None:
            summary.facts.append((key, _plain(body[key])))
    return summary


def read_model_summary(repo: ArtifactRepository, folder: str) -> ModelSummary:
    """The summary of the ``MLmodel`` file in ``folder`` (blocking)."""
    path = posixpath.join(folder, "MLmodel") if folder else "MLmodel"
    with repo.open_artifact(path) as stream:
        data, complete = _read_head(stream, MLMODEL_BYTES)
    if not complete:
        return ModelSummary(error="MLmodel is too large to summarise")
    text = _decode(data, True)
    if text is None:
        return ModelSummary(error="MLmodel is not text")
    return model_summary(text)


# -- raw bytes ------------------------------------------------------------------------------------


def _inline(path: str) -> bool:
    return file_kind(path) == "image"


async def _chunks(stream: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await anyio.to_thread.run_sync(stream.read, CHUNK):
            yield chunk
    finally:
        stream.close()


async def raw_response(repo: ArtifactRepository, path: str) -> StreamingResponse:
    """The file's bytes, streamed: images inline (so ``<img>`` can show them), everything else
    an attachment; the content type follows the name only.

    Raises:
        ResourceDoesNotExist: when there is no file at ``path``.
    """
    stream = await anyio.to_thread.run_sync(repo.open_artifact, path)
    disposition = content_disposition(path)
    if _inline(path):
        disposition = "inline" + disposition[len("attachment") :]
    headers = {
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
        "Cache-Control": "no-cache",
    }
    size = _stream_size(stream)
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(_chunks(stream), headers=headers, media_type=content_type_for(path))


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    """``a/b/c`` as ``[("a", "a"), ("b", "a/b"), ("c", "a/b/c")]``: each part and its path."""
    parts = [p for p in path.split("/") if p]
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def has_model(entries: Sequence[Any], folder: str) -> bool:
    """Whether a folder listing holds an ``MLmodel`` file (the folder is then a model)."""
    target = posixpath.join(folder, "MLmodel") if folder else "MLmodel"
    return any(not e.is_dir and e.path == target for e in entries)
