"""Fixtures for the artifact tests: a real S3 HTTP API (moto in server mode) on loopback."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_SCRATCH = Path(tempfile.gettempdir()).resolve()


def _inside_scratch(path: object) -> bool:
    try:
        Path(os.fspath(path)).resolve().relative_to(_SCRATCH)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


@pytest.fixture(autouse=True)
def destructive_calls_stay_in_scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A safety interlock, not a mock: these tests feed attack paths such as ``/`` and
    ``/etc/passwd`` to delete and write operations. Should a regression ever let one through,
    the deletion or replacement is refused here (the test fails) instead of touching the
    machine. Every legitimate call in these tests works under the temporary directory."""
    real_rmtree, real_unlink, real_replace = shutil.rmtree, Path.unlink, os.replace

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        assert _inside_scratch(path), f"refusing to delete {path} outside the scratch area"
        real_rmtree(path, *args, **kwargs)

    def unlink(self: Path, missing_ok: bool = False) -> None:
        assert _inside_scratch(self), f"refusing to delete {self} outside the scratch area"
        real_unlink(self, missing_ok=missing_ok)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        assert _inside_scratch(dst), f"refusing to replace {dst} outside the scratch area"
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(os, "replace", replace)


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
