"""Validation of a model version's ``source``: where its files are, and who may point there.

A registry server hands a version's files to anyone who can read the version, so a source is
a capability: a version must never name files outside what its run (or logged model) owns.
MLflow's history of CVEs here (CVE-2023-1177, -2780, -6977, CVE-2024-1483, -1558,
CVE-2026-2614) comes from sources such as ``/etc``, ``file:///etc/``, ``//proc/self/root``,
``..`` hidden behind one or two rounds of percent-encoding, and a prompt tag that switched the
check off. The rules, applied to every source whatever the version's tags:

* the text, fully percent-decoded, holds no NUL byte, control character, backslash or ``..``
  path segment;
* a local path or ``file://`` URI needs the ``run_id`` (or ``model_id``) of a run (or logged
  model) whose artifact directory is local, and must resolve inside it, symlinks followed,
  both as written and fully decoded; ``file://<remote-host>/...`` and ``//host/...`` network
  paths are refused;
* ``runs:/<run_id>/<path>`` needs a well-formed run id and a safe relative path, and when a
  ``run_id`` is given too it must be the same run;
* ``models:/<name>/<version|stage|latest>``, ``models:/<name>@<alias>`` and
  ``models:/<model_id>`` must be well formed (the store checks that they name something);
* remote URIs (http(s), s3, gs, ftp, azure, hdfs, ...) must have a host and no ``?`` or ``#``;
* artifacts that this server serves itself (``mlflow-artifacts:`` URIs, and http(s) URLs of
  the ``/api/2.0/mlflow-artifacts/artifacts`` route) are like local files: they must lie under
  the artifact URI of the given run or logged model;
* any other scheme (``dbfs:``, ``jar:``, ...) is refused.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from slipway.artifacts.paths import safe_relative_path
from slipway.exceptions import InvalidParameterValue, SlipwayError
from slipway.registry.validation import validate_alias, validate_model_name
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.logged_models import AbstractLoggedModelStore

MAX_SOURCE_LENGTH = 2000

REMOTE_SCHEMES = frozenset(
    {
        "http",
        "https",
        "s3",
        "s3a",
        "s3n",
        "gs",
        "ftp",
        "sftp",
        "wasb",
        "wasbs",
        "abfs",
        "abfss",
        "hdfs",
        "viewfs",
        "oss",
        "mlflow-artifacts",
    }
)
_NEEDS_HOST = REMOTE_SCHEMES - {"mlflow-artifacts", "hdfs", "viewfs"}
_PROXY_ROUTE = ("api", "2.0", "mlflow-artifacts", "artifacts")
_RUN_ID_RE = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_MODEL_ID_RE = re.compile(r"^m-[A-Za-z0-9]{1,64}$")
_VERSION_PART_RE = re.compile(r"^(\d+|latest|none|staging|production|archived)$", re.IGNORECASE)
_MAX_DECODE_ROUNDS = 8

_LOCAL_MESSAGE = (
    "To use a local path as a model version source, the run_id request parameter has to be "
    "specified and the local path has to be contained within the artifact directory of the "
    "run specified by the run_id."
)
_RELATIVE_MESSAGE = (
    "If supplying a source as an http, https, local file path, ftp, objectstore, or "
    "mlflow-artifacts uri, an absolute path must be provided without relative path "
    "references present. Please provide an absolute path."
)


class SourceKind(enum.StrEnum):
    """What a valid source points at."""

    LOCAL = "local"
    RUNS = "runs"
    MODELS = "models"
    REMOTE = "remote"
    PROXIED = "proxied"


def _refuse(source: str, reason: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Invalid model version source: '{source}'. {reason}")


def fully_decoded(text: str) -> str:
    """``text`` with percent-encoding undone until nothing changes (``+`` stays ``+``)."""
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(text)
        if decoded == text:
            return text
        text = decoded
    raise InvalidParameterValue("Invalid model version source: too many levels of encoding")


def validate_source(
    source: object,
    run_id: str | None,
    model_id: str | None,
    tracking: AbstractTrackingStore,
) -> SourceKind:
    """Check ``source`` against the rules in the module docstring and say what it is.

    ``tracking`` looks up the artifact location of ``run_id`` / ``model_id`` for sources that
    must lie inside one. Raises :class:`InvalidParameterValue` naming the source and the rule.
    """
    if not isinstance(source, str) or not source.strip():
        raise InvalidParameterValue("Missing value for required parameter 'source'.")
    if len(source) > MAX_SOURCE_LENGTH:
        raise InvalidParameterValue(
            f"'source' exceeds the maximum length of {MAX_SOURCE_LENGTH} characters"
        )
    decoded = fully_decoded(source)
    if "\x00" in decoded or any(unicodedata.category(c) == "Cc" for c in decoded):
        raise _refuse(source, "NUL bytes and control characters are not allowed.")
    if "\\" in decoded:
        raise _refuse(source, "Backslashes are not allowed.")
    if ".." in decoded.split("/"):
        raise _refuse(source, _RELATIVE_MESSAGE)
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive
        _check_local(source, parts, scheme, run_id, model_id, tracking)
        return SourceKind.LOCAL
    if parts.query or parts.fragment or "?" in decoded or "#" in decoded:
        raise _refuse(source, "'?' and '#' are not allowed.")
    if scheme == "runs":
        _check_runs(source, parts, run_id)
        return SourceKind.RUNS
    if scheme == "models":
        _check_models(source, parts)
        return SourceKind.MODELS
    if scheme not in REMOTE_SCHEMES:
        raise _refuse(
            source,
            f"The scheme '{scheme}' is not supported; use a local path, runs:/, models:/ or "
            f"one of {', '.join(sorted(REMOTE_SCHEMES))}.",
        )
    if scheme in _NEEDS_HOST and not parts.netloc:
        raise _refuse(source, f"A {scheme} URI needs a host (or bucket).")
    if not is_proxied(source):
        return SourceKind.REMOTE
    roots = _artifact_roots(source, run_id, model_id, tracking)
    if not any(_uri_within(source, root) for root in roots):
        raise _refuse(
            source,
            "The run_id request parameter must identify the resource that contains the source.",
        )
    return SourceKind.PROXIED


def _check_local(
    source: str,
    parts: SplitResult,
    scheme: str,
    run_id: str | None,
    model_id: str | None,
    tracking: AbstractTrackingStore,
) -> None:
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _refuse(source, f"file URIs cannot name a remote host ('{parts.netloc}').")
        if parts.query or parts.fragment:
            raise _refuse(source, "'?' and '#' are not allowed.")
        path = unquote(parts.path)
    else:
        if source.startswith("//"):
            raise _refuse(source, "Network paths ('//host/...') are not allowed.")
        path = source
    roots = [r for r in _artifact_roots(source, run_id, model_id, tracking) if _is_local(r)]
    if not roots:
        raise _refuse(source, _LOCAL_MESSAGE)
    candidates = {path, fully_decoded(path)}
    for root in roots:
        root_path = Path(_local_path(root)).resolve()
        if all(_inside(Path(p).resolve(), root_path) for p in candidates):
            return
    raise _refuse(source, _LOCAL_MESSAGE)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _is_local(uri: str) -> bool:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return parts.netloc in ("", "localhost")
    return (scheme == "" and not uri.startswith("//")) or len(scheme) == 1


def _local_path(uri: str) -> str:
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme.lower() == "file" else uri


def _check_runs(source: str, parts: SplitResult, run_id: str | None) -> None:
    if parts.netloc or not parts.path.startswith("/"):
        raise _refuse(source, "Use runs:/<run_id>/<artifact path>.")
    source_run, _, rel = parts.path[1:].partition("/")
    if not _RUN_ID_RE.match(source_run):
        raise _refuse(source, f"'{source_run}' is not a valid run id.")
    try:
        safe_relative_path(rel)
    except InvalidParameterValue as exc:
        raise _refuse(source, exc.message) from None
    if run_id and run_id != source_run:
        raise _refuse(
            source,
            "The run_id request parameter must identify the resource that contains the source.",
        )


def _check_models(source: str, parts: SplitResult) -> None:
    body = parts.path[1:] if parts.path.startswith("/") else ""
    if parts.netloc or not body:
        raise _refuse(
            source,
            "Use models:/<name>/<version>, models:/<name>@<alias> or models:/<model_id>.",
        )
    if _MODEL_ID_RE.match(body):
        return
    try:
        if "@" in body:
            name, _, alias = body.partition("@")
            validate_model_name(name)
            validate_alias(alias)
            return
        name, _, version = body.partition("/")
        validate_model_name(name)
    except InvalidParameterValue as exc:
        raise _refuse(source, exc.message) from None
    if not _VERSION_PART_RE.match(version):
        raise _refuse(
            source,
            "Use models:/<name>/<version>, models:/<name>@<alias> or models:/<model_id>.",
        )


def is_proxied(source: str) -> bool:
    """Whether ``source`` names artifacts that the tracking server serves from its own store."""
    scheme, _, path_parts = _uri_parts(source)
    if scheme == "mlflow-artifacts":
        return True
    n = len(_PROXY_ROUTE)
    return scheme in ("http", "https") and any(
        path_parts[i : i + n] == _PROXY_ROUTE for i in range(len(path_parts) - n + 1)
    )


def _uri_parts(uri: str) -> tuple[str, str, tuple[str, ...]]:
    parts = urlsplit(uri)
    segments = tuple(fully_decoded(p) for p in parts.path.split("/") if p)
    return parts.scheme.lower(), parts.netloc.lower(), segments


def _uri_within(source: str, root: str) -> bool:
    s_scheme, s_host, s_parts = _uri_parts(source)
    r_scheme, r_host, r_parts = _uri_parts(root)
    return (
        s_scheme == r_scheme
        and s_host == r_host
        and bool(r_parts)
        and s_parts[: len(r_parts)] == r_parts
    )


def _artifact_roots(
    source: str, run_id: str | None, model_id: str | None, tracking: AbstractTrackingStore
) -> list[str]:
    """The artifact locations of the given run and logged model (those that exist)."""
    roots = []
    if run_id:
        try:
            roots.append(tracking.get_run(run_id).info.artifact_uri)
        except SlipwayError as exc:
            raise _refuse(source, f"The run_id '{run_id}' names no run ({exc.message}).") from None
    if model_id:
        if not isinstance(tracking, AbstractLoggedModelStore):
            raise _refuse(source, "This tracking store has no logged models to check against.")
        try:
            roots.append(tracking.get_logged_model(model_id).artifact_location)
        except SlipwayError as exc:
            raise _refuse(
                source, f"The model_id '{model_id}' names no logged model ({exc.message})."
            ) from None
    return roots


__all__ = [
    "MAX_SOURCE_LENGTH",
    "REMOTE_SCHEMES",
    "SourceKind",
    "fully_decoded",
    "is_proxied",
    "validate_source",
]
