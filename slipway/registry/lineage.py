"""Lineage graphs: what a model version came from and where it went, and the reverse, from a
dataset to the runs that read it and the versions they produced.

::

    dataset ──input_to──► run ──produced──► model_version ──deployed_as──► deployment
                           │
                           └─step_of─► pipeline_step ──step_of──► pipeline_run

The functions take any :class:`AbstractRegistryStore` and :class:`AbstractTrackingStore`, so
the SDK (on SQL stores) and the server build the same graph. Finding the runs that read a
dataset is the one query that would be slow done naively; callers with a faster way (the SQL
registry store joins the inputs tables directly) pass it as ``runs_for_dataset``, and the
default asks the tracking store's search for ``datasets.name`` / ``datasets.digest``, which is
filtered in the database too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from slipway.entities import DatasetInput, Run, ViewType
from slipway.entities.registry import (
    PIPELINE_RUN_TAG,
    PIPELINE_STEP_TAG,
    Deployment,
    LineageEdge,
    LineageGraph,
    LineageNode,
    ModelVersion,
)
from slipway.exceptions import ResourceDoesNotExist
from slipway.registry.store.base import AbstractRegistryStore
from slipway.tracking.store.base import AbstractTrackingStore

PARENT_RUN_TAG = "mlflow.parentRunId"
RunsForDataset = Callable[[str, "str | None"], list[Run]]
"""``(dataset name, digest or None) -> the active runs that logged it as an input``."""

_SEARCH_PAGE = 1000
_IN_CHUNK = 100


class _Builder:
    def __init__(self, root: str) -> None:
        self.graph = LineageGraph(root=root)
        self._nodes: dict[str, LineageNode] = {}
        self._edges: set[tuple[str, str, str]] = set()

    def node(self, node_id: str, kind: str, label: str, **attributes: Any) -> str:
        if node_id not in self._nodes:
            node = LineageNode(node_id, kind, label, attributes)
            self._nodes[node_id] = node
            self.graph.nodes.append(node)
        return node_id

    def edge(self, source: str, target: str, relation: str) -> None:
        if (source, target, relation) not in self._edges:
            self._edges.add((source, target, relation))
            self.graph.edges.append(LineageEdge(source, target, relation))


def version_node_id(name: str, version: str) -> str:
    return f"model_version:{name}/{version}"


def dataset_node_id(name: str, digest: str | None) -> str:
    return f"dataset:{name}@{digest}" if digest else f"dataset:{name}"


def model_version_lineage(
    registry: AbstractRegistryStore, tracking: AbstractTrackingStore, name: str, version: str
) -> LineageGraph:
    """version -> its source run -> the run's input datasets and pipeline step -> the
    version's deployments. RESOURCE_DOES_NOT_EXIST for an unknown version."""
    mv = registry.get_model_version(name, version)
    builder = _Builder(version_node_id(mv.name, mv.version))
    version_id = _add_version(builder, mv)
    if mv.run_id:
        run = _get_run(tracking, mv.run_id)
        if run is None:
            run_id = builder.node(f"run:{mv.run_id}", "run", mv.run_id, missing=True)
        else:
            run_id = _add_run(builder, run)
            for item in run.inputs.dataset_inputs:
                builder.edge(_add_dataset(builder, item), run_id, "input_to")
        builder.edge(run_id, version_id, "produced")
    _add_deployments(builder, version_id, registry.list_deployments(mv.name, mv.version))
    return builder.graph


def dataset_lineage(
    registry: AbstractRegistryStore,
    tracking: AbstractTrackingStore,
    dataset_name: str,
    digest: str | None = None,
    runs_for_dataset: RunsForDataset | None = None,
) -> LineageGraph:
    """dataset -> the active runs that read it -> the versions they produced -> their
    deployments. Without ``digest`` every digest of the dataset counts."""
    find = runs_for_dataset or search_runs_for_dataset(tracking)
    builder = _Builder(dataset_node_id(dataset_name, digest))
    runs = [r for r in find(dataset_name, digest) if _matching_inputs(r, dataset_name, digest)]
    first = next((i for r in runs for i in _matching_inputs(r, dataset_name, digest)), None)
    attributes: dict[str, Any] = {"name": dataset_name}
    if digest:
        attributes["digest"] = digest
    else:
        found = {i.dataset.digest for r in runs for i in _matching_inputs(r, dataset_name, None)}
        attributes["digests"] = sorted(found)
    if first is not None:
        attributes.update(source_type=first.dataset.source_type, source=first.dataset.source)
    root = builder.node(builder.graph.root, "dataset", dataset_name, **attributes)
    run_nodes = {}
    for run in runs:
        run_nodes[run.info.run_id] = node = _add_run(builder, run)
        builder.edge(root, node, "input_to")
    for mv in _versions_of_runs(registry, list(run_nodes)):
        version_id = _add_version(builder, mv)
        assert mv.run_id is not None
        builder.edge(run_nodes[mv.run_id], version_id, "produced")
        _add_deployments(builder, version_id, registry.list_deployments(mv.name, mv.version))
    return builder.graph


