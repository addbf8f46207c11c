"""The kfp.local side of ``bench.pipelines``: the same two pipelines as Kubeflow Pipelines
lightweight Python components, run by ``kfp.local`` with its ``SubprocessRunner`` in this
interpreter (``use_venv=False``).

How kfp.local runs them (kfp 2.17): every task is a new ``sh -c`` that writes the component's
source to a file in a fresh ``mktemp -d`` folder and starts ``python -m kfp.dsl.executor_main``
on it; its outputs go to files under ``pipeline_root``. A default lightweight component runs
``pip install kfp==<version>`` in that shell first (found already installed here, but pip still
starts every time); ``install_kfp_package=False`` leaves that out, which is the cheapest way
kfp.local can run a Python component, so both are measured. Tasks run one after another, except
the iterations of a ``ParallelFor``, which go to a thread pool of at most two threads (kfp.local
caps it at two whatever ``parallelism`` says). Caching is off (kfp.local's default).
"""

from __future__ import annotations

import time
import typing
from pathlib import Path
from typing import Any

from bench.server_http import BenchError

BASE_IMAGE = "python:3.11"
"""Ignored by the SubprocessRunner; given so that kfp does not warn about its default."""


def resolved(func: Any) -> Any:
    """``func`` with its annotations as types: kfp reads them as types, and this module's are
    strings (``from __future__ import annotations``)."""
    func.__annotations__ = typing.get_type_hints(func)
    return func


def components(install_kfp: bool) -> tuple[Any, Any, Any]:
    """``add_one``, ``items`` and ``total`` as kfp components."""
    from kfp import dsl  # type: ignore[import-untyped]

    options: dict[str, Any] = {"base_image": BASE_IMAGE, "install_kfp_package": install_kfp}

    def add_one(x: int) -> int:
        return x + 1

    def items(n: int) -> list:  # type: ignore[type-arg]
        return list(range(n))

    def total(values: list) -> int:  # type: ignore[type-arg]
        return int(sum(values))  # kfp hands collected numbers over as floats

    def make(func: Any) -> Any:
        return dsl.component(**options)(resolved(func))

    return make(add_one), make(items), make(total)


def build(workload: str, size: int, install_kfp: bool) -> Any:
    """The ``chain`` or ``fanout`` pipeline of ``size`` as a kfp pipeline."""
    from kfp import dsl

    add_one, items, total = components(install_kfp)

    def chain(x: int = 0) -> int:
        task = add_one(x=x)
        for _ in range(size - 1):
            task = add_one(x=task.output)
        return task.output  # type: ignore[no-any-return]

    def fanout(n: int = size) -> int:
        source = items(n=n)
        with dsl.ParallelFor(source.output) as item:
            task = add_one(x=item)
        return total(values=dsl.Collected(task.output)).output  # type: ignore[no-any-return]

    if workload == "chain":
        return dsl.pipeline(name=f"chain-{size}")(resolved(chain))
    return dsl.pipeline(name=f"fanout-{size}")(resolved(fanout))


def executed_tasks(root: Path) -> int:
    """Tasks that ran, counted by the output file each one leaves under ``pipeline_root``."""
    return sum(1 for _ in root.rglob("executor_output.json"))


def run_kfp(
    workload: str,
    size: int,
    install_kfp: bool,
    folder: Path,
    kinds: list[str],
    expected: tuple[int, int],
) -> list[dict[str, Any]]:
    """Run the pipeline once per kind (``fresh``, then ``second``) in this process; the time of
    each pipeline call, checked against ``expected``: the value it returns and the number of
    tasks it ran."""
    from kfp import local

    value_wanted, steps_wanted = expected
    workspace = folder / "kfp-workspace"
    workspace.mkdir()
    out = []
    for kind in kinds:
        root = folder / f"kfp-root-{kind}"
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            workspace_root=str(workspace),
        )
        pipeline = build(workload, size, install_kfp)
        cpu, started = time.process_time(), time.perf_counter()
        task = pipeline()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        value, ran = task.output, executed_tasks(root)
        if value != value_wanted:
            raise BenchError(f"kfp {workload}-{size} returned {value!r}, not {value_wanted}")
        if ran != steps_wanted:
            raise BenchError(f"kfp {workload}-{size} ran {ran} tasks, not {steps_wanted}")
        out.append({"kind": kind, "wall_s": wall, "cpu_s": cpu, "steps": ran})
    return out
