"""An Optuna journal backend over a tuning store: every process of a study (the coordinator
and each trial) opens ``JournalStorage(StoreJournalBackend(store, name))`` and sees the same
study, so Optuna's own multi-process semantics hold: a pruner in one trial's process compares
against the intermediate values the others reported, and a study resumes from its journal.

There is one journal per study (not one for the whole database), so a process replays only
the logs of its own study. Optuna's ``RDBStorage`` is not used in the tracking database: it
keeps its schema version in a table named ``alembic_version``, the table our own migrations
use, so one would clobber the other (see :mod:`slipway.tuning.store.sql.store`).

This module imports Optuna; import it only where a study runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from slipway.tuning.store.base import AbstractTuningStore


class StoreJournalBackend(BaseJournalBackend):
    """The journal of one study, in a :class:`AbstractTuningStore` (SQL or REST).

    Args:
        store: where the study lives.
        study_name: the study (it must exist in the store).
        min_read_interval: seconds during which a read finds nothing new without asking the
            store, unless :meth:`refresh` was called or this backend appended meanwhile
            (what it appended comes back with the append). Optuna re-reads the journal on
            nearly every call (a dozen times to sample one trial); the coordinator, the only
            process that creates and finishes trials, needs other processes' writes (their
            intermediate values) only when it tells a trial, and refreshes then. 0 (trial
            processes, whose pruner must see every value) reads every time.
    """

    def __init__(
        self, store: AbstractTuningStore, study_name: str, min_read_interval: float = 0.0
    ) -> None:
        self.store = store
        self.study_name = study_name
        self.min_read_interval = min_read_interval
        self._read_to = 0
        self._read_at = -float("inf")
        self._fetched: tuple[int, list[dict[str, Any]]] | None = None

    def refresh(self) -> None:
        """Make the next read ask the store."""
        self._read_at = -float("inf")

    def __repr__(self) -> str:
        return f"StoreJournalBackend({self.store!r}, {self.study_name!r})"

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        fetched, self._fetched = self._fetched, None
        now = time.monotonic()
        if fetched is not None and fetched[0] == log_number_from:
            logs = fetched[1]
        elif log_number_from == self._read_to and now - self._read_at < self.min_read_interval:
            return []
        else:
            entries = self.store.read_journal(self.study_name, log_number_from)
            logs = [json.loads(entry) for entry in entries]
        self._read_to = log_number_from + len(logs)
        self._read_at = now
        return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append, and fetch in the same call what the storage is about to read: Optuna's
        journal storage replays right after each write, from where it had read to."""
        # Python's JSON, NaN allowed: an intermediate value may be NaN, as in Optuna's files.
        _, entries = self.store.append_journal(
            self.study_name, [json.dumps(log) for log in logs], self._read_to
        )
        self._fetched = (self._read_to, [json.loads(entry) for entry in entries])


def open_storage(
    store: AbstractTuningStore, study_name: str, min_read_interval: float = 0.0
) -> JournalStorage:
    """Optuna storage for the study ``study_name`` kept in ``store`` (see
    :class:`StoreJournalBackend` for ``min_read_interval``)."""
    return JournalStorage(StoreJournalBackend(store, study_name, min_read_interval))


__all__ = ["StoreJournalBackend", "open_storage"]
