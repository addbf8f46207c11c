"""The artifact routes over raw HTTP against the live server: the proxy, the tracking API's
listing, ``/get-artifact``, ``/upload-artifact``, path attacks, and streaming in bounded memory.

Requests go through :mod:`http.client`, which sends the request target exactly as written (no
dot-segment clean-up, no re-encoding), so every attack reaches the server as the attacker wrote it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psutil
import pytest

from slipway.server import ServerSettings, create_app
from slipway.server.context import ServerContext

from .conftest import LiveServer, free_port

PROXY = "/api/2.0/mlflow-artifacts/artifacts"
API_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
SENTINEL = b"must never change"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    server: LiveServer,
    method: str,
    target: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        headers = headers or {}
        chunked = headers.get("Transfer-Encoding") == "chunked"
        conn.request(method, target, body=body, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def destination(server: LiveServer) -> Path:
    return Path(server.settings.artifacts_destination or "")


def context(server: LiveServer) -> ServerContext:
    ctx = server.app.state.context
    assert isinstance(ctx, ServerContext)
    return ctx


@pytest.fixture
def space() -> str:
    """A fresh directory name in the artifacts destination, one per test."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def run_id(live_server: LiveServer) -> str:
    """A new run in the Default experiment, made through the server's own store."""
    run = context(live_server).store.create_run("0", run_name="artifact-routes")
    assert run.info.artifact_uri == f"mlflow-artifacts:/0/{run.info.run_id}/artifacts"
    return run.info.run_id


def run_dir(server: LiveServer, run_id: str) -> Path:
    return destination(server) / "0" / run_id / "artifacts"


def put(server: LiveServer, rel: str, data: bytes) -> None:
    answer = call(server, "PUT", f"{PROXY}/{rel}", data)
    assert answer.status == 200, answer.body
    assert answer.json() == {}


# -- the proxy ------------------------------------------------------------------------------


def test_proxy_round_trip(live_server: LiveServer, space: str) -> None:
    put(live_server, f"{space}/dir/data.bin", b"\x00\x01binary")
    put(live_server, f"{space}/dir/sub/notes.txt", b"hello")
    put(live_server, f"{space}/top.txt", b"top")

    assert (destination(live_server) / space / "dir" / "data.bin").read_bytes() == b"\x00\x01binary"

    got = call(live_server, "GET", f"{PROXY}/{space}/dir/data.bin")
    assert got.status == 200
    assert got.body == b"\x00\x01binary"
    assert got.headers["content-length"] == "8"

    listing = call(live_server, "GET", f"{PROXY}?path={space}")
    assert listing.status == 200
    assert listing.json() == {
        "files": [
            {"path": "dir", "is_dir": True},
            {"path": "top.txt", "is_dir": False, "file_size": 3},
        ]
    }
    nested = call(live_server, "GET", f"{PROXY}?path={space}/dir").json()
    assert nested == {
        "files": [
            {"path": "data.bin", "is_dir": False, "file_size": 8},
            {"path": "sub", "is_dir": True},
        ]
    }

    deleted = call(live_server, "DELETE", f"{PROXY}/{space}/dir")
    assert deleted.status == 200
    assert deleted.json() == {}
    assert call(live_server, "GET", f"{PROXY}?path={space}").json() == {
        "files": [{"path": "top.txt", "is_dir": False, "file_size": 3}]
    }
    assert not (destination(live_server) / space / "dir").exists()


def test_proxy_listing_of_a_file_or_nothing_is_empty(live_server: LiveServer, space: str) -> None:
    put(live_server, f"{space}/f.txt", b"x")
    for path in (f"{space}/f.txt", f"{space}/missing", "no-such-dir-at-all"):
        answer = call(live_server, "GET", f"{PROXY}?path={path}")
        assert answer.status == 200
        assert answer.json() == {"files": []}


