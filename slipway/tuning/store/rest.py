"""``RestTuningStore``: the tuning store of a remote ``slipway server``, over HTTP.

Each call is one request to ``/api/2.0/slipway/tuning/...`` (see
:mod:`slipway.server.routers.tuning`) through the tracking store's transport (timeouts, auth,
TLS). Journal entries travel as JSON text inside the JSON body, so Optuna's NaN intermediate
values (which strict JSON has no literal for) arrive as they were written.

Retries
    Reads, claims (a claim by the same owner is granted again) and releases are retried on
    connection errors and 5xx answers. Creating a study and appending to a journal are retried
    only where the server cannot have acted: an append whose answer was lost must not be sent
    again, or the journal would hold its entries twice.
"""

from __future__ import annotations

from typing import Any

from slipway.tracking.store.rest.convert import parse
from slipway.tracking.store.rest.http import HttpConfig, RestTransport
from slipway.tuning.store.base import AbstractTuningStore, StudyRecord

TUNING_API = "api/2.0/slipway/tuning"


class _TuningTransport(RestTransport):
    """A transport whose endpoints are paths below ``/api/2.0/slipway/tuning``."""

    def url_for(self, endpoint: str) -> str:
        return f"{self.base_url}/{TUNING_API}/{endpoint.lstrip('/')}"


def study_json(record: StudyRecord) -> dict[str, Any]:
    """A study on the wire (None fields left out)."""
    out: dict[str, Any] = {
        "name": record.name,
        "run_id": record.run_id,
        "experiment_id": record.experiment_id,
        "spec": record.spec,
        "created_time": record.created_time,
        "log_count": record.log_count,
    }
    if record.lease_owner is not None:
        out["lease_owner"] = record.lease_owner
    if record.lease_expires is not None:
        out["lease_expires"] = record.lease_expires
    return out


def study_of(data: dict[str, Any]) -> StudyRecord:
    expires = data.get("lease_expires")
    return StudyRecord(
        name=str(data["name"]),
        run_id=str(data["run_id"]),
        experiment_id=str(data["experiment_id"]),
        spec=dict(data.get("spec") or {}),
        created_time=int(data.get("created_time") or 0),
        log_count=int(data.get("log_count") or 0),
        lease_owner=data.get("lease_owner"),
        lease_expires=int(expires) if expires is not None else None,
    )


class RestTuningStore(AbstractTuningStore):
    """Studies and journals kept by a server.

    Args:
        server_url: ``http(s)://host[:port][/prefix]`` of ``slipway server``.
        http_config: transport settings; from the environment when omitted.
    """

    def __init__(self, server_url: str, http_config: HttpConfig | None = None) -> None:
        self.transport = _TuningTransport(server_url, http_config)
        self.server_url = self.transport.base_url

    def __repr__(self) -> str:
        return f"RestTuningStore({self.server_url!r})"

    def close(self) -> None:
        self.transport.close()

    @staticmethod
    def _study(data: dict[str, Any]) -> StudyRecord:
        return parse(lambda d: study_of(d["study"]), data, "study")

    def create_study(
        self, name: str, run_id: str, experiment_id: str, spec: dict[str, Any]
    ) -> StudyRecord:
        body = {"name": name, "run_id": run_id, "experiment_id": experiment_id, "spec": spec}
        return self._study(self.transport.call("POST", "studies/create", body, idempotent=False))

    def get_study(self, name: str) -> StudyRecord:
        return self._study(self.transport.call("GET", "studies/get", {"name": name}))

    def list_studies(self) -> list[StudyRecord]:
        data = self.transport.call("GET", "studies/list")
        return parse(lambda d: [study_of(s) for s in d.get("studies", [])], data, "studies")

    def read_journal(self, name: str, log_number_from: int = 0) -> list[str]:
        fields = {"name": name, "log_number_from": log_number_from}
        data = self.transport.call("GET", "journal/read", fields)
        return parse(lambda d: [str(e) for e in d.get("logs", [])], data, "journal")

    def append_journal(
        self, name: str, entries: list[str], log_number_from: int | None = None
    ) -> tuple[int, list[str]]:
        body = {"name": name, "logs": entries, "log_number_from": log_number_from}
        data = self.transport.call("POST", "journal/append", body, idempotent=False)
        return parse(
            lambda d: (int(d["log_count"]), [str(e) for e in d.get("logs", [])]),
            data,
            "journal append",
        )

    def claim_study(
        self, name: str, owner: str, ttl_ms: int, stale_owner: str | None = None
    ) -> StudyRecord:
        body = {"name": name, "owner": owner, "ttl_ms": ttl_ms, "stale_owner": stale_owner}
        return self._study(self.transport.call("POST", "studies/claim", body))

    def release_study(self, name: str, owner: str) -> None:
        self.transport.call("POST", "studies/release", {"name": name, "owner": owner})


__all__ = ["TUNING_API", "RestTuningStore", "study_json", "study_of"]
