"""Deployments: where a model version serves from, recorded by ``slipway serve`` and friends
(and read by lineage)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from slipway.entities.registry import Deployment, DeploymentStatus
from slipway.exceptions import InvalidParameterValue, ResourceConflict, ResourceDoesNotExist
from slipway.registry import validation as v
from slipway.registry.store.sql import tables as t
from slipway.registry.store.sql.base import (
    SqlRegistryBase,
    dump_details,
    now_ms,
    record,
    version_row,
)
from slipway.utils.user import current_user

MAX_ENDPOINT_LENGTH = 2000
_ENDED = (DeploymentStatus.STOPPED, DeploymentStatus.FAILED)


def _deployment(row: Row[Any]) -> Deployment:
    return Deployment(
        deployment_id=row.deployment_id,
        name=row.name,
        version=str(row.version),
        endpoint=row.endpoint,
        status=DeploymentStatus(row.status),
        start_time=row.start_time,
        end_time=row.end_time,
        details=json.loads(row.details),
    )


def _deployment_row(conn: Connection, deployment_id: object, *, lock: bool = False) -> Row[Any]:
    if not isinstance(deployment_id, str) or not deployment_id:
        raise InvalidParameterValue(f"Invalid deployment id {deployment_id!r}")
    query = select(t.deployments).where(t.deployments.c.deployment_id == deployment_id)
    if lock and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise ResourceDoesNotExist(f"Deployment '{deployment_id}' not found")
    return row


class SqlDeployments(SqlRegistryBase):
    def record_deployment(
        self,
        name: str,
        version: str,
        endpoint: str,
        details: dict[str, object] | None = None,
        actor: str | None = None,
    ) -> Deployment:
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise InvalidParameterValue("Missing value for required parameter 'endpoint'.")
        if len(endpoint) > MAX_ENDPOINT_LENGTH:
            raise InvalidParameterValue(
                f"'endpoint' exceeds the maximum length of {MAX_ENDPOINT_LENGTH} characters"
            )
        text = dump_details(details)
        deployment_id = uuid.uuid4().hex
        user = actor or current_user()

        def work(conn: Connection) -> Deployment:
            row = version_row(conn, name, version)
            conn.execute(
                insert(t.deployments).values(
                    deployment_id=deployment_id,
                    name=name,
                    version=row.version,
                    endpoint=endpoint,
                    status=str(DeploymentStatus.RUNNING),
                    start_time=now_ms(),
                    details=text,
                )
            )
            record(
                conn,
                "deploy",
                name,
                row.version,
                actor=user,
                deployment_id=deployment_id,
                endpoint=endpoint,
            )
            return _deployment(_deployment_row(conn, deployment_id))

        return self._write(work)

    def end_deployment(
        self, deployment_id: str, status: DeploymentStatus = DeploymentStatus.STOPPED
    ) -> Deployment:
        try:
            final = DeploymentStatus(status)
        except ValueError:
            final = None
        if final not in _ENDED:
            raise InvalidParameterValue(
                f"Invalid final deployment status {status!r}: use STOPPED or FAILED"
            )

        def work(conn: Connection) -> Deployment:
            row = _deployment_row(conn, deployment_id, lock=True)
            if row.status != DeploymentStatus.RUNNING:
                raise ResourceConflict(f"Deployment '{deployment_id}' has already {row.status}")
            conn.execute(
                update(t.deployments)
                .where(t.deployments.c.deployment_id == deployment_id)
                .values(status=str(final), end_time=now_ms())
            )
            record(
                conn,
                "undeploy",
                row.name,
                row.version,
                actor=current_user(),
                deployment_id=deployment_id,
                endpoint=row.endpoint,
                status=str(final),
            )
            return _deployment(_deployment_row(conn, deployment_id))

        return self._write(work)

    def list_deployments(
        self, name: str | None = None, version: str | None = None, running_only: bool = False
    ) -> list[Deployment]:
        """Newest first."""
        query = select(t.deployments)
        if name is not None:
            v.validate_model_name(name)
            query = query.where(t.deployments.c.name == name)
        if version is not None:
            if name is None:
                raise InvalidParameterValue("Filtering deployments by version needs a model name")
            number = v.parse_version(version)
            if not 0 < number <= v.MAX_VERSION_NUMBER:
                return []
            query = query.where(t.deployments.c.version == number)
        if running_only:
            query = query.where(t.deployments.c.status == str(DeploymentStatus.RUNNING))
        query = query.order_by(t.deployments.c.start_time.desc(), t.deployments.c.deployment_id)
        with self._read() as conn:
            return [_deployment(r) for r in conn.execute(query).all()]