def test_proxy_listing_refuses_unknown_fields(live_server: LiveServer) -> None:
    answer = call(live_server, "GET", f"{PROXY}?path=x&bogus=1")
    assert answer.status == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "bogus" in answer.json()["message"]


def test_overwrite_replaces_the_file(live_server: LiveServer, space: str) -> None:
    put(live_server, f"{space}/a.txt", b"first version")
    put(live_server, f"{space}/a.txt", b"second")
    assert call(live_server, "GET", f"{PROXY}/{space}/a.txt").body == b"second"


def test_chunked_upload(live_server: LiveServer, space: str) -> None:
    def pieces() -> Iterator[bytes]:
        for index in range(5):
            yield f"piece {index};".encode()

    answer = call(
        live_server,
        "PUT",
        f"{PROXY}/{space}/chunked.txt",
        pieces(),
        {"Transfer-Encoding": "chunked"},
    )
    assert answer.status == 200, answer.body
    expected = b"".join(pieces())
    assert call(live_server, "GET", f"{PROXY}/{space}/chunked.txt").body == expected


def test_empty_upload_to_the_proxy_stores_an_empty_file(
    live_server: LiveServer, space: str
) -> None:
    put(live_server, f"{space}/empty", b"")
    got = call(live_server, "GET", f"{PROXY}/{space}/empty")
    assert (got.status, got.body, got.headers["content-length"]) == (200, b"", "0")


def test_names_that_need_encoding_round_trip(live_server: LiveServer, space: str) -> None:
    name = "naïve résumé 100%.txt"
    put(live_server, f"{space}/{quote(name)}", b"unicode")
    assert (destination(live_server) / space / name).read_bytes() == b"unicode"
    got = call(live_server, "GET", f"{PROXY}/{space}/{quote(name)}")
    assert got.body == b"unicode"
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert "filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9%20100%25.txt" in disposition
    listing = call(live_server, "GET", f"{PROXY}?path={space}").json()
    assert listing["files"] == [{"path": name, "is_dir": False, "file_size": 7}]


def test_missing_files_and_directories_are_404(live_server: LiveServer, space: str) -> None:
    put(live_server, f"{space}/dir/f.txt", b"x")
    for rel in (f"{space}/missing.txt", f"{space}/dir"):
        answer = call(live_server, "GET", f"{PROXY}/{rel}")
        assert answer.status == 404
        assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_deleting_what_is_not_there_is_fine(live_server: LiveServer, space: str) -> None:
    answer = call(live_server, "DELETE", f"{PROXY}/{space}/never/was")
    assert (answer.status, answer.json()) == (200, {})


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("target", [f"{PROXY}/", f"{PROXY}/.", f"{PROXY}/./"])
def test_the_destination_root_is_not_a_file(
    live_server: LiveServer, space: str, method: str, target: str
) -> None:
    put(live_server, f"{space}/survivor.txt", b"alive")
    answer = call(live_server, method, target, b"evil" if method == "PUT" else None)
    assert answer.status == 400
    assert answer.json()["message"].startswith("Invalid path")
    assert (destination(live_server) / space / "survivor.txt").read_bytes() == b"alive"


def test_uploading_over_a_directory_is_refused(live_server: LiveServer, space: str) -> None:
    put(live_server, f"{space}/dir/f.txt", b"x")
    answer = call(live_server, "PUT", f"{PROXY}/{space}/dir", b"evil")
    assert answer.status == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert (destination(live_server) / space / "dir" / "f.txt").read_bytes() == b"x"


def test_multipart_upload_is_declined_in_words_mlflow_understands(
    live_server: LiveServer, space: str
) -> None:
    for action in ("create", "complete", "abort"):
        answer = call(
            live_server, "POST", f"/api/2.0/mlflow-artifacts/mpu/{action}/{space}/f", b"{}"
        )
        assert answer.status == 501
        assert answer.json()["error_code"] == "NOT_IMPLEMENTED"
        assert answer.json()["message"].startswith(
            "Multipart upload is not supported for the current artifact repository"
        )


