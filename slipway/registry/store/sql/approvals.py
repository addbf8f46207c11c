"""Approval policies and transition requests.

A policy makes an alias or a stage of one model move only through an approved request.
Approving applies the move in the same transaction as the decision, so a request is never
approved without its move nor moved twice; the audit log gets both the decision and the move.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from slipway.entities.registry import (
    ApprovalPolicy,
    RequestStatus,
    TransitionRequest,
    TransitionTarget,
)
from slipway.exceptions import (
    InvalidParameterValue,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
)
from slipway.registry import validation as v
from slipway.registry.store.sql import tables as t
from slipway.registry.store.sql.base import (
    SqlRegistryBase,
    model_row,
    now_ms,
    record,
    version_row,
)
from slipway.registry.store.sql.moves import apply_alias, apply_stage, policy_row
from slipway.tracking.store.sql.upsert import upsert
from slipway.utils.user import current_user


def _policy(row: Row[Any]) -> ApprovalPolicy:
    return ApprovalPolicy(
        name=row.name,
        target_kind=TransitionTarget(row.target_kind),
        target=row.target,
        allow_self_approval=bool(row.allow_self_approval),
        created_by=row.created_by,
        creation_timestamp=row.creation_time,
    )


def _request(row: Row[Any]) -> TransitionRequest:
    return TransitionRequest(
        request_id=row.request_id,
        name=row.name,
        version=str(row.version),
        target_kind=TransitionTarget(row.target_kind),
        target=row.target,
        requested_by=row.requested_by,
        creation_timestamp=row.creation_time,
        comment=row.comment,
        archive_existing_versions=bool(row.archive_existing_versions),
        status=RequestStatus(row.status),
        decided_by=row.decided_by,
        decision_comment=row.decision_comment,
        decided_timestamp=row.decided_time,
    )


def _request_row(conn: Connection, request_id: object, *, lock: bool = False) -> Row[Any]:
    """The request's row; ``lock`` holds it (``FOR UPDATE``) until the transaction ends, so
    two deciders cannot both see it PENDING (SQLite serialises writers anyway)."""
    if not isinstance(request_id, str) or not request_id:
        raise InvalidParameterValue(f"Invalid transition request id {request_id!r}")
    query = select(t.requests).where(t.requests.c.request_id == request_id)
    if lock and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise ResourceDoesNotExist(f"Transition request '{request_id}' not found")
    return row


def _require_pending(row: Row[Any]) -> None:
    if row.status != RequestStatus.PENDING:
        raise ResourceConflict(
            f"Transition request '{row.request_id}' is {row.status}, not PENDING: "
            "only a pending request can be decided or cancelled"
        )


def _check_comment(comment: object) -> str | None:
    if comment is not None and not isinstance(comment, str):
        raise InvalidParameterValue(f"comment must be a string, got {type(comment).__name__}")
    return comment


class SqlApprovals(SqlRegistryBase):
    # -- policies ---------------------------------------------------------------------------

    def set_approval_policy(
        self,
        name: str,
        target_kind: TransitionTarget,
        target: str,
        allow_self_approval: bool = False,
        actor: str | None = None,
    ) -> ApprovalPolicy:
        kind, target = v.validate_target(target_kind, target)
        if not isinstance(allow_self_approval, bool):
            raise InvalidParameterValue("allow_self_approval must be a boolean")
        user = actor or current_user()

        def work(conn: Connection) -> ApprovalPolicy:
            model_row(conn, name)
            upsert(
                conn,
                t.policies,
                [
                    {
                        "name": name,
                        "target_kind": str(kind),
                        "target": target,
                        "allow_self_approval": allow_self_approval,
                        "created_by": user,
                        "creation_time": now_ms(),
                    }
                ],
                keys=["name", "target_kind", "target"],
                update=["allow_self_approval", "created_by", "creation_time"],
            )
            record(
                conn,
                "set_policy",
                name,
                actor=user,
                target_kind=str(kind),
                target=target,
                allow_self_approval=allow_self_approval,
            )
            row = policy_row(conn, name, kind, target)
            assert row is not None
            return _policy(row)

        return self._write(work)

    def delete_approval_policy(
        self, name: str, target_kind: TransitionTarget, target: str, actor: str | None = None
    ) -> None:
        kind, target = v.validate_target(target_kind, target)

        def work(conn: Connection) -> None:
            model_row(conn, name)
            done = conn.execute(
                delete(t.policies).where(
                    t.policies.c.name == name,
                    t.policies.c.target_kind == str(kind),
                    t.policies.c.target == target,
                )
            )
            if done.rowcount == 0:
                raise ResourceDoesNotExist(
                    f"No approval policy on {kind} '{target}' of registered model '{name}'"
                )
            record(conn, "delete_policy", name, actor=actor, target_kind=str(kind), target=target)

        self._write(work)

    def list_approval_policies(self, name: str) -> list[ApprovalPolicy]:
        with self._read() as conn:
            model_row(conn, name)
            rows = conn.execute(
                select(t.policies)
                .where(t.policies.c.name == name)
                .order_by(t.policies.c.target_kind, t.policies.c.target)
            ).all()
        return [_policy(r) for r in rows]

    # -- requests ---------------------------------------------------------------------------

    def request_transition(
        self,
        name: str,
        version: str,
        target_kind: TransitionTarget,
        target: str,
        comment: str | None = None,
        archive_existing_versions: bool = False,
        actor: str | None = None,
    ) -> TransitionRequest:
        kind, target = v.validate_target(target_kind, target)
        _check_comment(comment)
        if kind is TransitionTarget.STAGE:
            v.validate_archive(target, archive_existing_versions)
        elif archive_existing_versions:
            raise InvalidParameterValue(
                "archive_existing_versions applies to stage transitions, not to aliases"
            )
        user = actor or current_user()
        request_id = uuid.uuid4().hex

        def work(conn: Connection) -> TransitionRequest:
            row = version_row(conn, name, version)
            pending = conn.execute(
                select(t.requests.c.request_id).where(
                    t.requests.c.name == name,
                    t.requests.c.version == row.version,
                    t.requests.c.target_kind == str(kind),
                    t.requests.c.target == target,
                    t.requests.c.status == str(RequestStatus.PENDING),
                )
            ).scalar()
            if pending is not None:
                raise ResourceAlreadyExists(
                    f"A pending request ({pending}) already asks to move {kind} '{target}' of "
                    f"'{name}' to version {row.version}"
                )
            conn.execute(
                insert(t.requests).values(
                    request_id=request_id,
                    name=name,
                    version=row.version,
                    target_kind=str(kind),
                    target=target,
                    requested_by=user,
                    creation_time=now_ms(),
                    comment=comment,
                    archive_existing_versions=archive_existing_versions,
                    status=str(RequestStatus.PENDING),
                )
            )
            record(
                conn,
                "request_transition",
                name,
                row.version,
                actor=user,
                request_id=request_id,
                target_kind=str(kind),
                target=target,
                comment=comment,
            )
            return _request(_request_row(conn, request_id))

        return self._write(work)

    def decide_transition_request(
        self,
        request_id: str,
        approve: bool,
        comment: str | None = None,
        actor: str | None = None,
    ) -> TransitionRequest:
        _check_comment(comment)
        user = actor or current_user()

        def work(conn: Connection) -> TransitionRequest:
            row = _request_row(conn, request_id, lock=True)
            _require_pending(row)
            kind = TransitionTarget(row.target_kind)
            policy = policy_row(conn, row.name, kind, row.target)
            self_approval = approve and user == row.requested_by
            if policy is not None and not policy.allow_self_approval and self_approval:
                raise PermissionDenied(
                    f"'{user}' requested this transition and the policy on {kind} "
                    f"'{row.target}' of '{row.name}' forbids approving one's own request"
                )
            status = RequestStatus.APPROVED if approve else RequestStatus.REJECTED
            conn.execute(
                update(t.requests)
                .where(t.requests.c.request_id == row.request_id)
                .values(
                    status=str(status),
                    decided_by=user,
                    decision_comment=comment,
                    decided_time=now_ms(),
                )
            )
            record(
                conn,
                "approve" if approve else "reject",
                row.name,
                row.version,
                actor=user,
                request_id=row.request_id,
                comment=comment,
            )
            if approve:
                self._apply(conn, row, user)
            return _request(_request_row(conn, row.request_id))

        return self._write(work)

    @staticmethod
    def _apply(conn: Connection, row: Row[Any], actor: str) -> None:
        try:
            target_version = version_row(conn, row.name, row.version)
        except ResourceDoesNotExist:
            raise ResourceDoesNotExist(
                f"Cannot approve transition request '{row.request_id}': model version "
                f"(name={row.name}, version={row.version}) no longer exists; reject or cancel "
                "the request instead"
            ) from None
        if row.target_kind == TransitionTarget.ALIAS:
            apply_alias(conn, row.name, row.target, row.version, actor, row.request_id)
        else:
            apply_stage(
                conn,
                row.name,
                target_version,
                row.target,
                bool(row.archive_existing_versions),
                actor,
                row.request_id,
            )

    def cancel_transition_request(
        self, request_id: str, actor: str | None = None
    ) -> TransitionRequest:
        user = actor or current_user()

        def work(conn: Connection) -> TransitionRequest:
            row = _request_row(conn, request_id, lock=True)
            if row.requested_by != user:
                raise PermissionDenied(
                    f"Only the requester ('{row.requested_by}') can cancel transition request "
                    f"'{row.request_id}'"
                )
            _require_pending(row)
            conn.execute(
                update(t.requests)
                .where(t.requests.c.request_id == row.request_id)
                .values(status=str(RequestStatus.CANCELLED), decided_by=user, decided_time=now_ms())
            )
            record(conn, "cancel", row.name, row.version, actor=user, request_id=row.request_id)
            return _request(_request_row(conn, row.request_id))

        return self._write(work)

    def get_transition_request(self, request_id: str) -> TransitionRequest:
        with self._read() as conn:
            return _request(_request_row(conn, request_id))

    def list_transition_requests(
        self,
        name: str | None = None,
        version: str | None = None,
        status: RequestStatus | None = None,
    ) -> list[TransitionRequest]:
        query = select(t.requests)
        if name is not None:
            v.validate_model_name(name)
            query = query.where(t.requests.c.name == name)
        if version is not None:
            if name is None:
                raise InvalidParameterValue("Filtering requests by version needs a model name")
            number = v.parse_version(version)
            if not 0 < number <= v.MAX_VERSION_NUMBER:
                return []
            query = query.where(t.requests.c.version == number)
        if status is not None:
            try:
                query = query.where(t.requests.c.status == str(RequestStatus(status)))
            except ValueError:
                raise InvalidParameterValue(
                    f"Invalid request status {status!r}: use one of "
                    f"{', '.join(s.value for s in RequestStatus)}"
                ) from None
        with self._read() as conn:
            rows = conn.execute(query.order_by(t.requests.c.id.desc())).all()
        return [_request(r) for r in rows]