def search_runs_for_dataset(tracking: AbstractTrackingStore) -> RunsForDataset:
    """Runs that read a dataset, found with the tracking store's search (filtered in the
    database), experiment page by experiment page."""

    def find(name: str, digest: str | None) -> list[Run]:
        filter_string = f"datasets.name = {_quote(name)}"
        if digest:
            filter_string += f" AND datasets.digest = {_quote(digest)}"
        runs: list[Run] = []
        token: str | None = None
        while True:
            experiments = tracking.search_experiments(
                ViewType.ACTIVE_ONLY, max_results=_SEARCH_PAGE, page_token=token
            )
            ids = [e.experiment_id for e in experiments]
            if ids:
                runs.extend(_all_runs(tracking, ids, filter_string))
            token = experiments.token
            if not token:
                return runs

    return find


def _all_runs(tracking: AbstractTrackingStore, ids: list[str], filter_string: str) -> list[Run]:
    out: list[Run] = []
    token: str | None = None
    while True:
        page = tracking.search_runs(ids, filter_string, max_results=_SEARCH_PAGE, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _matching_inputs(run: Run, name: str, digest: str | None) -> list[DatasetInput]:
    return [
        i
        for i in run.inputs.dataset_inputs
        if i.dataset.name == name and (not digest or i.dataset.digest == digest)
    ]


def _versions_of_runs(registry: AbstractRegistryStore, run_ids: list[str]) -> list[ModelVersion]:
    out: list[ModelVersion] = []
    for start in range(0, len(run_ids), _IN_CHUNK):
        chunk = ", ".join(_quote(r) for r in run_ids[start : start + _IN_CHUNK])
        out.extend(
            registry.search_model_versions(
                f"run_id IN ({chunk})", order_by=["name", "version_number"]
            )
        )
    return out


def _get_run(tracking: AbstractTrackingStore, run_id: str) -> Run | None:
    try:
        return tracking.get_run(run_id)
    except ResourceDoesNotExist:
        return None


def _add_version(builder: _Builder, mv: ModelVersion) -> str:
    return builder.node(
        version_node_id(mv.name, mv.version),
        "model_version",
        f"{mv.name} v{mv.version}",
        name=mv.name,
        version=mv.version,
        source=mv.source,
        run_id=mv.run_id,
        model_id=mv.model_id,
        current_stage=mv.current_stage,
        aliases=list(mv.aliases),
        status=str(mv.status),
    )


def _add_run(builder: _Builder, run: Run) -> str:
    info, tags = run.info, run.data.tags
    node = builder.node(
        f"run:{info.run_id}",
        "run",
        info.run_name or info.run_id,
        run_id=info.run_id,
        run_name=info.run_name,
        experiment_id=info.experiment_id,
        status=str(info.status),
    )
    pipeline_run, step = tags.get(PIPELINE_RUN_TAG), tags.get(PIPELINE_STEP_TAG)
    pipeline_node = None
    if pipeline_run:
        pipeline_node = builder.node(
            f"pipeline_run:{pipeline_run}",
            "pipeline_run",
            pipeline_run,
            pipeline_run_id=pipeline_run,
            parent_run_id=tags.get(PARENT_RUN_TAG),
        )
    if step:
        step_node = builder.node(
            f"pipeline_step:{pipeline_run or info.run_id}/{step}",
            "pipeline_step",
            step,
            step=step,
            pipeline_run_id=pipeline_run,
        )
        builder.edge(node, step_node, "step_of")
        if pipeline_node is not None:
            builder.edge(step_node, pipeline_node, "step_of")
    elif pipeline_node is not None:
        builder.edge(node, pipeline_node, "step_of")
    return node


def _add_dataset(builder: _Builder, item: DatasetInput) -> str:
    ds = item.dataset
    return builder.node(
        dataset_node_id(ds.name, ds.digest),
        "dataset",
        ds.name,
        name=ds.name,
        digest=ds.digest,
        source_type=ds.source_type,
        source=ds.source,
        context=item.context,
    )


def _add_deployments(builder: _Builder, version_id: str, found: Iterable[Deployment]) -> None:
    for dep in found:
        node = builder.node(
            f"deployment:{dep.deployment_id}",
            "deployment",
            dep.endpoint,
            deployment_id=dep.deployment_id,
            endpoint=dep.endpoint,
            status=str(dep.status),
            start_time=dep.start_time,
            end_time=dep.end_time,
        )
        builder.edge(version_id, node, "deployed_as")


__all__ = [
    "RunsForDataset",
    "dataset_lineage",
    "dataset_node_id",
    "model_version_lineage",
    "search_runs_for_dataset",
    "version_node_id",
]
