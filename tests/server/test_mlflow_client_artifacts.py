"""The official MLflow client's artifact calls, unchanged, against the live server's proxy.

Runs made through the server get ``mlflow-artifacts:/`` artifact URIs, so every byte here goes
through ``/api/2.0/mlflow-artifacts``. The tests that start runs need the server's tracking
routes (runs/create, runs/get, runs/update); ``test_list_artifacts_in_a_folder`` also needs
MLflow 3's logged-model search (``/api/2.0/mlflow/logged-models/search``), which the client asks
whenever it lists a path inside a run.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from slipway.artifacts import HttpArtifactRepository
from slipway.artifacts.http import PROXY_PATH

from .conftest import LiveServer

TREE = {
    "a.txt": b"alpha",
    "sub/b.txt": b"beta",
    "sub/deeper/c.bin": bytes(range(256)) * 4,
}


def make_tree(base: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    return base


def read_tree(base: Path) -> dict[str, bytes]:
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def destination(server: LiveServer) -> Path:
    return Path(server.settings.artifacts_destination or "")


def run_artifacts(server: LiveServer, run: Any) -> Path:
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    return destination(server) / run.info.artifact_uri.removeprefix("mlflow-artifacts:/")


@pytest.fixture
def mlflow(mlflow_client: Any) -> Any:
    import mlflow

    return mlflow


@pytest.fixture
def space(live_server: LiveServer) -> str:
    return f"mlflow-client/{uuid.uuid4().hex[:12]}"


# -- MLflow's artifact repository on its own (no tracking routes involved) --------------------


def test_mlflow_artifact_repository_over_the_proxy(
    mlflow: Any, live_server: LiveServer, space: str, tmp_path: Path
) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(f"mlflow-artifacts:/{space}")
    source = make_tree(tmp_path / "src", TREE)
    repo.log_artifact(str(source / "a.txt"))
    repo.log_artifacts(str(source), "folder")

    on_disk = destination(live_server) / space
    assert (on_disk / "a.txt").read_bytes() == b"alpha"
    assert read_tree(on_disk / "folder") == TREE

    top = [(f.path, f.is_dir, f.file_size) for f in repo.list_artifacts()]
    assert top == [("a.txt", False, 5), ("folder", True, None)]
    nested = [(f.path, f.is_dir) for f in repo.list_artifacts("folder/sub")]
    assert nested == [("folder/sub/b.txt", False), ("folder/sub/deeper", True)]
    assert repo.list_artifacts("a.txt") == []

    (tmp_path / "dst").mkdir()
    (tmp_path / "one").mkdir()
    local = repo.download_artifacts("folder", str(tmp_path / "dst"))
    assert read_tree(Path(local)) == TREE
    single = repo.download_artifacts("folder/sub/deeper/c.bin", str(tmp_path / "one"))
    assert Path(single).read_bytes() == TREE["sub/deeper/c.bin"]

    repo.delete_artifacts("folder/sub")
    assert read_tree(on_disk) == {"a.txt": b"alpha", "folder/a.txt": b"alpha"}


def test_mlflow_download_artifacts_from_a_proxy_uri(
    mlflow: Any, live_server: LiveServer, space: str, tmp_path: Path
) -> None:
    slipway_side = HttpArtifactRepository(f"mlflow-artifacts:/{space}", live_server.url)
    slipway_side.log_artifacts(make_tree(tmp_path / "src", TREE), "model")

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"mlflow-artifacts:/{space}/model", dst_path=str(tmp_path / "dst")
    )
    assert read_tree(Path(local)) == TREE
    listed = mlflow.artifacts.list_artifacts(artifact_uri=f"mlflow-artifacts:/{space}/model")
    assert [f.path for f in listed] == ["model/a.txt", "model/sub"]


def test_mlflow_falls_back_from_multipart_uploads(
    mlflow: Any, live_server: LiveServer, space: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """Asked to use multipart uploads, MLflow's client hears that the server has none and
    sends the file in one streamed PUT instead."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "1024")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", "1024")
    data = bytes(range(256)) * 64
    (tmp_path / "big.bin").write_bytes(data)
    repo = get_artifact_repository(f"mlflow-artifacts:/{space}")
    repo.log_artifact(str(tmp_path / "big.bin"))
    assert (destination(live_server) / space / "big.bin").read_bytes() == data


