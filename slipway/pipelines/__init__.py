"""Pipelines: typed components composed into a graph, run locally (or on Ray), tracked, cached
and resumable, and compiled to Kubeflow Pipelines' IR.

>>> from slipway.pipelines import component, pipeline, Input, Output, Dataset
>>> @component
... def double(x: int) -> int:
...     return 2 * x
>>> @pipeline
... def twice(x: int = 1):
...     double(x=double(x=x).output)
>>> sorted(twice.graph.tasks)
['double', 'double-2']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slipway.pipelines.component import Component, component
from slipway.pipelines.control import condition, elif_, else_, exit_handler, parallel_for
from slipway.pipelines.dsl import Pipeline, Task, collected, importer, pipeline
from slipway.pipelines.graph import PipelineDefinitionError, PipelineGraph
from slipway.pipelines.types import (
    Artifact,
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    PipelineStatus,
)

if TYPE_CHECKING:
    from slipway.pipelines.executor import PipelineResult, cancel, resume, run
    from slipway.pipelines.loader import load_pipeline

If = condition
"""Kubeflow's name for :func:`condition`."""
Elif = elif_
Else = else_
Collected = collected
ParallelFor = parallel_for
ExitHandler = exit_handler

_LAZY = {
    "run": "slipway.pipelines.executor",
    "resume": "slipway.pipelines.executor",
    "cancel": "slipway.pipelines.executor",
    "PipelineResult": "slipway.pipelines.executor",
    "load_pipeline": "slipway.pipelines.loader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'slipway.pipelines' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Artifact",
    "Collected",
    "Component",
    "Dataset",
    "Elif",
    "Else",
    "ExitHandler",
    "If",
    "Input",
    "Metrics",
    "Model",
    "Output",
    "ParallelFor",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineGraph",
    "PipelineResult",
    "PipelineStatus",
    "Task",
    "cancel",
    "collected",
    "component",
    "condition",
    "elif_",
    "else_",
    "exit_handler",
    "importer",
    "load_pipeline",
    "parallel_for",
    "pipeline",
    "resume",
    "run",
]
