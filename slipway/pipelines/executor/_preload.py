"""Imported by the steps' fork server only (never by the orchestrator): importing it warms the
tracking store's first-use work (SQLAlchemy's dialect set-up, statement compilation, the
fluent API's batching) on a throwaway SQLite database, so that each forked step inherits it
done. A step that logs a metric then costs a few milliseconds of tracking instead of a
hundred.

Nothing may escape from here: the fork server would die with it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile


def _warm() -> None:
    from slipway.entities import Metric, Param, RunStatus, RunTag
    from slipway.tracking.store.sql import SqlTrackingStore

    folder = tempfile.mkdtemp(prefix="slipway-preload-")
    try:
        store = SqlTrackingStore(f"sqlite:///{folder}/warm.db", f"{folder}/artifacts")
        try:
            run = store.create_run("0", "preload", 0, [RunTag("t", "v")], "preload")
            run_id = run.info.run_id
            store.get_run(run_id)
            store.log_batch(
                run_id,
                metrics=[Metric("m", 1.0, 0, 0)],
                params=[Param("p", "v")],
                tags=[RunTag("t", "w")],
            )
            store.update_run_info(run_id, RunStatus.RUNNING, None, None)
            store.get_run(run_id)
        finally:
            store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


with contextlib.suppress(Exception):  # an optimisation only: a step works without it
    _warm()
