"""Model signatures: what a model takes in, gives back, and which parameters it accepts.

A :class:`ModelSignature` holds an input :class:`Schema`, an output :class:`Schema` and a
:class:`ParamSchema`, each optional. ``MLmodel`` stores it as MLflow does, each part a JSON
string::

    signature:
      inputs: '[{"type": "double", "name": "x", "required": true}]'
      outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'
      params: '[{"name": "alpha", "default": 0.5, "shape": null, "type": "double"}]'

and the JSON is byte for byte what MLflow writes, so either tool reads the other's models.
:func:`infer_signature` derives a signature from example data the way MLflow does.

Example::

    import pandas as pd
    from slipway.models.signature import infer_signature

    signature = infer_signature(pd.DataFrame({"x": [1.0, 2.0]}), [0.5, 0.7], {"alpha": 0.1})
    signature.to_dict()["inputs"]  # '[{"type": "double", "name": "x", "required": true}]'
"""

from __future__ import annotations

import logging
from typing import Any

from slipway.exceptions import InvalidParameterValue, SlipwayError
from slipway.models._infer import infer_param_schema, infer_schema
from slipway.models._schema import ColSpec, ColumnName, ParamSchema, ParamSpec, Schema, TensorSpec
from slipway.models._types import (
    AnyType,
    Array,
    ColumnType,
    DataType,
    Map,
    Object,
    Property,
    SparkMLVector,
)

__all__ = [
    "AnyType",
    "Array",
    "ColSpec",
    "ColumnName",
    "ColumnType",
    "DataType",
    "Map",
    "ModelSignature",
    "Object",
    "ParamSchema",
    "ParamSpec",
    "Property",
    "Schema",
    "SparkMLVector",
    "TensorSpec",
    "infer_signature",
]

_log = logging.getLogger(__name__)


class ModelSignature:
    """The input, output and parameter schemas of a model; at least one must be given.

    Args:
        inputs: what ``predict`` accepts.
        outputs: what ``predict`` returns.
        params: the parameters ``predict(data, params=...)`` accepts, with their defaults.
    """

    def __init__(
        self,
        inputs: Schema | None = None,
        outputs: Schema | None = None,
        params: ParamSchema | None = None,
    ) -> None:
        for what, value, kind in (
            ("inputs", inputs, Schema),
            ("outputs", outputs, Schema),
            ("params", params, ParamSchema),
        ):
            if value is not None and not isinstance(value, kind):
                raise InvalidParameterValue(
                    f"ModelSignature {what} must be a {kind.__name__} or None, "
                    f"got {type(value).__name__}"
                )
        if inputs is None and outputs is None and params is None:
            raise InvalidParameterValue("At least one of inputs, outputs or params must be given")
        self.inputs = inputs
        self.outputs = outputs
        self.params = params

    def to_dict(self) -> dict[str, str | None]:
        """The ``MLmodel`` form: each part as a JSON string, ``None`` where absent."""
        return {
            "inputs": self.inputs.to_json() if self.inputs else None,
            "outputs": self.outputs.to_json() if self.outputs else None,
            "params": self.params.to_json() if self.params else None,
        }

    @classmethod
    def from_dict(cls, signature: dict[str, Any]) -> ModelSignature:
        """Read the ``MLmodel`` form (missing or empty parts are absent).

        Raises:
            InvalidParameterValue: when a part is not valid schema JSON.
        """
        if not isinstance(signature, dict):
            raise InvalidParameterValue(
                f"A signature must be a mapping, got {type(signature).__name__}"
            )
        inputs, outputs, params = (signature.get(k) for k in ("inputs", "outputs", "params"))
        return cls(
            Schema.from_json(inputs) if inputs else None,
            Schema.from_json(outputs) if outputs else None,
            ParamSchema.from_json(params) if params else None,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSignature) and (
            self.inputs,
            self.outputs,
            self.params,
        ) == (other.inputs, other.outputs, other.params)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"inputs:\n  {self.inputs!r}\n"
            f"outputs:\n  {self.outputs!r}\n"
            f"params:\n  {self.params!r}\n"
        )


def infer_signature(
    model_input: Any = None,
    model_output: Any = None,
    params: dict[str, Any] | None = None,
) -> ModelSignature:
    """Infer a signature from example input, example output and example parameters.

    Inputs and outputs may be pandas DataFrames or Series, numpy arrays, dicts of arrays
    (named tensors), dicts of values or lists (named columns), lists of dicts (records), lists
    of values, scalars or strings. The rules are MLflow's (see :mod:`slipway.models._infer`),
    so both tools infer the same signature for the same data.

    As in MLflow, data whose type cannot be inferred (a list mixing numbers and strings, say)
    does not fail: that side gets the catch-all schema ``[{"type": "any"}]`` and a warning is
    logged, since a model should still save when its example is odd. Params, which are
    checked at every call, must infer cleanly.

    Args:
        model_input: a sample of valid model input.
        model_output: the model's output for it.
        params: example inference parameters; each value's type becomes the parameter's type
            and the value its default.

    Raises:
        InvalidParameterValue: when ``params`` has a value with no parameter type, or when
            nothing at all was given.
    """
    inputs = _schema_or_any(model_input, "inputs")
    outputs = _schema_or_any(model_output, "outputs")
    param_schema = infer_param_schema(params) if params else None
    return ModelSignature(inputs, outputs, param_schema)


def _schema_or_any(data: Any, what: str) -> Schema | None:
    if data is None:
        return None
    try:
        return infer_schema(data)
    except (SlipwayError, ValueError, TypeError, AttributeError) as error:
        _log.warning(
            "Failed to infer the schema of the %s (%s); using the catch-all schema "
            "[ColSpec(AnyType())], which is not checked at inference time.",
            what,
            error,
        )
        return Schema([ColSpec(AnyType())])
