"""The one place where user-supplied artifact paths and artifact root URIs are checked.

Every artifact path a caller hands to Slipway passes through :func:`safe_relative_path`
before it touches a file system, a bucket or a URL. Percent-encoding is decoded (repeatedly,
so double-encoded tricks are caught) only to *inspect* the path; the path that comes back is
the caller's own text, normalised, never a decoded form of it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

from slipway.exceptions import InvalidParameterValue

__all__ = [
    "join_relative",
    "join_uri",
    "resolve_within",
    "safe_relative_path",
    "validate_artifact_root",
]

# More rounds of percent-encoding than this is never legitimate.
_MAX_DECODE_ROUNDS = 8

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")

# Root URI schemes Slipway understands; "" is a plain local path.
_ROOT_SCHEMES = frozenset({"", "file", "s3", "mlflow-artifacts", "http", "https"})


def _invalid(reason: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Invalid path: {reason}")


def _fully_decoded(text: str) -> str:
    """``text`` with percent-encoding undone until decoding changes nothing more."""
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(text)
        if decoded == text:
            return text
        text = decoded
    raise _invalid("too many levels of percent-encoding")


def _forbidden_character(text: str) -> str | None:
    """Why ``text`` (already decoded) cannot appear in an artifact path or root, if it cannot."""
    if "\x00" in text:
        return "NUL bytes are not allowed"
    if "\\" in text:
        return "backslashes are not allowed"
    if "?" in text or "#" in text:
        return "'?' and '#' are not allowed"
    if any(unicodedata.category(char) == "Cc" for char in text):
        return "control characters are not allowed"
    return None


def safe_relative_path(path: str | None) -> str:
    """Check an artifact path and return it as a normalised posix path relative to a root.

    Empty and ``.`` segments are dropped (``"./a//b/"`` gives ``"a/b"``), so ``None``, ``""``
    and ``"."`` all give ``""``, the root itself.

    Raises:
        InvalidParameterValue: ("Invalid path: <reason>") when the path, or any percent-decoded
            form of it, holds a ``..`` segment, a backslash, a NUL byte, a control character,
            ``?`` or ``#``, or is absolute (leading ``/`` or a Windows drive letter).
    """
    if path is None:
        return ""
    if not isinstance(path, str):
        raise _invalid(f"expected a string, got {type(path).__name__}")
    decoded = _fully_decoded(path)
    reason = _forbidden_character(decoded)
    if reason is not None:
        raise _invalid(reason)
    if decoded.startswith("/") or _DRIVE_LETTER.match(decoded):
        raise _invalid("absolute paths are not allowed")
    if ".." in decoded.split("/"):
        raise _invalid("'..' is not allowed")
    return "/".join(segment for segment in path.split("/") if segment not in ("", "."))


def join_relative(*parts: str | None) -> str:
    """Artifact paths joined with ``/``, each checked with :func:`safe_relative_path`.

    Empty parts are skipped: ``join_relative("", "a/b", None, "c.txt")`` gives ``"a/b/c.txt"``.
    """
    return "/".join(clean for clean in map(safe_relative_path, parts) if clean)


def resolve_within(root: Path, rel: str) -> Path:
    """``root / rel`` with every symlink followed, refused unless it stays inside ``root``.

    ``rel`` is checked with :func:`safe_relative_path` first. Neither path needs to exist;
    symlinks that do exist (including dangling ones) are followed before the containment
    check, so a link inside the root that points outside it is refused.

    Raises:
        InvalidParameterValue: when ``rel`` is unsafe or the result lies outside ``root``.
    """
    real_root = Path(root).resolve()
    clean = safe_relative_path(rel)
    target = (real_root / clean).resolve() if clean else real_root
    try:
        target.relative_to(real_root)
    except ValueError:
        raise _invalid(f"{rel!r} resolves outside the artifact root") from None
    return target


def _invalid_root(uri: str, reason: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Invalid artifact root {uri!r}: {reason}")


def _root_scheme(uri: str) -> str:
    scheme = urlsplit(uri).scheme.lower()
    if len(scheme) == 1 and os.name == "nt":
        return ""  # a Windows drive letter, "C:/..."
    return scheme


def validate_artifact_root(uri: str) -> str:
    """Check an artifact root URI (an experiment's artifact location) and return it unchanged.

    Accepted: plain local paths, ``file://`` with an empty or ``localhost`` host,
    ``s3://bucket[/prefix]``, ``mlflow-artifacts:/...`` and ``http(s)://host/...``.

    Raises:
        InvalidParameterValue: for other schemes, and for URIs that hold (after full
            percent-decoding) ``?``, ``#``, a NUL byte, a backslash, a control character or a
            ``..`` segment.
    """
    if not isinstance(uri, str) or not uri:
        raise _invalid_root(str(uri), "must be a non-empty string")
    try:
        decoded = _fully_decoded(uri)
    except InvalidParameterValue:
        raise _invalid_root(uri, "too many levels of percent-encoding") from None
    reason = _forbidden_character(decoded)
    if reason is not None:
        raise _invalid_root(uri, reason)
    if ".." in decoded.split("/"):
        raise _invalid_root(uri, "'..' is not allowed")
    scheme = _root_scheme(uri)
    if scheme not in _ROOT_SCHEMES:
        raise _invalid_root(uri, f"unsupported scheme {scheme!r}")
    host = urlsplit(uri).netloc
    if scheme == "file" and host not in ("", "localhost"):
        raise _invalid_root(uri, f"file URIs cannot name a remote host ({host!r})")
    if scheme in ("s3", "http", "https") and not host:
        raise _invalid_root(uri, f"{scheme} URIs need a {'bucket' if scheme == 's3' else 'host'}")
    return uri


def join_uri(root: str, *parts: str) -> str:
    """Append artifact path ``parts`` to a root URI or local path, with ``/`` between them.

    Each part is checked with :func:`safe_relative_path`; empty parts are skipped, and the root
    is returned unchanged when nothing is left to add. ``join_uri("s3://b/x", "run1", "a.txt")``
    gives ``"s3://b/x/run1/a.txt"``.
    """
    validate_artifact_root(root)
    rel = join_relative(*parts)
    if not rel:
        return root
    return f"{root}{rel}" if root.endswith("/") else f"{root}/{rel}"
