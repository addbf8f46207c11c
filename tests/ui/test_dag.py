"""The server-side DAG layout, and the pipeline and lineage views built on it: columns by depth,
fewer crossings, loops fanned or grouped, edges joining the same iteration, and SVG that keeps
data as text."""

from __future__ import annotations

import itertools
import re

from slipway.entities.pipelines import (
    PipelineRun,
    PipelineRunStatus,
    PipelineStep,
    StepStatus,
)
from slipway.entities.registry import LineageEdge, LineageGraph, LineageNode
from slipway.pipelines import collected, component, parallel_for, pipeline
from slipway.ui import dag, lineage_view, pipeline_view
from slipway.ui.render import ENV


def test_nodes_go_in_columns_by_their_longest_path() -> None:
    nodes = [dag.Node(k, k) for k in "abcd"]
    edges = [dag.Edge("a", "b"), dag.Edge("b", "c"), dag.Edge("a", "c"), dag.Edge("d", "c")]
    laid = dag.layout(nodes, edges)
    layer = {p.node.key: p.layer for p in laid.nodes}
    assert layer == {"a": 0, "d": 0, "b": 1, "c": 2}
    for edge in laid.edges:  # every edge points right
        source, target = laid.find(edge.edge.source), laid.find(edge.edge.target)
        assert source is not None
        assert target is not None
        assert source.x < target.x
    assert laid.width == dag.MARGIN * 2 + 3 * dag.NODE_WIDTH + 2 * dag.GAP_X


def test_a_cycle_or_a_dangling_edge_does_not_hang_or_break_the_layout() -> None:
    nodes = [dag.Node(k, k) for k in "xyz"]
    edges = [dag.Edge("x", "y"), dag.Edge("y", "z"), dag.Edge("z", "x"), dag.Edge("z", "gone")]
    laid = dag.layout(nodes, edges)
    assert sorted(p.node.key for p in laid.nodes) == ["x", "y", "z"]
    assert len(laid.edges) == 3
    assert dag.depths([], []) == {}


def test_a_long_chain_needs_no_recursion() -> None:
    keys = [f"n{i}" for i in range(5000)]
    edges = [dag.Edge(a, b) for a, b in itertools.pairwise(keys)]
    assert dag.depths(keys, edges)["n4999"] == 4999


def test_ordering_removes_a_crossing() -> None:
    # a1 -> b2 and a2 -> b1 cross in the given order; the sweep puts b2 above b1.
    nodes = [dag.Node(k, k) for k in ("a1", "a2", "b1", "b2")]
    laid = dag.layout(nodes, [dag.Edge("a1", "b2"), dag.Edge("a2", "b1")])
    b1, b2 = laid.find("b1"), laid.find("b2")
    assert b1 is not None
    assert b2 is not None
    assert b2.y < b1.y


def test_long_labels_are_cut_and_the_full_text_stays_in_the_title() -> None:
    label = "a-very-long-task-name-that-does-not-fit"
    laid = dag.layout([dag.Node("k", label, title=label)], [])
    assert laid.nodes[0].short_label.endswith("\u2026")
    assert len(laid.nodes[0].short_label) == dag.LABEL_CHARS
    svg = ENV.from_string('{% from "_dag.html" import dag %}{{ dag(layout, "g") }}').render(
        layout=laid
    )
    assert f"<title>{label}</title>" in svg


def test_svg_keeps_markup_in_the_data_as_text() -> None:
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    nodes = [dag.Node(evil, evil, status="RUNNING", detail=evil, title=evil, href="/x?a=1&b=2")]
    svg = ENV.from_string('{% from "_dag.html" import dag %}{{ dag(layout, label) }}').render(
        layout=dag.layout(nodes, [dag.Edge(evil, evil)]), label=evil
    )
    assert "<script>" not in svg
    assert "<img" not in svg
    assert "&lt;script&gt;" in svg
    assert 'href="/x?a=1&amp;b=2"' in svg
    assert re.search(r'id="dag-n0"', svg)  # ids from positions, not from the data


# -- pipelines ----------------------------------------------------------------------------------


@component
def prepare(n: int) -> list:
    return list(range(n))


@component
def train(item: int) -> int:
    return item


@component
def pick(scores: list) -> int:
    return max(scores)


@pipeline(name="fan")
def fan(n: int = 3) -> None:
    items = prepare(n=n)
    with parallel_for(items.output) as item:
        scored = train(item=item)
    pick(scores=collected(scored.output))


def _run(status: PipelineRunStatus = PipelineRunStatus.RUNNING) -> PipelineRun:
    return PipelineRun("r1", "0", "fan", status, 1000, graph=fan.graph.to_dict())


def _step(task_id: str, status: StepStatus, **kw: object) -> PipelineStep:
    task = task_id.split("[", 1)[0]
    return PipelineStep("r1", task_id, task, task, status, **kw)  # type: ignore[arg-type]


def test_a_run_not_started_shows_each_task_waiting() -> None:
    nodes, edges = pipeline_view.dag_nodes(_run(), [], now_ms=2000)
    assert [(n.key, n.status) for n in nodes] == [
        ("prepare", "WAITING"),
        ("train", "WAITING"),
        ("pick", "WAITING"),
    ]
    assert {(e.source, e.target) for e in edges} == {("prepare", "train"), ("train", "pick")}
    over, _ = pipeline_view.dag_nodes(_run(PipelineRunStatus.FAILED), [], now_ms=2000)
    assert {n.status for n in over} == {"NOT_RUN"}