# -- downloads are attachments with a safe content type ----------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("page.html", "text/plain; charset=utf-8"),
        ("page.HTM", "text/plain; charset=utf-8"),
        ("image.svg", "text/plain; charset=utf-8"),
        ("script.js", "text/plain; charset=utf-8"),
        ("data.json", "text/plain; charset=utf-8"),
        ("MLmodel", "text/plain; charset=utf-8"),
        ("plot.png", "image/png"),
        ("photo.JPG", "image/jpeg"),
        ("model.pkl", "application/octet-stream"),
        ("no_extension", "application/octet-stream"),
        (".hidden", "application/octet-stream"),
    ],
)
def test_download_headers(
    live_server: LiveServer, space: str, run_id: str, name: str, content_type: str
) -> None:
    put(live_server, f"{space}/{name}", b"<html><script>alert(1)</script></html>")
    put(live_server, f"0/{run_id}/artifacts/{name}", b"<html><script>alert(1)</script></html>")
    for target in (
        f"{PROXY}/{space}/{name}?content_type=text/html",
        f"/get-artifact?run_id={run_id}&path={name}&content_type=text/html",
    ):
        answer = call(live_server, "GET", target, headers={"Accept": "text/html"})
        assert answer.status == 200
        assert answer.headers["content-type"] == content_type
        assert answer.headers["content-disposition"] == f'attachment; filename="{name}"'
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "text/html" not in answer.headers["content-type"]


def test_a_quote_in_a_name_cannot_break_the_header(live_server: LiveServer, space: str) -> None:
    encoded = quote('we"ird;name.txt')
    put(live_server, f"{space}/{encoded}", b"x")
    answer = call(live_server, "GET", f"{PROXY}/{space}/{encoded}")
    assert answer.headers["content-disposition"].startswith(
        'attachment; filename="we_ird_name.txt"'
    )


# -- the tracking API's listing ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", API_PREFIXES)
def test_list_run_artifacts(live_server: LiveServer, run_id: str, prefix: str) -> None:
    put(live_server, f"0/{run_id}/artifacts/model/MLmodel", b"flavors: {}\n")
    put(live_server, f"0/{run_id}/artifacts/model/data/weights.bin", b"1234")
    put(live_server, f"0/{run_id}/artifacts/metrics.json", b"{}")
    root_uri = f"mlflow-artifacts:/0/{run_id}/artifacts"

    top = call(live_server, "GET", f"{prefix}/artifacts/list?run_id={run_id}")
    assert top.status == 200
    assert top.json() == {
        "root_uri": root_uri,
        "files": [
            {"path": "metrics.json", "is_dir": False, "file_size": 2},
            {"path": "model", "is_dir": True},
        ],
    }
    model = call(live_server, "GET", f"{prefix}/artifacts/list?run_uuid={run_id}&path=model")
    assert model.json() == {
        "root_uri": root_uri,
        "files": [
            {"path": "model/MLmodel", "is_dir": False, "file_size": 12},
            {"path": "model/data", "is_dir": True},
        ],
    }
    deeper = call(
        live_server, "GET", f"{prefix}/artifacts/list?run_id={run_id}&path=./model//data/"
    )
    assert deeper.json()["files"] == [
        {"path": "model/data/weights.bin", "is_dir": False, "file_size": 4}
    ]


