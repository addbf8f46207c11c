"""The REST store's transport against small scripted HTTP servers on loopback: retries and
backoff, what is never retried, error bodies mapped to Slipway's exceptions, request encoding,
auth, TLS and timeouts; and the store on a live tracking server through the SDK.

The behaviour of every store method is covered by the contract suite (the ``rest`` backend of
the ``store`` fixture); these tests cover what only the network can show."""

from __future__ import annotations

import base64
import datetime
import json
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import slipway
from slipway.entities import Metric, RunStatus, ViewType
from slipway.exceptions import (
    ExperimentNotFound,
    InvalidFilter,
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    RunNotFound,
    SlipwayError,
    TemporarilyUnavailable,
)
from slipway.tracking import uri as uris
from slipway.tracking.store.rest import RestTrackingStore
from slipway.tracking.store.rest.http import HttpConfig, RestTransport, ServerUnreachable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _spool_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_SPOOL_DIR", str(tmp_path / "spool"))


FAST = HttpConfig(max_retries=3, backoff_factor=0.01, backoff_max=0.05, timeout=5)


# -- a scripted server -----------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]


@dataclass
class Script:
    """Answers requests from ``replies`` in turn (the last one repeats), recording each."""

    replies: list[Reply]
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0

    def next(self) -> Reply:
        index = min(len(self.seen) - 1, len(self.replies) - 1)
        return self.replies[index]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            script.seen.append(
                Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
            )
            if script.delay:
                time.sleep(script.delay)
            reply = script.next()
            status, payload = reply[0], reply[1]
            headers = reply[2] if len(reply) > 2 else {}  # type: ignore[misc]
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def scripted() -> Iterator[Callable[..., tuple[str, Script]]]:
    """``start(replies, tls=None)`` -> (url, script): a server answering from ``replies``."""
    servers: list[ThreadingHTTPServer] = []

    def start(
        replies: list[Reply], tls: ssl.SSLContext | None = None, delay: float = 0.0
    ) -> tuple[str, Script]:
        script = Script(replies, delay=delay)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
        server.daemon_threads = True
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        scheme = "https" if tls is not None else "http"
        return f"{scheme}://127.0.0.1:{server.server_address[1]}", script

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "message": message}


RUN_JSON = {
    "info": {
        "run_id": "a" * 32,
        "run_uuid": "a" * 32,
        "experiment_id": "0",
        "run_name": "r",
        "user_id": "u",
        "status": "RUNNING",
        "start_time": "1700000000000",
        "artifact_uri": "mlflow-artifacts:/0/aaaa/artifacts",
        "lifecycle_stage": "active",
    },
    "data": {
        "metrics": [{"key": "m", "value": "NaN", "timestamp": "5", "step": "2"}],
        "params": [{"key": "p", "value": "1"}],
        "tags": [{"key": "t", "value": "x"}],
    },
    "inputs": {},
}


# -- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429, 500, 502, 504, 408])
def test_transient_answers_are_retried(scripted: Any, status: int) -> None:
    url, script = scripted([(status, _error("TEMPORARILY_UNAVAILABLE", "busy"))] * 2 + [(200, {})])
    RestTransport(url, FAST).call("POST", "runs/log-batch", {"run_id": "r"})
    assert len(script.seen) == 3
    assert all(s.body == {"run_id": "r"} for s in script.seen)


def test_retries_give_up_with_the_servers_error(scripted: Any) -> None:
    url, script = scripted([(503, _error("TEMPORARILY_UNAVAILABLE", "database is locked"))])
    with pytest.raises(TemporarilyUnavailable) as info:
        RestTransport(url, FAST).call("GET", "runs/get", {"run_id": "r"})
    assert info.value.message == "database is locked"
    assert info.value.http_status == 503
    assert len(script.seen) == 1 + FAST.max_retries


