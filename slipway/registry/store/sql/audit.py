"""Reading the registry's audit log (events are appended by :func:`base.record`, in the
transaction of the change they describe)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row, select

from slipway.entities.registry import AuditEvent
from slipway.exceptions import InvalidParameterValue
from slipway.registry import validation as v
from slipway.registry.store.sql import tables as t
from slipway.registry.store.sql.base import SqlRegistryBase
from slipway.registry.store.sql.models import validate_max_results

MAX_AUDIT_EVENTS = 100_000


def _event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        event_id=row.event_id,
        timestamp=row.timestamp,
        actor=row.actor,
        action=row.action,
        name=row.name,
        version=str(row.version) if row.version is not None else None,
        details=json.loads(row.details),
    )


class SqlAuditLog(SqlRegistryBase):
    def list_audit_events(
        self, name: str | None = None, version: str | None = None, max_results: int = 1000
    ) -> list[AuditEvent]:
        """The newest ``max_results`` events (of model ``name``, of its ``version``), listed
        oldest first. The log outlives the models it mentions, so an unknown or deleted model
        is not an error."""
        validate_max_results(max_results, MAX_AUDIT_EVENTS)
        query = select(t.audit)
        if name is not None:
            v.validate_model_name(name)
            query = query.where(t.audit.c.name == name)
        if version is not None:
            if name is None:
                raise InvalidParameterValue("Filtering audit events by version needs a model name")
            number = v.parse_version(version)
            if not 0 < number <= v.MAX_VERSION_NUMBER:
                return []
            query = query.where(t.audit.c.version == number)
        query = query.order_by(t.audit.c.event_id.desc()).limit(max_results)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_event(r) for r in reversed(rows)]
