"""``SqlRegistryStore``: the model registry on the tracking store's SQL database."""

from __future__ import annotations

from slipway.registry.store.base import AbstractRegistryStore
from slipway.registry.store.sql.approvals import SqlApprovals
from slipway.registry.store.sql.audit import SqlAuditLog
from slipway.registry.store.sql.deployments import SqlDeployments
from slipway.registry.store.sql.lineage import SqlLineage
from slipway.registry.store.sql.models import SqlRegisteredModels
from slipway.registry.store.sql.moves import SqlModelMoves
from slipway.registry.store.sql.versions import SqlModelVersions
from slipway.tracking.store.sql.store import SqlTrackingStore


class SqlRegistryStore(
    SqlRegisteredModels,
    SqlModelVersions,
    SqlModelMoves,
    SqlApprovals,
    SqlAuditLog,
    SqlDeployments,
    SqlLineage,
    AbstractRegistryStore,
):
    """Registered models, versions, approvals, audit log, deployments and lineage in SQL.

    Args:
        tracking: the tracking store whose database (and engine) the registry shares; opening
            it has already brought the schema, registry tables included, up to date.

    Each concept lives in its own module (``models``, ``versions``, ``moves`` for aliases and
    stages, ``approvals``, ``audit``, ``deployments``, ``lineage``); this class only joins
    them. Closing it leaves the tracking store open: the tracking store owns the engine.
    """

    def __init__(self, tracking: SqlTrackingStore) -> None:
        super().__init__(tracking)


__all__ = ["SqlRegistryStore"]
