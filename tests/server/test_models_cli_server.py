"""The registry's approval and lineage flows through the CLI against ``slipway server``: the
same flows as tests/cli/test_models_cli.py, with ``--tracking-uri http://...``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cli.test_models_cli import approval_flow, lineage_flow  # tests/ is on sys.path

from slipway.registry.store import clear_registry_store_cache
from slipway.tracking import uri as uris

from .conftest import LiveServer


@pytest.fixture
def url(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ("SLIPWAY_TRACKING_URI", "SLIPWAY_USER"):
        monkeypatch.delenv(var, raising=False)
    yield live_server.url
    clear_registry_store_cache()
    uris.clear_store_cache()


def test_approval_flow_through_the_server(url: str) -> None:
    approval_flow(url, model=f"iris-{uuid.uuid4().hex[:8]}")


def test_lineage_flow_through_the_server(url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    lineage_flow(url, model=f"churn-{suffix}", digest=f"d-{suffix}")
