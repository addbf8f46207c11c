"""Slipway: one Python platform for the machine-learning lifecycle.

The SDK surface lives here; the implementation is in the subpackages.
"""

from typing import Any

from slipway import registry
from slipway.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
    ViewType,
)
from slipway.exceptions import SlipwayError
from slipway.registry import RegistryClient, lineage, register_model
from slipway.tracking.client import SlipwayClient
from slipway.tracking.fluent import (
    ActiveRun,
    active_run,
    delete_tag,
    end_run,
    flush,
    get_artifact_uri,
    get_tracking_uri,
    last_active_run_id,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    search_runs,
    set_async_logging,
    set_experiment,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)

__version__ = "0.1.0.dev0"

_FLAVOR_ATTRIBUTES = frozenset({"lightgbm", "onnx", "pyfunc", "pytorch", "sklearn", "xgboost"})


_SUBPACKAGE_ATTRIBUTES = frozenset({"pipelines", "training", "tuning"})


def __getattr__(name: str) -> Any:
    """``slipway.sklearn``, ``slipway.pyfunc``, ... (the flavor modules) and
    ``slipway.pipelines``, ``slipway.training``, ``slipway.tuning``: imported on first use so
    that ``import slipway`` stays light."""
    if name in _FLAVOR_ATTRIBUTES:
        import importlib

        return importlib.import_module(f"slipway.flavors.{name}")
    if name in _SUBPACKAGE_ATTRIBUTES:
        import importlib

        return importlib.import_module(f"slipway.{name}")
    raise AttributeError(f"module 'slipway' has no attribute {name!r}")


__all__ = [
    "ActiveRun",
    "Dataset",
    "DatasetInput",
    "Experiment",
    "Metric",
    "Param",
    "RegistryClient",
    "Run",
    "RunStatus",
    "RunTag",
    "SlipwayClient",
    "SlipwayError",
    "ViewType",
    "__version__",
    "active_run",
    "delete_tag",
    "end_run",
    "flush",
    "get_artifact_uri",
    "get_tracking_uri",
    "last_active_run_id",
    "lineage",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "register_model",
    "registry",
    "search_runs",
    "set_async_logging",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]
