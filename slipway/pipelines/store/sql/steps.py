"""Steps and their artifact links: upsert (one transaction for the step and its links), get,
list, and the link queries (who produced an artifact, who consumed it).

The executor writes a step several times as it runs (queued, running, each retry, the end), so
an upsert is kept to a handful of statements: update the row; only when there was none, bump
the run's step counter (which also proves the run exists) and insert; then replace the links.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from slipway.entities.pipelines import ArtifactLink, PipelineStep
from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.pipelines.store.base import refs_of
from slipway.pipelines.store.sql import base as b
from slipway.pipelines.store.sql import tables as t

INPUT = "input"
OUTPUT = "output"


def uri_hash(uri: str) -> str:
    """What the URI index holds (URIs may be longer than an index entry can be)."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()


def step_of(row: Mapping[Any, Any]) -> PipelineStep:
    return PipelineStep(
        pipeline_run_id=row["pipeline_run_id"],
        task_id=row["task_id"],
        task_name=row["task_name"],
        component=row["component"],
        status=b.step_status(row["status"]),
        attempt=row["attempt"],
        run_id=row["run_id"],
        cache_key=row["cache_key"],
        cached_from=row["cached_from"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        inputs=b.load_json(row["inputs"]),
        outputs=b.load_json(row["outputs"]),
        message=row["message"],
        details=b.load_json(row["details"]),
    )


def link_of(row: Mapping[Any, Any]) -> ArtifactLink:
    return ArtifactLink(
        pipeline_run_id=row["pipeline_run_id"],
        task_id=row["task_id"],
        direction=row["direction"],
        name=row["name"],
        uri=row["uri"],
        digest=row["digest"],
        run_id=row["run_id"],
    )


def _values(step: PipelineStep) -> dict[str, Any]:
    """The row of ``step`` (without ``seq``), every field checked."""
    if not isinstance(step, PipelineStep):
        raise InvalidParameterValue(f"Expected a PipelineStep, got {type(step).__name__}")
    return {
        "pipeline_run_id": b.text(step.pipeline_run_id, "pipeline_run_id", t.RUN_ID_LENGTH),
        "task_id": b.text(step.task_id, "task_id", t.NAME_LENGTH),
        "task_name": b.text(step.task_name, "task_name", t.NAME_LENGTH),
        "component": b.text(step.component, "component", t.NAME_LENGTH),
        "status": str(b.step_status(step.status)),
        "attempt": b.integer(step.attempt, "attempt"),
        "run_id": b.optional_text(step.run_id, "run_id", t.ID_LENGTH),
        "cache_key": b.optional_text(step.cache_key, "cache_key", t.NAME_LENGTH),
        "cached_from": b.optional_text(step.cached_from, "cached_from", t.ID_LENGTH),
        "start_time": b.optional_integer(step.start_time, "start_time"),
        "end_time": b.optional_integer(step.end_time, "end_time"),
        "inputs": b.dump_json(step.inputs, "inputs"),
        "outputs": b.dump_json(step.outputs, "outputs"),
        "details": b.dump_json(step.details, "details"),
        "message": b.optional_text(step.message, "message"),
    }


def _links(step: PipelineStep) -> list[dict[str, Any]]:
    """A link row for every artifact ref in the step's inputs and outputs."""
    rows = []
    for direction, section in ((INPUT, step.inputs), (OUTPUT, step.outputs)):
        for name, ref in refs_of(section):
            uri = str(ref["uri"])
            digest = b.optional_text(ref.get("digest"), f"{direction} '{name}' digest", 256)
            rows.append(
                {
                    "pipeline_run_id": step.pipeline_run_id,
                    "task_id": step.task_id,
                    "direction": direction,
                    "name": name,
                    "uri": uri,
                    "uri_hash": uri_hash(uri),
                    "digest": digest,
                    "run_id": step.run_id,
                }
            )
    return rows


def _step_not_found(pipeline_run_id: str, task_id: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Step '{task_id}' of pipeline run '{pipeline_run_id}' not found")


class SqlPipelineSteps(b.SqlPipelineBase):
    def upsert_step(self, step: PipelineStep) -> PipelineStep:
        values = _values(step)
        links = _links(step)
        run_id, task_id = values["pipeline_run_id"], values["task_id"]
        s, r = t.steps.c, t.pipeline_runs.c
        changes = {k: v for k, v in values.items() if k not in ("pipeline_run_id", "task_id")}

        def work(conn: Connection) -> None:
            replaced = conn.execute(
                update(t.steps).where(s.pipeline_run_id == run_id, s.task_id == task_id),
                changes,
            )
            if replaced.rowcount:
                conn.execute(
                    delete(t.links).where(
                        t.links.c.pipeline_run_id == run_id, t.links.c.task_id == task_id
                    )
                )
            else:
                # Bumping the counter takes the run row's write lock: concurrent first
                # inserts into one run get distinct, increasing numbers.
                bumped = conn.execute(
                    update(t.pipeline_runs)
                    .where(r.run_id == run_id)
                    .values(step_count=r.step_count + 1)
                )
                if not bumped.rowcount:
                    raise b.not_found(run_id)
                seq = conn.execute(select(r.step_count).where(r.run_id == run_id)).scalar_one()
                conn.execute(insert(t.steps), {**values, "seq": seq})
            if links:
                conn.execute(insert(t.links), links)

        try:
            self._write(work)
        except IntegrityError:
            # Another writer inserted the same new step first (it was not there when this
            # transaction looked): run again, now as a replacement.
            self._write(work)
        return step_of(values)

    def get_step(self, pipeline_run_id: str, task_id: str) -> PipelineStep:
        b.identifier(pipeline_run_id, "pipeline_run_id")
        b.identifier(task_id, "task_id")
        s = t.steps.c
        with self._read() as conn:
            row = conn.execute(
                select(t.steps).where(s.pipeline_run_id == pipeline_run_id, s.task_id == task_id)
            ).first()
            if row is None:
                b.check_run_exists(conn, pipeline_run_id)
                raise _step_not_found(pipeline_run_id, task_id)
        return step_of(row._mapping)

    def list_steps(self, pipeline_run_id: str) -> list[PipelineStep]:
        b.identifier(pipeline_run_id, "pipeline_run_id")
        s = t.steps.c
        query = (
            select(t.steps).where(s.pipeline_run_id == pipeline_run_id).order_by(s.seq, s.task_id)
        )
        with self._read() as conn:
            b.check_run_exists(conn, pipeline_run_id)
            return [step_of(row._mapping) for row in conn.execute(query).all()]

    def list_artifact_links(
        self,
        pipeline_run_id: str | None = None,
        uri: str | None = None,
        digest: str | None = None,
    ) -> list[ArtifactLink]:
        c = t.links.c
        clauses = []
        if pipeline_run_id is not None:
            clauses.append(c.pipeline_run_id == b.optional_text(pipeline_run_id, "pipeline_run_id"))
        if uri is not None:
            uri = b.optional_text(uri, "uri")
            assert uri is not None
            clauses += [c.uri_hash == uri_hash(uri), c.uri == uri]
        if digest is not None:
            clauses.append(c.digest == b.optional_text(digest, "digest"))
        if not clauses:
            raise InvalidParameterValue(
                "Give at least one of pipeline_run_id, uri or digest to list artifact links"
            )
        query = select(t.links).where(*clauses).order_by(c.id)
        with self._read() as conn:
            return [link_of(row._mapping) for row in conn.execute(query).all()]
