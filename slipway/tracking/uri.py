"""Which store a tracking URI names, and where its artifacts go.

=============================  ==============================================================
tracking URI                   store and artifact root
=============================  ==============================================================
(none)                         ``./.slipway/slipway.db`` and ``./.slipway/artifacts``
``SLIPWAY_TRACKING_URI``       overrides the default
a folder path                  ``<folder>/slipway.db`` and ``<folder>/artifacts``
``sqlite:///path/x.db``        that file, artifacts in ``<its folder>/artifacts``
``postgresql://...``           that database, artifacts in ``SLIPWAY_ARTIFACT_ROOT`` or
                               ``./.slipway/artifacts``
``http(s)://host:port``        a tracking server, through
                               :class:`~slipway.tracking.store.rest.RestTrackingStore`;
                               the server decides where artifacts go, and each run's
                               ``artifact_uri`` says where (the root given here is empty)
=============================  ==============================================================

``SLIPWAY_ARTIFACT_ROOT`` overrides the artifact root for every database store. Stores are
cached per URI, so the fluent API and every client in a process share one engine (or, for a
server, one connection pool and one write spool).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from slipway.exceptions import InvalidParameterValue
from slipway.tracking.store.base import AbstractTrackingStore

TRACKING_URI_ENV = "SLIPWAY_TRACKING_URI"
ARTIFACT_ROOT_ENV = "SLIPWAY_ARTIFACT_ROOT"
DEFAULT_DIR = ".slipway"
DB_FILE = "slipway.db"

_tracking_uri: str | None = None
_stores: dict[tuple[str, str], AbstractTrackingStore] = {}
_stores_lock = threading.Lock()


def set_tracking_uri(uri: str | os.PathLike[str] | None) -> None:
    """Use ``uri`` for this process (None goes back to the environment or the default)."""
    global _tracking_uri
    _tracking_uri = os.fspath(uri) if uri is not None else None


def get_tracking_uri() -> str:
    """The tracking URI in effect: set_tracking_uri, then ``SLIPWAY_TRACKING_URI``, then the
    ``./.slipway`` folder."""
    if _tracking_uri:
        return _tracking_uri
    return os.environ.get(TRACKING_URI_ENV) or DEFAULT_DIR


def resolve(uri: str) -> tuple[str, str]:
    """``(database URI, default artifact root)`` for a tracking URI."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        from slipway.tracking.store.rest.http import split_server_url

        split_server_url(uri)  # refuses a malformed server URL here, with a clear message
        return uri.strip().rstrip("/"), ""
    if scheme.startswith("sqlite") or uri.startswith("sqlite:"):
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if path and path != ":memory:":
            db_path = Path(path.split("?", 1)[0]).absolute()
            root = str(db_path.parent / "artifacts")
        else:
            root = str(Path(DEFAULT_DIR, "artifacts").absolute())
        return uri, os.environ.get(ARTIFACT_ROOT_ENV) or root
    if scheme.split("+", 1)[0] in ("postgresql", "postgres", "mysql"):
        root = str(Path(DEFAULT_DIR, "artifacts").absolute())
        return uri, os.environ.get(ARTIFACT_ROOT_ENV) or root
    if scheme == "file":
        uri = uri[len("file://") :]
    elif scheme:
        raise InvalidParameterValue(
            f"Unsupported tracking URI {uri!r}: use a folder, sqlite:///, postgresql:// or mysql://"
        )
    folder = Path(uri).expanduser().absolute()
    return (
        f"sqlite:///{folder / DB_FILE}",
        os.environ.get(ARTIFACT_ROOT_ENV) or str(folder / "artifacts"),
    )


def absolute_uri(uri: str) -> str:
    """``uri`` as it names the same store from any working folder, process or node: a folder
    (or ``file://`` folder) and a relative SQLite path made absolute; servers and databases as
    they are."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme.startswith("sqlite") or uri.startswith("sqlite:"):
        prefix, sep, rest = uri.partition(":///")
        if not sep or not rest or rest.startswith(("/", ":memory:")):
            return uri
        return f"{prefix}:///{os.path.abspath(rest)}"
    if scheme == "file":
        return os.path.abspath(os.path.expanduser(uri[len("file://") :]))
    if scheme:
        return uri
    return os.path.abspath(os.path.expanduser(uri))


def get_store(uri: str | None = None) -> AbstractTrackingStore:
    """The (cached) store for ``uri`` or for the tracking URI in effect."""
    db_uri, artifact_root = resolve(uri or get_tracking_uri())
    key = (db_uri, artifact_root)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            if db_uri.split("://", 1)[0].lower() in ("http", "https"):
                from slipway.tracking.store.rest import RestTrackingStore

                store = _stores[key] = RestTrackingStore(db_uri)
            else:
                from slipway.tracking.store.sql import SqlTrackingStore

                store = _stores[key] = SqlTrackingStore(db_uri, artifact_root)
        return store


def clear_store_cache() -> None:
    """Close and forget every cached store (tests and long-lived processes use this)."""
    with _stores_lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