def test_list_run_artifacts_of_an_empty_run(live_server: LiveServer, run_id: str) -> None:
    answer = call(live_server, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")
    assert answer.json() == {"root_uri": f"mlflow-artifacts:/0/{run_id}/artifacts", "files": []}


def test_list_run_artifacts_page_token(live_server: LiveServer, run_id: str) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        put(live_server, f"0/{run_id}/artifacts/{name}", b"x")
    everything = call(live_server, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")
    assert "next_page_token" not in everything.json()
    bad = call(live_server, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&page_token=zz")
    assert bad.status == 400
    assert "page token" in bad.json()["message"]


def test_list_run_artifacts_errors(live_server: LiveServer, run_id: str) -> None:
    unknown = call(live_server, "GET", "/api/2.0/mlflow/artifacts/list?run_id=doesnotexist")
    assert unknown.status == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    no_run = call(live_server, "GET", "/api/2.0/mlflow/artifacts/list?path=x")
    assert no_run.status == 400
    assert "run_id" in no_run.json()["message"]

    bad_path = call(live_server, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=../x")
    assert bad_path.status == 400
    assert bad_path.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert bad_path.json()["message"].startswith("Invalid path")

    # The path is checked before the run is looked up, as MLflow does.
    both = call(live_server, "GET", "/api/2.0/mlflow/artifacts/list?run_id=nope&path=%2e%2e/x")
    assert both.status == 400


def test_http_run_roots_pointing_at_the_proxy_are_served(
    live_server: LiveServer, space: str
) -> None:
    store = context(live_server).store
    experiment_id = store.create_experiment(
        f"http-root-{space}", artifact_location=f"{live_server.url}{PROXY}/{space}"
    )
    run = store.create_run(experiment_id)
    put(live_server, f"{space}/{run.info.run_id}/artifacts/f.txt", b"via http root")
    listing = call(live_server, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run.info.run_id}")
    assert listing.json()["files"] == [{"path": "f.txt", "is_dir": False, "file_size": 13}]
    got = call(live_server, "GET", f"/get-artifact?run_id={run.info.run_id}&path=f.txt")
    assert got.body == b"via http root"


def test_http_run_roots_elsewhere_are_not_fetched(live_server: LiveServer, space: str) -> None:
    store = context(live_server).store
    experiment_id = store.create_experiment(
        f"elsewhere-{space}", artifact_location="http://169.254.169.254/latest/meta-data"
    )
    run = store.create_run(experiment_id)
    answer = call(live_server, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run.info.run_id}")
    assert answer.status == 501
    assert answer.json()["error_code"] == "NOT_IMPLEMENTED"


@pytest.fixture(scope="module")
def local_roots_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A second server that does not proxy: runs keep plain local artifact folders."""
    import uvicorn

    root = tmp_path_factory.mktemp("no-proxy")
    settings = ServerSettings(
        backend_store_uri=str(root / "store"),
        artifacts_destination=str(root / "artifacts"),
        serve_artifacts=False,
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="no-proxy-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", root, settings, app)
    server.should_exit = True
    thread.join(timeout=10)


def test_local_run_roots_without_the_proxy(local_roots_server: LiveServer) -> None:
    server = local_roots_server
    run = context(server).store.create_run("0")
    run_id = run.info.run_id
    assert not run.info.artifact_uri.startswith("mlflow-artifacts:")
    target = f"/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_id}&path=d/f.txt"
    assert call(server, "POST", target, b"local bytes").status == 200
    assert (Path(run.info.artifact_uri) / "d" / "f.txt").read_bytes() == b"local bytes"
    listing = call(server, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=d")
    assert listing.json()["files"] == [{"path": "d/f.txt", "is_dir": False, "file_size": 11}]
    assert call(server, "GET", f"/get-artifact?run_id={run_id}&path=d/f.txt").body == b"local bytes"
    # Without --serve-artifacts there is no proxy.
    assert call(server, "GET", f"{PROXY}?path=0").status == 404


# -- /get-artifact and /model-versions/get-artifact --------------------------------------------


def test_get_artifact(live_server: LiveServer, run_id: str) -> None:
    put(live_server, f"0/{run_id}/artifacts/dir/result.csv", b"a,b\n1,2\n")
    for key in ("run_id", "run_uuid"):
        answer = call(live_server, "GET", f"/get-artifact?{key}={run_id}&path=dir/result.csv")
        assert answer.status == 200
        assert answer.body == b"a,b\n1,2\n"
        assert answer.headers["content-disposition"] == 'attachment; filename="result.csv"'
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_get_artifact_errors(live_server: LiveServer, run_id: str) -> None:
    missing_file = call(live_server, "GET", f"/get-artifact?run_id={run_id}&path=nope.txt")
    assert missing_file.status == 404
    assert missing_file.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    unknown_run = call(live_server, "GET", "/get-artifact?run_id=nope&path=a.txt")
    assert unknown_run.status == 404

    for query in (f"run_id={run_id}", f"run_id={run_id}&path=", "path=a.txt"):
        answer = call(live_server, "GET", f"/get-artifact?{query}")
        assert answer.status == 400, query
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_model_version_artifacts_of_an_unknown_model(live_server: LiveServer) -> None:
    # Served files of real versions are tested in test_registry_api.py.
    answer = call(live_server, "GET", "/model-versions/get-artifact?name=m&version=1&path=MLmodel")
    assert answer.status == 404
    assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "name=m" in answer.json()["message"]

    bad = call(live_server, "GET", "/model-versions/get-artifact?name=m&version=1&path=../../x")
    assert bad.status == 400
    assert bad.json()["message"].startswith("Invalid path")

    no_name = call(live_server, "GET", "/model-versions/get-artifact?version=1&path=MLmodel")
    assert no_name.status == 400


# -- /ajax-api/2.0/mlflow/upload-artifact ------------------------------------------------------


def test_upload_artifact(live_server: LiveServer, run_id: str) -> None:
    target = f"/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_id}&path=images/plot.png"
    answer = call(live_server, "POST", target, b"\x89PNG fake")
    assert (answer.status, answer.json()) == (200, {})
    assert (run_dir(live_server, run_id) / "images" / "plot.png").read_bytes() == b"\x89PNG fake"
    got = call(live_server, "GET", f"/get-artifact?run_id={run_id}&path=images/plot.png")
    assert got.body == b"\x89PNG fake"
    assert got.headers["content-type"] == "image/png"


def test_upload_artifact_is_not_held_to_the_json_body_limit(
    live_server: LiveServer, run_id: str
) -> None:
    size = live_server.settings.max_request_bytes + 1024 * 1024
    data = bytes(range(256)) * (size // 256)
    target = f"/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_id}&path=big.bin"
    answer = call(live_server, "POST", target, data)
    assert answer.status == 200, answer.body
    stored = run_dir(live_server, run_id) / "big.bin"
    assert stored.stat().st_size == len(data)
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_upload_artifact_errors(live_server: LiveServer, run_id: str) -> None:
    base = "/ajax-api/2.0/mlflow/upload-artifact"
    cases = {
        f"{base}?path=a.txt": "run_uuid",
        f"{base}?run_uuid={run_id}": "path",
        f"{base}?run_uuid={run_id}&path=": "path",
    }
    for target, field in cases.items():
        answer = call(live_server, "POST", target, b"data")
        assert answer.status == 400, target
        assert field in answer.json()["message"]

    unknown = call(live_server, "POST", f"{base}?run_uuid=nope&path=a.txt", b"data")
    assert unknown.status == 404

    empty = call(live_server, "POST", f"{base}?run_uuid={run_id}&path=empty.txt", b"")
    assert empty.status == 400
    assert "empty" in empty.json()["message"]

    def nothing() -> Iterator[bytes]:
        yield from ()

    chunked_empty = call(
        live_server,
        "POST",
        f"{base}?run_uuid={run_id}&path=empty2.txt",
        nothing(),
        {"Transfer-Encoding": "chunked"},
    )
    assert chunked_empty.status == 400
    assert not (run_dir(live_server, run_id) / "empty.txt").exists()
    assert not (run_dir(live_server, run_id) / "empty2.txt").exists()


# -- path attacks ------------------------------------------------------------------------------

# Raw request-target pieces, sent exactly as written. Each aims at ``outside/sentinel.txt`` next
# to the artifacts destination, or at a system file.
ATTACKS = [
    "../outside/sentinel.txt",
    "a/../../outside/sentinel.txt",
    "%2e%2e/outside/sentinel.txt",
    "%2e%2e%2foutside%2fsentinel.txt",
    "%2E%2E%2Foutside%2Fsentinel.txt",
    "%252e%252e%252foutside%252fsentinel.txt",
    "%25252e%25252e%25252foutside%25252fsentinel.txt",
    "..%2foutside%2fsentinel.txt",
    ".%2e/outside/sentinel.txt",
    "..\\outside\\sentinel.txt",
    "..%5coutside%5csentinel.txt",
    "..%255coutside%255csentinel.txt",
    "/etc/passwd",
    "//etc/passwd",
    "/proc/self/root/etc/passwd",
    "%2fetc%2fpasswd",
    "%252fetc%252fpasswd",
    "C:%5cWindows%5cwin.ini",
    "C:/Windows/win.ini",
    "sentinel.txt%00.png",
    "sentinel%2500.txt",
    "a%0ab",
    "a%3f/../../outside/sentinel.txt",
    "a%23/../../outside/sentinel.txt",
]

# Absolute only at the start: inside a directory these name plain nested paths (``d//etc`` is
# ``d/etc``; ``%252f`` is a literal name), which stay inside the destination.
NESTED_HARMLESS = {
    "/etc/passwd",
    "//etc/passwd",
    "/proc/self/root/etc/passwd",
    "%2fetc%2fpasswd",
    "%252fetc%252fpasswd",
    "C:/Windows/win.ini",
}

# A few of them again, as complete query values (``?path=...``).
QUERY_ATTACKS = [*ATTACKS, "..", "%2e%2e", "."]


@pytest.fixture
def sentinel(live_server: LiveServer) -> Iterator[Path]:
    """``outside/sentinel.txt`` beside the artifacts destination, checked untouched after."""
    destination(live_server).mkdir(parents=True, exist_ok=True)
    outside = destination(live_server).parent / "outside"
    outside.mkdir(exist_ok=True)
    target = outside / "sentinel.txt"
    target.write_bytes(SENTINEL)
    before = sorted(p.name for p in destination(live_server).parent.iterdir())
    yield target
    assert target.read_bytes() == SENTINEL
    assert sorted(p.name for p in outside.iterdir()) == ["sentinel.txt"]
    assert sorted(p.name for p in destination(live_server).parent.iterdir()) == before


def assert_refused(answer: Answer, what: str) -> None:
    if "%0a" in what.split("?")[0].lower() and answer.status == 404:
        # Starlette's mounts never match a URL path holding a line feed: no route is reached.
        assert answer.json()["error_code"] == "ENDPOINT_NOT_FOUND", what
        return
    assert answer.status == 400, f"{what}: {answer.status} {answer.body[:200]!r}"
    assert SENTINEL not in answer.body, what
    assert b"root:" not in answer.body, what
    if answer.headers.get("content-type") == "application/json":
        body = answer.json()
        assert body["error_code"] == "INVALID_PARAMETER_VALUE", what
        assert body["message"].startswith("Invalid path"), what


@pytest.mark.parametrize("attack", ATTACKS)
def test_proxy_path_attacks(
    live_server: LiveServer, sentinel: Path, run_id: str, attack: str
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = call(
            live_server, method, f"{PROXY}/{attack}", b"evil" if method == "PUT" else None
        )
        assert_refused(answer, f"{method} {attack}")
    # Also from inside a real directory of the destination.
    put(live_server, f"0/{run_id}/artifacts/keep.txt", b"keep")
    for method in ("GET", "PUT", "DELETE"):
        target = f"{PROXY}/0/{run_id}/artifacts/{attack}"
        answer = call(live_server, method, target, b"evil" if method == "PUT" else None)
        if attack in NESTED_HARMLESS:
            assert answer.status in (200, 400, 404), target
        else:
            assert_refused(answer, f"{method} {target}")
    assert (run_dir(live_server, run_id) / "keep.txt").read_bytes() == b"keep"


@pytest.mark.parametrize("attack", QUERY_ATTACKS)
def test_query_path_attacks(
    live_server: LiveServer, sentinel: Path, run_id: str, attack: str
) -> None:
    put(live_server, f"0/{run_id}/artifacts/keep.txt", b"keep")
    targets = [
        ("GET", f"{PROXY}?path={attack}"),
        ("GET", f"/get-artifact?run_id={run_id}&path={attack}"),
        ("GET", f"/get-artifact?run_uuid={run_id}&path={attack}"),
        ("GET", f"/model-versions/get-artifact?name=m&version=1&path={attack}"),
        ("POST", f"/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_id}&path={attack}"),
        *[
            ("GET", f"{prefix}/artifacts/list?run_id={run_id}&path={attack}")
            for prefix in API_PREFIXES
        ],
    ]
    for method, target in targets:
        answer = call(live_server, method, target, b"evil" if method == "POST" else None)
        if attack == "." and (target.startswith(PROXY) or "/artifacts/list?" in target):
            assert answer.status == 200, target  # "." is the root itself: a plain listing
            continue
        assert_refused(answer, f"{method} {target}")
    assert (run_dir(live_server, run_id) / "keep.txt").read_bytes() == b"keep"


def test_runs_rooted_elsewhere_on_disk_are_not_served(
    live_server: LiveServer, sentinel: Path, space: str
) -> None:
    """An experiment whose artifact location is an arbitrary server folder (the shape of
    CVE-2023-1177 and CVE-2024-1483) cannot read, list or write that folder."""
    store = context(live_server).store
    for location in (str(sentinel.parent), sentinel.parent.as_uri()):
        experiment_id = store.create_experiment(f"elsewhere-{space}-{len(location)}", location)
        run = store.create_run(experiment_id)
        run_id = run.info.run_id
        for method, target in [
            ("GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}"),
            ("GET", f"/get-artifact?run_id={run_id}&path=../../sentinel.txt"),
            ("GET", f"/get-artifact?run_id={run_id}&path=x.txt"),
            ("POST", f"/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_id}&path=x.txt"),
        ]:
            answer = call(live_server, method, target, b"evil" if method == "POST" else None)
            assert answer.status in (400, 403), target
            assert SENTINEL not in answer.body
        answer = call(live_server, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")
        assert answer.json()["error_code"] == "PERMISSION_DENIED"
    assert not any(sentinel.parent.rglob("x.txt"))


def test_a_link_out_of_the_destination_is_not_followed(
    live_server: LiveServer, sentinel: Path, space: str
) -> None:
    inside = destination(live_server) / space
    inside.mkdir(parents=True)
    (inside / "escape").symlink_to(sentinel.parent, target_is_directory=True)
    (inside / "file-link").symlink_to(sentinel)
    for target in (f"{PROXY}/{space}/escape/sentinel.txt", f"{PROXY}/{space}/file-link"):
        assert_refused(call(live_server, "GET", target), target)
        assert_refused(call(live_server, "PUT", target, b"evil"), target)
        assert_refused(call(live_server, "DELETE", target), target)
    listing = call(live_server, "GET", f"{PROXY}?path={space}/escape")
    assert listing.status == 400


# -- slow uploads do not starve the other routes -----------------------------------------------


def test_stalled_uploads_leave_the_server_responsive(live_server: LiveServer, space: str) -> None:
    """More stalled uploads than the default worker pool has threads: downloads and listings
    still answer, and every upload completes once its client carries on."""
    put(live_server, f"{space}/ready.txt", b"ready")
    release = threading.Event()
    count = 48  # more than anyio's default of 40 worker threads

    def body(index: int) -> Iterator[bytes]:
        yield f"upload {index} begins;".encode()
        release.wait(60)
        yield b" and ends"

    answers: list[int] = []

    def upload(index: int) -> None:
        answer = call(
            live_server,
            "PUT",
            f"{PROXY}/{space}/slow/{index}.txt",
            body(index),
            {"Transfer-Encoding": "chunked"},
        )
        answers.append(answer.status)

    threads = [threading.Thread(target=upload, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)  # let every upload reach the server and stall there
        started = time.monotonic()
        assert call(live_server, "GET", f"{PROXY}/{space}/ready.txt").body == b"ready"
        assert call(live_server, "GET", f"{PROXY}?path={space}").status == 200
        assert time.monotonic() - started < 5
    finally:
        release.set()
        for thread in threads:
            thread.join(60)
    assert answers == [200] * count
    stored = destination(live_server) / space / "slow"
    assert len(list(stored.iterdir())) == count
    assert (stored / "7.txt").read_bytes() == b"upload 7 begins; and ends"


# -- streaming in bounded memory ---------------------------------------------------------------

BIG = 50 * 1024 * 1024
PIECE = 256 * 1024


def pattern_pieces(size: int) -> Iterator[bytes]:
    """``size`` deterministic, poorly compressible bytes, a piece at a time."""
    seed = hashlib.sha256(b"slipway").digest()
    block = b"".join(
        hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(PIECE // 32)
    )
    sent = 0
    index = 0
    while sent < size:
        piece = block[index % 7 :] + block[: index % 7]
        piece = piece[: min(PIECE, size - sent)]
        sent += len(piece)
        index += 1
        yield piece


class PeakRss:
    """The highest resident set size of this process while the block runs, sampled every 5 ms;
    the server runs in a thread of this process, so its memory is counted too."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self.baseline = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def stream_download(server: LiveServer, target: str) -> tuple[int, str, dict[str, str]]:
    """GET ``target`` reading a piece at a time: (size, sha256, headers)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        assert response.status == 200
        digest = hashlib.sha256()
        size = 0
        while chunk := response.read(PIECE):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


@pytest.mark.slow
def test_large_files_stream_in_bounded_memory(
    live_server: LiveServer, run_id: str, space: str
) -> None:
    expected = hashlib.sha256()
    for piece in pattern_pieces(BIG):
        expected.update(piece)

    # Warm up threads, pools and buffers first, so that only the transfer itself is measured.
    put(live_server, f"{space}/warm.bin", b"w" * (4 * 1024 * 1024))
    stream_download(live_server, f"{PROXY}/{space}/warm.bin")

    with PeakRss() as upload:
        answer = call(
            live_server,
            "PUT",
            f"{PROXY}/{space}/big.bin",
            pattern_pieces(BIG),
            {"Content-Length": str(BIG)},
        )
    assert answer.status == 200, answer.body
    stored = destination(live_server) / space / "big.bin"
    assert stored.stat().st_size == BIG

    with PeakRss() as download:
        size, digest, headers = stream_download(live_server, f"{PROXY}/{space}/big.bin")
    assert (size, digest) == (BIG, expected.hexdigest())
    assert headers["content-length"] == str(BIG)

    with PeakRss() as chunked_upload:
        answer = call(
            live_server,
            "POST",
            f"/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_id}&path=big/chunked.bin",
            pattern_pieces(BIG),
            {"Transfer-Encoding": "chunked"},
        )
    assert answer.status == 200, answer.body

    with PeakRss() as run_download:
        size, digest, _ = stream_download(
            live_server, f"/get-artifact?run_id={run_id}&path=big/chunked.bin"
        )
    assert (size, digest) == (BIG, expected.hexdigest())

    limit = 16 * 1024 * 1024  # a third of the file; a buffered transfer would pass 50 MB
    for name, measured in [
        ("upload", upload),
        ("download", download),
        ("chunked upload", chunked_upload),
        ("run download", run_download),
    ]:
        assert measured.growth < limit, f"{name} grew RSS by {measured.growth / 2**20:.1f} MiB"