def test_backoff_grows_and_honours_retry_after(scripted: Any) -> None:
    url, _script = scripted(
        [(429, _error("REQUEST_LIMIT_EXCEEDED", "slow down"), {"Retry-After": "1"}), (200, {})]
    )
    config = HttpConfig(max_retries=1, backoff_factor=0.0, backoff_max=0.3, timeout=5)
    started = time.monotonic()
    RestTransport(url, config).call("GET", "runs/get", {"run_id": "r"})
    waited = time.monotonic() - started
    assert 0.25 <= waited < 1.0  # Retry-After: 1, capped at backoff_max
    delays = [HttpConfig(backoff_factor=0.1, backoff_max=0.5).backoff(n) for n in range(6)]
    assert 0.05 <= delays[0] <= 0.1
    assert 0.2 <= delays[2] <= 0.4
    assert all(0.25 <= d <= 0.5 for d in delays[3:])  # capped, with jitter


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "INVALID_PARAMETER_VALUE", InvalidParameterValue),
        (400, "RESOURCE_ALREADY_EXISTS", ResourceAlreadyExists),
        (404, "RESOURCE_DOES_NOT_EXIST", ResourceDoesNotExist),
        (401, "UNAUTHENTICATED", SlipwayError),
        (403, "PERMISSION_DENIED", SlipwayError),
        (409, "RESOURCE_CONFLICT", SlipwayError),
        (413, "RESOURCE_EXHAUSTED", SlipwayError),
    ],
)
def test_client_errors_are_not_retried_and_keep_the_message(
    scripted: Any, status: int, code: str, cls: type[SlipwayError]
) -> None:
    url, script = scripted([(status, _error(code, f"the server says {code}"))])
    with pytest.raises(cls) as info:
        RestTransport(url, FAST).call("POST", "runs/log-batch", {"run_id": "r"})
    assert info.value.error_code == code
    assert info.value.message == f"the server says {code}"
    assert len(script.seen) == 1


def test_creates_are_retried_only_where_the_server_cannot_have_acted(scripted: Any) -> None:
    url, script = scripted([(500, _error("INTERNAL_ERROR", "boom"))])
    store = RestTrackingStore(url, FAST, spool=False)
    with pytest.raises(SlipwayError, match="boom"):
        store.create_experiment("e")
    assert len(script.seen) == 1  # a 500 may have created it: never sent twice
    url, script = scripted(
        [(503, _error("TEMPORARILY_UNAVAILABLE", "later")), (200, {"experiment_id": "7"})]
    )
    assert RestTrackingStore(url, FAST, spool=False).create_experiment("e") == "7"
    assert len(script.seen) == 2


def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = RestTrackingStore(url, FAST, spool=False)
    started = time.monotonic()
    with pytest.raises(ServerUnreachable) as info:
        store.get_run("a" * 32)
    assert time.monotonic() - started < 2
    err = info.value
    assert isinstance(err, TemporarilyUnavailable)
    assert err.error_code == "TEMPORARILY_UNAVAILABLE"
    assert err.http_status == 503
    assert url in err.message
    assert "unreachable" in err.message
    assert f"{1 + FAST.max_retries} attempts" in err.message


def test_read_timeout_is_retried_then_reported(scripted: Any) -> None:
    url, script = scripted([(200, {})], delay=0.5)
    config = HttpConfig(max_retries=1, backoff_factor=0.01, timeout=0.1)
    with pytest.raises(ServerUnreachable, match=r"ReadTimeoutError|timed out"):
        RestTransport(url, config).call("GET", "runs/get", {"run_id": "r"})
    assert len(script.seen) == 2


def test_error_without_a_json_body(scripted: Any) -> None:
    url, _ = scripted([(502, b"<html>Bad Gateway</html>")])
    with pytest.raises(TemporarilyUnavailable, match=r"HTTP 502.*Bad Gateway"):
        RestTransport(url, FAST).call("GET", "runs/get")
    url, _ = scripted([(404, b"Not Found")])
    with pytest.raises(SlipwayError) as info:
        RestTransport(url, FAST).call("GET", "runs/get")
    assert info.value.error_code == "ENDPOINT_NOT_FOUND"
    url, _ = scripted([(200, b"<html>a web page</html>")])
    with pytest.raises(SlipwayError, match="tracking server"):
        RestTransport(url, FAST).call("GET", "runs/get")


# -- errors narrowed by endpoint -------------------------------------------------------------------


def test_not_found_is_narrowed_by_endpoint(scripted: Any) -> None:
    url, _ = scripted([(404, _error("RESOURCE_DOES_NOT_EXIST", "No such thing"))])
    store = RestTrackingStore(url, FAST, spool=False)
    with pytest.raises(RunNotFound, match="No such thing"):
        store.get_run("a" * 32)
    with pytest.raises(ExperimentNotFound):
        store.get_experiment("5")
    with pytest.raises(ExperimentNotFound):
        store.create_run("5")
    assert store.get_experiment_by_name("nope") is None


def test_missing_tag_stays_a_plain_resource_error(scripted: Any) -> None:
    url, _ = scripted([(404, _error("RESOURCE_DOES_NOT_EXIST", "No tag with name: t in run"))])
    store = RestTrackingStore(url, FAST, spool=False)
    with pytest.raises(ResourceDoesNotExist) as info:
        store.delete_tag("a" * 32, "t")
    assert type(info.value) is ResourceDoesNotExist


