"""Pipelines of every graph shape, each with one task named ``target`` whose behaviour the
test chooses (succeed, fail, fail once, hang, fail until a file exists).

``work`` is the target's component: ``mode`` picks the behaviour and ``marker`` is a path the
test owns (a counter for "flaky", the file whose existence fixes "fixable"). Each shape is built
for one mode, so the mode is a constant of the graph.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from slipway.pipelines import (
    Pipeline,
    PipelineStatus,
    collected,
    component,
    condition,
    else_,
    exit_handler,
    parallel_for,
    pipeline,
)

TIMEOUT = 1.0


@component
def source(x: int) -> int:
    return x + 1


@component
def work(x: int, mode: str, marker: str) -> int:
    if mode == "fail":
        raise RuntimeError(f"boom {x}")
    if mode == "flaky":
        counter = f"{marker}-{x}"
        tries = int(Path(counter).read_text()) if os.path.exists(counter) else 0
        with open(counter, "w") as fh:
            fh.write(str(tries + 1))
        if tries == 0:
            raise RuntimeError(f"first attempt of {x} fails")
    if mode == "slow":
        time.sleep(60)
    if mode == "fixable" and not os.path.exists(marker):
        raise RuntimeError("not fixed yet")
    return x * 10


@component
def after(x: int) -> int:
    return x + 1


@component
def join(a: int, b: int) -> int:
    return a + b


@component
def total(values: list) -> int:
    return sum(values)


@component
def notify(status: PipelineStatus) -> str:
    return status.state


def _target(x: object, mode: str, marker: str) -> object:
    task = work(x=x, mode=mode, marker=marker)
    task.set_options(retries=1 if mode == "flaky" else 0, backoff=0)
    if mode == "slow":
        task.set_options(timeout=TIMEOUT)
    return task


def linear(mode: str, marker: str) -> Pipeline:
    @pipeline(name="linear")
    def shape() -> None:
        a = source(x=1)
        t = _target(a.output, mode, marker)
        after(x=t.output)  # type: ignore[attr-defined]

    return shape  # type: ignore[no-any-return]


def diamond(mode: str, marker: str) -> Pipeline:
    @pipeline(name="diamond")
    def shape() -> None:
        a = source(x=1)
        t = _target(a.output, mode, marker)
        b = after(x=a.output)
        join(a=t.output, b=b.output)  # type: ignore[attr-defined]

    return shape  # type: ignore[no-any-return]


def fan_out_in(mode: str, marker: str) -> Pipeline:
    @pipeline(name="fanout")
    def shape() -> None:
        a = source(x=1)
        with parallel_for([1, 2, 3], parallelism=2) as item:
            t = _target(item, mode, marker)
        total(values=collected(t.output)).after(a)  # type: ignore[attr-defined]

    return shape  # type: ignore[no-any-return]


def nested(mode: str, marker: str) -> Pipeline:
    @pipeline(name="inner")
    def inner(x: int) -> object:
        t = _target(x, mode, marker)
        return after(x=t.output).output  # type: ignore[attr-defined]

    @pipeline(name="nested")
    def shape() -> None:
        a = source(x=1)
        sub = inner(x=a.output)
        after(x=sub.output)

    return shape  # type: ignore[no-any-return]


def conditional(mode: str, marker: str) -> Pipeline:
    @pipeline(name="conditional")
    def shape() -> None:
        a = source(x=1)
        with condition(a.output > 1):
            t = _target(a.output, mode, marker)
            after(x=t.output)  # type: ignore[attr-defined]
        with else_():
            source(x=100)

    return shape  # type: ignore[no-any-return]


def exit_handled(mode: str, marker: str) -> Pipeline:
    @pipeline(name="exit-handled")
    def shape() -> None:
        n = notify()
        with exit_handler(n):
            a = source(x=1)
            t = _target(a.output, mode, marker)
            after(x=t.output)  # type: ignore[attr-defined]

    return shape  # type: ignore[no-any-return]


SHAPES: dict[str, Callable[[str, str], Pipeline]] = {
    "linear": linear,
    "diamond": diamond,
    "fan-out/fan-in": fan_out_in,
    "nested": nested,
    "conditional": conditional,
    "exit-handler": exit_handled,
}
