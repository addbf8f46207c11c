"""The path and root URI checks every artifact operation relies on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slipway.artifacts.paths import (
    join_relative,
    join_uri,
    resolve_within,
    safe_relative_path,
    validate_artifact_root,
)
from slipway.exceptions import InvalidParameterValue

from .attacks import (
    ABSOLUTE_PATHS,
    ATTACK_PATHS,
    BACKSLASH_PATHS,
    NUL_AND_CONTROL_PATHS,
    QUERY_AND_FRAGMENT_PATHS,
    TRAVERSAL_PATHS,
)


@pytest.mark.parametrize("path", ATTACK_PATHS)
def test_attack_shapes_are_refused(path: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        safe_relative_path(path)
    assert caught.value.message.startswith("Invalid path")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("paths", "reason"),
    [
        (TRAVERSAL_PATHS, "'..' is not allowed"),
        (BACKSLASH_PATHS, "backslash"),
        (ABSOLUTE_PATHS[:-3], "absolute"),
        (NUL_AND_CONTROL_PATHS[:3], "NUL"),
        (NUL_AND_CONTROL_PATHS[3:], "control character"),
        (QUERY_AND_FRAGMENT_PATHS, "'?' and '#'"),
    ],
)
def test_refusals_say_why(paths: list[str], reason: str) -> None:
    for path in paths:
        with pytest.raises(InvalidParameterValue) as caught:
            safe_relative_path(path)
        assert reason in caught.value.message, path


def test_endless_encoding_is_refused() -> None:
    path = "%2e"
    for _ in range(12):
        path = path.replace("%", "%25")
    with pytest.raises(InvalidParameterValue, match="percent-encoding"):
        safe_relative_path(path)


def test_non_string_is_refused() -> None:
    with pytest.raises(InvalidParameterValue):
        safe_relative_path(b"a/b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (None, ""),
        ("", ""),
        (".", ""),
        ("./", ""),
        ("a", "a"),
        ("a/b/c.txt", "a/b/c.txt"),
        ("a//b", "a/b"),
        ("./a", "a"),
        ("a/./b/", "a/b"),
        ("a/b/", "a/b"),
        ("model..pkl", "model..pkl"),
        ("...", "..."),
        ("a/...b/c", "a/...b/c"),
        ("v1.0/weights.bin", "v1.0/weights.bin"),
        ("with space/é.txt", "with space/é.txt"),
        ("100%.txt", "100%.txt"),
        ("a%2fb", "a%2fb"),  # checked decoded, but stored as the caller spelled it
    ],
)
def test_valid_paths_are_normalised(path: str | None, expected: str) -> None:
    assert safe_relative_path(path) == expected
    assert safe_relative_path(expected) == expected


def test_join_relative_checks_and_skips_empty_parts() -> None:
    assert join_relative("", "a/b", None, "./c.txt") == "a/b/c.txt"
    assert join_relative() == ""
    with pytest.raises(InvalidParameterValue):
        join_relative("a", "../b")


class TestResolveWithin:
    def test_inside(self, tmp_path: Path) -> None:
        assert resolve_within(tmp_path, "a/b.txt") == tmp_path.resolve() / "a" / "b.txt"
        assert resolve_within(tmp_path, "") == tmp_path.resolve()

    @pytest.mark.parametrize("path", ["../x", "%2e%2e/x", "/etc/passwd"])
    def test_unsafe_text(self, tmp_path: Path, path: str) -> None:
        with pytest.raises(InvalidParameterValue):
            resolve_within(tmp_path, path)

    def test_symlink_out_of_the_root(self, tmp_path: Path) -> None:
        root, outside = tmp_path / "root", tmp_path / "outside"
        root.mkdir()
        outside.mkdir()
        (root / "link").symlink_to(outside, target_is_directory=True)
        (root / "file-link").symlink_to(outside / "secret.txt")
        for path in ("link", "link/secret.txt", "link/new/deeper.txt", "file-link"):
            with pytest.raises(InvalidParameterValue, match="outside the artifact root"):
                resolve_within(root, path)

    def test_symlink_within_the_root(self, tmp_path: Path) -> None:
        (tmp_path / "real").mkdir()
        (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
        assert resolve_within(tmp_path, "alias/x") == tmp_path.resolve() / "real" / "x"

    def test_root_that_is_a_symlink(self, tmp_path: Path) -> None:
        (tmp_path / "real").mkdir()
        (tmp_path / "root").symlink_to(tmp_path / "real", target_is_directory=True)
        assert resolve_within(tmp_path / "root", "x") == tmp_path.resolve() / "real" / "x"


BAD_ROOTS = [
    "http://foo/bar?../../../etc",
    "http:///#/../../../../etc/",
    "http://foo/bar#frag",
    "http://foo/bar%3f..%2f..%2fetc",
    "dbfs:/",
    "gs://bucket/x",
    "ftp://host/x",
    "file://evilhost/etc",
    "file://evilhost/%2e%2e/etc",
    "s3://bucket/a/../../b",
    "s3://bucket/a/%2e%2e/b",
    "s3://bucket/a/%252e%252e/b",
    "s3:///no-bucket",
    "https:///no-host",
    "/tmp/mlruns/../../etc",
    "/tmp/x\x00y",
    "/tmp/x%00y",
    "C:\\mlruns",
    "mlflow-artifacts:/a\\..\\b",
    "",
]

GOOD_ROOTS = [
    "/tmp/mlruns/1",
    "mlruns",
    "./mlruns/0",
    "file:///tmp/mlruns",
    "file://localhost/tmp/mlruns",
    "s3://bucket",
    "s3://bucket/some/prefix",
    "mlflow-artifacts:/0/abc/artifacts",
    "mlflow-artifacts://host:5000/0/abc",
    "http://tracking:5000/api/2.0/mlflow-artifacts/artifacts",
    "https://tracking.example.com/artifacts",
]


@pytest.mark.parametrize("uri", BAD_ROOTS)
def test_bad_artifact_roots_are_refused(uri: str) -> None:
    with pytest.raises(InvalidParameterValue, match="Invalid artifact root"):
        validate_artifact_root(uri)


@pytest.mark.parametrize("uri", GOOD_ROOTS)
def test_good_artifact_roots_are_accepted(uri: str) -> None:
    assert validate_artifact_root(uri) == uri


def test_unsupported_scheme_is_named() -> None:
    with pytest.raises(InvalidParameterValue, match="'dbfs'"):
        validate_artifact_root("dbfs:/databricks/mlflow")


@pytest.mark.skipif(os.name == "nt", reason="drive letters are local paths on Windows")
def test_drive_letter_root_is_refused_off_windows() -> None:
    with pytest.raises(InvalidParameterValue):
        validate_artifact_root("C:/mlruns")


@pytest.mark.parametrize(
    ("root", "parts", "expected"),
    [
        ("/tmp/mlruns", ("1", "run", "artifacts"), "/tmp/mlruns/1/run/artifacts"),
        ("/tmp/mlruns/", ("a//b",), "/tmp/mlruns/a/b"),
        ("mlruns", ("0",), "mlruns/0"),
        ("file:///tmp/m", ("x.txt",), "file:///tmp/m/x.txt"),
        ("file:///", ("x",), "file:///x"),
        ("s3://bucket", ("a", "b.txt"), "s3://bucket/a/b.txt"),
        ("s3://bucket/pre/", ("a",), "s3://bucket/pre/a"),
        ("mlflow-artifacts:/", ("0", "r"), "mlflow-artifacts:/0/r"),
        ("mlflow-artifacts:/0", ("r",), "mlflow-artifacts:/0/r"),
        ("s3://bucket/pre", ("", None, "."), "s3://bucket/pre"),
    ],
)
def test_join_uri(root: str, parts: tuple[str, ...], expected: str) -> None:
    assert join_uri(root, *parts) == expected


@pytest.mark.parametrize("part", ["..", "../x", "/abs", "a?b", "%2e%2e"])
def test_join_uri_refuses_unsafe_parts(part: str) -> None:
    with pytest.raises(InvalidParameterValue, match="Invalid path"):
        join_uri("s3://bucket/pre", "run", part)


def test_join_uri_refuses_bad_roots() -> None:
    with pytest.raises(InvalidParameterValue):
        join_uri("http://foo/bar?../..", "x")
