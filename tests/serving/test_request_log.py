"""RequestLogger writing into real artifact stores: a local folder, S3 (moto in server mode),
and ``slipway server``'s artifact proxy."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.exceptions import InvalidParameterValue
from slipway.serving.request_log import (
    RequestLogger,
    default_destination,
    log_file_prefix,
)

FILE_NAME = re.compile(r"^[0-9a-f]{32}\.jsonl$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def local_records(root: Path) -> list[dict[str, Any]]:
    """Every record under ``root/requests``, checking the folder layout on the way."""
    records = []
    for path in sorted((root / "requests").rglob("*.jsonl")):
        endpoint_dir, day_dir = path.parent.parent, path.parent
        assert endpoint_dir.parent == root / "requests"
        assert DAY.match(day_dir.name), day_dir.name
        assert FILE_NAME.match(path.name), path.name
        records += [json.loads(line) for line in path.read_text().splitlines()]
    return records


@pytest.fixture
def logger_factory() -> Iterator[Any]:
    """Makes loggers and closes every one at the end, whatever the test did."""
    made: list[RequestLogger] = []

    def make(*args: Any, **kwargs: Any) -> RequestLogger:
        made.append(RequestLogger(*args, **kwargs))
        return made[-1]

    yield make
    for logger in made:
        logger.close()


def test_sample_rate_is_roughly_honoured(tmp_path: Path, logger_factory: Any) -> None:
    logger = logger_factory(0.1, str(tmp_path), flush_every=50, flush_seconds=60)
    for i in range(2000):
        logger.maybe_log("iris", "3", {"row": i}, [i % 2])
    logger.close()
    records = local_records(tmp_path)
    # binomial(2000, 0.1): mean 200, standard deviation about 13.4; 4.5 deviations either side
    assert 140 <= len(records) <= 260
    stats = logger.stats
    assert stats.seen == 2000
    assert stats.sampled == stats.written == len(records)
    assert stats.dropped == 0
    assert stats.files >= 1
    assert len({r["request"]["row"] for r in records}) == len(records)


def test_rate_one_keeps_all_and_zero_keeps_none(tmp_path: Path, logger_factory: Any) -> None:
    every = logger_factory(1.0, str(tmp_path / "all"))
    none = logger_factory(0, str(tmp_path / "none"))
    for i in range(25):
        every.maybe_log("iris", "1", [i], [i])
        none.maybe_log("iris", "1", [i], [i])
    every.close()
    none.close()
    assert sorted(r["request"][0] for r in local_records(tmp_path / "all")) == list(range(25))
    assert not (tmp_path / "none" / "requests").exists()
    assert none.stats.seen == 25
    assert none.stats.sampled == 0


def test_records_are_plain_json_in_dated_endpoint_folders(
    tmp_path: Path, logger_factory: Any
) -> None:
    logger = logger_factory(1.0, str(tmp_path))
    frame = pd.DataFrame({"a": [1.5, float("nan")], "b": ["x", "y"]})
    before = time.time_ns() // 1_000_000
    logger.maybe_log("iris", "7", frame, np.array([0.25, 0.75]))
    logger.maybe_log("wine", None, {"inputs": [[1, 2]]}, {"predictions": [3]})
    logger.close()
    after = time.time_ns() // 1_000_000
    by_endpoint = {r["endpoint"]: r for r in local_records(tmp_path)}
    iris = by_endpoint["iris"]
    assert set(iris) == {"ts", "endpoint", "version", "request", "response"}
    assert before <= iris["ts"] <= after
    assert iris["version"] == "7"
    assert iris["request"] == [{"a": 1.5, "b": "x"}, {"a": None, "b": "y"}]
    assert iris["response"] == [0.25, 0.75]
    assert by_endpoint["wine"]["version"] is None
    assert by_endpoint["wine"]["response"] == {"predictions": [3]}
    assert sorted(p.name for p in (tmp_path / "requests").iterdir()) == ["iris", "wine"]


def test_flush_every_writes_in_the_background(tmp_path: Path, logger_factory: Any) -> None:
    logger = logger_factory(1.0, str(tmp_path), flush_every=10, flush_seconds=3600)
    for i in range(10):
        logger.maybe_log("iris", "1", [i], [i])
    deadline = time.monotonic() + 10
    while logger.stats.written < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(local_records(tmp_path)) == 10  # written before any close


def test_flush_seconds_writes_in_the_background(tmp_path: Path, logger_factory: Any) -> None:
    logger = logger_factory(1.0, str(tmp_path), flush_every=1000, flush_seconds=0.05)
    logger.maybe_log("iris", "1", [1], [1])
    deadline = time.monotonic() + 10
    while logger.stats.written < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(local_records(tmp_path)) == 1


def test_close_flushes_the_rest_and_later_records_are_ignored(
    tmp_path: Path, logger_factory: Any
) -> None:
    logger = logger_factory(1.0, str(tmp_path), flush_every=1000, flush_seconds=3600)
    for i in range(5):
        logger.maybe_log("iris", "1", [i], [i])
    assert not (tmp_path / "requests").exists()
    logger.close()
    logger.close()
    logger.maybe_log("iris", "1", [99], [99])
    assert [r["request"] for r in local_records(tmp_path)] == [[0], [1], [2], [3], [4]]


def test_a_full_buffer_drops_new_records_instead_of_waiting(
    tmp_path: Path, logger_factory: Any
) -> None:
    logger = logger_factory(
        1.0, str(tmp_path), flush_every=1000, flush_seconds=3600, max_buffered=10
    )
    for i in range(50):
        logger.maybe_log("iris", "1", [i], [i])
    logger.close()
    assert [r["request"][0] for r in local_records(tmp_path)] == list(range(10))
    assert logger.stats.dropped == 40
    assert logger.stats.written == 10


def test_a_failing_destination_does_not_break_callers(
    tmp_path: Path, logger_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    logger = logger_factory(1.0, str(blocker / "logs"), flush_every=5, flush_seconds=0.05)
    with caplog.at_level(logging.WARNING, logger="slipway.serving.request_log"):
        started = time.perf_counter()
        for i in range(20):
            logger.maybe_log("iris", "1", [i], [i])
        took = time.perf_counter() - started
        logger.close()
    assert took < 0.5
    assert logger.stats.dropped == 20
    assert logger.stats.written == 0
    assert "Could not write" in caplog.text
    assert blocker.read_text().startswith("a file")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 1.5}, "sample rate"),
        ({"sample_rate": -0.1}, "sample rate"),
        ({"sample_rate": float("nan")}, "sample rate"),
        ({"sample_rate": "0.5"}, "sample rate"),
        ({"sample_rate": True}, "sample rate"),
        ({"flush_every": 0}, "flush_every"),
        ({"flush_seconds": 0}, "flush_seconds"),
        ({"flush_seconds": float("inf")}, "flush_seconds"),
        ({"max_buffered": 0}, "max_buffered"),
        ({"destination": "ftp://host/logs"}, "scheme"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"sample_rate": 0.5, "destination": str(tmp_path), **kwargs}
    with pytest.raises(InvalidParameterValue, match=message):
        RequestLogger(**settings)


@pytest.mark.parametrize(
    ("endpoint", "prefix"),
    [
        ("iris", "requests/iris"),
        ("iris-v2.1_x", "requests/iris-v2.1_x"),
        ("../../etc", "requests/.._.._etc"),
        ("..", "requests/_.."),
        ("a/b c", "requests/a_b_c"),
        ("", "requests/_"),
    ],
)
def test_any_endpoint_name_is_one_safe_folder(endpoint: str, prefix: str) -> None:
    assert log_file_prefix(endpoint) == prefix


def test_unsafe_endpoint_names_stay_inside_the_destination(
    tmp_path: Path, logger_factory: Any
) -> None:
    dest = tmp_path / "dest"
    logger = logger_factory(1.0, str(dest))
    logger.maybe_log("../../escape", None, [1], [1])
    logger.close()
    assert [p.name for p in (dest / "requests").iterdir()] == [".._.._escape"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_default_destination(tmp_path: Path) -> None:
    assert default_destination(str(tmp_path / "store")) == str(tmp_path / "store" / "artifacts")
    assert default_destination("http://127.0.0.1:5000") == "mlflow-artifacts:/"


# -- S3 and the server's artifact proxy ---------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A boto3 client on the moto server, and the environment pointing Slipway there."""
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("SLIPWAY_S3_ENDPOINT_URL", moto_endpoint)
    return boto3.session.Session().client("s3", endpoint_url=moto_endpoint)


