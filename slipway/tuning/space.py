"""Search spaces: what each hyperparameter may take, checked before a study starts.

``uniform``, ``loguniform``, ``randint``, ``categorical`` and ``discrete`` build the
distributions of a space (a dict from parameter name to distribution). Ranges include both ends
(``randint(2, 8)`` may give 8, as Python's ``random.randint`` does, and as Katib's ``min`` and
``max`` mean). :func:`check_space` refuses what cannot be searched (an empty range, a step that
does not fit, an empty choice list) with an error naming the parameter, and is called by every
entry point, so a mistake never surfaces half way through a study.

No Optuna here: :meth:`Distribution.to_optuna` imports it when a study runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from slipway.exceptions import InvalidParameterValue

Choice: TypeAlias = bool | int | float | str | None
"""What a categorical parameter may take: values every storage and the run's params can hold."""

NAME_MAX = 250
"""The longest parameter name (a run param key is at most 250 characters)."""


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParameterValue(f"{what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``; on a log scale with ``log``; on a grid of ``step``
    from ``low`` with ``step`` (``high`` is lowered to the last point of the grid)."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def check(self, name: str) -> Float:
        where = f"parameter {name!r}"
        low = _number(self.low, f"{where}: low")
        high = _number(self.high, f"{where}: high")
        if low >= high:
            raise InvalidParameterValue(
                f"{where}: empty range: low ({self.low}) must be below high ({self.high})"
            )
        if self.log and low <= 0:
            raise InvalidParameterValue(f"{where}: a log scale needs low > 0, got {self.low}")
        step = self.step
        if step is not None:
            step = _number(step, f"{where}: step")
            if self.log:
                raise InvalidParameterValue(f"{where}: a step cannot be used on a log scale")
            if step <= 0 or step > high - low:
                raise InvalidParameterValue(
                    f"{where}: bad step {self.step}: it must be above 0 and at most "
                    f"high - low ({high - low:g})"
                )
            high = low + math.floor((high - low) / step + 1e-9) * step
        return Float(low, high, step, bool(self.log))

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self, name: str) -> list[Choice]:
        if self.step is None:
            raise InvalidParameterValue(
                f"grid search needs a finite space: parameter {name!r} is continuous "
                "(give it a step, or make it an integer or a categorical)"
            )
        count = round((self.high - self.low) / self.step) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "float", "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (both included), every ``step``; on a log scale with
    ``log`` (``step`` must then be 1)."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def check(self, name: str) -> Int:
        where = f"parameter {name!r}"
        for label, value in (("low", self.low), ("high", self.high), ("step", self.step)):
            number: object = value
            if isinstance(number, float) and number.is_integer():
                continue
            if isinstance(number, bool) or not isinstance(number, int):
                raise InvalidParameterValue(f"{where}: {label} must be an integer, got {value!r}")
        low, high, step = int(self.low), int(self.high), int(self.step)
        if low >= high:
            raise InvalidParameterValue(
                f"{where}: empty range: low ({low}) must be below high ({high})"
            )
        if step <= 0 or step > high - low:
            raise InvalidParameterValue(
                f"{where}: bad step {step}: it must be at least 1 and at most high - low "
                f"({high - low})"
            )
        if self.log and (step != 1 or low <= 0):
            raise InvalidParameterValue(f"{where}: a log scale needs low >= 1 and step 1")
        high = low + (high - low) // step * step
        return Int(low, high, step, bool(self.log))

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self, name: str) -> list[Choice]:
        return list(range(self.low, self.high + 1, self.step))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "int", "low": self.low, "high": self.high}
        if self.step != 1:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (no order between them). ``numeric`` marks Katib's ``discrete``:
    numbers that are still chosen among, not interpolated."""

    choices: tuple[Choice, ...]
    numeric: bool = False

    def check(self, name: str) -> Categorical:
        where = f"parameter {name!r}"
        given: object = self.choices
        if isinstance(given, str | bytes) or not isinstance(given, Sequence):
            raise InvalidParameterValue(f"{where}: choices must be a list, got {self.choices!r}")
        if not self.choices:
            raise InvalidParameterValue(f"{where}: empty choice list")
        seen: list[Choice] = []
        for value in self.choices:
            if value is not None and not isinstance(value, bool | int | float | str):
                raise InvalidParameterValue(
                    f"{where}: choice {value!r} is a {type(value).__name__}; choices must be "
                    "None, booleans, numbers or strings"
                )
            if self.numeric:
                _number(value, f"{where}: discrete value")
            if any(value == s and type(value) is type(s) for s in seen):
                raise InvalidParameterValue(f"{where}: choice {value!r} is listed twice")
            seen.append(value)
        return Categorical(tuple(seen), self.numeric)

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.choices)

    def grid(self, name: str) -> list[Choice]:
        return list(self.choices)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "discrete" if self.numeric else "categorical"}
        out["choices"] = list(self.choices)
        return out


Distribution: TypeAlias = Float | Int | Categorical
Space: TypeAlias = Mapping[str, Distribution]


def uniform(low: float, high: float, step: float | None = None) -> Float:
    """A real number drawn evenly from ``[low, high]`` (every ``step`` from ``low``)."""
    return Float(low, high, step)


def loguniform(low: float, high: float) -> Float:
    """A positive real number in ``[low, high]``, evenly on a log scale (learning rates)."""
    return Float(low, high, log=True)


def randint(low: int, high: int, step: int = 1, log: bool = False) -> Int:
    """An integer in ``[low, high]``, both ends included, every ``step``."""
    return Int(low, high, step, log)


def categorical(choices: Sequence[Choice]) -> Categorical:
    """One of ``choices``."""
    return Categorical(tuple(choices) if isinstance(choices, list | tuple) else choices)  # type: ignore[arg-type]


def discrete(values: Sequence[float]) -> Categorical:
    """One of the numbers ``values`` (Katib's ``discrete``)."""
    return Categorical(tuple(values) if isinstance(values, list | tuple) else values, True)  # type: ignore[arg-type]


def check_space(space: object) -> dict[str, Distribution]:
    """``space`` checked, with every distribution normalised (integers as ints, a stepped
    range's ``high`` on its grid); INVALID_PARAMETER_VALUE naming the first bad parameter."""
    if not isinstance(space, Mapping) or not space:
        raise InvalidParameterValue(
            "The search space must be a non-empty dict of parameter name to distribution, "
            "e.g. {'lr': tuning.loguniform(1e-4, 1e-1)}"
        )
    out: dict[str, Distribution] = {}
    for name, dist in space.items():
        if not isinstance(name, str) or not name or len(name) > NAME_MAX:
            raise InvalidParameterValue(
                f"Invalid parameter name {name!r}: expected a string of 1 to {NAME_MAX} characters"
            )
        if not isinstance(dist, Float | Int | Categorical):
            raise InvalidParameterValue(
                f"parameter {name!r}: {dist!r} is not a distribution; use tuning.uniform, "
                "loguniform, randint, categorical or discrete"
            )
        out[name] = dist.check(name)
    return out


def grid_size(space: Space) -> int:
    """How many points a grid over ``space`` has (each distribution must be finite)."""
    size = 1
    for name, dist in space.items():
        size *= len(dist.grid(name))
    return size


def space_to_json(space: Space) -> dict[str, Any]:
    return {name: dist.to_json() for name, dist in space.items()}


def space_from_json(data: Mapping[str, Any]) -> dict[str, Distribution]:
    """The space :func:`space_to_json` wrote (checked again)."""
    out: dict[str, Distribution] = {}
    for name, item in data.items():
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "float":
            out[name] = Float(item["low"], item["high"], item.get("step"), bool(item.get("log")))
        elif kind == "int":
            out[name] = Int(item["low"], item["high"], item.get("step", 1), bool(item.get("log")))
        elif kind in ("categorical", "discrete"):
            out[name] = Categorical(tuple(item["choices"]), kind == "discrete")
        else:
            raise InvalidParameterValue(f"parameter {name!r}: unknown distribution {item!r}")
    return check_space(out)


__all__ = [
    "Categorical",
    "Choice",
    "Distribution",
    "Float",
    "Int",
    "Space",
    "categorical",
    "check_space",
    "discrete",
    "grid_size",
    "loguniform",
    "randint",
    "space_from_json",
    "space_to_json",
    "uniform",
]