def test_loop_instances_fan_out_and_join_their_neighbours() -> None:
    steps = [
        _step("prepare", StepStatus.SUCCEEDED, attempt=1, start_time=1000, end_time=1500),
        _step("train[0]", StepStatus.RUNNING, attempt=1, start_time=1500),
        _step("train[1]", StepStatus.RETRYING, attempt=2, start_time=1500),
        _step("train[2]", StepStatus.CACHED, attempt=1, start_time=1500, end_time=1500),
    ]
    nodes, edges = pipeline_view.dag_nodes(_run(), steps, now_ms=4700)
    by_key = {n.key: n for n in nodes}
    assert list(by_key) == ["prepare", "train[0]", "train[1]", "train[2]", "pick"]
    assert by_key["train[0]"].status == "RUNNING"
    assert by_key["train[0]"].detail == "running · 3.2s"
    assert by_key["train[1]"].detail.endswith("try 2")
    assert by_key["train[2]"].detail == "cached"
    assert by_key["pick"].status == "WAITING"
    pairs = {(e.source, e.target) for e in edges}
    assert {("prepare", f"train[{i}]") for i in range(3)} <= pairs
    assert {(f"train[{i}]", "pick") for i in range(3)} <= pairs


def test_a_big_loop_is_one_grouped_node_with_counts() -> None:
    count = pipeline_view.FAN_LIMIT + 5
    steps = [_step("prepare", StepStatus.SUCCEEDED, attempt=1)]
    steps += [_step(f"train[{i}]", StepStatus.SUCCEEDED, attempt=1) for i in range(count - 2)]
    steps += [_step(f"train[{count - 2}]", StepStatus.RUNNING, attempt=1, start_time=1)]
    steps += [_step(f"train[{count - 1}]", StepStatus.FAILED, attempt=1, message="boom")]
    nodes, _ = pipeline_view.dag_nodes(_run(), steps, now_ms=10)
    group = next(n for n in nodes if n.kind == "group")
    assert group.key == "train[*]"
    assert group.label == f"train \u00d7{count}"
    assert group.status == "FAILED"  # the most pressing state wins
    assert group.detail == f"{count - 1}/{count} done · 1 running"


def test_group_status_rules() -> None:
    def of(*states: StepStatus) -> str:
        return pipeline_view.group_status([_step(f"t[{i}]", s) for i, s in enumerate(states)])

    assert of(StepStatus.CACHED, StepStatus.CACHED) == "CACHED"
    assert of(StepStatus.CACHED, StepStatus.SUCCEEDED) == "SUCCEEDED"
    assert of(StepStatus.SKIPPED, StepStatus.SKIPPED) == "SKIPPED"
    assert of(StepStatus.SUCCEEDED, StepStatus.QUEUED) == "QUEUED"
    assert of(StepStatus.RUNNING, StepStatus.FAILED) == "FAILED"


def test_state_changes_its_structure_key_only_when_nodes_appear() -> None:
    first = [_step("prepare", StepStatus.RUNNING, attempt=1, start_time=1)]
    second = [_step("prepare", StepStatus.SUCCEEDED, attempt=1, start_time=1, end_time=2)]
    third = [*second, _step("train[0]", StepStatus.RUNNING, attempt=1, start_time=2)]
    a, b, c = (pipeline_view.state(_run(), s, 10) for s in (first, second, third))
    assert a["structure"] == b["structure"] != c["structure"]
    assert b["nodes"][0]["status"] == "SUCCEEDED"
    assert b["run"]["terminal"] is False
    assert [s["task_id"] for s in c["steps"]] == ["prepare", "train[0]"]


def test_a_run_without_a_graph_still_lists_its_steps() -> None:
    run = PipelineRun("r1", "0", "old", PipelineRunStatus.SUCCEEDED, 1, graph={})
    nodes, edges = pipeline_view.dag_nodes(run, [_step("a", StepStatus.SUCCEEDED)], now_ms=5)
    assert [n.key for n in nodes] == ["a"]
    assert edges == []


# -- lineage ------------------------------------------------------------------------------------


def test_lineage_nodes_link_to_their_pages() -> None:
    graph = LineageGraph(
        root="model_version:m/1",
        nodes=[
            LineageNode("dataset:d@abc", "dataset", "d", {"digest": "abcdef0123"}),
            LineageNode("run:r1", "run", "trainer", {"run_id": "r1", "status": "FINISHED"}),
            LineageNode("run:gone", "run", "gone", {"run_id": "gone", "missing": True}),
            LineageNode(
                "pipeline_step:p1/train",
                "pipeline_step",
                "train",
                {"step": "train[0]", "pipeline_run_id": "p1"},
            ),
            LineageNode(
                "model_version:m/1",
                "model_version",
                "m v1",
                {"name": "m", "version": "1", "aliases": ["champion"]},
            ),
        ],
        edges=[
            LineageEdge("dataset:d@abc", "run:r1", "input_to"),
            LineageEdge("run:r1", "model_version:m/1", "produced"),
        ],
    )
    nodes, edges = lineage_view.lineage_nodes(graph)
    by_key = {n.key: n for n in nodes}
    assert by_key["run:r1"].href == "/runs/r1"
    assert by_key["run:r1"].status == "FINISHED"
    assert by_key["run:gone"].href is None
    assert by_key["dataset:d@abc"].detail == "dataset · abcdef01"
    assert by_key["pipeline_step:p1/train"].href == "/pipelines/runs/p1?step=train%5B0%5D"
    assert by_key["model_version:m/1"].current
    assert by_key["model_version:m/1"].detail == "model version · @champion"
    assert [e.label for e in edges] == ["input to", "produced"]