def test_both_clients_see_the_same_files(
    mlflow: Any, live_server: LiveServer, space: str, tmp_path: Path
) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    theirs = get_artifact_repository(f"mlflow-artifacts:/{space}")
    ours = HttpArtifactRepository(f"{live_server.url}{PROXY_PATH}/{space}")
    (tmp_path / "from-mlflow.txt").write_bytes(b"mlflow wrote this")
    theirs.log_artifact(str(tmp_path / "from-mlflow.txt"), "shared")
    ours.log_bytes(b"slipway wrote this", "shared/from-slipway.txt")

    assert [(f.path, f.file_size) for f in theirs.list_artifacts("shared")] == [
        ("shared/from-mlflow.txt", 17),
        ("shared/from-slipway.txt", 18),
    ]
    assert [(f.path, f.file_size) for f in ours.list_artifacts("shared")] == [
        ("shared/from-mlflow.txt", 17),
        ("shared/from-slipway.txt", 18),
    ]
    (tmp_path / "dst").mkdir()
    got = theirs.download_artifacts("shared/from-slipway.txt", str(tmp_path / "dst"))
    assert Path(got).read_bytes() == b"slipway wrote this"
    with ours.open_artifact("shared/from-mlflow.txt") as stream:
        assert stream.read() == b"mlflow wrote this"


# -- runs (these need the tracking routes) ----------------------------------------------------


def test_runs_get_proxied_artifact_uris(mlflow: Any) -> None:
    with mlflow.start_run() as run:
        assert run.info.artifact_uri == (
            f"mlflow-artifacts:/{run.info.experiment_id}/{run.info.run_id}/artifacts"
        )
        assert mlflow.get_artifact_uri() == run.info.artifact_uri


def test_log_artifact_and_log_artifacts(
    mlflow: Any, mlflow_client: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "src", TREE)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(source / "a.txt"))
        mlflow.log_artifact(str(source / "sub" / "b.txt"), artifact_path="single")
        mlflow.log_artifacts(str(source), artifact_path="folder")
        mlflow.log_artifacts(str(source / "sub"))
        mlflow.log_text("some text", "notes/readme.md")
        mlflow.log_dict({"k": [1, 2]}, "notes/config.json")

    on_disk = run_artifacts(live_server, run)
    assert read_tree(on_disk) == {
        "a.txt": b"alpha",
        "single/b.txt": b"beta",
        **{f"folder/{rel}": data for rel, data in TREE.items()},
        "b.txt": b"beta",
        "deeper/c.bin": TREE["sub/deeper/c.bin"],
        "notes/readme.md": b"some text",
        "notes/config.json": (on_disk / "notes" / "config.json").read_bytes(),
    }

    listed = mlflow_client.list_artifacts(run.info.run_id)
    assert [(f.path, f.is_dir, f.file_size) for f in listed] == [
        ("a.txt", False, 5),
        ("b.txt", False, 4),
        ("deeper", True, None),
        ("folder", True, None),
        ("notes", True, None),
        ("single", True, None),
    ]


def test_list_artifacts_in_a_folder(mlflow: Any, mlflow_client: Any, tmp_path: Path) -> None:
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(make_tree(tmp_path / "src", TREE)), artifact_path="folder")
    listed = mlflow_client.list_artifacts(run.info.run_id, "folder/sub")
    assert [(f.path, f.is_dir) for f in listed] == [
        ("folder/sub/b.txt", False),
        ("folder/sub/deeper", True),
    ]


def test_download_artifacts_of_a_run(mlflow: Any, tmp_path: Path) -> None:
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(make_tree(tmp_path / "src", TREE)), artifact_path="folder")
    run_id = run.info.run_id

    folder = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="folder", dst_path=str(tmp_path / "folder")
    )
    assert read_tree(Path(folder)) == TREE
    one = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="folder/sub/b.txt", dst_path=str(tmp_path / "one")
    )
    assert Path(one).read_bytes() == b"beta"
    everything = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "all"))
    assert read_tree(Path(everything)) == {f"folder/{rel}": data for rel, data in TREE.items()}
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="missing.txt", dst_path=str(tmp_path / "missing")
        )


def test_a_large_artifact_round_trips(mlflow: Any, tmp_path: Path) -> None:
    data = hashlib.sha256(b"seed").digest() * (12 * 1024 * 1024 // 32)
    (tmp_path / "weights.bin").write_bytes(data)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "weights.bin"), artifact_path="model")
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model/weights.bin", dst_path=str(tmp_path / "d")
    )
    assert hashlib.sha256(Path(local).read_bytes()).digest() == hashlib.sha256(data).digest()


def test_tracking_listing_matches_the_client(
    mlflow: Any, mlflow_client: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    """The tracking API's ``artifacts/list`` agrees with what the client logged."""
    import json
    import urllib.request

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(make_tree(tmp_path / "src", TREE)))
    url = f"{live_server.url}/api/2.0/mlflow/artifacts/list?run_id={run.info.run_id}&path=sub"
    with urllib.request.urlopen(url) as response:
        body = json.load(response)
    assert body == {
        "root_uri": run.info.artifact_uri,
        "files": [
            {"path": "sub/b.txt", "is_dir": False, "file_size": 4},
            {"path": "sub/deeper", "is_dir": True},
        ],
    }
