"""Model serving: models behind HTTP, in the protocols that clients already speak.

``slipway serve`` (or :func:`slipway.serving.runner.serve`) loads models by URI and answers

* MLflow's scoring protocol (``POST /invocations``),
* the Open Inference Protocol V2 (``/v2/models/<name>/infer``; Triton's and KServe's clients),
* KServe's V1 protocol (``/v1/models/<name>:predict``),

with dynamic batching (:mod:`~slipway.serving.batching`), canary routes, a shadow model and hot
reload of ``models:/name@alias`` (:mod:`~slipway.serving.endpoint`), Prometheus metrics
(:mod:`~slipway.serving.metrics`), sampled request logging, deployment records in the
registry, and a KServe manifest for Kubernetes (:mod:`~slipway.serving.kserve`).

The layers, bottom up: :mod:`~slipway.serving.codecs` (wire formats, pure functions),
:mod:`~slipway.serving.batching`, :mod:`~slipway.serving.loaded` and
:mod:`~slipway.serving.endpoint` (models behind a name), :mod:`~slipway.serving.app` (the
ASGI app) and :mod:`~slipway.serving.runner` (uvicorn, one process or several) or
:mod:`~slipway.serving.ray_serve` (replicas of the same app on Ray Serve).

The names below are imported on first use, so ``import slipway.serving`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slipway.serving.app import create_serving_app
    from slipway.serving.batching import BatchConfig, Batcher
    from slipway.serving.endpoint import Endpoint, PredictResult
    from slipway.serving.settings import ServingSettings

_EXPORTS = {
    "BatchConfig": "slipway.serving.batching",
    "Batcher": "slipway.serving.batching",
    "Endpoint": "slipway.serving.endpoint",
    "PredictResult": "slipway.serving.endpoint",
    "ServingSettings": "slipway.serving.settings",
    "create_serving_app": "slipway.serving.app",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slipway.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BatchConfig",
    "Batcher",
    "Endpoint",
    "PredictResult",
    "ServingSettings",
    "create_serving_app",
]
