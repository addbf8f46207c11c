"""Models with the input and output shapes the protocol tests need, saved as real pyfunc
models with signatures (see :func:`save_all`):

* ``picky``: columns a, b, c (doubles) -> ``2 * a``; raises inside ``predict`` on any row whose
  ``a`` is exactly 13 (a request that passes the signature but breaks the model);
* ``tensor``: one unnamed float64 tensor of shape (-1, 3) -> the row sums, output ``total``;
* ``multi``: named tensors ``x`` (float64, (-1, 2)) and ``n`` (int64, (-1,)) -> a dict of
  outputs ``sum`` (float64), ``count`` (int64) and ``label`` (strings);
* ``text``: columns ``text`` (string) and ``times`` (long) -> a DataFrame with ``length``
  (int64: the length of the text times ``times``) and ``upper`` (the text in capitals);
* ``slow``: columns a, b, c -> ``a``, after sleeping 0.5 s in every call.

Classes are pickled by value, so the models load in any process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd

from slipway.flavors import pyfunc
from slipway.models.signature import ColSpec, ModelSignature, Schema, TensorSpec

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BAD_A = 13.0
"""The value of column ``a`` on which ``picky`` raises."""

COLUMNS = Schema([ColSpec("double", "a"), ColSpec("double", "b"), ColSpec("double", "c")])


class Picky(pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        if (model_input["a"] == BAD_A).any():
            raise ValueError(f"a row has a == {BAD_A}")
        return (model_input["a"] * 2).to_numpy()


class RowSum(pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return np.asarray(model_input, dtype=np.float64).sum(axis=1)


class Multi(pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        x, n = model_input["x"], model_input["n"]
        return {
            "sum": x.sum(axis=1) + n,
            "count": n * 2,
            "label": np.asarray([f"row-{int(v)}" for v in n], dtype=object),
        }


class Text(pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        texts = model_input["text"].astype(str)
        lengths = texts.str.len().astype("int64") * model_input["times"]
        return pd.DataFrame({"length": lengths, "upper": texts.str.upper()})


class Slow(pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        time.sleep(0.5)
        return model_input["a"].to_numpy()


def _save(path: Path, model: pyfunc.PythonModel, signature: ModelSignature) -> str:
    pyfunc.save_model(path, model, signature=signature)
    return str(path)


def save_all(root: Path) -> dict[str, str]:
    """Save every model above under ``root``; name -> model directory."""
    return {
        "picky": _save(
            root / "picky",
            Picky(),
            ModelSignature(COLUMNS, Schema([ColSpec("double")])),
        ),
        "tensor": _save(
            root / "tensor",
            RowSum(),
            ModelSignature(
                Schema([TensorSpec(np.dtype("float64"), (-1, 3))]),
                Schema([TensorSpec(np.dtype("float64"), (-1,), "total")]),
            ),
        ),
        "multi": _save(
            root / "multi",
            Multi(),
            ModelSignature(
                Schema(
                    [
                        TensorSpec(np.dtype("float64"), (-1, 2), "x"),
                        TensorSpec(np.dtype("int64"), (-1,), "n"),
                    ]
                ),
                Schema(
                    [
                        TensorSpec(np.dtype("float64"), (-1,), "sum"),
                        TensorSpec(np.dtype("int64"), (-1,), "count"),
                        TensorSpec(np.dtype("str"), (-1,), "label"),
                    ]
                ),
            ),
        ),
        "text": _save(
            root / "text",
            Text(),
            ModelSignature(
                Schema([ColSpec("string", "text"), ColSpec("long", "times")]),
                Schema([ColSpec("long", "length"), ColSpec("string", "upper")]),
            ),
        ),
        "slow": _save(root / "slow", Slow(), ModelSignature(COLUMNS)),
    }


__all__ = ["BAD_A", "save_all"]
