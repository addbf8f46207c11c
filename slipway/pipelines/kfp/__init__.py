"""Kubeflow Pipelines: compile a Slipway pipeline to Kubeflow's IR (``PipelineSpec`` YAML), and
run its components in Kubeflow's containers.

>>> from slipway.pipelines.kfp import write_pipeline_yaml
>>> write_pipeline_yaml(my_pipeline, "my_pipeline.yaml")  # doctest: +SKIP

The file uploads to a Kubeflow Pipelines server like one made by Kubeflow's own compiler, and
``kfp.components.load_component_from_file`` loads it as a component of a Kubeflow pipeline.
Each step's container installs Slipway and runs the component through
:mod:`slipway.pipelines.kfp.executor_main`. Nothing here imports the ``kfp`` package.
"""

from __future__ import annotations

from slipway.pipelines.kfp.compiler import SCHEMA_VERSION, compile_pipeline, write_pipeline_yaml
from slipway.pipelines.kfp.container import DEFAULT_IMAGE
from slipway.pipelines.kfp.ir_check import check_ir

__all__ = [
    "DEFAULT_IMAGE",
    "SCHEMA_VERSION",
    "check_ir",
    "compile_pipeline",
    "write_pipeline_yaml",
]
