"""Artifact objects, references and digests: the local fast path on real files, and the
remote path on a real S3 HTTP API (moto in server mode on loopback)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.pipelines import Artifact, Dataset, Input, Metrics, Model, Output, component
from slipway.pipelines.artifacts import (
    EMPTY_FOLDER_DIGEST,
    OutputNotWritten,
    artifact_digest,
    build_inputs,
    build_outputs,
    finish_output,
    import_artifact,
    input_artifact,
    local_path,
    output_slot,
    read_log_capped,
)

# -- digests --------------------------------------------------------------------------------


def test_file_digest_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "a.bin").write_bytes(data)
    (tmp_path / "b.bin").write_bytes(data)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert artifact_digest(tmp_path / "a.bin") == expected
    assert artifact_digest(str(tmp_path / "b.bin")) == expected  # the name does not count
    changed = bytearray(data)
    changed[150_000] ^= 1
    (tmp_path / "b.bin").write_bytes(bytes(changed))
    assert artifact_digest(tmp_path / "b.bin") != expected


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return root


FILES = {"b.txt": b"bee", "a/x.bin": b"\x00\x01", "a/z/deep.txt": b"deep", "c": b""}


def test_folder_digest_does_not_depend_on_the_order_files_were_written(tmp_path: Path) -> None:
    first = _tree(tmp_path / "one", FILES)
    second = _tree(tmp_path / "two", dict(reversed(list(FILES.items()))))
    (second / "empty-folder").mkdir()  # empty folders do not count (object stores drop them)
    assert artifact_digest(first) == artifact_digest(second)
    assert artifact_digest(first).startswith("sha256:")


@pytest.mark.parametrize(
    "change",
    [
        {"b.txt": b"bef"},  # one byte of one file
        {"a/x.bin": b"\x00\x01\x02"},
        {"new.txt": b""},  # one more (empty) file
    ],
)
def test_folder_digest_changes_with_content(tmp_path: Path, change: dict[str, bytes]) -> None:
    base = artifact_digest(_tree(tmp_path / "base", FILES))
    assert artifact_digest(_tree(tmp_path / "changed", {**FILES, **change})) != base


def test_folder_digest_changes_when_a_file_moves(tmp_path: Path) -> None:
    base = artifact_digest(_tree(tmp_path / "base", FILES))
    moved = {("a/y.bin" if k == "a/x.bin" else k): v for k, v in FILES.items()}
    assert artifact_digest(_tree(tmp_path / "moved", moved)) != base


def test_empty_folder_digest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty-file").write_bytes(b"")
    assert artifact_digest(tmp_path / "empty") == EMPTY_FOLDER_DIGEST
    assert artifact_digest(tmp_path / "empty-file") != EMPTY_FOLDER_DIGEST
    with pytest.raises(ResourceDoesNotExist):
        artifact_digest(tmp_path / "missing")


# -- where artifacts live -------------------------------------------------------------------


def test_local_path(tmp_path: Path) -> None:
    assert local_path(str(tmp_path / "x")) == str(tmp_path / "x")
    assert local_path(f"file://{tmp_path}/a%20b") == f"{tmp_path}/a b"
    assert local_path(f"file://localhost{tmp_path}/x") == f"{tmp_path}/x"
    assert local_path("s3://bucket/key") is None
    assert local_path("mlflow-artifacts:/1/abc/artifacts/x") is None
    assert local_path("file://otherhost/x") is None


# -- inputs ---------------------------------------------------------------------------------


def _ref(path: Path, kind: str = "Dataset", **extra: Any) -> dict[str, Any]:
    return {"uri": str(path), "digest": artifact_digest(path), "type": kind, **extra}


def test_local_input_is_the_stored_file_itself(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    art = input_artifact("data", _ref(data, metadata={"rows": 1}), Dataset)
    assert isinstance(art, Dataset)
    assert art.path == str(data)
    assert art.uri == str(data)
    assert art.name == "data"
    assert art.metadata == {"rows": 1}
    file_uri = input_artifact("data", {"uri": f"file://{data}"}, Dataset)
    assert os.path.samefile(file_uri.path, data)


def test_input_artifact_takes_the_references_type_for_plain_artifact(tmp_path: Path) -> None:
    (tmp_path / "m").write_bytes(b"m")
    assert type(input_artifact("x", _ref(tmp_path / "m", "Model"), Artifact)) is Model
    assert type(input_artifact("x", _ref(tmp_path / "m", "Model"), Dataset)) is Dataset


def test_input_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(ResourceDoesNotExist, match="input artifact 'data': nothing is stored"):
        input_artifact("data", {"uri": str(tmp_path / "gone")}, Dataset)
    with pytest.raises(InvalidParameterValue, match="expected a reference with a 'uri'"):
        input_artifact("data", {"digest": "sha256:00"}, Dataset)
    with pytest.raises(
        InvalidParameterValue, match=r"input artifact .data. at ftp://host/x: .*unsupported scheme"
    ):
        input_artifact("data", {"uri": "ftp://host/x", "digest": "sha256:00"}, Dataset)


@component
def _consumer(
    data: Input[Dataset], models: Input[list[Model]], out: Output[Model], opt: Input[Model] = None
) -> None:
    pass


def test_build_inputs_gives_lists_for_collected_inputs(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"m{i}")
        paths[-1].write_text(str(i))
    (tmp_path / "d").write_text("d")
    built = build_inputs(
        _consumer.spec,
        {"data": _ref(tmp_path / "d"), "models": [_ref(p, "Model") for p in paths]},
    )
    assert set(built) == {"data", "models"}  # the optional input stays out: its default holds
    models = built["models"]
    assert isinstance(models, list)
    assert [m.path for m in models] == [str(p) for p in paths]
    assert all(isinstance(m, Model) for m in models)
    with pytest.raises(InvalidParameterValue, match="is a list"):
        build_inputs(_consumer.spec, {"models": _ref(paths[0])})
    with pytest.raises(InvalidParameterValue, match="takes one artifact"):
        build_inputs(_consumer.spec, {"data": [_ref(paths[0])]})


# -- outputs --------------------------------------------------------------------------------


def test_local_output_is_written_in_place(tmp_path: Path) -> None:
    uri = str(tmp_path / "run" / "outputs" / "model")
    slot = output_slot("model", uri, Model, tmp_path / "staging")
    assert slot.artifact.path == uri
    assert not slot.remote
    assert (tmp_path / "run" / "outputs").is_dir()  # the parent folder is made
    Path(slot.artifact.path).write_bytes(b"weights")
    slot.artifact.metadata["framework"] = "numpy"
    ref = finish_output(slot)
    assert ref == {
        "uri": uri,
        "digest": "sha256:" + hashlib.sha256(b"weights").hexdigest(),
        "type": "Model",
        "metadata": {"framework": "numpy"},
    }
    assert not (tmp_path / "staging").exists()


def test_output_may_be_a_folder(tmp_path: Path) -> None:
    slot = output_slot("model", str(tmp_path / "out" / "model"), Model, tmp_path / "staging")
    _tree(Path(slot.artifact.path), FILES)
    assert finish_output(slot)["digest"] == artifact_digest(_tree(tmp_path / "same", FILES))


def test_unwritten_output_is_an_error(tmp_path: Path) -> None:
    slot = output_slot("model", str(tmp_path / "model"), Model, tmp_path / "staging")
    with pytest.raises(OutputNotWritten, match="output artifact 'model' was not written"):
        finish_output(slot)


def test_unwritten_metrics_are_written_from_their_metadata(tmp_path: Path) -> None:
    slot = output_slot("scores", str(tmp_path / "scores"), Metrics, tmp_path / "staging")
    assert isinstance(slot.artifact, Metrics)
    slot.artifact.log_metric("accuracy", 0.9)  # no active run here: metadata only
    slot.artifact.metadata["f1"] = 0.8
    ref = finish_output(slot)
    assert json.loads((tmp_path / "scores").read_text()) == {"accuracy": 0.9, "f1": 0.8}
    assert ref["metadata"] == {"accuracy": 0.9, "f1": 0.8}
    assert ref["type"] == "Metrics"
    empty = output_slot("none", str(tmp_path / "none"), Metrics, tmp_path / "staging")
    with pytest.raises(OutputNotWritten):
        finish_output(empty)


def test_output_metadata_must_be_json(tmp_path: Path) -> None:
    slot = output_slot("model", str(tmp_path / "model"), Model, tmp_path / "staging")
    Path(slot.artifact.path).write_text("x")
    slot.artifact.metadata["bad"] = object()
    with pytest.raises(InvalidParameterValue, match="metadata is not JSON-serialisable"):
        finish_output(slot)


def test_component_cannot_redirect_an_output_by_changing_path(tmp_path: Path) -> None:
    slot = output_slot("model", str(tmp_path / "model"), Model, tmp_path / "staging")
    slot.artifact.path = str(tmp_path / "elsewhere")
    Path(slot.artifact.path).write_text("x")
    with pytest.raises(OutputNotWritten):
        finish_output(slot)


def test_build_outputs_needs_every_destination(tmp_path: Path) -> None:
    slots = build_outputs(_consumer.spec, {"out": str(tmp_path / "o")}, tmp_path)
    assert list(slots) == ["out"]
    assert isinstance(slots["out"].artifact, Model)
    with pytest.raises(InvalidParameterValue, match="'out' has no destination"):
        build_outputs(_consumer.spec, {}, tmp_path)


def test_import_a_local_artifact(tmp_path: Path) -> None:
    data = _tree(tmp_path / "raw", FILES)
    ref = import_artifact(str(data), "Dataset", metadata={"source": "lake"})
    assert ref == {
        "uri": str(data),
        "digest": artifact_digest(data),
        "type": "Dataset",
        "metadata": {"source": "lake"},
    }
    with pytest.raises(ResourceDoesNotExist, match="nothing is stored at"):
        import_artifact(str(tmp_path / "missing"), "Dataset")
    with pytest.raises(InvalidParameterValue, match="unknown artifact type 'Table'"):
        import_artifact(str(data), "Table")


# -- logs -----------------------------------------------------------------------------------


def test_read_log_capped(tmp_path: Path) -> None:
    small = tmp_path / "small.log"
    small.write_bytes(b"hello\n")
    assert read_log_capped(small, limit=100) == "hello\n"
    big = tmp_path / "big.log"
    big.write_bytes(b"H" * 5000 + b"M" * 10_000 + b"T" * 5000)
    text = read_log_capped(big, limit=1000)
    assert text.startswith("H" * 500)
    assert text.endswith("T" * 500)
    assert "M" not in text
    assert "[19000 bytes left out]" in text
    with pytest.raises(InvalidParameterValue):
        read_log_capped(big, limit=0)


# -- S3 -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A boto3 client on the moto server and a fresh bucket, with the environment (which step
    processes inherit) pointing Slipway there."""
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("SLIPWAY_S3_ENDPOINT_URL", moto_endpoint)
    client = boto3.session.Session().client("s3", endpoint_url=moto_endpoint)
    client.bucket = f"steps-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=client.bucket)
    return client


