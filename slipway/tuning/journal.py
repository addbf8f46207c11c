"""An Optuna journal backend over a tuning store: every process of a study (the coordinator
and each trial worker) opens ``JournalStorage(StoreJournalBackend(store, name))`` and sees the
same study, so Optuna's own multi-process semantics hold: a pruner in one worker compares
against the intermediate values the others reported, and a study resumes from its journal.

There is one journal per study (not one for the whole database), so a process replays only
the logs of its own study, and a long-lived process reads only what is new since its last
read. Optuna's ``RDBStorage`` is not used in the tracking database: it keeps its schema version
in a table named ``alembic_version``, the table our own migrations use, so one would clobber the
other (see :mod:`slipway.tuning.store.sql.store`).

This module imports Optuna; import it only where a study runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from slipway.tuning.store.base import AbstractTuningStore


class StoreJournalBackend(BaseJournalBackend):
    """The journal of one study, in a :class:`AbstractTuningStore` (SQL or REST).

    The backend hands Optuna every entry of the store exactly once, in the store's order,
    except for what it holds (:meth:`hold`): the coordinator, the only process that creates
    and finishes trials, holds its own writes between two dispatches and writes them in one
    transaction (:meth:`flush`): telling a trial and asking for the next costs one round trip
    instead of four or five. Held entries are handed to Optuna at once, so the coordinator's
    own view is current; entries other processes wrote meanwhile (trial workers' intermediate
    values) reach it after them. That order only differs for entries of different trials,
    since only the coordinator creates, samples and finishes trials.

    Args:
        store: where the study lives.
        study_name: the study (it must exist in the store).
        min_read_interval: seconds during which a read finds nothing new without asking the
            store, unless :meth:`refresh` was called or this backend wrote meanwhile (what it
            wrote comes back with the write). Optuna re-reads the journal on nearly every
            call (a dozen times to sample one trial); the coordinator needs other processes'
            writes (their intermediate values) only when it tells a trial, and refreshes
            then. 0 (trial workers, whose pruner must see every value) reads every time.
    """

    def __init__(
        self, store: AbstractTuningStore, study_name: str, min_read_interval: float = 0.0
    ) -> None:
        self.store = store
        self.study_name = study_name
        self.min_read_interval = min_read_interval
        self._lock = threading.RLock()
        self._cursor = 0
        """How many of the store's entries this backend has seen (read or written)."""
        self._given = 0
        """How many logs Optuna was handed (its ``log_number_read`` when all applied)."""
        self._ready: list[dict[str, Any]] = []
        """Logs to hand to Optuna at its next read."""
        self._last: tuple[int, list[dict[str, Any]]] = (0, [])
        """The logs handed over last and the number of the first, handed again when Optuna
        stopped applying them part way (one of its own writes raised)."""
        self._held: list[str] | None = None
        """While holding: this backend's entries not written yet."""
        self._read_at = -float("inf")
        self._synced = False
        """Set by a write, which fetched everything the store had: the read that Optuna makes
        right after it needs not ask again."""

    def __repr__(self) -> str:
        return f"StoreJournalBackend({self.store!r}, {self.study_name!r})"

    def refresh(self) -> None:
        """Make the next read ask the store."""
        self._read_at = -float("inf")
        self._synced = False

    # -- holding writes ---------------------------------------------------------------------

    def hold(self) -> None:
        """Keep this backend's writes in memory until :meth:`flush` (Optuna sees them at once)."""
        with self._lock:
            if self._held is None:
                self._held = []

    def flush(self) -> None:
        """Write what is held, in one transaction; holding goes on if it was on."""
        with self._lock:
            if self._held:
                entries, self._held = self._held, []
                self._write(entries, handed=True)

    def release(self) -> None:
        """Write what is held and stop holding."""
        with self._lock:
            self.flush()
            self._held = None

    @property
    def holding(self) -> int:
        """How many written entries are held."""
        return len(self._held or ())

    # -- Optuna's interface ------------------------------------------------------------------

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        with self._lock:
            again: list[dict[str, Any]] = []
            if log_number_from != self._given:
                start, last = self._last
                if start <= log_number_from < self._given:
                    again = last[log_number_from - start :]
                elif log_number_from == 0 and not self._held:  # a new replay from the start
                    self._cursor = 0
                    self._ready = []
                    self.refresh()
                else:
                    raise RuntimeError(
                        f"journal of study {self.study_name!r}: read from {log_number_from}, "
                        f"but {self._given} logs were handed over"
                    )
            now = time.monotonic()
            if not self._synced and now - self._read_at >= self.min_read_interval:
                entries = self.store.read_journal(self.study_name, self._cursor)
                self._cursor += len(entries)
                self._ready.extend(json.loads(entry) for entry in entries)
                self._read_at = now
            self._synced = False
            logs = again + self._ready
            self._ready = []
            self._last = (log_number_from, logs)
            self._given = log_number_from + len(logs)
            return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # Python's JSON, NaN allowed: an intermediate value may be NaN, as in Optuna's files.
        entries = [json.dumps(log) for log in logs]
        with self._lock:
            if self._held is not None:
                self._held.extend(entries)
                self._ready.extend(logs)
                return
            self._write(entries, handed=False)

    def _write(self, entries: list[str], handed: bool) -> None:
        """Append ``entries`` and fetch in the same call what others appended since this
        backend's last read (Optuna's journal storage replays right after each write). With
        ``handed``, Optuna has the entries already: only the others' are handed over."""
        length, after = self.store.append_journal(self.study_name, entries, self._cursor)
        others = after[: len(after) - len(entries)] if handed else after
        self._ready.extend(json.loads(entry) for entry in others)
        self._cursor = length
        self._read_at = time.monotonic()
        self._synced = True


def open_storage(
    store: AbstractTuningStore, study_name: str, min_read_interval: float = 0.0
) -> JournalStorage:
    """Optuna storage for the study ``study_name`` kept in ``store`` (see
    :class:`StoreJournalBackend` for ``min_read_interval``)."""
    return JournalStorage(StoreJournalBackend(store, study_name, min_read_interval))


__all__ = ["StoreJournalBackend", "open_storage"]