def test_logs_into_s3(s3: Any, logger_factory: Any) -> None:
    bucket = f"logs-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    logger = logger_factory(1.0, f"s3://{bucket}/serving", flush_every=3)
    for i in range(7):
        logger.maybe_log("iris", "2", [i], [i * 10])
    logger.close()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert all(
        re.match(r"^serving/requests/iris/\d{4}-\d{2}-\d{2}/[0-9a-f]{32}\.jsonl$", k) for k in keys
    )
    lines = [
        json.loads(line)
        for key in keys
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    ]
    assert sorted((r["request"][0], r["response"][0]) for r in lines) == [
        (i, i * 10) for i in range(7)
    ]


def test_a_missing_bucket_loses_records_quietly(
    s3: Any, logger_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logger_factory(1.0, f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/logs")
    with caplog.at_level(logging.WARNING, logger="slipway.serving.request_log"):
        logger.maybe_log("iris", "1", [1], [1])
        logger.close()
    assert logger.stats.dropped == 1
    assert "Could not write 1 request log records" in caplog.text


def test_logs_through_the_server_artifact_proxy(
    rest_server: Any, tmp_path: Path, logger_factory: Any
) -> None:
    from slipway.server import ServerSettings, create_app

    proxied = tmp_path / "proxied"
    app = create_app(
        ServerSettings(
            backend_store_uri=str(tmp_path / "store"), artifacts_destination=str(proxied)
        )
    )
    rest_server.front.app = app
    try:
        logger = logger_factory(
            1.0, "mlflow-artifacts:/serving", tracking_uri=rest_server.url, flush_every=2
        )
        for i in range(3):
            logger.maybe_log("iris", "1", [i], [i])
        logger.close()
    finally:
        rest_server.front.app = None
        app.state.context.close()
    assert sorted(r["request"][0] for r in local_records(proxied / "serving")) == [0, 1, 2]
