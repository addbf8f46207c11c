"""What one trial asks of the machine that runs it: ``cpu``, ``gpu``, ``memory`` (bytes) and
any custom Ray resource by name, as given to ``tune(trial_resources=...)`` or read from the
resource requests of a Katib trial template's container (``cpu: 500m``, ``memory: 2Gi``,
``nvidia.com/gpu: 1``). Used by trials on Ray, where each trial worker is an actor holding
them; trials on this machine run without them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from slipway.exceptions import InvalidParameterValue

GPU_KEYS = ("nvidia.com/gpu", "amd.com/gpu", "gpu")
_SUFFIXES = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
}
_QUANTITY = re.compile(
    r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([-+]?[0-9]+))?\s*([A-Za-z]*)\s*$"
)


def quantity(value: object, what: str) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``1.5Gi``, ``1e3``) or a plain number, as a
    number; INVALID_PARAMETER_VALUE naming ``what`` otherwise."""
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{what}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and (match := _QUANTITY.match(value)):
        digits, exponent, suffix = match.groups()
        if suffix not in _SUFFIXES:
            raise InvalidParameterValue(f"{what}: unknown unit {suffix!r} in {value!r}")
        number = float(digits) * 10.0 ** int(exponent or 0) * _SUFFIXES[suffix]
    else:
        raise InvalidParameterValue(f"{what}: expected a number or quantity, got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise InvalidParameterValue(f"{what}: must be a non-negative number, got {value!r}")
    return number


def check_resources(resources: Mapping[str, Any] | None) -> dict[str, float]:
    """``resources`` with every value a non-negative number (``memory`` in whole bytes)."""
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise InvalidParameterValue(
            f"trial_resources must be a dict such as {{'cpu': 1, 'gpu': 0}}, got {resources!r}"
        )
    out: dict[str, float] = {}
    for key, value in resources.items():
        if not isinstance(key, str) or not key:
            raise InvalidParameterValue(f"trial_resources: bad resource name {key!r}")
        name = "gpu" if key in GPU_KEYS else key
        number = quantity(value, f"trial_resources.{key}")
        out[name] = float(math.ceil(number)) if name == "memory" else number
    return out


def from_container(container: Mapping[str, Any], path: str) -> tuple[dict[str, float], list[str]]:
    """The resources a Kubernetes container asks for (its ``requests``; a ``limits`` entry
    without a request counts as one, as in Kubernetes) and notes on what is not used."""
    spec = container.get("resources") or {}
    if not isinstance(spec, Mapping):
        raise InvalidParameterValue(f"{path}.resources: expected a mapping")
    asked: dict[str, Any] = {}
    for part in ("limits", "requests"):
        entries = spec.get(part) or {}
        if not isinstance(entries, Mapping):
            raise InvalidParameterValue(f"{path}.resources.{part}: expected a mapping")
        asked.update(entries)
    out: dict[str, float] = {}
    notes: list[str] = []
    for key, value in asked.items():
        if key in ("cpu", "memory") or key in GPU_KEYS:
            name = "gpu" if key in GPU_KEYS else str(key)
            number = quantity(value, f"{path}.resources.{key}")
            out[name] = float(math.ceil(number)) if name == "memory" else number
        else:
            notes.append(f"the trial's resource {key!r} is not used")
    return out, notes


def to_container(resources: Mapping[str, float]) -> dict[str, Any]:
    """``resources`` as a Kubernetes container's ``resources`` (requests and limits)."""
    asked: dict[str, str] = {}
    for key, value in resources.items():
        if key == "cpu":
            asked["cpu"] = f"{value:g}" if value >= 1 else f"{round(value * 1000)}m"
        elif key == "memory":
            asked["memory"] = str(int(value))
        elif key == "gpu":
            asked["nvidia.com/gpu"] = f"{value:g}"
    return {"requests": dict(asked), "limits": dict(asked)} if asked else {}


__all__ = ["check_resources", "from_container", "quantity", "to_container"]
