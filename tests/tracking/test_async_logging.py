"""Asynchronous batched logging: buffering, flushing, error reporting, the bounded buffer, and
the flush at interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import slipway
from slipway import Metric, Param, RunStatus, RunTag, SlipwayClient
from slipway.exceptions import InvalidParameterValue, SlipwayError
from slipway.tracking import fluent
from slipway.tracking.async_logging import AsyncBatchLogger
from slipway.tracking.store.sql import SqlTrackingStore


@pytest.fixture
def reader(tracking_dir: Path) -> Iterator[SqlTrackingStore]:
    """A second, independent store on the fluent API's database: it sees only what was written."""
    store = SqlTrackingStore(
        f"sqlite:///{tracking_dir / 'slipway.db'}", str(tracking_dir / "artifacts")
    )
    yield store
    store.close()


@pytest.fixture
def second_store(store: SqlTrackingStore) -> Iterator[SqlTrackingStore]:
    """Another store on the same database as ``store`` (SQLite and PostgreSQL)."""
    other = SqlTrackingStore(store.db_uri, store.default_artifact_root)
    yield other
    other.close()


@pytest.fixture
def slow_flusher(tracking_dir: Path) -> AsyncBatchLogger:
    """The fluent client's async logger, with a background interval so long that nothing is
    written unless a buffer fills up or somebody flushes."""
    client = fluent.get_client()
    client._async = AsyncBatchLogger(client.store, interval=3600)
    return client._async


def _history(store: SqlTrackingStore, run_id: str, key: str) -> list[Metric]:
    return list(store.get_metric_history(run_id, key))


# -- AsyncBatchLogger on both databases ------------------------------------------------------


def test_calls_return_before_data_is_written(
    store: SqlTrackingStore, second_store: SqlTrackingStore
) -> None:
    run_id = store.create_run("0").info.run_id
    logger = AsyncBatchLogger(store, interval=3600)
    try:
        logger.log_metrics(run_id, [Metric("loss", 1.0 / (i + 1), 1000 + i, i) for i in range(10)])
        logger.log_params(run_id, [Param("lr", "0.1")])
        logger.set_tags(run_id, [RunTag("team", "a")])
        seen = second_store.get_run(run_id)
        assert seen.data.metrics == {}
        assert seen.data.params == {}
        assert "team" not in seen.data.tags
        logger.flush()
        seen = second_store.get_run(run_id)
        assert seen.data.params == {"lr": "0.1"}
        assert seen.data.tags["team"] == "a"
        assert [m.step for m in _history(second_store, run_id, "loss")] == list(range(10))
    finally:
        logger.close()


def test_bounded_buffer_never_loses_data(
    store: SqlTrackingStore, second_store: SqlTrackingStore
) -> None:
    run_id = store.create_run("0").info.run_id
    logger = AsyncBatchLogger(store, interval=3600, max_buffered=50)
    try:
        for i in range(3000):
            logger.log_metrics(run_id, [Metric("m", float(i), 1, i)])
            assert logger._buffered <= 50
        logger.flush()
    finally:
        logger.close()
    history = _history(second_store, run_id, "m")
    assert [m.step for m in history] == list(range(3000))
    assert [m.value for m in history] == [float(i) for i in range(3000)]


def test_bounded_buffer_with_many_producers(
    store: SqlTrackingStore, second_store: SqlTrackingStore
) -> None:
    run_ids = [store.create_run("0").info.run_id for _ in range(4)]
    logger = AsyncBatchLogger(store, interval=3600, max_buffered=64)
    errors: list[BaseException] = []

    def produce(run_id: str) -> None:
        try:
            for i in range(1000):
                logger.log_metrics(run_id, [Metric("m", float(i), 1, i)])
                if i % 100 == 0:
                    logger.log_params(run_id, [Param(f"p{i}", str(i))])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(r,)) for r in run_ids]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        logger.flush()
    finally:
        logger.close()
    assert errors == []
    for run_id in run_ids:
        assert [m.step for m in _history(second_store, run_id, "m")] == list(range(1000))
        assert len(second_store.get_run(run_id).data.params) == 10


