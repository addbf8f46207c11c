"""What only the S3 store does, against moto's S3 HTTP API on loopback."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from slipway.artifacts import FileInfo, S3ArtifactRepository, get_artifact_repository
from slipway.artifacts import s3 as s3_module
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist

from .helpers import make_tree, read_tree

PREFIX = "exp/7/run/artifacts"


@pytest.fixture
def repo(s3_bucket: str) -> S3ArtifactRepository:
    return S3ArtifactRepository(f"s3://{s3_bucket}/{PREFIX}")


def keys(client: Any, bucket: str) -> list[str]:
    answer = client.list_objects_v2(Bucket=bucket)
    return sorted(entry["Key"] for entry in answer.get("Contents", []))


def test_objects_live_under_the_prefix(
    repo: S3ArtifactRepository, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    repo.log_artifacts(make_tree(tmp_path / "src", {"a.txt": b"a", "d/b.txt": b"b"}), "m")
    assert keys(s3_client, s3_bucket) == [f"{PREFIX}/m/a.txt", f"{PREFIX}/m/d/b.txt"]


def test_bucket_root_without_prefix(s3_bucket: str, tmp_path: Path, s3_client: Any) -> None:
    repo = get_artifact_repository(f"s3://{s3_bucket}")
    repo.log_bytes(b"x", "top.txt")
    repo.log_bytes(b"y", "d/inner.txt")
    assert keys(s3_client, s3_bucket) == ["d/inner.txt", "top.txt"]
    assert repo.list_artifacts() == [FileInfo("d", True), FileInfo("top.txt", False, 1)]
    repo.delete_artifacts()
    assert keys(s3_client, s3_bucket) == []


def test_large_file_goes_up_and_down_in_parts(
    repo: S3ArtifactRepository, tmp_path: Path, s3_client: Any, s3_bucket: str
) -> None:
    big = tmp_path / "src" / "big.bin"
    big.parent.mkdir()
    data = os.urandom(20 * 1024 * 1024)
    big.write_bytes(data)

    repo.log_artifact(big, "weights")

    head = s3_client.head_object(Bucket=s3_bucket, Key=f"{PREFIX}/weights/big.bin")
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"], "a multipart upload's ETag ends in -<part count>"
    local = repo.download_artifacts("weights/big.bin", tmp_path / "dst")
    assert hashlib.sha256(local.read_bytes()).digest() == hashlib.sha256(data).digest()
    with repo.open_artifact("weights/big.bin") as stream:
        first = stream.read(1024)
    assert first == data[:1024]


def test_listing_follows_s3_continuation_tokens(
    repo: S3ArtifactRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"wide/f{index}.txt" for index in range(8)] + ["wide/d1/x", "wide/d2/y"]
    for name in names:
        repo.log_bytes(b"x", name)
    calls: list[dict[str, Any]] = []
    list_objects_v2 = repo.client.list_objects_v2

    def small_pages(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return list_objects_v2(**{**kwargs, "MaxKeys": 3})

    monkeypatch.setattr(repo.client, "list_objects_v2", small_pages)
    listing = repo.list_artifacts("wide")
    assert [info.path for info in listing] == sorted(
        [f"wide/f{index}.txt" for index in range(8)] + ["wide/d1", "wide/d2"]
    )
    assert len(calls) == 4
    assert all(call["Delimiter"] == "/" and call["Prefix"] == f"{PREFIX}/wide/" for call in calls)


def test_directory_markers_and_unsafe_names_are_skipped(
    repo: S3ArtifactRepository,
    s3_client: Any,
    s3_bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    repo.log_bytes(b"ok", "d/ok.txt")
    for key in ("d/", "d/sub/", "d//double", "d/a?b", "d/back\\slash", "d/%2e%2e"):
        s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{key}", Body=b"odd")

    assert repo.list_artifacts("d") == [FileInfo("d/ok.txt", False, 2), FileInfo("d/sub", True)]
    with caplog.at_level(logging.WARNING, logger="slipway.artifacts.s3"):
        local = repo.download_artifacts("d", tmp_path / "dst")
    assert read_tree(local) == {"ok.txt": b"ok"}
    assert "unsafe name" in caplog.text
    assert read_tree(tmp_path) == {"dst/d/ok.txt": b"ok"}

    repo.delete_artifacts("d")
    assert keys(s3_client, s3_bucket) == []


def test_delete_goes_in_batches(
    repo: S3ArtifactRepository,
    s3_client: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(s3_module, "_DELETE_BATCH", 3)
    s3_client.put_object(Bucket=s3_bucket, Key="elsewhere.txt", Body=b"kept")
    s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}x/kept.txt", Body=b"kept")
    for index in range(7):
        repo.log_bytes(b"x", f"many/{index}.txt")
    sent: list[int] = []
    delete_objects = repo.client.delete_objects

    def spy(**kwargs: Any) -> Any:
        sent.append(len(kwargs["Delete"]["Objects"]))
        return delete_objects(**kwargs)

    monkeypatch.setattr(repo.client, "delete_objects", spy)
    repo.delete_artifacts()
    assert sent == [3, 3, 1]
    assert keys(s3_client, s3_bucket) == ["elsewhere.txt", f"{PREFIX}x/kept.txt"]


def test_missing_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    repo = S3ArtifactRepository("s3://no-such-bucket-here/x")
    with pytest.raises(ResourceDoesNotExist, match="bucket"):
        repo.list_artifacts()
    with pytest.raises(ResourceDoesNotExist):
        repo.download_artifacts("a.txt", tmp_path / "dst")
    with pytest.raises(ResourceDoesNotExist):
        repo.open_artifact("a.txt")
    with pytest.raises(ResourceDoesNotExist, match="bucket"):
        repo.log_bytes(b"x", "a.txt")
    with pytest.raises(ResourceDoesNotExist, match="bucket"):
        repo.log_artifact(make_tree(tmp_path / "src", {"a.txt": b"a"}) / "a.txt")


def test_endpoint_variables(
    monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, s3_bucket: str
) -> None:
    monkeypatch.delenv("SLIPWAY_S3_ENDPOINT_URL")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
    S3ArtifactRepository(f"s3://{s3_bucket}").log_bytes(b"x", "via-mlflow-variable.txt")

    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SLIPWAY_S3_ENDPOINT_URL", s3_endpoint)
    repo = S3ArtifactRepository(f"s3://{s3_bucket}")
    assert repo.endpoint_url == s3_endpoint
    assert [info.path for info in repo.list_artifacts()] == ["via-mlflow-variable.txt"]

    monkeypatch.delenv("SLIPWAY_S3_ENDPOINT_URL")
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL")
    assert s3_module.s3_endpoint_url() is None


@pytest.mark.parametrize(
    "uri", ["s3://", "s3:///prefix", "s3://bucket/a/../b", "s3://bucket/a?x", "/local/path"]
)
def test_bad_roots(uri: str) -> None:
    with pytest.raises(InvalidParameterValue):
        S3ArtifactRepository(uri)


def test_no_client_until_needed() -> None:
    repo = S3ArtifactRepository("s3://bucket/prefix")
    assert repo._client is None
    assert (repo.bucket, repo.prefix) == ("bucket", "prefix")
