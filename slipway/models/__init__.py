"""The model format: a directory with an ``MLmodel`` file that MLflow reads too.

:class:`Model` reads and writes ``MLmodel``; :class:`ModelInfo` is what ``log_model`` returns;
:class:`ModelSignature` and :func:`infer_signature` describe a model's inputs and outputs.
Flavors (how each library's models are saved) live in :mod:`slipway.flavors`.
"""

from __future__ import annotations

from slipway.models.info import ModelInfo
from slipway.models.mlmodel import Model
from slipway.models.signature import ModelSignature, infer_signature

__all__ = ["Model", "ModelInfo", "ModelSignature", "infer_signature"]
