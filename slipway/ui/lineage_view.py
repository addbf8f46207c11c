"""A lineage graph (:class:`~slipway.entities.registry.LineageGraph`) as nodes and edges for
:mod:`slipway.ui.dag`: each kind of node says what it is on its second line and links to its
page (a run, a model version, a pipeline run or one of its steps) where the UI has one."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from slipway.entities.registry import LineageGraph, LineageNode
from slipway.ui.dag import Edge, Node

KIND_WORDS = {
    "model_version": "model version",
    "run": "run",
    "dataset": "dataset",
    "pipeline_run": "pipeline run",
    "pipeline_step": "pipeline step",
    "deployment": "deployment",
}


def _text(attributes: dict[str, Any], key: str) -> str:
    value = attributes.get(key)
    return "" if value is None else str(value)


def version_href(name: str, version: str) -> str:
    return f"/models/{quote(name, safe='')}/versions/{quote(version, safe='')}"


def node_href(node: LineageNode) -> str | None:
    """The UI page of a lineage node, if it has one."""
    a = node.attributes
    if node.kind == "model_version" and a.get("name") and a.get("version"):
        return version_href(_text(a, "name"), _text(a, "version"))
    if node.kind == "run" and a.get("run_id") and not a.get("missing"):
        return f"/runs/{quote(_text(a, 'run_id'), safe='')}"
    if node.kind == "pipeline_run" and a.get("pipeline_run_id"):
        return f"/pipelines/runs/{quote(_text(a, 'pipeline_run_id'), safe='')}"
    if node.kind == "pipeline_step" and a.get("pipeline_run_id") and a.get("step"):
        run = quote(_text(a, "pipeline_run_id"), safe="")
        return f"/pipelines/runs/{run}?" + urlencode({"step": _text(a, "step")})
    return None


def node_detail(node: LineageNode) -> str:
    """The second line: the kind, and what tells two of a kind apart."""
    a = node.attributes
    word = KIND_WORDS.get(node.kind, node.kind.replace("_", " "))
    extra = ""
    if node.kind == "model_version":
        aliases = a.get("aliases") or []
        extra = " ".join(f"@{x}" for x in aliases) if aliases else _text(a, "current_stage")
        if extra == "None":
            extra = ""
    elif node.kind == "run":
        extra = "missing" if a.get("missing") else _text(a, "status").lower()
    elif node.kind == "dataset":
        extra = (_text(a, "digest") or "")[:8] or _text(a, "context")
    elif node.kind == "deployment":
        extra = _text(a, "status").lower()
    return f"{word} · {extra}" if extra else word


def node_status(node: LineageNode) -> str:
    """A status class for the nodes that have one (runs and deployments)."""
    if node.kind in ("run", "deployment"):
        return _text(node.attributes, "status").upper()
    return ""


def node_label(node: LineageNode) -> str:
    """The first line: the node's label, with a pipeline run's long id cut to its start (the
    full id is in the title and the link)."""
    if node.kind == "pipeline_run" and node.label == node.attributes.get("pipeline_run_id"):
        return node.label[:12]
    return node.label


def lineage_nodes(graph: LineageGraph) -> tuple[list[Node], list[Edge]]:
    nodes = [
        Node(
            key=n.node_id,
            label=node_label(n),
            status=node_status(n),
            kind=n.kind,
            detail=node_detail(n),
            title=f"{KIND_WORDS.get(n.kind, n.kind)} {n.label}",
            href=node_href(n),
            current=n.node_id == graph.root,
        )
        for n in graph.nodes
    ]
    edges = [Edge(e.source, e.target, e.relation.replace("_", " ")) for e in graph.edges]
    return nodes, edges


__all__ = [
    "KIND_WORDS",
    "lineage_nodes",
    "node_detail",
    "node_href",
    "node_label",
    "node_status",
    "version_href",
]