def test_bad_search_filter_is_an_invalid_filter(scripted: Any) -> None:
    url, _ = scripted([(400, _error("INVALID_PARAMETER_VALUE", "Invalid filter 'x ~ 1': no"))])
    store = RestTrackingStore(url, FAST, spool=False)
    with pytest.raises(InvalidFilter) as info:
        store.search_runs(["0"], "x ~ 1")
    assert info.value.http_status == 400
    url, _ = scripted([(400, _error("INVALID_PARAMETER_VALUE", "Invalid page token 'x'"))])
    with pytest.raises(InvalidParameterValue) as other:
        RestTrackingStore(url, FAST, spool=False).search_runs(["0"], page_token="x")
    assert type(other.value) is InvalidParameterValue


# -- requests and answers --------------------------------------------------------------------------


def test_get_fields_are_query_parameters_with_repeated_keys(scripted: Any) -> None:
    url, script = scripted([(200, {"metrics": []})])
    store = RestTrackingStore(url, FAST, spool=False)
    store.get_metric_history_bulk_interval(["a", "b"], "loss", 10, start_step=0, end_step=5)
    seen = script.seen[0]
    assert (seen.method, seen.path) == ("GET", "/api/2.0/mlflow/metrics/get-history-bulk-interval")
    assert seen.query == {
        "run_ids": ["a", "b"],
        "metric_key": ["loss"],
        "max_results": ["10"],
        "start_step": ["0"],
        "end_step": ["5"],
    }
    assert seen.body is None


def test_post_bodies_are_mlflow_json(scripted: Any) -> None:
    url, script = scripted([(200, {})])
    store = RestTrackingStore(url, FAST, spool=False)
    store.log_batch("r", metrics=[Metric("m", math.nan, 1, 2), Metric("n", -math.inf, 3)])
    store.search_experiments(ViewType.ALL, 10, "name = 'x'", ["name"])
    batch, search = script.seen[0], script.seen[1]
    assert batch.headers["content-type"] == "application/json"
    assert batch.body == {
        "run_id": "r",
        "metrics": [
            {"key": "m", "value": "NaN", "timestamp": 1, "step": 2},
            {"key": "n", "value": "-Infinity", "timestamp": 3, "step": 0},
        ],
    }
    assert search.body == {
        "view_type": "ALL",
        "max_results": 10,
        "filter": "name = 'x'",
        "order_by": ["name"],
    }


def test_a_batch_over_1000_entities_takes_two_requests(scripted: Any) -> None:
    from slipway.entities import Param, RunTag

    url, script = scripted([(200, {})])
    store = RestTrackingStore(url, FAST, spool=False)
    metrics = [Metric("m", float(i), i, i) for i in range(1000)]
    params = [Param(f"p{i}", "v") for i in range(100)]
    tags = [RunTag(f"t{i}", "v") for i in range(100)]
    store.log_batch("r", metrics, params, tags)
    first, second = (s.body for s in script.seen)
    assert (len(first["metrics"]), len(first["params"]), len(first["tags"])) == (800, 100, 100)
    assert list(second) == ["run_id", "metrics"]
    assert len(second["metrics"]) == 200
    assert [m["step"] for m in first["metrics"] + second["metrics"]] == list(range(1000))


def test_answers_in_proto3_json_are_parsed(scripted: Any) -> None:
    url, _ = scripted([(200, {"run": RUN_JSON})])
    run = RestTrackingStore(url, FAST, spool=False).get_run("a" * 32)
    assert run.info.start_time == 1_700_000_000_000
    assert run.info.status == RunStatus.RUNNING
    assert run.info.end_time is None
    (m,) = run.data.metric_records
    assert math.isnan(m.value)
    assert (m.timestamp, m.step) == (5, 2)
    assert run.data.params == {"p": "1"}
    assert run.data.tags == {"t": "x"}


def test_malformed_answer_is_reported(scripted: Any) -> None:
    url, _ = scripted([(200, {"run": {"info": {}}})])
    with pytest.raises(SlipwayError, match="Unexpected run"):
        RestTrackingStore(url, FAST, spool=False).get_run("a" * 32)


# -- auth and TLS ----------------------------------------------------------------------------------


