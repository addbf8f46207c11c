"""The tuning store's contract, on SQLite, PostgreSQL and over REST: studies, journals that
stay gapless and ordered under concurrent appends from several processes, claims, and the
errors every backend gives for the same mistakes."""

from __future__ import annotations

import json
import math
import multiprocessing
import threading

import pytest

from slipway.exceptions import (
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
)
from slipway.tuning.store import AbstractTuningStore, get_tuning_store

ALL_BACKENDS = ["sqlite", "postgresql", "rest"]
pytestmark = pytest.mark.parametrize("tracking_uri", ALL_BACKENDS, indirect=True)


@pytest.fixture
def tuning_store(tracking_uri: str) -> AbstractTuningStore:
    return get_tuning_store(tracking_uri)


def test_studies_are_created_once_and_listed(tuning_store: AbstractTuningStore) -> None:
    store = tuning_store
    created = store.create_study("a", "r" * 32, "0", {"direction": "maximize"})
    assert (created.name, created.run_id, created.spec, created.log_count) == (
        "a",
        "r" * 32,
        {"direction": "maximize"},
        0,
    )
    store.create_study("b", "s" * 32, "0", {})
    assert store.get_study("a") == created
    assert {s.name for s in store.list_studies()} == {"a", "b"}
    with pytest.raises(ResourceAlreadyExists, match="Study 'a' already exists"):
        store.create_study("a", "t" * 32, "0", {})
    with pytest.raises(ResourceDoesNotExist, match="Study 'nope' not found"):
        store.get_study("nope")
    with pytest.raises(InvalidParameterValue, match="name"):
        store.create_study("", "r" * 32, "0", {})
    with pytest.raises(InvalidParameterValue, match="maximum length of 256"):
        store.create_study("x" * 257, "r" * 32, "0", {})


def test_journal_appends_and_reads_in_order(tuning_store: AbstractTuningStore) -> None:
    store = tuning_store
    store.create_study("j", "r" * 32, "0", {})
    assert store.read_journal("j") == []
    count, _ = store.append_journal("j", ['{"n": 0}', '{"n": 1}'])
    assert count == 2
    count, fetched = store.append_journal("j", ['{"n": 2, "v": NaN}'], log_number_from=1)
    assert count == 3
    assert [json.loads(e)["n"] for e in fetched] == [1, 2]
    entries = store.read_journal("j", 0)
    assert [json.loads(e)["n"] for e in entries] == [0, 1, 2]
    assert math.isnan(json.loads(entries[2])["v"])  # Optuna's NaN survives every backend
    assert store.read_journal("j", 2) == [entries[2]]
    assert store.read_journal("j", 7) == []
    assert store.get_study("j").log_count == 3
    with pytest.raises(ResourceDoesNotExist):
        store.append_journal("nope", ['{"n": 0}'])
    with pytest.raises(ResourceDoesNotExist):
        store.read_journal("nope")
    for bad, message in [
        ([], "non-empty list"),
        (["[1, 2]"], "Journal entry 0 must be a JSON object"),
        (['{"n": 0}', "{oops"], "Journal entry 1 is not JSON"),
    ]:
        with pytest.raises(InvalidParameterValue, match=message):
            store.append_journal("j", bad)
    with pytest.raises(InvalidParameterValue, match="log_number_from"):
        store.read_journal("j", -1)
    assert store.get_study("j").log_count == 3  # nothing of a refused append was written


def _append_many(uri: str, worker: int, count: int) -> None:
    store = get_tuning_store(uri)
    for i in range(count):
        store.append_journal("busy", [json.dumps({"w": worker, "i": i})] * 2)


def test_concurrent_appends_stay_gapless_and_ordered(
    tuning_store: AbstractTuningStore, tracking_uri: str
) -> None:
    store = tuning_store
    store.create_study("busy", "r" * 32, "0", {})
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:  # reads while writers append: always a prefix, never a gap
        while not stop.is_set():
            seen.append(len(store.read_journal("busy")))

    watcher = threading.Thread(target=reader)
    watcher.start()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(tracking_uri, w, 15)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    stop.set()
    watcher.join()
    entries = [json.loads(e) for e in store.read_journal("busy")]
    assert len(entries) == 3 * 15 * 2
    for w in range(3):  # each worker's entries in its order, each pair together
        mine = [e["i"] for e in entries if e["w"] == w]
        assert mine == sorted(mine)
        assert mine == [i for i in range(15) for _ in range(2)]
    pairs = [(entries[k]["w"], entries[k]["i"]) for k in range(0, len(entries), 2)]
    assert all(
        (entries[k + 1]["w"], entries[k + 1]["i"]) == pairs[k // 2]
        for k in range(0, len(entries), 2)
    )
    assert seen == sorted(seen)
    assert store.get_study("busy").log_count == 90


def test_claims(tuning_store: AbstractTuningStore) -> None:
    store = tuning_store
    store.create_study("c", "r" * 32, "0", {})
    held = store.claim_study("c", "me", 60_000)
    assert held.lease_owner == "me"
    assert held.lease_expires is not None
    assert store.claim_study("c", "me", 60_000).lease_owner == "me"  # renewal
    with pytest.raises(ResourceConflict, match="Study 'c' is being run by me"):
        store.claim_study("c", "you", 60_000)
    assert store.claim_study("c", "you", 60_000, stale_owner="me").lease_owner == "you"
    store.release_study("c", "me")  # not the holder: nothing changes
    assert store.get_study("c").lease_owner == "you"
    store.release_study("c", "you")
    assert store.get_study("c").lease_owner is None
    store.claim_study("c", "short", 1)
    import time

    time.sleep(0.01)
    assert store.claim_study("c", "next", 60_000).lease_owner == "next"  # it ran out
    with pytest.raises(InvalidParameterValue, match="ttl_ms"):
        store.claim_study("c", "next", 0)
    with pytest.raises(ResourceDoesNotExist):
        store.claim_study("nope", "me", 1000)
