"""The HTTP artifact store against a live tracking server: the shared contract (the same tests
the local and S3 stores pass), URI resolution, error mapping, and cooperation with the server's
other routes."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from slipway.artifacts import (
    ArtifactRepository,
    FileInfo,
    HttpArtifactRepository,
    get_artifact_repository,
)
from slipway.artifacts.http import PROXY_PATH, resolve_proxy_uri
from slipway.exceptions import (
    InvalidParameterValue,
    NotImplementedFeature,
    ResourceDoesNotExist,
    SlipwayError,
    TemporarilyUnavailable,
)
from slipway.server import ServerSettings, create_app
from slipway.tracking import uri as uris

from . import test_contract as contract
from .helpers import ChunkedStream, make_tree, pattern, read_tree

# The store contract, run here against the HTTP store (the ``repo`` fixture below).
test_log_artifact_and_list = contract.test_log_artifact_and_list
test_listing_a_file_or_nothing_is_empty = contract.test_listing_a_file_or_nothing_is_empty
test_log_artifacts_and_download_directories = contract.test_log_artifacts_and_download_directories
test_log_artifacts_into_the_root = contract.test_log_artifacts_into_the_root
test_download_one_file = contract.test_download_one_file
test_download_into_a_new_temporary_directory = contract.test_download_into_a_new_temporary_directory
test_download_of_nothing = contract.test_download_of_nothing
test_list_paging = contract.test_list_paging
test_bad_page_tokens = contract.test_bad_page_tokens
test_bad_max_results = contract.test_bad_max_results
test_log_bytes_open_and_overwrite = contract.test_log_bytes_open_and_overwrite
test_open_what_is_not_a_file = contract.test_open_what_is_not_a_file
test_write_stream_reads_in_bounded_chunks = contract.test_write_stream_reads_in_bounded_chunks
test_failed_stream_leaves_no_file = contract.test_failed_stream_leaves_no_file
test_delete = contract.test_delete
test_attack_shapes_are_refused_everywhere = contract.test_attack_shapes_are_refused_everywhere


class Server:
    def __init__(self, url: str, destination: Path) -> None:
        self.url = url
        self.destination = destination


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A tracking server of its own (uvicorn in a thread, on a free loopback port)."""
    import uvicorn

    root = tmp_path_factory.mktemp("http-store")
    settings = ServerSettings(
        backend_store_uri=str(root / "store"), artifacts_destination=str(root / "artifacts")
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, name="http-store-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield Server(f"http://127.0.0.1:{port}", root / "artifacts")
    runner.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def tracking_uri(server: Server) -> Iterator[str]:
    """The tracking URI in effect set to the server, for ``mlflow-artifacts:`` roots."""
    uris.set_tracking_uri(server.url)
    yield server.url
    uris.set_tracking_uri(None)


@pytest.fixture(params=["http", "mlflow-artifacts"])
def repo(request: pytest.FixtureRequest, server: Server) -> ArtifactRepository:
    space = f"contract/{uuid.uuid4().hex[:12]}/artifacts"
    if request.param == "http":
        built = get_artifact_repository(f"{server.url}{PROXY_PATH}/{space}")
    else:
        request.getfixturevalue("tracking_uri")
        built = get_artifact_repository(f"mlflow-artifacts:/{space}")
        assert built.root_uri == f"{server.url}{PROXY_PATH}/{space}"
    assert isinstance(built, HttpArtifactRepository)
    return built


def new_space(server: Server) -> tuple[HttpArtifactRepository, Path]:
    space = f"extra/{uuid.uuid4().hex[:12]}"
    return HttpArtifactRepository(f"{server.url}{PROXY_PATH}/{space}"), server.destination / space


# -- URI resolution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "tracking", "expected"),
    [
        (
            "mlflow-artifacts:/0/abc/artifacts",
            "http://host:5000",
            f"http://host:5000{PROXY_PATH}/0/abc/artifacts",
        ),
        ("mlflow-artifacts:/", "https://host", f"https://host{PROXY_PATH}"),
        ("mlflow-artifacts:", "http://host:5000/", f"http://host:5000{PROXY_PATH}"),
        (
            "mlflow-artifacts://other:6000/0/abc",
            "https://host:5000",
            f"https://other:6000{PROXY_PATH}/0/abc",
        ),
        (
            "mlflow-artifacts://other:6000/0/abc",
            "./.slipway",
            f"http://other:6000{PROXY_PATH}/0/abc",
        ),
        (
            "mlflow-artifacts:/x",
            "http://host/prefix/mlflow/",
            f"http://host/prefix/mlflow{PROXY_PATH}/x",
        ),
        (
            "mlflow-artifacts:/a b/%41",
            "http://host",
            f"http://host{PROXY_PATH}/a%20b/%2541",
        ),
    ],
)
def test_resolve_proxy_uri(uri: str, tracking: str, expected: str) -> None:
    assert resolve_proxy_uri(uri, tracking) == expected


