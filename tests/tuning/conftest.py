"""Fixtures of the tuning tests: a tracking URI on each backend a study can live on, SQLite,
PostgreSQL and a live ``slipway server`` (REST), each empty, with the caches of stores and
fluent clients cleared afterwards so tests do not share engines or connections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import empty_postgres

from slipway.tracking import fluent
from slipway.tracking import uri as uris
from slipway.tuning.store import clear_tuning_store_cache

ALL_BACKENDS = ["sqlite", "postgresql", "rest"]


def _forget_stores() -> None:
    while fluent.active_run() is not None:
        fluent.end_run()
    with fluent._clients_lock:
        for client in fluent._clients.values():
            if client._async is not None:
                client._async.close()
        fluent._clients.clear()
    clear_tuning_store_cache()
    uris.clear_store_cache()


@pytest.fixture
def tracking_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An empty store's tracking URI: ``sqlite`` unless parametrised indirectly with
    ``postgresql`` or ``rest``."""
    backend = getattr(request, "param", "sqlite")
    for var in (
        "SLIPWAY_TRACKING_URI",
        "SLIPWAY_EXPERIMENT_ID",
        "SLIPWAY_EXPERIMENT_NAME",
        "SLIPWAY_RUN_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLIPWAY_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    app = None
    server = None
    if backend == "sqlite":
        uri = f"sqlite:///{tmp_path / 'store.db'}"
    elif backend == "postgresql":
        uri = request.getfixturevalue("postgres_database")
        empty_postgres(uri)
    else:
        from slipway.server import ServerSettings, create_app

        server = request.getfixturevalue("rest_server")
        app = create_app(
            ServerSettings(
                backend_store_uri=str(tmp_path / "server"),
                artifacts_destination=str(tmp_path / "server-artifacts"),
            )
        )
        server.front.app = app
        uri = server.url
    yield uri
    _forget_stores()
    if server is not None and app is not None:
        server.front.app = None
        app.state.context.close()