def test_bearer_token(scripted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url, script = scripted([(200, {})])
    monkeypatch.setenv("SLIPWAY_TRACKING_TOKEN", "s3cret-token")
    RestTransport(url).call("GET", "runs/get")
    assert script.seen[0].headers["authorization"] == "Bearer s3cret-token"


def test_basic_auth_from_the_environment_or_the_url(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, script = scripted([(401, _error("UNAUTHENTICATED", "who are you?"))])
    monkeypatch.setenv("SLIPWAY_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("SLIPWAY_TRACKING_PASSWORD", "pw")
    with pytest.raises(SlipwayError, match="who are you"):
        RestTransport(url).call("GET", "runs/get")
    assert (
        script.seen[0].headers["authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode()
    )
    monkeypatch.delenv("SLIPWAY_TRACKING_USERNAME")
    monkeypatch.delenv("SLIPWAY_TRACKING_PASSWORD")
    with_password = url.replace("http://", "http://bob:hunter2@")
    transport = RestTransport(with_password, FAST)
    assert transport.base_url == url
    with pytest.raises(SlipwayError) as info:
        transport.call("GET", "runs/get")
    assert (
        script.seen[1].headers["authorization"]
        == "Basic " + base64.b64encode(b"bob:hunter2").decode()
    )
    assert "hunter2" not in str(info.value)


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def test_tls_verification_switches(
    scripted: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, cert_file = _self_signed(tmp_path)
    url, _script = scripted([(200, {"experiment_id": "3"})], tls=context)
    with pytest.raises(SlipwayError, match=r"TLS failed.*SLIPWAY_TRACKING_INSECURE_TLS") as info:
        RestTransport(url, FAST).call("GET", "experiments/get")
    assert not isinstance(info.value, TemporarilyUnavailable)  # not retried, not spooled
    monkeypatch.setenv("SLIPWAY_TRACKING_CA_BUNDLE", str(cert_file))
    assert RestTransport(url).call("GET", "experiments/get") == {"experiment_id": "3"}
    monkeypatch.delenv("SLIPWAY_TRACKING_CA_BUNDLE")
    monkeypatch.setenv("SLIPWAY_TRACKING_INSECURE_TLS", "true")
    assert RestTransport(url).call("GET", "experiments/get") == {"experiment_id": "3"}


# -- configuration and URIs ------------------------------------------------------------------------


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HttpConfig.from_env({}) == HttpConfig()
    assert HttpConfig().max_retries == 5
    assert HttpConfig().timeout == 120
    config = HttpConfig.from_env({"SLIPWAY_HTTP_MAX_RETRIES": "2", "SLIPWAY_HTTP_TIMEOUT": "7.5"})
    assert (config.max_retries, config.timeout) == (2, 7.5)
    with pytest.raises(InvalidParameterValue, match="SLIPWAY_HTTP_MAX_RETRIES"):
        HttpConfig.from_env({"SLIPWAY_HTTP_MAX_RETRIES": "many"})
    with pytest.raises(InvalidParameterValue, match="SLIPWAY_TRACKING_INSECURE_TLS"):
        HttpConfig.from_env({"SLIPWAY_TRACKING_INSECURE_TLS": "maybe"})


@pytest.mark.parametrize("url", ["ftp://host", "http://", "http://host/?q=1", "http://h:99999"])
def test_bad_server_urls(url: str) -> None:
    with pytest.raises(InvalidParameterValue):
        RestTransport(url)


def test_http_tracking_uri_gives_a_rest_store() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    try:
        assert uris.resolve(url) == (url.rstrip("/"), "")
        store = uris.get_store(url)
        assert isinstance(store, RestTrackingStore)
        assert store.server_url == url.rstrip("/")
        assert uris.get_store(url) is store
    finally:
        uris.clear_store_cache()


# -- the SDK on a live tracking server -------------------------------------------------------------


def test_sdk_on_a_tracking_server(rest_store: RestTrackingStore, tracking_dir: Path) -> None:
    slipway.set_tracking_uri(rest_store.server_url)
    slipway.set_experiment("over-http")
    with slipway.start_run(run_name="remote") as run:
        slipway.log_param("lr", 0.1)
        for step in range(5):
            slipway.log_metric("loss", 1.0 / (step + 1), step=step)
        slipway.set_tag("team", "a")
    got = rest_store.get_run(run.info.run_id)
    assert got.info.status == RunStatus.FINISHED
    assert got.info.run_name == "remote"
    assert got.data.params == {"lr": "0.1"}
    assert got.data.tags["team"] == "a"
    history = rest_store.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(5))
    assert got.info.artifact_uri.endswith(f"{run.info.run_id}/artifacts")
    assert isinstance(slipway.tracking.fluent.get_client().store, RestTrackingStore)
