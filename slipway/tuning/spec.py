"""``TuneSpec``: everything a study is, apart from a Python objective, checked once.

Every entry point builds one: :func:`slipway.tuning.tune` from its arguments, ``slipway tune``
from a Katib-style YAML file (:mod:`slipway.tuning.katib`). It is stored with the study as
JSON, so ``slipway tune --resume NAME`` can carry on a command study without its file, and a
study run again is checked against what it was started with (the space, the direction and the
metric must not change under a study: its trials would no longer compare).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.tuning import space as sp
from slipway.tuning.resources import check_resources

DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("random", "grid", "tpe", "multivariate-tpe", "cmaes")
PRUNERS = ("median", "hyperband", "none")
STRATEGIES = ("latest", "max", "min")

SAMPLER_SETTINGS: dict[str, frozenset[str]] = {
    "random": frozenset(),
    "grid": frozenset(),
    "tpe": frozenset({"n_startup_trials", "n_ei_candidates", "constant_liar"}),
    "multivariate-tpe": frozenset({"n_startup_trials", "n_ei_candidates", "constant_liar"}),
    "cmaes": frozenset({"sigma0", "n_startup_trials", "popsize"}),
}
"""The settings each sampler takes (the seed is apart), with Optuna's meaning."""

PRUNER_SETTINGS: dict[str, frozenset[str]] = {
    "median": frozenset({"n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"}),
    "hyperband": frozenset({"min_resource", "max_resource", "reduction_factor"}),
    "none": frozenset(),
}


@dataclass(frozen=True)
class SamplerSpec:
    """Which sampler proposes the trials' parameters, its seed and its settings."""

    name: str = "tpe"
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def check(self) -> SamplerSpec:
        name = _choice(self.name, SAMPLERS, "sampler")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise InvalidParameterValue(f"seed must be an integer, got {self.seed!r}")
        _settings(self.settings, SAMPLER_SETTINGS[name], f"sampler {name!r}")
        return replace(self, name=name)


@dataclass(frozen=True)
class PrunerSpec:
    """Which pruner stops unpromising trials early, and its settings."""

    name: str = "median"
    settings: dict[str, Any] = field(default_factory=dict)

    def check(self) -> PrunerSpec:
        name = _choice(self.name or "none", PRUNERS, "pruner")
        _settings(self.settings, PRUNER_SETTINGS[name], f"pruner {name!r}")
        return replace(self, name=name)


