"""``RestPipelineStore``: the pipeline store of a remote ``slipway server``, over HTTP.

Each store call is one request to ``/api/2.0/slipway/pipelines/...`` (see
:mod:`slipway.server.routers.pipelines`) through the tracking store's transport (retries,
timeouts, auth, TLS); records travel as :mod:`slipway.pipelines.store.wire` describes. The
server's ``{"error_code", "message"}`` comes back as the matching
:class:`~slipway.exceptions.SlipwayError` subclass, so every backend fails the same way.

Retries
    Calls that are safe to repeat (reads, replacing a step or a cache entry, setting fields
    of a run or schedule, asking for a cancel) are retried on connection errors and 5xx
    answers. Creates, deletes and :meth:`claim_schedule_run` are retried only where the
    server cannot have acted on them: a claim that succeeded but whose answer was lost must
    not be sent again, or its scheduler would be told it lost.
"""

from __future__ import annotations

from typing import Any

from slipway.entities import PagedList
from slipway.entities.pipelines import (
    ArtifactLink,
    CacheEntry,
    PipelineRun,
    PipelineRunStatus,
    PipelineStep,
    Schedule,
)
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines.store import wire
from slipway.pipelines.store.base import SEARCH_PIPELINE_RUNS_DEFAULT, AbstractPipelineStore
from slipway.tracking.store.rest.convert import parse
from slipway.tracking.store.rest.http import HttpConfig, RestTransport

PIPELINES_API = "api/2.0/slipway/pipelines"


class _PipelinesTransport(RestTransport):
    """A transport whose endpoints are paths below ``/api/2.0/slipway/pipelines``."""

    def url_for(self, endpoint: str) -> str:
        return f"{self.base_url}/{PIPELINES_API}/{endpoint.lstrip('/')}"


def _text(value: object) -> object:
    """An enum member's value; anything else as it is (the server refuses what it must)."""
    return getattr(value, "value", value)


def _body(record: Any, kind: type[Any]) -> dict[str, Any]:
    if not isinstance(record, kind):
        raise InvalidParameterValue(f"Expected a {kind.__name__}, got {type(record).__name__}")
    return wire.record_json(record)