def test_conflicting_param_surfaces_at_flush(
    store: SqlTrackingStore, second_store: SqlTrackingStore
) -> None:
    run_id = store.create_run("0").info.run_id
    logger = AsyncBatchLogger(store, interval=3600)
    try:
        logger.log_params(run_id, [Param("a", "1")])
        logger.log_params(run_id, [Param("a", "2")])  # returns: nothing is checked yet
        with pytest.raises(InvalidParameterValue) as info:
            logger.flush()
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "Changing param values is not allowed" in info.value.message
        assert any(run_id in note for note in info.value.__notes__)
        logger.flush()  # the error was reported once; nothing is left
    finally:
        logger.close()
    assert second_store.get_run(run_id).data.params == {"a": "1"}


def test_large_buffers_are_split_into_valid_batches(
    store: SqlTrackingStore, second_store: SqlTrackingStore
) -> None:
    run_id = store.create_run("0").info.run_id
    logger = AsyncBatchLogger(store, interval=3600)
    try:
        logger.log_metrics(run_id, [Metric("m", float(i), 1, i) for i in range(2500)])
        logger.log_params(run_id, [Param(f"p{i}", str(i)) for i in range(250)])
        logger.set_tags(run_id, [RunTag(f"t{i}", str(i)) for i in range(150)])
        logger.flush()
    finally:
        logger.close()
    run = second_store.get_run(run_id)
    assert len(run.data.params) == 250
    assert {f"t{i}" for i in range(150)} <= set(run.data.tags)
    assert len(_history(second_store, run_id, "m")) == 2500


# -- AsyncBatchLogger semantics --------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlTrackingStore]:
    s = SqlTrackingStore(f"sqlite:///{tmp_path / 'async.db'}", str(tmp_path / "artifacts"))
    yield s
    s.close()


def test_repeated_param_with_the_same_value_is_fine(sqlite_store: SqlTrackingStore) -> None:
    run_id = sqlite_store.create_run("0").info.run_id
    logger = AsyncBatchLogger(sqlite_store, interval=3600)
    try:
        for _ in range(3):
            logger.log_params(run_id, [Param("same", "v")])
        logger.flush()
    finally:
        logger.close()
    assert sqlite_store.get_run(run_id).data.params == {"same": "v"}


def test_last_tag_value_wins(sqlite_store: SqlTrackingStore) -> None:
    run_id = sqlite_store.create_run("0").info.run_id
    logger = AsyncBatchLogger(sqlite_store, interval=3600)
    try:
        for value in ("1", "2", "3"):
            logger.set_tags(run_id, [RunTag("t", value)])
        logger.flush()
    finally:
        logger.close()
    assert sqlite_store.get_run(run_id).data.tags["t"] == "3"


def test_an_error_in_one_run_does_not_stop_another(sqlite_store: SqlTrackingStore) -> None:
    bad = sqlite_store.create_run("0").info.run_id
    good = sqlite_store.create_run("0").info.run_id
    logger = AsyncBatchLogger(sqlite_store, interval=3600)
    try:
        logger.log_params(bad, [Param("a", "1")])
        logger.log_params(bad, [Param("a", "2")])
        logger.log_metrics(good, [Metric("m", float(i), 1, i) for i in range(100)])
        with pytest.raises(InvalidParameterValue):
            logger.flush()
    finally:
        logger.close()
    assert len(_history(sqlite_store, good, "m")) == 100


def test_several_errors_are_counted_in_a_note(sqlite_store: SqlTrackingStore) -> None:
    runs = [sqlite_store.create_run("0").info.run_id for _ in range(3)]
    logger = AsyncBatchLogger(sqlite_store, interval=3600)
    try:
        for run_id in runs:
            logger.log_params(run_id, [Param("a", "1")])
            logger.log_params(run_id, [Param("a", "2")])
        with pytest.raises(InvalidParameterValue) as info:
            logger.flush()
    finally:
        logger.close()
    assert "2 more asynchronous logging error(s) followed" in info.value.__notes__


def test_unknown_run_surfaces_at_flush(sqlite_store: SqlTrackingStore) -> None:
    logger = AsyncBatchLogger(sqlite_store, interval=3600)
    try:
        logger.log_metrics("deadbeef" * 4, [Metric("m", 1.0, 1, 0)])
        with pytest.raises(SlipwayError) as info:
            logger.flush()
    finally:
        logger.close()
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert info.value.http_status == 404


