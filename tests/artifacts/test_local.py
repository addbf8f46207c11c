"""What only the local store does: containment on a real file system, atomic files, roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slipway.artifacts import FileInfo, LocalArtifactRepository, get_artifact_repository
from slipway.exceptions import InvalidParameterValue, NotImplementedFeature

from .attacks import ATTACK_PATHS
from .helpers import every_operation, make_tree, snapshot

# Beside the root: what an escaping path would reach.
OUTSIDE = {
    "secret.txt": b"do not read",
    "x": b"x outside",
    "etc/passwd": b"root:x:0:0",
    "other/data.bin": b"\x00\x01",
}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, LocalArtifactRepository]:
    """``tmp_path/outer/root`` as the root, with sentinel files beside it and above it."""
    outer = make_tree(tmp_path / "outer", {**OUTSIDE, "root/inside.txt": b"inside"})
    make_tree(tmp_path, {"above.txt": b"above"})
    return outer, LocalArtifactRepository(str(outer / "root"))


@pytest.mark.parametrize("path", ATTACK_PATHS)
def test_attacks_touch_nothing_outside_the_root(
    layout: tuple[Path, LocalArtifactRepository], tmp_path: Path, path: str
) -> None:
    _, repo = layout
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    before = snapshot(tmp_path)
    for name, operation in every_operation(repo, path, src, tmp_path / "dst").items():
        with pytest.raises(InvalidParameterValue):
            operation()
        assert snapshot(tmp_path) == before, name


@pytest.fixture
def escapes(layout: tuple[Path, LocalArtifactRepository]) -> tuple[Path, LocalArtifactRepository]:
    """Links inside the root that point outside it, to a directory, a file and nowhere."""
    outer, repo = layout
    root = outer / "root"
    (root / "dir-link").symlink_to(outer / "other", target_is_directory=True)
    (root / "file-link").symlink_to(outer / "secret.txt")
    (root / "dangling").symlink_to(outer / "created-by-attack.txt")
    (root / "nested").mkdir()
    (root / "nested" / "up").symlink_to("../..", target_is_directory=True)
    return outer, repo


LINK_PATHS = [
    "dir-link",
    "dir-link/data.bin",
    "dir-link/new.txt",
    "file-link",
    "dangling",
    "nested/up",
    "nested/up/secret.txt",
    "nested/up/root/../x",
]


@pytest.mark.parametrize("path", LINK_PATHS)
def test_symlinks_out_of_the_root_are_refused(
    escapes: tuple[Path, LocalArtifactRepository], tmp_path: Path, path: str
) -> None:
    outer, repo = escapes
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    before = snapshot(tmp_path)
    for name, operation in every_operation(repo, path, src, tmp_path / "dst").items():
        with pytest.raises(InvalidParameterValue):
            operation()
        assert snapshot(tmp_path) == before, name
    assert not (outer / "created-by-attack.txt").exists()


def test_listing_and_downloading_skip_links_out_of_the_root(
    escapes: tuple[Path, LocalArtifactRepository], tmp_path: Path
) -> None:
    _, repo = escapes
    assert repo.list_artifacts() == [
        FileInfo("inside.txt", False, 6),
        FileInfo("nested", True),
    ]
    local = repo.download_artifacts("", tmp_path / "dst")
    assert snapshot(local) == {"inside.txt": b"inside", "nested": None}


def test_deleting_the_root_leaves_link_targets_alone(
    escapes: tuple[Path, LocalArtifactRepository],
) -> None:
    outer, repo = escapes
    repo.delete_artifacts()
    assert not (outer / "root").exists()
    assert {rel: (outer / rel).read_bytes() for rel in OUTSIDE} == OUTSIDE


def test_links_within_the_root_are_followed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", {"real/a.txt": b"a"})
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    repo = LocalArtifactRepository(str(root))
    with repo.open_artifact("alias/a.txt") as stream:
        assert stream.read() == b"a"
    repo.log_bytes(b"b", "alias/b.txt")
    assert (root / "real" / "b.txt").read_bytes() == b"b"


def test_download_stops_at_links_back_up_the_tree(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", {"a/f.txt": b"f"})
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    local = LocalArtifactRepository(str(root)).download_artifacts("", tmp_path / "dst")
    assert snapshot(local) == {"a": None, "a/f.txt": b"f", "a/loop": None}


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    repo = LocalArtifactRepository(str(tmp_path / "root"))
    repo.log_artifacts(make_tree(tmp_path / "src", {"a/b.txt": b"b", "c.txt": b"c"}), "x")
    repo.log_bytes(b"again", "x/c.txt")
    repo.download_artifacts("x", tmp_path / "dst")
    assert sorted(p.name for p in (tmp_path / "root").rglob("*")) == ["a", "b.txt", "c.txt", "x"]
    assert sorted(p.name for p in (tmp_path / "dst").rglob("*")) == ["a", "b.txt", "c.txt", "x"]


def test_files_and_directories_cannot_swap_places(tmp_path: Path) -> None:
    repo = LocalArtifactRepository(str(tmp_path / "root"))
    repo.log_bytes(b"x", "dir/f.txt")
    with pytest.raises(InvalidParameterValue, match="is a directory"):
        repo.log_bytes(b"y", "dir")
    with pytest.raises(InvalidParameterValue, match="is a file"):
        repo.log_bytes(b"y", "dir/f.txt/under-a-file.txt")
    assert snapshot(tmp_path / "root") == {"dir": None, "dir/f.txt": b"x"}


def test_unfinished_temporary_files_are_not_listed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", {"a.txt": b"a", ".slipway-0123abcd.part": b"half"})
    repo = LocalArtifactRepository(str(root))
    assert [info.path for info in repo.list_artifacts()] == ["a.txt"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_new_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        LocalArtifactRepository(str(tmp_path)).log_bytes(b"x", "f.txt")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_root_is_created_on_first_write(tmp_path: Path) -> None:
    repo = LocalArtifactRepository(str(tmp_path / "a" / "b"))
    assert repo.list_artifacts() == []
    assert not (tmp_path / "a").exists()
    repo.log_bytes(b"x", "f.txt")
    assert (tmp_path / "a" / "b" / "f.txt").read_bytes() == b"x"


def test_file_uri_roots(tmp_path: Path) -> None:
    (tmp_path / "with space").mkdir()
    for uri in (
        (tmp_path / "with space").as_uri(),
        f"file://localhost{(tmp_path / 'with space').as_posix()}",
    ):
        repo = get_artifact_repository(uri)
        assert isinstance(repo, LocalArtifactRepository)
        assert repo.root == tmp_path / "with space"
    repo.log_bytes(b"x", "f.txt")
    assert (tmp_path / "with space" / "f.txt").read_bytes() == b"x"


def test_relative_roots_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    repo = LocalArtifactRepository("mlruns/0")
    assert repo.root == tmp_path / "mlruns" / "0"


def test_missing_local_sources(tmp_path: Path) -> None:
    repo = LocalArtifactRepository(str(tmp_path / "root"))
    with pytest.raises(InvalidParameterValue, match="Not a local file"):
        repo.log_artifact(tmp_path / "missing.txt")
    with pytest.raises(InvalidParameterValue, match="Not a local directory"):
        repo.log_artifacts(tmp_path / "missing")


@pytest.mark.parametrize(
    "uri", ["mlflow-artifacts:/0/abc", "http://server:5000/api", "https://server/api"]
)
def test_proxied_roots_need_a_server(uri: str) -> None:
    with pytest.raises(NotImplementedFeature, match="tracking server") as caught:
        get_artifact_repository(uri)
    assert caught.value.error_code == "NOT_IMPLEMENTED"


@pytest.mark.parametrize("uri", ["dbfs:/x", "gs://bucket/x", "hdfs://nn/x"])
def test_unknown_schemes_are_named(uri: str) -> None:
    scheme = uri.split(":")[0]
    with pytest.raises(InvalidParameterValue, match=f"'{scheme}'"):
        get_artifact_repository(uri)


def test_repr_names_the_root(tmp_path: Path) -> None:
    assert (
        repr(LocalArtifactRepository(str(tmp_path)))
        == f"LocalArtifactRepository({str(tmp_path)!r})"
    )
