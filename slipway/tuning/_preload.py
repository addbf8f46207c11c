"""Imported once by the trial fork server, before it forks any worker: opens the study's stores
(the tracking database's engine, its schema checked; or the server's connection pool) and runs
the journal query once, so every worker forked from it starts with them ready instead of paying
for them (tens of milliseconds each). Workers pick the stores up from the per-URI store caches;
after the fork each drops the inherited connections and opens its own.

The coordinator names the store and the study in :data:`URI_ENV` and :data:`STUDY_ENV` while
it starts the fork server. A store that cannot be opened here is only opened later, in the
worker, where any error is reported.
"""

from __future__ import annotations

import contextlib
import os

URI_ENV = "SLIPWAY_TUNING_PRELOAD_URI"
STUDY_ENV = "SLIPWAY_TUNING_PRELOAD_STUDY"


def _warm() -> None:
    uri = os.environ.get(URI_ENV)
    if not uri:
        return
    with contextlib.suppress(Exception):
        from slipway.tuning.store import get_tuning_store

        store = get_tuning_store(uri)
        study = os.environ.get(STUDY_ENV)
        # Over HTTP nothing is worth warming, and an unreachable server would hold the fork
        # server up for the transport's retries.
        if study and not uri.startswith(("http://", "https://")):
            store.read_journal(study, 0)


_warm()