class RestPipelineStore(AbstractPipelineStore):
    """Pipeline runs, steps, cache, artifact links and schedules kept by a server.

    Args:
        server_url: ``http(s)://host[:port][/prefix]`` of ``slipway server``.
        http_config: transport settings; from the environment (see
            :mod:`slipway.tracking.store.rest.http`) when omitted.
    """

    def __init__(self, server_url: str, http_config: HttpConfig | None = None) -> None:
        self.transport = _PipelinesTransport(server_url, http_config)
        self.server_url = self.transport.base_url

    def __repr__(self) -> str:
        return f"RestPipelineStore({self.server_url!r})"

    def close(self) -> None:
        self.transport.close()

    def _call(
        self,
        method: str,
        endpoint: str,
        fields: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        return self.transport.call(method, endpoint, fields, idempotent=idempotent)

    @staticmethod
    def _run(data: dict[str, Any]) -> PipelineRun:
        return parse(lambda d: wire.pipeline_run_of(d["pipeline_run"]), data, "pipeline run")

    @staticmethod
    def _step(data: dict[str, Any]) -> PipelineStep:
        return parse(lambda d: wire.step_of(d["step"]), data, "pipeline step")

    @staticmethod
    def _schedule(data: dict[str, Any]) -> Schedule:
        return parse(lambda d: wire.schedule_of(d["schedule"]), data, "schedule")

    # -- pipeline runs ------------------------------------------------------------------------

    def create_pipeline_run(self, run: PipelineRun) -> PipelineRun:
        body = _body(run, PipelineRun)
        return self._run(self._call("POST", "runs/create", body, idempotent=False))

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        return self._run(self._call("GET", "runs/get", {"run_id": run_id}))

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
        body = {
            "run_id": run_id,
            "status": _text(status),
            "end_time": end_time,
            "message": message,
            "graph": graph,
            "parameters": parameters,
            "attempt": attempt,
            "clear_end": clear_end or None,
        }
        return self._run(self._call("POST", "runs/update", body))

    def request_cancel(self, run_id: str) -> PipelineRun:
        return self._run(self._call("POST", "runs/cancel", {"run_id": run_id}))

    def search_pipeline_runs(
        self,
        pipeline_name: str | None = None,
        status: PipelineRunStatus | None = None,
        experiment_id: str | None = None,
        schedule_id: str | None = None,
        max_results: int = SEARCH_PIPELINE_RUNS_DEFAULT,
        page_token: str | None = None,
    ) -> PagedList[PipelineRun]:
        fields = {
            "pipeline_name": pipeline_name,
            "status": _text(status),
            "experiment_id": experiment_id,
            "schedule_id": schedule_id,
            "max_results": max_results,
            "page_token": page_token or None,
        }
        data = self._call("GET", "runs/search", fields)
        return parse(
            lambda d: PagedList(
                [wire.pipeline_run_of(r) for r in d.get("pipeline_runs") or []],
                d.get("next_page_token") or None,
            ),
            data,
            "pipeline run search",
        )

    # -- steps --------------------------------------------------------------------------------

    def upsert_step(self, step: PipelineStep) -> PipelineStep:
        # Replacing a step with itself is harmless: safe to send again.
        return self._step(self._call("POST", "steps/upsert", _body(step, PipelineStep)))

    def get_step(self, pipeline_run_id: str, task_id: str) -> PipelineStep:
        fields = {"pipeline_run_id": pipeline_run_id, "task_id": task_id}
        return self._step(self._call("GET", "steps/get", fields))

    def list_steps(self, pipeline_run_id: str) -> list[PipelineStep]:
        data = self._call("GET", "steps/list", {"pipeline_run_id": pipeline_run_id})
        return parse(lambda d: [wire.step_of(s) for s in d.get("steps") or []], data, "steps")

    # -- cache --------------------------------------------------------------------------------

    def get_cache_entry(self, key: str, max_age_ms: int | None = None) -> CacheEntry | None:
        data = self._call("GET", "cache/get", {"key": key, "max_age_ms": max_age_ms})
        return parse(
            lambda d: wire.cache_entry_of(d["entry"]) if d.get("entry") else None,
            data,
            "cache entry",
        )

    def put_cache_entry(self, entry: CacheEntry) -> None:
        self._call("POST", "cache/put", _body(entry, CacheEntry))

    def delete_cache_entries(self, component: str | None = None) -> int:
        data = self._call("POST", "cache/delete", {"component": component}, idempotent=False)
        return parse(lambda d: int(d.get("deleted", 0)), data, "cache deletion")

    # -- artifact links -----------------------------------------------------------------------

    def list_artifact_links(
        self,
        pipeline_run_id: str | None = None,
        uri: str | None = None,
        digest: str | None = None,
    ) -> list[ArtifactLink]:
        fields = {"pipeline_run_id": pipeline_run_id, "uri": uri, "digest": digest}
        data = self._call("GET", "artifacts/links", fields)
        return parse(lambda d: [wire.link_of(x) for x in d.get("links") or []], data, "links")

    # -- schedules ----------------------------------------------------------------------------

    def create_schedule(self, schedule: Schedule) -> Schedule:
        body = _body(schedule, Schedule)
        return self._schedule(self._call("POST", "schedules/create", body, idempotent=False))

    def get_schedule(self, schedule_id: str) -> Schedule:
        return self._schedule(self._call("GET", "schedules/get", {"schedule_id": schedule_id}))

    def list_schedules(self) -> list[Schedule]:
        data = self._call("GET", "schedules/list")
        return parse(
            lambda d: [wire.schedule_of(s) for s in d.get("schedules") or []], data, "schedules"
        )

    def update_schedule(
        self,
        schedule_id: str,
        *,
        paused: bool | None = None,
        next_run_time: int | None = None,
        last_run_time: int | None = None,
        last_run_id: str | None = None,
    ) -> Schedule:
        body = {
            "schedule_id": schedule_id,
            "paused": paused,
            "next_run_time": next_run_time,
            "last_run_time": last_run_time,
            "last_run_id": last_run_id,
        }
        return self._schedule(self._call("POST", "schedules/update", body))

    def claim_schedule_run(self, schedule_id: str, due_time: int, next_run_time: int) -> bool:
        body = {"schedule_id": schedule_id, "due_time": due_time, "next_run_time": next_run_time}
        data = self._call("POST", "schedules/claim", body, idempotent=False)
        return parse(lambda d: _claimed(d["claimed"]), data, "claim")

    def delete_schedule(self, schedule_id: str) -> None:
        self._call("POST", "schedules/delete", {"schedule_id": schedule_id}, idempotent=False)


def _claimed(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


__all__ = ["PIPELINES_API", "RestPipelineStore"]
