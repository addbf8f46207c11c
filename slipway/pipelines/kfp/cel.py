"""Conditions as CEL, the expression language of a Kubeflow task's ``triggerPolicy.condition``.

Kubeflow evaluates the condition of the task that runs a condition group over that task's own
inputs, so every operand that is not a constant is an input of the group's task, read as
``inputs.parameter_values['<input>']``. Parameter values arrive as protobuf ``Value``s, where
every number is a double: an integer operand is compared as ``int(...)``, and when the two
sides have different types the narrower one is converted (string over bool over double over
integer), the same promotion Kubeflow's own compiler applies, so that CEL does not refuse to
compare them. An ``elif``/``else`` branch holds when every earlier branch of its chain is false,
which is the negation of each earlier test joined by ``&&``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import types as ty

_RANK = {ty.INTEGER: 0, ty.DOUBLE: 1, ty.BOOLEAN: 2, ty.STRING: 3}
"""Which type wins when two operands differ (the higher rank)."""

OperandName = Callable[[dict[str, Any]], tuple[str, str]]
"""Maps a non-constant operand binding to ``(input name, parameter type)`` on the group task."""


def literal(value: Any) -> str:
    """``value`` written as a CEL literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidParameterValue(
                f"a condition compares with {value!r}, which CEL cannot write as a literal"
            )
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        return f"'{escaped}'"
    # lists and dicts: CEL list and map literals have JSON's syntax
    return json.dumps(value)


def _convert(text: str, have: str, want: str, is_constant: bool) -> str:
    if have == want or have == ty.ANY:
        return text
    if want == ty.STRING:
        return f"'{text}'" if is_constant else f"string({text})"
    if want == ty.DOUBLE and have == ty.INTEGER:
        return f"double({text})"
    return text


def comparison(expr: dict[str, Any], name_of: OperandName) -> str:
    """One ``{"op", "left", "right"}`` comparison of the graph as CEL."""
    sides: list[tuple[str, str, bool]] = []  # (text, type, constant)
    for binding in (expr["left"], expr["right"]):
        if "constant" in binding:
            value = binding["constant"]
            sides.append((literal(value), ty.type_of_value(value), True))
        else:
            name, ptype = name_of(binding)
            text = f"inputs.parameter_values['{name}']"
            sides.append((text, ptype, False))
    types = {t for _, t, _ in sides}
    known = [t for t in types if t in _RANK]
    want = max(known, key=_RANK.__getitem__) if known else ty.ANY
    parts = []
    for text, ptype, constant in sides:
        if not constant and ptype == ty.INTEGER:
            text = f"int({text})"
        elif not constant and ptype == ty.ANY and want in (ty.INTEGER, ty.DOUBLE):
            # an untyped loop item compared with a number: read it as that number
            text = f"{'int' if want == ty.INTEGER else 'double'}({text})"
            ptype = want
        parts.append(_convert(text, ptype, want, constant) if len(types) > 1 else text)
    return f"{parts[0]} {expr['op']} {parts[1]}"


def condition(conditions: Sequence[dict[str, Any]], name_of: OperandName) -> str:
    """A condition group's ``[{"expr", "want"}, ...]`` as one CEL expression."""
    terms = []
    for cond in conditions:
        text = comparison(cond["expr"], name_of)
        terms.append(text if cond["want"] else f"!({text})")
    return " && ".join(terms)


__all__ = ["OperandName", "comparison", "condition", "literal"]
