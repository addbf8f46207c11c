"""Model URIs: parsing, and resolving each kind to a local directory against real stores
(a SQLite tracking folder, the registry beside it, a moto S3 server, a live tracking server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist, RunNotFound
from slipway.models.uri import (
    download_artifact_uri,
    download_model,
    parse_models_uri,
    parse_runs_uri,
)
from slipway.registry.store import clear_registry_store_cache, get_registry_store
from slipway.tracking import fluent


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "src" / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01")
    return folder


@pytest.fixture
def registry(tracking_dir: Path) -> Iterator[Any]:
    yield get_registry_store()
    clear_registry_store_cache()


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/iris/3", ("iris", "version", "3")),
        ("models:/iris@champion", ("iris", "alias", "champion")),
        ("models:/iris/latest", ("iris", "latest", "latest")),
        ("models:/iris/Latest", ("iris", "latest", "Latest")),
        ("models:/iris/production", ("iris", "stage", "Production")),
        ("models:/team/iris/Staging", ("team/iris", "stage", "Staging")),
        ("models:///iris/1", ("iris", "version", "1")),
        ("models:/m-0123abcd", ("m-0123abcd", "model_id", "m-0123abcd")),
    ],
)
def test_parse_models_uri(uri: str, parsed: tuple[str, str, str]) -> None:
    assert parse_models_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri",
    [
        "models:/iris",
        "models:/iris/",
        "models:/iris/champion",
        "models:/iris@",
        "models:/@champion",
        "models:/iris/1?x=1",
        "models:/iris@a/b",
        "models:iris/1",
    ],
)
def test_malformed_models_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidParameterValue, match="Invalid models URI"):
        parse_models_uri(uri)


def test_parse_runs_uri() -> None:
    assert parse_runs_uri("runs:/abc/model") == ("abc", "model")
    assert parse_runs_uri("runs:/abc/a/b") == ("abc", "a/b")
    assert parse_runs_uri("runs:/abc") == ("abc", "")
    assert parse_runs_uri("runs://abc/model") == ("abc", "model")
    for bad in ("runs:/", "runs:", "runs:/abc/model?x=1"):
        with pytest.raises(InvalidParameterValue, match="Invalid runs URI"):
            parse_runs_uri(bad)


def test_local_paths_are_used_in_place(model_folder: Path) -> None:
    assert download_model(model_folder) == model_folder
    assert download_model(str(model_folder)) == model_folder
    assert download_model(model_folder.as_uri()) == model_folder
    assert download_model(f"file://localhost{model_folder}") == model_folder


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("", InvalidParameterValue, "empty"),
        ("/no/such/model/dir", ResourceDoesNotExist, "does not exist"),
        ("file://otherhost/tmp/model", InvalidParameterValue, "remote host"),
        ("ftp://host/model", InvalidParameterValue, "Unsupported model URI"),
        ("runs:/", InvalidParameterValue, "Invalid runs URI"),
    ],
)
def test_bad_uris(uri: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        download_model(uri)


def test_runs_uri_downloads_from_the_runs_artifacts(
    tracking_dir: Path, model_folder: Path, tmp_path: Path
) -> None:
    with fluent.start_run() as run:
        fluent.log_artifacts(str(model_folder), "model")
    local = download_model(f"runs:/{run.info.run_id}/model", tmp_path / "dst")
    assert local == tmp_path / "dst" / "model"
    assert (local / "sub" / "data.bin").read_bytes() == b"\x00\x01"
    fresh = download_model(f"runs:/{run.info.run_id}/model")
    assert (fresh / "MLmodel").read_text() == "flavors: {}\n"


def test_runs_uri_errors(tracking_dir: Path) -> None:
    with pytest.raises(RunNotFound):
        download_model("runs:/0123456789abcdef0123456789abcdef/model")
    with fluent.start_run() as run:
        pass
    with pytest.raises(ResourceDoesNotExist, match="nothing"):
        download_model(f"runs:/{run.info.run_id}/nothing")
    with pytest.raises(InvalidParameterValue, match="Invalid path"):
        download_model(f"runs:/{run.info.run_id}/../other")


def _register(registry: Any, model_folder: Path, name: str = "iris") -> str:
    with fluent.start_run() as run:
        fluent.log_artifacts(str(model_folder), "model")
    source = f"{run.info.artifact_uri}/model"
    registry.create_registered_model(name)
    return registry.create_model_version(name, source=source, run_id=run.info.run_id).version


def test_models_uris_resolve_through_the_registry(
    registry: Any, model_folder: Path, tmp_path: Path
) -> None:
    _register(registry, model_folder)
    with fluent.start_run() as run:
        fluent.log_artifacts(str(model_folder), "model")
        fluent.log_text("v2", "model/version.txt")
    v2 = registry.create_model_version(
        "iris", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    ).version
    registry.set_registered_model_alias("iris", "champion", "1")
    registry.transition_model_version_stage("iris", "1", "Production")

    def files(uri: str) -> set[str]:
        local = download_model(uri, tmp_path / uuid.uuid4().hex)
        return {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}

    v1_files = {"MLmodel", "sub/data.bin"}
    assert files("models:/iris/1") == v1_files
    assert files("models:/iris@champion") == v1_files
    assert files("models:/iris/Production") == v1_files
    assert files(f"models:/iris/{v2}") == {*v1_files, "version.txt"}
    assert files("models:/iris/latest") == {*v1_files, "version.txt"}


def test_unknown_registry_names_versions_and_aliases(registry: Any, model_folder: Path) -> None:
    _register(registry, model_folder)
    for uri in ("models:/nobody/1", "models:/iris/7", "models:/nobody/latest"):
        with pytest.raises(ResourceDoesNotExist):
            download_model(uri)
    # MLflow's registry answers INVALID_PARAMETER_VALUE for an unknown alias; so does ours.
    with pytest.raises(InvalidParameterValue, match="alias nobody not found"):
        download_model("models:/iris@nobody")
    with pytest.raises(ResourceDoesNotExist, match="no version in stage 'Staging'"):
        download_model("models:/iris/Staging")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_uris(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_folder: Path
) -> None:
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("SLIPWAY_S3_ENDPOINT_URL", moto_endpoint)
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="team/model/MLmodel", Body=b"flavors: {}\n")
    client.put_object(Bucket=bucket, Key="team/model/sub/data.bin", Body=b"\x00\x01")

    local = download_model(f"s3://{bucket}/team/model", tmp_path / "dst")
    assert local == tmp_path / "dst" / "model"
    assert (local / "sub" / "data.bin").read_bytes() == b"\x00\x01"
    assert (download_model(f"s3://{bucket}/team/model/") / "MLmodel").is_file()
    with pytest.raises(ResourceDoesNotExist):
        download_model(f"s3://{bucket}/team/nothing")
    with pytest.raises(InvalidParameterValue, match="names no file or folder"):
        download_artifact_uri(f"s3://{bucket}")


def test_mlflow_artifacts_and_runs_uris_through_a_tracking_server(
    rest_server: Any, tmp_path: Path, model_folder: Path, tracking_dir: Path
) -> None:
    from slipway.server import ServerSettings, create_app

    app = create_app(
        ServerSettings(
            backend_store_uri=str(tmp_path / "server"),
            artifacts_destination=str(tmp_path / "served"),
        )
    )
    rest_server.front.app = app
    try:
        fluent.set_tracking_uri(rest_server.url)
        with fluent.start_run() as run:
            fluent.log_artifacts(str(model_folder), "model")
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        by_run = download_model(f"runs:/{run.info.run_id}/model", tmp_path / "a")
        assert (by_run / "sub" / "data.bin").read_bytes() == b"\x00\x01"
        direct = download_model(f"{run.info.artifact_uri}/model", tmp_path / "b")
        assert (direct / "MLmodel").read_text() == "flavors: {}\n"
    finally:
        fluent.set_tracking_uri(str(tracking_dir))
        rest_server.front.app = None
        app.state.context.close()
