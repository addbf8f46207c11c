"""Pipeline runs: create, get, update (cancel requests kept), cancel, search."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, case, insert, select, update
from sqlalchemy.exc import IntegrityError

from slipway.entities import PagedList
from slipway.entities.pipelines import PipelineRun, PipelineRunStatus
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from slipway.pipelines.store.base import SEARCH_PIPELINE_RUNS_DEFAULT, SEARCH_PIPELINE_RUNS_MAX
from slipway.pipelines.store.sql import base as b
from slipway.pipelines.store.sql import tables as t
from slipway.registry.store.sql.models import validate_max_results
from slipway.tracking.search import decode_page_token, encode_page_token
from slipway.tracking.store.sql.query import runs as tracking_runs

_CANCELLABLE = (str(PipelineRunStatus.QUEUED), str(PipelineRunStatus.RUNNING))
_CANCELLING = str(PipelineRunStatus.CANCELLING)


def pipeline_run_of(row: Mapping[Any, Any]) -> PipelineRun:
    return PipelineRun(
        run_id=row["run_id"],
        experiment_id=row["experiment_id"],
        pipeline_name=row["pipeline_name"],
        status=PipelineRunStatus(row["status"]),
        start_time=row["start_time"],
        end_time=row["end_time"],
        parameters=b.load_json(row["parameters"]),
        graph=b.load_json(row["graph"]),
        source=row["source"],
        attempt=row["attempt"],
        schedule_id=row["schedule_id"],
        user_id=row["user_id"],
        message=row["message"],
    )


def _values(run: PipelineRun) -> dict[str, Any]:
    """The row of ``run``, every field checked."""
    if not isinstance(run, PipelineRun):
        raise InvalidParameterValue(f"Expected a PipelineRun, got {type(run).__name__}")
    return {
        "run_id": b.text(run.run_id, "run_id", t.RUN_ID_LENGTH),
        "experiment_id": b.text(run.experiment_id, "experiment_id", 32),
        "pipeline_name": b.text(run.pipeline_name, "pipeline_name", t.NAME_LENGTH),
        "status": str(b.run_status(run.status)),
        "start_time": b.integer(run.start_time, "start_time"),
        "end_time": b.optional_integer(run.end_time, "end_time"),
        "parameters": b.dump_json(run.parameters, "parameters"),
        "graph": b.dump_json(run.graph, "graph"),
        "source": b.optional_text(run.source, "source"),
        "attempt": b.integer(run.attempt, "attempt", minimum=1),
        "schedule_id": b.optional_text(run.schedule_id, "schedule_id", t.ID_LENGTH),
        "user_id": b.optional_text(run.user_id, "user_id", 256),
        "message": b.optional_text(run.message, "message"),
    }


def _load(conn: Connection, run_id: str) -> PipelineRun:
    row = conn.execute(select(t.pipeline_runs).where(t.pipeline_runs.c.run_id == run_id)).first()
    if row is None:
        raise b.not_found(run_id)
    return pipeline_run_of(row._mapping)


def _run_id(run_id: object) -> str:
    return b.identifier(run_id, "pipeline run id")


class SqlPipelineRuns(b.SqlPipelineBase):
    def create_pipeline_run(self, run: PipelineRun) -> PipelineRun:
        values = _values(run)
        run_id = values["run_id"]

        def work(conn: Connection) -> PipelineRun:
            tracked = conn.execute(
                select(tracking_runs.c.run_uuid).where(tracking_runs.c.run_uuid == run_id)
            ).first()
            if tracked is None:
                raise ResourceDoesNotExist(
                    f"Run '{run_id}' not found: a pipeline run needs its tracking run"
                )
            exists = conn.execute(
                select(t.pipeline_runs.c.run_id).where(t.pipeline_runs.c.run_id == run_id)
            ).first()
            if exists is not None:
                raise _already_exists(run_id)
            conn.execute(insert(t.pipeline_runs).values(**values, step_count=0))
            return _load(conn, run_id)

        try:
            return self._write(work)
        except IntegrityError:  # created by another writer since the check
            raise _already_exists(run_id) from None

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        with self._read() as conn:
            return _load(conn, _run_id(run_id))

    def update_pipeline_run(
        self,
        run_id: str,
        *,
        status: PipelineRunStatus | None = None,
        end_time: int | None = None,
        message: str | None = None,
        graph: dict[str, object] | None = None,
        parameters: dict[str, object] | None = None,
        attempt: int | None = None,
        clear_end: bool = False,
    ) -> PipelineRun:
        _run_id(run_id)
        values: dict[str, Any] = {}
        if clear_end:
            values["end_time"] = values["message"] = None
        if end_time is not None:
            values["end_time"] = b.integer(end_time, "end_time")
        if message is not None:
            values["message"] = b.optional_text(message, "message")
        if graph is not None:
            values["graph"] = b.dump_json(graph, "graph")
        if parameters is not None:
            values["parameters"] = b.dump_json(parameters, "parameters")
        if attempt is not None:
            values["attempt"] = b.integer(attempt, "attempt", minimum=1)
        if status is not None:
            new = b.run_status(status)
            column = t.pipeline_runs.c.status
            # One statement decides, so a cancel request that lands between a read and a
            # write is never lost: only a terminal status replaces CANCELLING.
            values["status"] = (
                str(new) if new.terminal else case((column == _CANCELLING, column), else_=str(new))
            )

        def work(conn: Connection) -> PipelineRun:
            if values:
                conn.execute(
                    update(t.pipeline_runs)
                    .where(t.pipeline_runs.c.run_id == run_id)
                    .values(**values)
                )
            return _load(conn, run_id)

        return self._write(work)

    def request_cancel(self, run_id: str) -> PipelineRun:
        _run_id(run_id)

        def work(conn: Connection) -> PipelineRun:
            conn.execute(
                update(t.pipeline_runs)
                .where(
                    t.pipeline_runs.c.run_id == run_id, t.pipeline_runs.c.status.in_(_CANCELLABLE)
                )
                .values(status=_CANCELLING)
            )
            return _load(conn, run_id)

        return self._write(work)

    def search_pipeline_runs(
        self,
        pipeline_name: str | None = None,
        status: PipelineRunStatus | None = None,
        experiment_id: str | None = None,
        schedule_id: str | None = None,
        max_results: int = SEARCH_PIPELINE_RUNS_DEFAULT,
        page_token: str | None = None,
    ) -> PagedList[PipelineRun]:
        validate_max_results(max_results, SEARCH_PIPELINE_RUNS_MAX)
        offset = decode_page_token(page_token)
        c = t.pipeline_runs.c
        query = select(t.pipeline_runs)
        for column, value, name in (
            (c.pipeline_name, pipeline_name, "pipeline_name"),
            (c.experiment_id, experiment_id, "experiment_id"),
            (c.schedule_id, schedule_id, "schedule_id"),
        ):
            if value is not None:
                query = query.where(column == b.optional_text(value, name))
        if status is not None:
            query = query.where(c.status == str(b.run_status(status)))
        # Both keys descending: the (start_time, run_id) index is read backwards.
        query = query.order_by(c.start_time.desc(), c.run_id.desc())
        query = query.offset(offset).limit(max_results + 1)
        with self._read() as conn:
            found = [pipeline_run_of(r._mapping) for r in conn.execute(query).all()]
        more = len(found) > max_results
        token = encode_page_token(offset + max_results) if more else None
        return PagedList(found[:max_results], token)


def _already_exists(run_id: str) -> ResourceAlreadyExists:
    return ResourceAlreadyExists(f"Pipeline run '{run_id}' already exists")
