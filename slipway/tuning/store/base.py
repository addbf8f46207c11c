"""What a tuning store keeps: studies (:class:`StudyRecord`) and the journal of each study's
Optuna storage, as text entries numbered from 0.

Two backends implement :class:`AbstractTuningStore`: SQL, in the tracking database beside the
runs (:mod:`slipway.tuning.store.sql`), and REST, against ``slipway server``
(:mod:`slipway.tuning.store.rest`). Both raise the same errors for the same mistakes, so the
study code above them never asks which one it has.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

STUDY_NAME_MAX = 256
"""The longest study name (the column's width)."""
OWNER_MAX = 256
"""The longest lease owner."""


@dataclass(frozen=True)
class StudyRecord:
    """One study as stored.

    ``spec`` is the study's specification as JSON (the search space, direction, sampler, the
    trial command...: :class:`slipway.tuning.spec.TuneSpec`). ``log_count`` is the length of
    its journal. ``lease_owner`` names the coordinator process that runs the study now (None
    when none does) and ``lease_expires`` when that claim runs out unless renewed (ms).
    """

    name: str
    run_id: str
    experiment_id: str
    spec: dict[str, Any] = field(default_factory=dict)
    created_time: int = 0
    log_count: int = 0
    lease_owner: str | None = None
    lease_expires: int | None = None


class AbstractTuningStore(abc.ABC):
    """Studies and their journals. Implementations are safe to use from several threads and
    processes at once: journal appends to one study are serialised by the store, never by
    the caller."""

    @abc.abstractmethod
    def create_study(
        self, name: str, run_id: str, experiment_id: str, spec: dict[str, Any]
    ) -> StudyRecord:
        """Record a new study with an empty journal.

        Raises:
            ResourceAlreadyExists: a study of that name exists.
            InvalidParameterValue: an empty or too long name, a spec that is not JSON.
        """

    @abc.abstractmethod
    def get_study(self, name: str) -> StudyRecord:
        """The study named ``name``; RESOURCE_DOES_NOT_EXIST if there is none."""

    @abc.abstractmethod
    def list_studies(self) -> list[StudyRecord]:
        """Every study, newest first."""

    @abc.abstractmethod
    def read_journal(self, name: str, log_number_from: int = 0) -> list[str]:
        """The study's journal entries numbered ``log_number_from`` and on, in order."""

    @abc.abstractmethod
    def append_journal(
        self, name: str, entries: list[str], log_number_from: int | None = None
    ) -> tuple[int, list[str]]:
        """Append ``entries`` (JSON objects as text) to the study's journal, together and in
        order. Returns the journal's new length and, when ``log_number_from`` is given, the
        entries from that number on as they stand after the append (read in the same
        transaction: a writer that replays the journal saves a round trip).

        Raises:
            InvalidParameterValue: an entry that is not a JSON object.
        """

    @abc.abstractmethod
    def claim_study(
        self, name: str, owner: str, ttl_ms: int, stale_owner: str | None = None
    ) -> StudyRecord:
        """Make ``owner`` the process that runs the study for the next ``ttl_ms``: granted
        when no one holds the study, ``owner`` already does, the holder's claim has run out,
        or the holder is ``stale_owner`` (a process the caller knows to be dead). Calling it
        again renews the claim.

        Raises:
            ResourceConflict: another owner holds the study.
        """

    @abc.abstractmethod
    def release_study(self, name: str, owner: str) -> None:
        """Give the study up, if ``owner`` holds it (else nothing changes)."""

    def close(self) -> None:  # noqa: B027 - a store without resources needs no close
        """Release what the store holds open."""


__all__ = ["OWNER_MAX", "STUDY_NAME_MAX", "AbstractTuningStore", "StudyRecord"]