def test_background_thread_writes_without_flush(sqlite_store: SqlTrackingStore) -> None:
    run_id = sqlite_store.create_run("0").info.run_id
    logger = AsyncBatchLogger(sqlite_store, interval=0.05)
    done = threading.Event()
    try:
        logger.log_metrics(run_id, [Metric("m", 1.0, 1, 0)])
        for _ in range(200):  # up to 10 s
            if _history(sqlite_store, run_id, "m"):
                done.set()
                break
            done.wait(0.05)
    finally:
        logger.close()
    assert done.is_set()


def test_close_flushes_and_reports_errors_on_stderr(
    sqlite_store: SqlTrackingStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = sqlite_store.create_run("0").info.run_id
    logger = AsyncBatchLogger(sqlite_store, interval=3600)
    logger.log_metrics(run_id, [Metric("m", 1.0, 1, 0)])
    logger.log_params(run_id, [Param("a", "1")])
    logger.log_params(run_id, [Param("a", "2")])
    logger.close()
    assert "asynchronous logging failed" in capsys.readouterr().err
    assert len(_history(sqlite_store, run_id, "m")) == 1


# -- the fluent API --------------------------------------------------------------------------


def test_fluent_calls_are_buffered_until_flush(
    slow_flusher: AsyncBatchLogger, reader: SqlTrackingStore
) -> None:
    run = slipway.start_run()
    run_id = run.info.run_id
    slipway.log_metric("loss", 0.5, step=0)
    slipway.log_param("lr", "0.1")
    slipway.set_tag("stage", "dev")
    assert _history(reader, run_id, "loss") == []
    assert reader.get_run(run_id).data.params == {}
    slipway.flush()
    assert [m.value for m in _history(reader, run_id, "loss")] == [0.5]
    assert reader.get_run(run_id).data.params == {"lr": "0.1"}
    assert reader.get_run(run_id).data.tags["stage"] == "dev"
    slipway.end_run()
    assert reader.get_run(run_id).info.status == RunStatus.FINISHED


def test_client_reads_see_their_own_buffered_writes(
    slow_flusher: AsyncBatchLogger, reader: SqlTrackingStore
) -> None:
    with slipway.start_run() as run:
        slipway.log_metric("m", 1.0)
        assert _history(reader, run.info.run_id, "m") == []
        client = fluent.get_client()
        assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
        assert [m.value for m in client.get_metric_history(run.info.run_id, "m")] == [1.0]
        assert len(client.search_runs(["0"], "metrics.m = 1")) == 1


def test_all_points_of_a_10000_step_loop_are_present_after_end_run(
    tracking_dir: Path, reader: SqlTrackingStore
) -> None:
    with slipway.start_run() as run:
        for step in range(10_000):
            slipway.log_metric("loss", 1.0 / (step + 1), step=step)
    history = _history(reader, run.info.run_id, "loss")
    assert len(history) == 10_000
    assert [m.step for m in history] == list(range(10_000))
    assert reader.get_run(run.info.run_id).info.status == RunStatus.FINISHED


def test_conflicting_param_fails_end_run_and_marks_the_run_failed(
    tracking_dir: Path, reader: SqlTrackingStore
) -> None:
    run = slipway.start_run()
    slipway.log_param("a", "1")
    slipway.log_param("a", "2")  # returns at once: the conflict is found by the writer
    with pytest.raises(SlipwayError) as info:
        slipway.end_run()
    err = info.value
    assert isinstance(err, InvalidParameterValue)
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    assert "Changing param values is not allowed" in err.message
    assert "'a'" in err.message
    assert slipway.active_run() is None
    stored = reader.get_run(run.info.run_id)
    assert stored.info.status == RunStatus.FAILED
    assert stored.info.end_time is not None
    assert stored.data.params == {"a": "1"}


def test_conflicting_param_fails_the_with_block(
    tracking_dir: Path, reader: SqlTrackingStore
) -> None:
    def train() -> None:
        with slipway.start_run():
            slipway.log_param("a", "1")
            slipway.log_param("a", "2")

    with pytest.raises(InvalidParameterValue, match="Changing param values"):
        train()
    run_id = slipway.last_active_run_id()
    assert run_id is not None
    assert reader.get_run(run_id).info.status == RunStatus.FAILED


def test_conflicting_param_surfaces_at_fluent_flush(tracking_dir: Path) -> None:
    with slipway.start_run():
        slipway.log_param("a", "1")
        slipway.log_param("a", "2")
        with pytest.raises(InvalidParameterValue, match="Changing param values"):
            slipway.flush()


def test_synchronous_call_raises_immediately(tracking_dir: Path, reader: SqlTrackingStore) -> None:
    with slipway.start_run() as run:
        slipway.log_param("a", "1", synchronous=True)
        assert reader.get_run(run.info.run_id).data.params == {"a": "1"}
        with pytest.raises(InvalidParameterValue, match="Changing param values"):
            slipway.log_param("a", "2", synchronous=True)
        slipway.log_metric("m", 3.0, synchronous=True)
        assert [m.value for m in _history(reader, run.info.run_id, "m")] == [3.0]


def test_synchronous_call_after_async_ones_keeps_the_order(
    slow_flusher: AsyncBatchLogger, reader: SqlTrackingStore
) -> None:
    with slipway.start_run() as run:
        slipway.log_param("a", "1")  # buffered
        with pytest.raises(InvalidParameterValue, match="Changing param values"):
            slipway.log_param("a", "2", synchronous=True)  # flushes "1" first, then fails
        slipway.log_metric("m", 1.0, step=0)
        slipway.log_metric("m", 2.0, step=1, synchronous=True)
        assert [m.value for m in _history(reader, run.info.run_id, "m")] == [1.0, 2.0]


def test_set_async_logging_false_makes_calls_synchronous(
    tracking_dir: Path, reader: SqlTrackingStore
) -> None:
    slipway.set_async_logging(False)
    with slipway.start_run() as run:
        slipway.log_metric("m", 1.0)
        slipway.log_metrics({"x": 1.0, "y": 2.0}, step=3)
        slipway.log_param("a", "1")
        slipway.set_tag("t", "v")
        stored = reader.get_run(run.info.run_id)
        assert stored.data.metrics == {"m": 1.0, "x": 1.0, "y": 2.0}
        assert stored.data.params == {"a": "1"}
        assert stored.data.tags["t"] == "v"
        with pytest.raises(InvalidParameterValue, match="Changing param values"):
            slipway.log_param("a", "2")
        # A metric list longer than one batch is split, not refused.
        slipway.log_metrics({f"k{i}": float(i) for i in range(1500)})
    assert fluent.get_client()._async is None
    assert len(reader.get_run(run.info.run_id).data.metrics) == 1503


@pytest.mark.parametrize("value", ["false", "FALSE", "0", "no", "off", " False "])
def test_environment_variable_turns_async_off(
    value: str,
    tracking_dir: Path,
    reader: SqlTrackingStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fluent, "_async_enabled", None)
    monkeypatch.setenv("SLIPWAY_ASYNC_LOGGING", value)
    with slipway.start_run() as run:
        slipway.log_metric("m", 1.0)
        assert [m.value for m in _history(reader, run.info.run_id, "m")] == [1.0]
        slipway.log_params({"a": "1"})
        with pytest.raises(InvalidParameterValue):
            slipway.log_params({"a": "2"})


@pytest.mark.parametrize("value", ["true", "1", "yes", ""])
def test_environment_variable_leaves_async_on(
    value: str,
    slow_flusher: AsyncBatchLogger,
    reader: SqlTrackingStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fluent, "_async_enabled", None)
    monkeypatch.setenv("SLIPWAY_ASYNC_LOGGING", value)
    with slipway.start_run() as run:
        slipway.log_metric("m", 1.0)
        assert _history(reader, run.info.run_id, "m") == []


def test_set_async_logging_wins_over_the_environment(
    slow_flusher: AsyncBatchLogger, reader: SqlTrackingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_ASYNC_LOGGING", "false")
    slipway.set_async_logging(True)
    with slipway.start_run() as run:
        slipway.log_metric("m", 1.0)
        assert _history(reader, run.info.run_id, "m") == []
        slipway.log_metric("m", 2.0, synchronous=True)  # an explicit argument wins over both
        assert len(_history(reader, run.info.run_id, "m")) == 2


def test_client_async_writes(tracking_dir: Path, reader: SqlTrackingStore) -> None:
    client = SlipwayClient(str(tracking_dir))
    try:
        run_id = client.create_run("0").info.run_id
        client.log_metric(run_id, "m", 1.0, step=0, synchronous=False)
        client.log_param(run_id, "a", "1", synchronous=False)
        client.set_tag(run_id, "t", "v", synchronous=False)
        client.log_batch(run_id, metrics=[Metric("m", 2.0, 1, 1)], synchronous=False)
        client.log_param(run_id, "a", "2", synchronous=False)
        # Reads through the client see its buffered writes, without raising their errors.
        assert [m.value for m in client.get_metric_history(run_id, "m")] == [1.0, 2.0]
        with pytest.raises(InvalidParameterValue, match="Changing param values"):
            client.flush()
        client.set_terminated(run_id)
        assert reader.get_run(run_id).info.status == RunStatus.FINISHED
    finally:
        if client._async is not None:
            client._async.close()


def test_client_async_batch_is_validated_at_the_call(tracking_dir: Path) -> None:
    client = SlipwayClient(str(tracking_dir))
    try:
        run_id = client.create_run("0").info.run_id
        with pytest.raises(InvalidParameterValue, match="invalid value"):
            client.log_batch(run_id, metrics=[Metric("m", "x", 1, 0)], synchronous=False)  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterValue, match="length limit"):
            client.log_batch(run_id, params=[Param("p", "v" * 6001)], synchronous=False)
        with pytest.raises(InvalidParameterValue, match="Invalid tag name"):
            client.log_batch(run_id, tags=[RunTag("../t", "v")], synchronous=False)
        client.flush()
    finally:
        if client._async is not None:
            client._async.close()


# -- interpreter exit --------------------------------------------------------------------------


def _run_script(script: str, folder: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: val for k, val in os.environ.items() if not k.startswith("SLIPWAY_")}
    env["SLIPWAY_TRACKING_URI"] = str(folder)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_buffered_data_is_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    folder = tmp_path / "exit"
    done = _run_script(
        """
        import slipway
        slipway.set_experiment("exit-flush")
        run = slipway.start_run()
        for i in range(10_000):
            slipway.log_metric("m", float(i), step=i)
        slipway.log_param("p", "v")
        slipway.set_tag("t", "v")
        print(run.info.run_id)
        # no end_run, no flush: the process just ends
        """,
        folder,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "asynchronous logging failed" not in done.stderr
    run_id = done.stdout.strip()
    store = SqlTrackingStore(f"sqlite:///{folder / 'slipway.db'}", str(folder / "artifacts"))
    try:
        history = _history(store, run_id, "m")
        assert len(history) == 10_000
        assert {m.step for m in history} == set(range(10_000))
        run = store.get_run(run_id)
        assert run.data.params == {"p": "v"}
        assert run.data.tags["t"] == "v"
    finally:
        store.close()


def test_errors_met_at_interpreter_exit_are_printed(tmp_path: Path) -> None:
    folder = tmp_path / "exit-error"
    done = _run_script(
        """
        import slipway
        run = slipway.start_run()
        slipway.log_metric("m", 1.0)
        slipway.log_param("a", "1")
        slipway.log_param("a", "2")
        print(run.info.run_id)
        """,
        folder,
        tmp_path,
    )
    # The run still active at exit is ended there; its flush meets the error, which is
    # printed, and the run is marked FAILED.
    assert f"slipway: while ending run {done.stdout.strip()} at exit" in done.stderr
    assert "Changing param values is not allowed" in done.stderr
    store = SqlTrackingStore(f"sqlite:///{folder / 'slipway.db'}", str(folder / "artifacts"))
    try:
        run = store.get_run(done.stdout.strip())
        assert run.data.params == {"a": "1"}
        assert run.data.metrics == {"m": 1.0}
        assert run.info.status == RunStatus.FAILED
    finally:
        store.close()


# -- library bugs ------------------------------------------------------------------------------


def test_a_conflicting_param_loses_no_metric_points(sqlite_store: SqlTrackingStore) -> None:
    run_id = sqlite_store.create_run("0").info.run_id
    logger = AsyncBatchLogger(sqlite_store, interval=3600)
    try:
        logger.log_params(run_id, [Param("a", "1")])
        logger.log_metrics(run_id, [Metric("m", float(i), 1, i) for i in range(3000)])
        logger.log_params(run_id, [Param("a", "2")])
        logger.set_tags(run_id, [RunTag("after", "yes")])
        with pytest.raises(InvalidParameterValue, match="Changing param values"):
            logger.flush()
    finally:
        logger.close()
    assert len(_history(sqlite_store, run_id, "m")) == 3000
    assert sqlite_store.get_run(run_id).data.tags.get("after") == "yes"
