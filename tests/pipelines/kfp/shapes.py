"""Pipelines of every graph shape the Kubeflow compiler translates, for the compile tests.

Each entry of ``SHAPES`` is a pipeline and the arguments a Kubeflow pipeline passes when it uses
the compiled file as a component.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from slipway.pipelines import (
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    Pipeline,
    PipelineStatus,
    collected,
    component,
    condition,
    elif_,
    else_,
    exit_handler,
    importer,
    parallel_for,
    pipeline,
)


class Split(NamedTuple):
    train: int
    test: float


@component
def make(n: int, data: Output[Dataset]) -> int:
    with open(data.path, "w") as fh:
        fh.write(json.dumps(list(range(n))))
    return n


@component
def train(data: Input[Dataset], lr: float, model: Output[Model]) -> float:
    with open(model.path, "w") as fh:
        fh.write(str(lr))
    return lr * 2


@component
def pick(models: Input[list[Model]], scores: list) -> str:
    return str(max(scores))


@component
def add(a: int, b: int = 1) -> int:
    return a + b


@component
def split(n: int) -> Split:
    return Split(n, n / 2)


@component
def echo(text: str = "hi") -> str:
    return text


@component
def numbers(count: int) -> list:
    return list(range(count))


@component
def evaluate(model: Input[Model], metrics: Output[Metrics]) -> None:
    metrics.log_metric("accuracy", 0.9)


@component
def notify(status: PipelineStatus, channel: str = "ops") -> str:
    return f"{channel}: {status.state}"


@component(
    retries=3,
    backoff="5s",
    backoff_factor=3,
    backoff_max="2m",
    cpu="500m",
    memory="2Gi",
    gpu=1,
    env={"MODE": "fast"},
    cache=False,
    timeout="10m",
    packages=["scikit-learn==1.5.0"],
    image="python:3.12-slim",
)
def heavy(n: int) -> int:
    return n


@pipeline
def linear(n: int = 3) -> int:
    a = add(a=n)
    b = add(a=a.output, b=2)
    return add(a=b.output).output  # type: ignore[no-any-return]


@pipeline
def diamond(n: int = 1) -> int:
    top = add(a=n)
    left = add(a=top.output, b=10)
    right = split(n=top.output)
    return add(a=left.output, b=right.outputs["train"]).output  # type: ignore[no-any-return]


@pipeline(name="fan_out_in")
def fan_out_in(lr_scale: float = 1.0) -> str:
    data = make(n=10)
    with parallel_for([0.1, 0.2, 0.3], parallelism=2) as lr:
        t = train(data=data.outputs["data"], lr=lr)
    return pick(  # type: ignore[no-any-return]
        models=collected(t.outputs["model"]), scores=collected(t.outputs["Output"])
    ).output


@pipeline
def nested_loops() -> str:
    data = make(n=4)
    with parallel_for([1, 2]) as outer:
        with parallel_for([0.1, 0.2]) as inner:
            t = train(data=data.outputs["data"], lr=inner)
        add(a=outer)
    return pick(  # type: ignore[no-any-return]
        models=collected(t.outputs["model"]), scores=collected(t.outputs["Output"])
    ).output


@pipeline
def branches(threshold: float = 0.5, label: str = "x") -> None:
    a = split(n=3)
    with condition(a.outputs["test"] > threshold):
        echo(text="high")
    with elif_(a.outputs["train"] == 2):
        echo(text="two")
    with else_():
        echo(text="low")
    with condition(label != "it's"):
        echo(text=label)


@pipeline
def guarded(n: int = 2) -> None:
    done = notify(channel="alerts")
    with exit_handler(done):
        data = make(n=n)
        t = train(data=data.outputs["data"], lr=0.1)
        evaluate(model=t.outputs["model"])


@pipeline
def prepare(rows: int = 5) -> int:
    data = make(n=rows)
    return add(a=data.outputs["Output"]).output  # type: ignore[no-any-return]


@pipeline
def with_subpipeline(rows: int = 7) -> int:
    first = add(a=1)
    sub = prepare(rows=first.output)
    return add(a=sub.output, b=rows).output  # type: ignore[no-any-return]


@pipeline
def options(n: int = 1) -> None:
    heavy(n=n)
    plain = add(a=n)
    plain.set_options(retries=1, backoff=0.5, cache=False, env={"K": "v"})


@pipeline
def loop_sources(names: list = ["a", "b"], count: int = 3) -> None:  # noqa: B006
    with parallel_for(names) as name:
        echo(text=name)
    listed = numbers(count=count)
    with parallel_for(listed.output, parallelism=4) as value:
        add(a=value)


@pipeline
def loop_fields() -> None:
    with parallel_for([{"lr": 0.1, "tag": "a"}, {"lr": 0.2, "tag": "b"}]) as cfg:
        data = make(n=2)
        train(data=data.outputs["data"], lr=cfg["lr"])
        with condition(cfg["tag"] == "a"):
            echo(text=cfg["tag"])


@pipeline
def imported(uri: str = "gs://bucket/data.csv") -> None:
    src = importer(uri, Dataset)
    train(data=src.outputs["artifact"], lr=0.1)


SHAPES: dict[str, tuple[Pipeline, dict[str, Any]]] = {
    "linear": (linear, {"n": 4}),
    "diamond": (diamond, {"n": 2}),
    "fan-out/fan-in": (fan_out_in, {"lr_scale": 2.0}),
    "nested loops": (nested_loops, {}),
    "condition elif else": (branches, {"threshold": 0.7}),
    "exit handler": (guarded, {"n": 3}),
    "nested pipeline": (with_subpipeline, {"rows": 9}),
    "options": (options, {}),
    "loop over parameter and output": (loop_sources, {"names": ["x"]}),
    "loop item fields": (loop_fields, {}),
    "importer": (imported, {"uri": "gs://b/other.csv"}),
}