def _keys(s3: Any, prefix: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=s3.bucket, Key=o["Key"])["Body"].read() for o in listing}


def test_s3_outputs_are_staged_then_uploaded(s3: Any, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    model = output_slot("model", f"s3://{s3.bucket}/run1/outputs/model", Model, staging)
    assert model.remote
    assert Path(model.artifact.path).is_relative_to(staging)
    Path(model.artifact.path).write_bytes(b"weights")
    ref = finish_output(model)
    assert ref["uri"] == f"s3://{s3.bucket}/run1/outputs/model"
    assert ref["digest"] == "sha256:" + hashlib.sha256(b"weights").hexdigest()
    assert _keys(s3, "run1/") == {"run1/outputs/model": b"weights"}

    folder = output_slot("data", f"s3://{s3.bucket}/run1/outputs/data", Dataset, staging)
    _tree(Path(folder.artifact.path), FILES)
    folder_ref = finish_output(folder)
    assert _keys(s3, "run1/outputs/data/") == {
        f"run1/outputs/data/{k}": v for k, v in FILES.items()
    }
    assert folder_ref["digest"] == artifact_digest(_tree(tmp_path / "same", FILES))


def test_s3_inputs_are_downloaded_once_into_the_cache(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=s3.bucket, Key="r/outputs/data", Body=b"rows")
    digest = "sha256:" + hashlib.sha256(b"rows").hexdigest()
    ref = {"uri": f"s3://{s3.bucket}/r/outputs/data", "digest": digest, "type": "Dataset"}
    cache = tmp_path / "cache"
    first = input_artifact("data", ref, Dataset, cache_dir=str(cache))
    assert Path(first.path).read_bytes() == b"rows"
    assert Path(first.path).is_relative_to(cache / digest.split(":")[1])
    assert first.uri == ref["uri"]
    s3.delete_object(Bucket=s3.bucket, Key="r/outputs/data")  # the cache answers from now on
    again = input_artifact("data", ref, Dataset, cache_dir=str(cache))
    assert again.path == first.path
    assert [p.name for p in (cache / digest.split(":")[1]).iterdir()] == ["data"]  # no leftovers


def test_s3_folder_input_and_an_empty_folder(s3: Any, tmp_path: Path) -> None:
    for rel, content in FILES.items():
        s3.put_object(Bucket=s3.bucket, Key=f"r/outputs/dir/{rel}", Body=content)
    digest = artifact_digest(_tree(tmp_path / "expected", FILES))
    ref = {"uri": f"s3://{s3.bucket}/r/outputs/dir", "digest": digest}
    got = input_artifact("dir", ref, Dataset, cache_dir=str(tmp_path / "cache"))
    assert artifact_digest(got.path) == digest
    empty_ref = {"uri": f"s3://{s3.bucket}/r/outputs/empty", "digest": EMPTY_FOLDER_DIGEST}
    empty = input_artifact("empty", empty_ref, Dataset, cache_dir=str(tmp_path / "cache"))
    assert Path(empty.path).is_dir()
    assert not any(Path(empty.path).iterdir())


def test_s3_input_errors(s3: Any, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    s3.put_object(Bucket=s3.bucket, Key="r/x", Body=b"new content")
    stale = {"uri": f"s3://{s3.bucket}/r/x", "digest": "sha256:" + "0" * 64}
    with pytest.raises(InvalidParameterValue, match="has changed since it was written"):
        input_artifact("x", stale, Dataset, cache_dir=cache)
    assert not (tmp_path / "cache" / ("0" * 64) / "x").exists()
    missing = {"uri": f"s3://{s3.bucket}/r/missing", "digest": "sha256:" + "1" * 64}
    with pytest.raises(ResourceDoesNotExist, match="nothing is stored at"):
        input_artifact("missing", missing, Dataset, cache_dir=cache)
    undigested = {"uri": f"s3://{s3.bucket}/r/x"}
    got = input_artifact("x", undigested, Dataset, cache_dir=cache, scratch_dir=str(tmp_path / "w"))
    assert Path(got.path).read_bytes() == b"new content"
    assert Path(got.path).is_relative_to(tmp_path / "w")


def test_import_an_s3_artifact_leaves_it_in_the_cache(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=s3.bucket, Key="lake/table.parquet", Body=b"PAR1")
    cache = tmp_path / "cache"
    uri = f"s3://{s3.bucket}/lake/table.parquet"
    ref = import_artifact(uri, "Dataset", cache_dir=str(cache))
    digest = "sha256:" + hashlib.sha256(b"PAR1").hexdigest()
    assert ref == {"uri": uri, "digest": digest, "type": "Dataset", "metadata": {}}
    assert [p.name for p in cache.iterdir()] == [digest.split(":")[1]]  # no scratch left
    s3.delete_object(Bucket=s3.bucket, Key="lake/table.parquet")
    # the step that reads it finds the imported content in the cache
    art = input_artifact("table", ref, Dataset, cache_dir=str(cache))
    assert Path(art.path).read_bytes() == b"PAR1"
    with pytest.raises(ResourceDoesNotExist, match="nothing is stored at"):
        import_artifact(uri, "Dataset", cache_dir=str(cache))
