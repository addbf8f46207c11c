"""Tracking URI resolution: which database and which artifact root each kind of URI names."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import slipway
from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable
from slipway.tracking import uri as uris
from slipway.tracking.store.sql import SqlTrackingStore


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No tracking URI set in the process or the environment; cwd is a fresh folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(uris.TRACKING_URI_ENV, raising=False)
    monkeypatch.delenv(uris.ARTIFACT_ROOT_ENV, raising=False)
    monkeypatch.setattr(uris, "_tracking_uri", None)
    yield tmp_path
    uris.clear_store_cache()


# -- which URI is in effect ------------------------------------------------------------------


def test_default_tracking_uri_is_the_dot_slipway_folder() -> None:
    assert uris.get_tracking_uri() == ".slipway"
    assert slipway.get_tracking_uri() == ".slipway"


def test_environment_variable_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_TRACKING_URI", "sqlite:///from-env.db")
    assert uris.get_tracking_uri() == "sqlite:///from-env.db"


def test_set_tracking_uri_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_TRACKING_URI", "sqlite:///from-env.db")
    uris.set_tracking_uri("sqlite:///explicit.db")
    assert uris.get_tracking_uri() == "sqlite:///explicit.db"
    uris.set_tracking_uri(None)
    assert uris.get_tracking_uri() == "sqlite:///from-env.db"


def test_set_tracking_uri_accepts_a_path_object(tmp_path: Path) -> None:
    uris.set_tracking_uri(tmp_path / "runs")
    assert uris.get_tracking_uri() == str(tmp_path / "runs")


# -- the resolution table --------------------------------------------------------------------


def test_relative_folder_resolves_to_a_sqlite_file_and_artifacts_inside(tmp_path: Path) -> None:
    db, root = uris.resolve("mlruns")
    assert db == f"sqlite:///{tmp_path / 'mlruns' / 'slipway.db'}"
    assert root == str(tmp_path / "mlruns" / "artifacts")


def test_default_folder_resolves_under_cwd(tmp_path: Path) -> None:
    db, root = uris.resolve(uris.get_tracking_uri())
    assert db == f"sqlite:///{tmp_path / '.slipway' / 'slipway.db'}"
    assert root == str(tmp_path / ".slipway" / "artifacts")


def test_absolute_folder(tmp_path: Path) -> None:
    folder = tmp_path / "abs" / "store"
    assert uris.resolve(str(folder)) == (
        f"sqlite:///{folder / 'slipway.db'}",
        str(folder / "artifacts"),
    )


def test_home_folder_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    db, root = uris.resolve("~/tracking")
    assert db == f"sqlite:///{tmp_path / 'home' / 'tracking' / 'slipway.db'}"
    assert root == str(tmp_path / "home" / "tracking" / "artifacts")


def test_file_uri_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "viafile"
    assert uris.resolve(f"file://{folder}") == (
        f"sqlite:///{folder / 'slipway.db'}",
        str(folder / "artifacts"),
    )


def test_sqlite_uri_keeps_the_file_and_puts_artifacts_next_to_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'dbs' / 'x.db'}"
    assert uris.resolve(uri) == (uri, str(tmp_path / "dbs" / "artifacts"))


def test_relative_sqlite_uri_artifacts_are_absolute(tmp_path: Path) -> None:
    db, root = uris.resolve("sqlite:///rel/x.db")
    assert db == "sqlite:///rel/x.db"
    assert root == str(tmp_path / "rel" / "artifacts")


def test_sqlite_uri_query_string_is_not_part_of_the_path(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'q.db'}?timeout=5"
    assert uris.resolve(uri) == (uri, str(tmp_path / "artifacts"))


def test_in_memory_sqlite_uses_the_default_artifact_root(tmp_path: Path) -> None:
    assert uris.resolve("sqlite:///:memory:") == (
        "sqlite:///:memory:",
        str(tmp_path / ".slipway" / "artifacts"),
    )


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://user:pw@db.example.com:5432/mlflow",
        "postgres://user@localhost/mlflow",
        "postgresql+psycopg://user@localhost/mlflow",
        "mysql://user@localhost/mlflow",
        "mysql+pymysql://user@localhost/mlflow",
    ],
)
def test_server_databases_keep_the_uri_and_use_the_default_artifact_root(
    uri: str, tmp_path: Path
) -> None:
    assert uris.resolve(uri) == (uri, str(tmp_path / ".slipway" / "artifacts"))


@pytest.mark.parametrize(
    "uri",
    ["mlruns", "sqlite:///x.db", "sqlite:///:memory:", "postgresql://u@h/db", "mysql://u@h/db"],
)
def test_artifact_root_env_overrides_every_store(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_ARTIFACT_ROOT", "s3://bucket/artifacts")
    db, root = uris.resolve(uri)
    assert root == "s3://bucket/artifacts"
    assert db.startswith("sqlite:///") or db == uri


@pytest.mark.parametrize(
    "uri", ["http://localhost:5000", "https://tracking.example.com", "HTTP://LOCALHOST:5000"]
)
def test_http_uris_name_a_tracking_server(uri: str) -> None:
    # The server owns the artifact root: runs carry their own artifact URIs.
    assert uris.resolve(uri) == (uri, "")


@pytest.mark.parametrize("uri", ["ftp://host/path", "s3://bucket/tracking", "redis://localhost"])
def test_unknown_schemes_are_refused(uri: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        uris.resolve(uri)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.http_status == 400
    assert "Unsupported tracking URI" in info.value.message
    assert uri in info.value.message


def test_an_unreachable_server_is_reported_when_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SLIPWAY_HTTP_MAX_RETRIES", "0")
    monkeypatch.setenv("SLIPWAY_SPOOL_DIR", str(tmp_path / "spool"))
    slipway.set_tracking_uri(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TemporarilyUnavailable) as info:
            slipway.search_runs(["0"])
        assert info.value.error_code == "TEMPORARILY_UNAVAILABLE"
        assert "unreachable" in info.value.message
    finally:
        slipway.set_tracking_uri(None)
        uris.clear_store_cache()


# -- the store cache -------------------------------------------------------------------------


def test_get_store_creates_the_database_and_caches_it(tmp_path: Path) -> None:
    folder = tmp_path / "cached"
    store = uris.get_store(str(folder))
    assert isinstance(store, SqlTrackingStore)
    assert (folder / "slipway.db").is_file()
    assert store.default_artifact_root.endswith("artifacts")
    assert uris.get_store(str(folder)) is store
    # A different spelling of the same database shares the store.
    assert uris.get_store(f"sqlite:///{folder / 'slipway.db'}") is store
    assert uris.get_store(f"file://{folder}") is store


def test_get_store_without_argument_uses_the_uri_in_effect(tmp_path: Path) -> None:
    uris.set_tracking_uri(str(tmp_path / "current"))
    assert uris.get_store() is uris.get_store(str(tmp_path / "current"))
    assert (tmp_path / "current" / "slipway.db").is_file()


def test_artifact_root_env_gives_a_separate_cached_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = uris.get_store(str(tmp_path / "s"))
    monkeypatch.setenv("SLIPWAY_ARTIFACT_ROOT", str(tmp_path / "elsewhere"))
    other = uris.get_store(str(tmp_path / "s"))
    assert other is not plain
    assert other.default_artifact_root == str(tmp_path / "elsewhere")


def test_clear_store_cache_forgets_stores(tmp_path: Path) -> None:
    first = uris.get_store(str(tmp_path / "c"))
    uris.clear_store_cache()
    second = uris.get_store(str(tmp_path / "c"))
    assert second is not first
    # The data survives: it is in the file, not in the cache.
    assert second.get_experiment("0").name == "Default"


def test_bad_uri_fails_in_get_store_too() -> None:
    with pytest.raises(InvalidParameterValue, match="Unsupported tracking URI"):
        uris.get_store("gopher://old.example.com")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("runs", "{cwd}/runs"),
        ("~/runs", "{home}/runs"),
        ("file://runs", "{cwd}/runs"),
        ("sqlite:///db/x.db", "sqlite:///{cwd}/db/x.db"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_absolute_uri_names_the_same_store_from_anywhere(
    given: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    want = expected.format(cwd=os.getcwd(), home=tmp_path / "home")
    assert uris.absolute_uri(given) == want
