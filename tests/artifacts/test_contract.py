"""The behaviour every artifact store shares, run against the local and the S3 store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from slipway.artifacts import (
    ArtifactRepository,
    FileInfo,
    LocalArtifactRepository,
    S3ArtifactRepository,
    get_artifact_repository,
)
from slipway.entities.paged import PagedList
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist

from .attacks import ATTACK_PATHS
from .helpers import ChunkedStream, StreamBroke, every_operation, make_tree, pattern, read_tree

TREE = {
    "x.txt": b"top",
    "d1/y.bin": bytes(range(256)),
    "d1/d2/z.txt": b"deeper",
    "d1/d2/d3/w": b"",
    "d1b/v.txt": b"sibling with a shared prefix",
}


@pytest.fixture(params=["local", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactRepository:
    if request.param == "local":
        built = get_artifact_repository(str(tmp_path / "root"))
        assert isinstance(built, LocalArtifactRepository)
        return built
    bucket = request.getfixturevalue("s3_bucket")
    built = get_artifact_repository(f"s3://{bucket}/experiments/1/run/artifacts")
    assert isinstance(built, S3ArtifactRepository)
    return built


def all_pages(
    repo: ArtifactRepository, path: str | None, page_size: int
) -> list[PagedList[FileInfo]]:
    pages = [repo.list_artifacts(path, max_results=page_size)]
    while pages[-1].token is not None:
        pages.append(repo.list_artifacts(path, max_results=page_size, page_token=pages[-1].token))
    return pages


def test_log_artifact_and_list(repo: ArtifactRepository, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"hello"}) / "a.txt"
    repo.log_artifact(src)
    repo.log_artifact(str(src), "sub/dir")

    listing = repo.list_artifacts()
    assert listing == [FileInfo("a.txt", False, 5), FileInfo("sub", True, None)]
    assert listing.token is None
    assert repo.list_artifacts("sub") == [FileInfo("sub/dir", True)]
    assert repo.list_artifacts("./sub//dir/") == [FileInfo("sub/dir/a.txt", False, 5)]


def test_listing_a_file_or_nothing_is_empty(repo: ArtifactRepository) -> None:
    repo.log_bytes(b"x", "f.txt")
    for path in ("f.txt", "missing", "missing/deeper"):
        listing = repo.list_artifacts(path)
        assert listing == []
        assert listing.token is None


def test_log_artifacts_and_download_directories(repo: ArtifactRepository, tmp_path: Path) -> None:
    repo.log_artifacts(make_tree(tmp_path / "src", TREE), "model")
    assert [info.path for info in repo.list_artifacts("model")] == [
        "model/d1",
        "model/d1b",
        "model/x.txt",
    ]

    local = repo.download_artifacts("model", tmp_path / "dst")
    assert local == tmp_path / "dst" / "model"
    assert read_tree(local) == TREE

    everything = repo.download_artifacts("", tmp_path / "all")
    assert everything == tmp_path / "all"
    assert read_tree(everything) == {f"model/{rel}": data for rel, data in TREE.items()}

    part = repo.download_artifacts("model/d1/d2", tmp_path / "part")
    assert part == tmp_path / "part" / "model" / "d1" / "d2"
    assert read_tree(part) == {"z.txt": b"deeper", "d3/w": b""}


def test_log_artifacts_into_the_root(repo: ArtifactRepository, tmp_path: Path) -> None:
    repo.log_artifacts(make_tree(tmp_path / "src", TREE))
    assert read_tree(repo.download_artifacts("", tmp_path / "dst")) == TREE


def test_download_one_file(repo: ArtifactRepository, tmp_path: Path) -> None:
    repo.log_bytes(b"weights", "model/w.bin")
    local = repo.download_artifacts("model/w.bin", tmp_path / "dst")
    assert local == tmp_path / "dst" / "model" / "w.bin"
    assert local.read_bytes() == b"weights"


def test_download_into_a_new_temporary_directory(repo: ArtifactRepository) -> None:
    repo.log_bytes(b"weights", "w.bin")
    local = repo.download_artifacts("w.bin")
    try:
        assert local.name == "w.bin"
        assert local.read_bytes() == b"weights"
    finally:
        shutil.rmtree(local.parent)


def test_download_of_nothing(repo: ArtifactRepository, tmp_path: Path) -> None:
    with pytest.raises(ResourceDoesNotExist):
        repo.download_artifacts("missing.txt", tmp_path / "dst")
    assert read_tree(repo.download_artifacts("", tmp_path / "empty")) == {}


def test_list_paging(repo: ArtifactRepository) -> None:
    names = [f"many/f{index:02d}.txt" for index in range(25)]
    for name in reversed(names):
        repo.log_bytes(name.encode(), name)
    repo.log_bytes(b"x", "many/sub/inner.txt")

    pages = all_pages(repo, "many", 10)
    assert [len(page) for page in pages] == [10, 10, 6]
    listed = [info.path for page in pages for info in page]
    assert listed == sorted([*names, "many/sub"])
    assert listed == [info.path for info in repo.list_artifacts("many")]
    assert all(isinstance(page.token, str) for page in pages[:-1])

    exact = all_pages(repo, "many", 26)
    assert [len(page) for page in exact] == [26]


@pytest.mark.parametrize("token", ["garbage", "e30=", "bnVsbA==", "eyJhZnRlciI6IDF9", "%%%"])
def test_bad_page_tokens(repo: ArtifactRepository, token: str) -> None:
    with pytest.raises(InvalidParameterValue, match="page token"):
        repo.list_artifacts(max_results=5, page_token=token)


@pytest.mark.parametrize("max_results", [0, -1])
def test_bad_max_results(repo: ArtifactRepository, max_results: int) -> None:
    with pytest.raises(InvalidParameterValue, match="max_results"):
        repo.list_artifacts(max_results=max_results)


def test_log_bytes_open_and_overwrite(repo: ArtifactRepository) -> None:
    repo.log_bytes(b"first", "notes/a.txt")
    repo.log_bytes(b"second, longer", "notes/a.txt")
    with repo.open_artifact("notes/a.txt") as stream:
        assert stream.read() == b"second, longer"
    assert repo.list_artifacts("notes") == [FileInfo("notes/a.txt", False, 14)]


def test_open_what_is_not_a_file(repo: ArtifactRepository) -> None:
    repo.log_bytes(b"x", "dir/f.txt")
    for path in ("missing.txt", "dir"):
        with pytest.raises(ResourceDoesNotExist):
            repo.open_artifact(path)
    with pytest.raises(InvalidParameterValue, match="file path is required"):
        repo.open_artifact("")


def test_write_stream_reads_in_bounded_chunks(repo: ArtifactRepository) -> None:
    size = 3 * 1024 * 1024 + 7
    stream = ChunkedStream(size, max_read=9 << 20)
    repo.write_artifact_stream("big/stream.bin", stream)  # type: ignore[arg-type]
    assert stream.sent == size
    with repo.open_artifact("big/stream.bin") as stored:
        assert stored.read() == pattern(0, size)


def test_failed_stream_leaves_no_file(repo: ArtifactRepository) -> None:
    repo.log_bytes(b"old", "kept.txt")
    for path in ("new.txt", "kept.txt"):
        stream = ChunkedStream(4 << 20, fail_after=1 << 20, max_read=9 << 20)
        with pytest.raises(StreamBroke):
            repo.write_artifact_stream(path, stream)  # type: ignore[arg-type]
    assert repo.list_artifacts() == [FileInfo("kept.txt", False, 3)]
    with repo.open_artifact("kept.txt") as stored:
        assert stored.read() == b"old"


def test_delete(repo: ArtifactRepository, tmp_path: Path) -> None:
    repo.log_artifacts(make_tree(tmp_path / "src", TREE))

    repo.delete_artifacts("x.txt")
    repo.delete_artifacts("d1")
    repo.delete_artifacts("missing/thing")
    assert read_tree(repo.download_artifacts("", tmp_path / "after")) == {
        "d1b/v.txt": b"sibling with a shared prefix"
    }

    repo.delete_artifacts()
    assert repo.list_artifacts() == []
    repo.delete_artifacts()


def test_file_info_to_dict() -> None:
    assert FileInfo("a/b.txt", False, 3).to_dict() == {
        "path": "a/b.txt",
        "is_dir": False,
        "file_size": 3,
    }
    assert FileInfo("a", True).to_dict() == {"path": "a", "is_dir": True}


@pytest.mark.parametrize("path", ATTACK_PATHS)
def test_attack_shapes_are_refused_everywhere(
    repo: ArtifactRepository, tmp_path: Path, path: str
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    repo.log_bytes(b"keep", "keep.txt")
    before = repo.list_artifacts()
    operations = every_operation(repo, path, src, tmp_path / "dst")
    for name, operation in operations.items():
        with pytest.raises(InvalidParameterValue) as caught:
            operation()
        assert caught.value.message.startswith("Invalid path"), name
    assert repo.list_artifacts() == before
    assert not (tmp_path / "dst").exists()
