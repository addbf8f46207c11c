"""Fixtures for the artifact tests: a real S3 HTTP API (moto in server mode) on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server listening on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The moto endpoint, with the environment pointing boto3 (and only it) there."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "MLFLOW_S3_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("SLIPWAY_S3_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    """A plain boto3 client on the moto server, to look behind the repository's back."""
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A new, empty bucket."""
    name = f"slipway-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name
