"""Model version sources: every attack shape from MLflow's CVEs is refused, and the legitimate
forms are accepted (against a real SQLite tracking store)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from slipway.entities import Run
from slipway.exceptions import InvalidParameterValue
from slipway.registry.sources import SourceKind, is_proxied, validate_source
from slipway.tracking.store.sql import SqlTrackingStore


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[SqlTrackingStore]:
    store = SqlTrackingStore(f"sqlite:///{tmp_path / 'db.sqlite'}", str(tmp_path / "artifacts"))
    yield store
    store.close()


@pytest.fixture
def local_run(tracking: SqlTrackingStore) -> Run:
    run = tracking.create_run("0")
    Path(run.info.artifact_uri, "model").mkdir(parents=True)
    return run


@pytest.fixture
def server_run(tmp_path: Path) -> Iterator[tuple[SqlTrackingStore, Run]]:
    """A run of a tracking server whose artifacts are proxied (``mlflow-artifacts:``)."""
    store = SqlTrackingStore(f"sqlite:///{tmp_path / 'server.sqlite'}", "mlflow-artifacts:/")
    yield store, store.create_run("0")
    store.close()


def _refused(source: str, run_id: str | None, tracking: SqlTrackingStore, match: str) -> None:
    with pytest.raises(InvalidParameterValue, match=match) as info:
        validate_source(source, run_id, None, tracking)
    assert "Invalid model version source" in info.value.message or "source" in info.value.message


def test_local_source_inside_the_run(tracking: SqlTrackingStore, local_run: Run) -> None:
    root = local_run.info.artifact_uri
    rid = local_run.info.run_id
    assert validate_source(f"{root}/model", rid, None, tracking) is SourceKind.LOCAL
    assert validate_source(root, rid, None, tracking) is SourceKind.LOCAL
    assert validate_source(f"file://{root}/model", rid, None, tracking) is SourceKind.LOCAL
    assert validate_source(f"file://localhost{root}/model", rid, None, tracking) is (
        SourceKind.LOCAL
    )
    assert validate_source(f"{root}/not/yet/written", rid, None, tracking) is SourceKind.LOCAL


@pytest.mark.parametrize(
    "source",
    [
        "/etc",
        "/etc/passwd",
        "file:///etc/",
        "file:///etc/passwd",
        "relative/path",
        "{root}_sibling/model",
        "{other}/model",
    ],
)
def test_local_source_outside_the_run(
    tracking: SqlTrackingStore, local_run: Run, source: str
) -> None:
    other = tracking.create_run("0").info.artifact_uri
    source = source.format(root=local_run.info.artifact_uri, other=other)
    _refused(source, local_run.info.run_id, tracking, "To use a local path as a model version")


def test_local_source_needs_an_existing_run(tracking: SqlTrackingStore, local_run: Run) -> None:
    source = f"{local_run.info.artifact_uri}/model"
    _refused(source, None, tracking, "the run_id request parameter has to be specified")
    _refused(source, "0" * 32, tracking, "names no run")


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("{root}/../../../../etc", "relative path references"),
        ("{root}/model/%2e%2e/%2e%2e/%2e%2e/%2e%2e", "relative path references"),
        ("{root}/model/%252e%252e/%252e%252e/x", "relative path references"),
        ("{root}/model/..%2f..%2f..%2fetc", "relative path references"),
        ("file://{root}/%2E%2E/%2E%2E/x", "relative path references"),
        ("{root}/model%00/etc/passwd", "NUL bytes"),
        ("{root}/model\x00", "NUL bytes"),
        ("{root}/model\n", "control characters"),
        ("{root}\\..\\..\\etc", "Backslashes"),
        ("{root}/model%5c..%5c..%5cetc", "Backslashes"),
    ],
)
def test_encoded_traversal_is_refused(
    tracking: SqlTrackingStore, local_run: Run, template: str, match: str
) -> None:
    _refused(
        template.format(root=local_run.info.artifact_uri), local_run.info.run_id, tracking, match
    )


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("//proc/self/root", "Network paths"),
        ("//etc/passwd", "Network paths"),
        ("file://attacker.example/etc/passwd", "cannot name a remote host"),
        ("file://evil/{root}/model", "cannot name a remote host"),
        ("file:////proc/self/root", "To use a local path"),
    ],
)
def test_network_and_remote_host_paths(
    tracking: SqlTrackingStore, local_run: Run, source: str, match: str
) -> None:
    _refused(
        source.format(root=local_run.info.artifact_uri), local_run.info.run_id, tracking, match
    )


def test_symlinks_are_followed(tracking: SqlTrackingStore, local_run: Run, tmp_path: Path) -> None:
    root = Path(local_run.info.artifact_uri)
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "inner").symlink_to(root / "model")
    rid = local_run.info.run_id
    _refused(str(root / "escape"), rid, tracking, "To use a local path")
    _refused(str(root / "escape" / "file"), rid, tracking, "To use a local path")
    assert validate_source(str(root / "inner"), rid, None, tracking) is SourceKind.LOCAL


def test_a_run_with_a_remote_root_cannot_vouch_for_a_local_path(
    server_run: tuple[SqlTrackingStore, Run],
) -> None:
    store, run = server_run
    _refused("/etc/passwd", run.info.run_id, store, "To use a local path")


@pytest.mark.parametrize(
    "source",
    [
        "s3://bucket/models/m1",
        "s3a://bucket/path/model",
        "gs://bucket/model",
        "https://models.example.com/iris/1",
        "ftp://files.example.com/model",
        "wasbs://container@account.blob.core.windows.net/model",
        "hdfs:///models/iris",
    ],
)
def test_remote_sources_are_accepted(tracking: SqlTrackingStore, source: str) -> None:
    assert validate_source(source, None, None, tracking) is SourceKind.REMOTE


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("s3://bucket/models/../../other", "relative path references"),
        ("s3://bucket/models/%2e%2e/other", "relative path references"),
        ("https://host/a/%252e%252e/%252e%252e/etc", "relative path references"),
        ("http://host:5000/api/2.0/mlflow-artifacts/artifacts/../../../../", "relative path"),
        ("mlflow-artifacts://host:5000/..%2f..%2f..%2f..%2f", "relative path references"),
        ("http://host:5000/api/2.0/mlflow-artifacts/artifacts%00", "NUL bytes"),
        ("s3://bucket/a\x07b", "control characters"),
        ("http:///#/../../../../etc/", "relative path references"),
        ("https://host/model?x=../../etc", "relative path references"),
        ("https://host/model?x=1", "'\\?' and '#' are not allowed"),
        ("https://host/model#frag", "'\\?' and '#' are not allowed"),
        ("https:///model", "needs a host"),
        ("s3:///model", "needs a host"),
        ("dbfs:/etc", "scheme 'dbfs' is not supported"),
        ("jar:file:///x!/y", "scheme 'jar' is not supported"),
        ("gopher://host/x", "is not supported"),
    ],
)
def test_bad_remote_sources(tracking: SqlTrackingStore, source: str, match: str) -> None:
    _refused(source, None, tracking, match)


def test_runs_uris(tracking: SqlTrackingStore, local_run: Run) -> None:
    rid = local_run.info.run_id
    assert validate_source(f"runs:/{rid}/model", None, None, tracking) is SourceKind.RUNS
    assert validate_source(f"runs:/{rid}/model", rid, None, tracking) is SourceKind.RUNS
    assert validate_source(f"runs:/{rid}", None, None, tracking) is SourceKind.RUNS
    for source, match in [
        (f"runs:/{rid}/../../etc", "relative path references"),
        (f"runs:/{rid}/%2e%2e/x", "relative path references"),
        (f"runs:/{rid}//etc/passwd", "absolute paths"),
        (f"runs://host/{rid}/model", "Use runs:/"),
        ("runs:/bad id/model", "not a valid run id"),
        ("runs:/", "not a valid run id"),
        (f"runs:/{rid}/model", "must identify the resource"),
    ]:
        run_id = "f" * 32 if "identify" in match else None
        _refused(source, run_id, tracking, match)


def test_models_uris(tracking: SqlTrackingStore) -> None:
    for source in (
        "models:/iris/3",
        "models:/iris/Production",
        "models:/iris/latest",
        "models:/iris@champion",
        "models:/m-0123456789abcdef0123456789abcdef",
    ):
        assert validate_source(source, None, None, tracking) is SourceKind.MODELS
    for source, match in [
        ("models://host/iris/1", "Use models:/"),
        ("models:/", "Use models:/"),
        ("models:/iris/1/extra", "Use models:/"),
        ("models:/iris/../1", "relative path references"),
        ("models:/iris@bad alias", "Invalid alias name"),
        ("models:/iris?x=1", "'\\?' and '#'"),
    ]:
        _refused(source, None, tracking, match)


def test_proxied_sources_must_lie_in_the_run(server_run: tuple[SqlTrackingStore, Run]) -> None:
    store, run = server_run
    root = run.info.artifact_uri
    assert root.startswith("mlflow-artifacts:/")
    rid = run.info.run_id
    assert validate_source(f"{root}/model", rid, None, store) is SourceKind.PROXIED
    assert is_proxied("http://h:5000/api/2.0/mlflow-artifacts/artifacts/0/x")
    assert not is_proxied("https://h/other/0/x")
    other = store.create_run("0").info.artifact_uri
    for source, run_id in [
        (f"{root}/model", None),
        (f"{other}/model", rid),
        ("mlflow-artifacts:/0", rid),
        ("http://h:5000/api/2.0/mlflow-artifacts/artifacts/0/x", rid),
    ]:
        _refused(source, run_id, store, "must identify the resource that contains the source")


def test_tags_play_no_part(tracking: SqlTrackingStore) -> None:
    """CVE-2026-2614: a prompt tag once switched the check off; the check takes no tags."""
    import inspect

    assert list(inspect.signature(validate_source).parameters) == [
        "source",
        "run_id",
        "model_id",
        "tracking",
    ]


def test_shape_of_input(tracking: SqlTrackingStore) -> None:
    for bad in ("", "   ", None, 5):
        with pytest.raises(InvalidParameterValue, match="source"):
            validate_source(bad, None, None, tracking)
    with pytest.raises(InvalidParameterValue, match="maximum length"):
        validate_source("s3://b/" + "x" * 2000, None, None, tracking)
    deep = "%2e%2e"
    for _ in range(10):
        deep = quote(deep)
    with pytest.raises(InvalidParameterValue, match="too many levels"):
        validate_source(f"s3://b/{deep}", None, None, tracking)
    assert os.sep == "/"  # these tests describe POSIX paths
