"""Laying out a directed graph for an SVG drawn on the server: layers by depth, left to right.

Pipeline runs (one node per task instance) and lineage graphs (dataset -> run -> model version
-> deployment) are both small DAGs whose reading order is "what came first is on the left".
Each node goes in the column of its depth (the longest path from a node with no inputs), so
every edge points right; within a column nodes are ordered by the mean position of their
neighbours in the column before (then after), a few sweeps of the usual barycentre heuristic,
which removes most crossings of such graphs. Cycles (which neither graph should have) do not
hang the layout: an edge that would close one is ignored for depths.

The result is plain numbers; ``templates/_dag.html`` turns it into SVG, so the drawing is
escaped like the rest of the page and needs no script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NODE_WIDTH = 176
NODE_HEIGHT = 46
GAP_X = 56
GAP_Y = 14
MARGIN = 8
LABEL_CHARS = 21
"""About how many characters of a label fit in a node (the rest is cut, with an ellipsis)."""
DETAIL_CHARS = 26
"""The same for the second line, in a smaller font (``pipelines.js`` cuts live updates alike)."""
SWEEPS = 4


@dataclass(frozen=True, slots=True)
class Node:
    """A node to draw. ``status`` becomes the class ``status-<STATUS>`` (its colour) and
    ``kind`` the class ``kind-<kind>``; ``detail`` is the second line; ``title`` the full text
    a pointer or screen reader gets; ``href`` makes the node a link."""

    key: str
    label: str
    status: str = ""
    kind: str = ""
    detail: str = ""
    title: str = ""
    href: str | None = None
    current: bool = False
    """The node the page is about (drawn stronger)."""


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class PlacedNode:
    node: Node
    index: int
    """Position in the layout's node list (element ids are made from it, never from data)."""
    layer: int
    x: float
    y: float

    @property
    def short_label(self) -> str:
        return shorten(self.node.label)

    @property
    def short_detail(self) -> str:
        return shorten(self.node.detail, DETAIL_CHARS)


@dataclass(frozen=True, slots=True)
class PlacedEdge:
    edge: Edge
    path: str
    """An SVG path (``M ... C ...``) from the source's right side to the target's left."""
    mid_x: float
    mid_y: float


@dataclass(frozen=True, slots=True)
class Layout:
    nodes: list[PlacedNode]
    edges: list[PlacedEdge]
    width: int
    height: int
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT

    def find(self, key: str) -> PlacedNode | None:
        return next((p for p in self.nodes if p.node.key == key), None)


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def depths(keys: Sequence[str], edges: Sequence[Edge]) -> dict[str, int]:
    """The layer of each node: 0 for nodes with no inputs, else one more than the deepest
    input. Edges to unknown nodes are ignored, and so is an edge that would close a cycle."""
    known = set(keys)
    inputs: dict[str, list[str]] = {k: [] for k in keys}
    for edge in edges:
        if edge.source in known and edge.target in known and edge.source != edge.target:
            inputs[edge.target].append(edge.source)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(start: str) -> None:
        # Iterative DFS: a long chain must not hit the recursion limit.
        stack: list[tuple[str, int]] = [(start, 0)]
        visiting.add(start)
        while stack:
            key, i = stack[-1]
            preds = inputs[key]
            if i < len(preds):
                stack[-1] = (key, i + 1)
                pred = preds[i]
                if pred not in depth and pred not in visiting:
                    visiting.add(pred)
                    stack.append((pred, 0))
                continue
            stack.pop()
            visiting.discard(key)
            depth[key] = max((depth[p] + 1 for p in preds if p in depth), default=0)

    for key in keys:
        if key not in depth:
            visit(key)
    return depth


def _order_layers(
    layers: list[list[str]], edges: Sequence[Edge], layer_of: dict[str, int]
) -> list[list[str]]:
    """Reorder each layer by the mean position of its neighbours in the layer before (sweeping
    right) and after (sweeping left)."""
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for edge in edges:
        if edge.source in layer_of and edge.target in layer_of:
            before.setdefault(edge.target, []).append(edge.source)
            after.setdefault(edge.source, []).append(edge.target)
    layers = [list(layer) for layer in layers]
    for sweep in range(SWEEPS):
        rightwards = sweep % 2 == 0
        indices = range(1, len(layers)) if rightwards else range(len(layers) - 2, -1, -1)
        for i in indices:
            ref = layers[i - 1] if rightwards else layers[i + 1]
            layers[i] = _by_barycentre(layers[i], ref, before if rightwards else after)
    return layers