@dataclass(frozen=True)
class TuneSpec:
    """A study's specification.

    ``n_trials`` counts every trial of the study, across resumes (None: until ``timeout`` or
    Ctrl-C; a grid search stops when its grid is covered). ``command`` (with ``cwd``) makes
    each trial a subprocess that reports ``metric`` on its stdout or with
    ``slipway.log_metric``; ``metric_strategy`` says which of its values is the trial's
    (``latest``, ``max`` or ``min``, as Katib's metric strategies).
    """

    space: dict[str, sp.Distribution]
    name: str | None = None
    direction: str = "minimize"
    metric: str = "objective"
    n_trials: int | None = None
    timeout: float | None = None
    parallelism: int = 1
    max_failed_trials: int | None = None
    goal: float | None = None
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    metric_strategy: str = "latest"
    additional_metrics: tuple[str, ...] = ()
    trial_timeout: float | None = None
    trial_resources: dict[str, float] = field(default_factory=dict)
    """What each trial holds where it runs on Ray (``cpu``, ``gpu``, ``memory`` in bytes,
    custom resources): see :mod:`slipway.tuning.resources`."""
    notes: tuple[str, ...] = ()
    """What the spec was read as, for the user (``bayesianoptimization runs as tpe``)."""

    def check(self) -> TuneSpec:
        """The spec with every field checked and normalised; INVALID_PARAMETER_VALUE naming
        the first bad one."""
        space = sp.check_space(self.space)
        sampler = self.sampler.check()
        if sampler.name == "grid":
            sp.grid_size(space)  # every parameter must be finite
        if not isinstance(self.metric, str) or not self.metric:
            raise InvalidParameterValue(f"metric must be a non-empty name, got {self.metric!r}")
        command = None
        if self.command is not None:
            given: object = self.command
            if isinstance(given, str) or not all(isinstance(a, str) for a in self.command):
                raise InvalidParameterValue(
                    "The trial command must be a list of strings, e.g. "
                    "['python', 'train.py', '--lr=${trialParameters.lr}']"
                )
            if not self.command:
                raise InvalidParameterValue("The trial command is empty")
            command = tuple(self.command)
        return replace(
            self,
            space=space,
            direction=_choice(self.direction, DIRECTIONS, "direction"),
            n_trials=_optional_int(self.n_trials, "n_trials", 1),
            timeout=_optional_seconds(self.timeout, "timeout"),
            parallelism=_int(self.parallelism, "parallelism", 1),
            max_failed_trials=_optional_int(self.max_failed_trials, "max_failed_trials", 1),
            goal=None if self.goal is None else _finite(self.goal, "goal"),
            sampler=sampler,
            pruner=self.pruner.check(),
            command=command,
            metric_strategy=_choice(self.metric_strategy, STRATEGIES, "metric strategy"),
            additional_metrics=tuple(self.additional_metrics),
            trial_timeout=_optional_seconds(self.trial_timeout, "trial_timeout"),
            trial_resources=check_resources(self.trial_resources),
        )

    def total_trials(self) -> int | None:
        """How many trials the study runs in all: ``n_trials``, capped by the grid's size for
        a grid search (a grid point is never run twice)."""
        if self.sampler.name != "grid":
            return self.n_trials
        size = sp.grid_size(self.space)
        return size if self.n_trials is None else min(size, self.n_trials)

    def identity(self) -> dict[str, Any]:
        """What must stay the same for a study to be resumed."""
        return {
            "space": sp.space_to_json(self.space),
            "direction": self.direction,
            "metric": self.metric,
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "space": sp.space_to_json(self.space),
            "direction": self.direction,
            "metric": self.metric,
            "parallelism": self.parallelism,
            "sampler": {"name": self.sampler.name, "settings": dict(self.sampler.settings)},
            "pruner": {"name": self.pruner.name, "settings": dict(self.pruner.settings)},
            "metric_strategy": self.metric_strategy,
        }
        optional = {
            "name": self.name,
            "n_trials": self.n_trials,
            "timeout": self.timeout,
            "max_failed_trials": self.max_failed_trials,
            "goal": self.goal,
            "command": list(self.command) if self.command else None,
            "cwd": self.cwd,
            "trial_timeout": self.trial_timeout,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.sampler.seed is not None:
            out["sampler"]["seed"] = self.sampler.seed
        if self.additional_metrics:
            out["additional_metrics"] = list(self.additional_metrics)
        if self.trial_resources:
            out["trial_resources"] = dict(self.trial_resources)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TuneSpec:
        sampler = data.get("sampler") or {}
        pruner = data.get("pruner") or {}
        command = data.get("command")
        return cls(
            space=sp.space_from_json(data.get("space") or {}),
            name=data.get("name"),
            direction=data.get("direction", "minimize"),
            metric=data.get("metric", "objective"),
            n_trials=data.get("n_trials"),
            timeout=data.get("timeout"),
            parallelism=data.get("parallelism", 1),
            max_failed_trials=data.get("max_failed_trials"),
            goal=data.get("goal"),
            sampler=SamplerSpec(
                sampler.get("name", "tpe"), sampler.get("seed"), dict(sampler.get("settings") or {})
            ),
            pruner=PrunerSpec(pruner.get("name", "none"), dict(pruner.get("settings") or {})),
            command=tuple(command) if command else None,
            cwd=data.get("cwd"),
            metric_strategy=data.get("metric_strategy", "latest"),
            additional_metrics=tuple(data.get("additional_metrics") or ()),
            trial_timeout=data.get("trial_timeout"),
            trial_resources=dict(data.get("trial_resources") or {}),
        ).check()


# -- checks -------------------------------------------------------------------------------------


def _choice(value: object, choices: Sequence[str], what: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in choices:
        raise InvalidParameterValue(f"Unknown {what} {value!r}: use one of {', '.join(choices)}")
    return str(text)


def _int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValue(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidParameterValue(f"{name} must be at least {minimum}, got {value}")
    return value


def _optional_int(value: object, name: str, minimum: int) -> int | None:
    return None if value is None else _int(value, name, minimum)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParameterValue(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _optional_seconds(value: object, name: str) -> float | None:
    if value is None:
        return None
    seconds = _finite(value, name)
    if seconds <= 0:
        raise InvalidParameterValue(f"{name} must be a positive number of seconds, got {value}")
    return seconds


def _settings(settings: object, known: frozenset[str], what: str) -> None:
    if not isinstance(settings, Mapping):
        raise InvalidParameterValue(f"{what}: settings must be a dict, got {settings!r}")
    for key, value in settings.items():
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            raise InvalidParameterValue(f"{what} has no setting {key!r} (settings: {names})")
        if key == "constant_liar":
            if not isinstance(value, bool):
                raise InvalidParameterValue(f"{what}: {key} must be true or false, got {value!r}")
        elif key == "max_resource" and value == "auto":
            continue
        elif key == "sigma0":
            if _finite(value, f"{what}: {key}") <= 0:
                raise InvalidParameterValue(f"{what}: {key} must be above 0, got {value}")
        else:
            _int(value, f"{what}: {key}", 0 if key in ("n_startup_trials", "n_warmup_steps") else 1)


__all__ = [
    "DIRECTIONS",
    "PRUNERS",
    "SAMPLERS",
    "PrunerSpec",
    "SamplerSpec",
    "TuneSpec",
]
