"""Lineage on the SQL store: :mod:`slipway.registry.lineage` with the dataset-to-runs step
answered by one join over the tracking store's inputs tables."""

from __future__ import annotations

from sqlalchemy import select

from slipway.entities import LifecycleStage, Run
from slipway.entities.registry import LineageGraph
from slipway.registry.lineage import dataset_lineage, model_version_lineage
from slipway.registry.store.base import AbstractRegistryStore
from slipway.registry.store.sql.base import SqlRegistryBase
from slipway.tracking.store.sql import query as tq
from slipway.tracking.store.sql.loading import load_runs


class SqlLineage(SqlRegistryBase):
    def get_model_version_lineage(self, name: str, version: str) -> LineageGraph:
        assert isinstance(self, AbstractRegistryStore)
        return model_version_lineage(self, self.tracking, name, version)

    def get_dataset_lineage(self, dataset_name: str, digest: str | None = None) -> LineageGraph:
        assert isinstance(self, AbstractRegistryStore)
        return dataset_lineage(
            self, self.tracking, dataset_name, digest, runs_for_dataset=self.runs_for_dataset
        )

    def runs_for_dataset(self, dataset_name: str, digest: str | None = None) -> list[Run]:
        """The active runs that logged dataset ``dataset_name`` (with ``digest``, if given) as
        an input, oldest first."""
        query = (
            select(tq.runs.c.run_uuid)
            .join(tq.dataset_inputs, tq.dataset_inputs.c.run_uuid == tq.runs.c.run_uuid)
            .join(tq.datasets, tq.datasets.c.dataset_uuid == tq.dataset_inputs.c.dataset_uuid)
            .where(
                tq.datasets.c.name == dataset_name,
                tq.runs.c.lifecycle_stage == str(LifecycleStage.ACTIVE),
            )
            .group_by(tq.runs.c.run_uuid, tq.runs.c.start_time)
            .order_by(tq.runs.c.start_time, tq.runs.c.run_uuid)
        )
        if digest:
            query = query.where(tq.datasets.c.digest == digest)
        with self._read() as conn:
            ids = list(conn.execute(query).scalars())
            return load_runs(conn, ids) if ids else []