def _by_barycentre(layer: list[str], ref: list[str], near: dict[str, list[str]]) -> list[str]:
    """``layer`` sorted by the mean position in ``ref`` of each node's neighbours there (a node
    with none keeps its place)."""
    where = {key: n for n, key in enumerate(ref)}
    current = {key: n for n, key in enumerate(layer)}

    def weight(key: str) -> tuple[float, int]:
        placed = [where[k] for k in near.get(key, []) if k in where]
        return (sum(placed) / len(placed) if placed else float(current[key]), current[key])

    return sorted(layer, key=weight)


def layout(
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    *,
    node_width: int = NODE_WIDTH,
    node_height: int = NODE_HEIGHT,
) -> Layout:
    """Place ``nodes`` in columns by depth and route ``edges`` as curves (see the module
    notes). Nodes keep their given order within a column where nothing says otherwise; a
    duplicate key is drawn once."""
    unique: dict[str, Node] = {}
    for node in nodes:
        unique.setdefault(node.key, node)
    keys = list(unique)
    layer_of = depths(keys, edges)
    count = max(layer_of.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(count)]
    for key in keys:
        layers[layer_of[key]].append(key)
    layers = _order_layers(layers, edges, layer_of)
    tallest = max((len(layer) for layer in layers), default=0)
    height = MARGIN * 2 + tallest * node_height + max(tallest - 1, 0) * GAP_Y
    width = MARGIN * 2 + count * node_width + max(count - 1, 0) * GAP_X
    placed: dict[str, PlacedNode] = {}
    for layer_index, layer in enumerate(layers):
        column = len(layer) * node_height + max(len(layer) - 1, 0) * GAP_Y
        top = MARGIN + (height - 2 * MARGIN - column) / 2
        x = MARGIN + layer_index * (node_width + GAP_X)
        for row, key in enumerate(layer):
            y = top + row * (node_height + GAP_Y)
            placed[key] = PlacedNode(unique[key], 0, layer_index, x, y)
    ordered = [
        PlacedNode(p.node, i, p.layer, p.x, p.y)
        for i, p in enumerate(sorted(placed.values(), key=lambda p: (p.layer, p.y)))
    ]
    by_key = {p.node.key: p for p in ordered}
    routed: list[PlacedEdge] = []
    seen: set[tuple[str, str]] = set()
    for edge in edges:
        source, target = by_key.get(edge.source), by_key.get(edge.target)
        if source is None or target is None or (edge.source, edge.target) in seen:
            continue
        seen.add((edge.source, edge.target))
        routed.append(_route(edge, source, target, node_width, node_height))
    return Layout(ordered, routed, max(width, 0), max(height, 0), node_width, node_height)


def _route(
    edge: Edge, source: PlacedNode, target: PlacedNode, node_width: int, node_height: int
) -> PlacedEdge:
    x1, y1 = source.x + node_width, source.y + node_height / 2
    x2, y2 = target.x, target.y + node_height / 2
    if x2 <= x1:  # an edge that closes a cycle (or joins one column): loop around the back
        x1, x2 = source.x + node_width / 2, target.x + node_width / 2
        y1, y2 = source.y + node_height, target.y + node_height
        bend = max(node_height, abs(x2 - x1) / 4)
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 + bend:.1f} "
        path += f"{x2:.1f},{y2:.1f}"
        return PlacedEdge(edge, path, (x1 + x2) / 2, max(y1, y2) + bend * 0.75)
    dx = (x2 - x1) / 2
    path = f"M{x1:.1f},{y1:.1f} C{x1 + dx:.1f},{y1:.1f} {x2 - dx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    return PlacedEdge(edge, path, (x1 + x2) / 2, (y1 + y2) / 2)


__all__ = [
    "DETAIL_CHARS",
    "LABEL_CHARS",
    "Edge",
    "Layout",
    "Node",
    "PlacedEdge",
    "PlacedNode",
    "depths",
    "layout",
    "shorten",
]