def test_a_proxy_uri_needs_a_server_to_resolve_against(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPWAY_TRACKING_URI", raising=False)
    uris.set_tracking_uri(None)
    with pytest.raises(NotImplementedFeature, match="tracking server") as caught:
        get_artifact_repository("mlflow-artifacts:/0/abc")
    assert caught.value.error_code == "NOT_IMPLEMENTED"
    with pytest.raises(NotImplementedFeature):
        resolve_proxy_uri("mlflow-artifacts:/0/abc", "sqlite:///x.db")


def test_the_tracking_uri_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    uris.set_tracking_uri(None)
    monkeypatch.setenv("SLIPWAY_TRACKING_URI", "http://tracking.example:5000")
    built = get_artifact_repository("mlflow-artifacts:/1/r/artifacts")
    assert built.root_uri == f"http://tracking.example:5000{PROXY_PATH}/1/r/artifacts"


@pytest.mark.parametrize(
    "uri",
    [
        "http://server:5000/api",
        "https://server/api/2.0/mlflow-artifacts/artifactsX",
        "http://server/files/x",
    ],
)
def test_http_roots_must_be_proxy_urls(uri: str) -> None:
    with pytest.raises(NotImplementedFeature, match="artifact proxy URL"):
        get_artifact_repository(uri)


@pytest.mark.parametrize(
    "uri",
    [
        f"http://server{PROXY_PATH}/a/../../etc",
        f"http://server{PROXY_PATH}/%2e%2e/x",
        f"http://server{PROXY_PATH}/%252e%252e/x",
        f"http://server{PROXY_PATH}/x?y=1",
        f"http://server{PROXY_PATH}/x#/../..",
        f"http://server{PROXY_PATH}/a%5cb",
        "mlflow-artifacts:/x/../../etc",
        "mlflow-artifacts:/x%00",
        "mlflow-artifacts:/x?../..",
        "mlflow-artifacts:/x#/../..",
        "mlflow-artifacts://:5000/x",
    ],
)
def test_unsafe_roots_are_refused(uri: str, tracking_uri: str) -> None:
    with pytest.raises(InvalidParameterValue):
        get_artifact_repository(uri)


def test_root_uri_names_a_path_under_the_proxy(server: Server) -> None:
    repo = HttpArtifactRepository(f"{server.url}{PROXY_PATH}/0/r%20x/artifacts")
    assert (repo.base_url, repo.prefix) == (server.url, "0/r x/artifacts")
    top = HttpArtifactRepository(f"{server.url}{PROXY_PATH}")
    assert top.prefix == ""
    assert repr(top) == f"HttpArtifactRepository('{server.url}{PROXY_PATH}')"


# -- behaviour against the server ------------------------------------------------------------


def test_files_land_in_the_server_destination(server: Server, tmp_path: Path) -> None:
    repo, on_disk = new_space(server)
    tree = {"model/MLmodel": b"flavors: {}", "model/data/w.bin": bytes(range(256)), "x.txt": b"x"}
    repo.log_artifacts(make_tree(tmp_path / "src", tree))
    assert read_tree(on_disk) == tree


def test_names_that_need_encoding(server: Server, tmp_path: Path) -> None:
    repo, on_disk = new_space(server)
    names = ["a b.txt", "100%.txt", "naïve.txt", "a%20b.txt", "plus+sign&amp=.txt", "~tilde"]
    for name in names:
        repo.log_bytes(name.encode(), f"dir/{name}")
    assert sorted(p.name for p in (on_disk / "dir").iterdir()) == sorted(names)
    assert [info.path for info in repo.list_artifacts("dir")] == sorted(f"dir/{n}" for n in names)
    for name in names:
        with repo.open_artifact(f"dir/{name}") as stream:
            assert stream.read() == name.encode()
    local = repo.download_artifacts("dir", tmp_path / "dst")
    assert read_tree(local) == {name: name.encode() for name in names}


def test_large_stream_round_trip(server: Server, tmp_path: Path) -> None:
    repo, on_disk = new_space(server)
    size = 24 * 1024 * 1024 + 11
    stream = ChunkedStream(size, max_read=2 << 20)
    repo.write_artifact_stream("big.bin", stream)  # type: ignore[arg-type]
    assert (on_disk / "big.bin").stat().st_size == size
    local = repo.download_artifacts("big.bin", tmp_path / "dst")
    assert local.read_bytes() == pattern(0, size)
    with repo.open_artifact("big.bin") as opened:
        assert opened.read(10) == pattern(0, 10)  # closing early drops the rest


def test_open_artifact_streams(server: Server) -> None:
    repo, _ = new_space(server)
    repo.log_bytes(b"abcdefgh" * 1000, "f.bin")
    with repo.open_artifact("f.bin") as stream:
        assert stream.read(3) == b"abc"
        assert stream.read(5) == b"defgh"
        rest = stream.read()
    assert len(rest) == 8000 - 8
    # The connection went back to the pool and serves the next request.
    assert repo.list_artifacts() == [FileInfo("f.bin", False, 8000)]


def test_delete_everything_at_the_proxy_root(server: Server) -> None:
    """A repository rooted at the proxy itself deletes entry by entry: the server refuses to
    delete its whole destination in one request."""
    top = HttpArtifactRepository(f"{server.url}{PROXY_PATH}")
    scratch = f"scratch-{uuid.uuid4().hex[:10]}"
    top.log_bytes(b"x", f"{scratch}/f.txt")
    assert FileInfo(scratch, True) in top.list_artifacts()
    top.delete_artifacts(scratch)
    assert FileInfo(scratch, True) not in top.list_artifacts()
    assert (server.destination).is_dir()


def test_server_errors_become_slipway_errors(server: Server) -> None:
    repo, _ = new_space(server)
    repo.log_bytes(b"x", "dir/f.txt")
    with pytest.raises(ResourceDoesNotExist, match="No artifact"):
        repo.open_artifact("dir/missing.txt")
    with pytest.raises(InvalidParameterValue, match="directory"):
        repo.log_bytes(b"over a directory", "dir")


def test_an_unreachable_server(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    repo = HttpArtifactRepository(f"http://127.0.0.1:{port}{PROXY_PATH}/x", timeout=(0.5, 0.5))
    with pytest.raises(TemporarilyUnavailable, match="Could not reach"):
        repo.list_artifacts()
    with pytest.raises(TemporarilyUnavailable):
        repo.write_artifact_stream("f", io.BytesIO(b"data"))


def test_an_unknown_endpoint_is_an_error_with_its_status(server: Server) -> None:
    repo = HttpArtifactRepository(f"{server.url}/nothing-here{PROXY_PATH}/x")
    with pytest.raises(SlipwayError) as caught:
        repo.open_artifact("f.txt")
    assert (caught.value.error_code, caught.value.http_status) == ("ENDPOINT_NOT_FOUND", 404)


def test_credentials_are_sent(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _ = new_space(server)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "mlflow-token")
    assert repo._auth_headers() == {"Authorization": "Bearer mlflow-token"}
    monkeypatch.setenv("SLIPWAY_TRACKING_TOKEN", "slipway-token")
    assert repo._auth_headers() == {"Authorization": "Bearer slipway-token"}
    monkeypatch.delenv("SLIPWAY_TRACKING_TOKEN")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("SLIPWAY_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("SLIPWAY_TRACKING_PASSWORD", "secret")
    assert repo._auth_headers() == {"authorization": "Basic YW5uOnNlY3JldA=="}
    repo.log_bytes(b"still works", "f.txt")  # this server ignores credentials


class HostileProxy(http.server.BaseHTTPRequestHandler):
    """A server that lists names no store may hold, and fails in plain text elsewhere."""

    LISTING: ClassVar[list[dict[str, object]]] = [
        {"path": "../escape.txt", "is_dir": False, "file_size": 1},
        {"path": "/etc/passwd", "is_dir": False, "file_size": 1},
        {"path": "a/b.txt", "is_dir": False, "file_size": 1},
        {"path": "..", "is_dir": True},
        {"path": "sub\\..\\..", "is_dir": True},
        {"path": "ok.txt", "is_dir": False, "file_size": "2"},
    ]

    def do_GET(self) -> None:
        if self.path.startswith(f"{PROXY_PATH}?"):
            self._answer(200, "application/json", json.dumps({"files": self.LISTING}).encode())
        elif self.path == f"{PROXY_PATH}/root/ok.txt":
            self._answer(200, "application/octet-stream", b"ok")
        else:
            self._answer(500, "text/plain", b"boom")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileProxy)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_server_listing_cannot_smuggle_paths(hostile_url: str, tmp_path: Path) -> None:
    """Names a server lists are checked like any other path before they are used."""
    repo = HttpArtifactRepository(f"{hostile_url}{PROXY_PATH}/root")
    assert repo.list_artifacts() == [FileInfo("ok.txt", False, 2)]
    local = repo.download_artifacts("", tmp_path / "dst")
    assert read_tree(local) == {"ok.txt": b"ok"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst"]


def test_a_plain_text_error_keeps_its_status(hostile_url: str) -> None:
    repo = HttpArtifactRepository(f"{hostile_url}{PROXY_PATH}/root")
    with pytest.raises(SlipwayError, match="answered 500: boom") as caught:
        repo.open_artifact("other.txt")
    assert caught.value.error_code == "INTERNAL_ERROR"


def test_a_refused_large_upload_reports_the_refusal(server: Server) -> None:
    """The server answers before reading the body; the client reports that answer."""
    repo, _ = new_space(server)
    repo.log_bytes(b"x", "dir/f.txt")
    with pytest.raises(InvalidParameterValue, match="directory"):
        repo.write_artifact_stream("dir", ChunkedStream(64 * 1024 * 1024))  # type: ignore[arg-type]


def test_an_explicit_tracking_uri_wins(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_TRACKING_URI", "http://elsewhere:1")
    built = get_artifact_repository("mlflow-artifacts:/0/r/artifacts", tracking_uri=server.url)
    assert built.root_uri == f"{server.url}{PROXY_PATH}/0/r/artifacts"


def test_the_slipway_sdk_logs_through_the_proxy(
    server: Server, tracking_dir: Path, tmp_path: Path
) -> None:
    """Runs on the server get ``mlflow-artifacts:/`` roots; the SDK reaches them over HTTP."""
    import slipway

    slipway.set_tracking_uri(server.url)  # tracking_dir restores the fluent API's state after

    source = make_tree(tmp_path / "src", {"f.txt": b"file", "d/g.txt": b"nested"})
    with slipway.start_run() as run:
        slipway.log_artifact(source / "f.txt", "one")
        slipway.log_artifacts(source, "all")
        slipway.log_text("text", "notes/t.txt")
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")

    on_disk = server.destination / run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    assert read_tree(on_disk) == {
        "one/f.txt": b"file",
        "all/f.txt": b"file",
        "all/d/g.txt": b"nested",
        "notes/t.txt": b"text",
    }
    client = slipway.SlipwayClient(server.url)
    assert [info.path for info in client.list_artifacts(run.info.run_id)] == ["all", "notes", "one"]
    local = client.download_artifacts(run.info.run_id, "all", tmp_path / "dst")
    assert read_tree(local) == {"f.txt": b"file", "d/g.txt": b"nested"}
