"""Optuna samplers and pruners for a :class:`~slipway.tuning.spec.TuneSpec`.

Samplers run in the coordinator only (it asks for every trial's parameters); pruners run in each
trial worker too (``trial.should_prune()``), built there from the same spec, so every process
prunes by the same rule against the study's shared journal.

TPE with more than one trial at a time uses Optuna's ``constant_liar`` (running trials count as
bad ones), so parallel trials do not all propose the same point; a setting can turn it off.
Optuna flags some of these options as experimental; that warning says nothing to a Slipway user
and is silenced here.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.tuning import space as sp
from slipway.tuning.spec import PrunerSpec, TuneSpec


def make_sampler(spec: TuneSpec) -> Any:
    """The Optuna sampler ``spec`` names, seeded."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    sampler = spec.sampler
    settings = dict(sampler.settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if sampler.name == "random":
            return optuna.samplers.RandomSampler(seed=sampler.seed)
        if sampler.name == "grid":
            grid = {name: dist.grid(name) for name, dist in spec.space.items()}
            return _grid_sampler(grid, sampler.seed)
        if sampler.name in ("tpe", "multivariate-tpe"):
            settings.setdefault("constant_liar", spec.parallelism > 1)
            return optuna.samplers.TPESampler(
                seed=sampler.seed,
                multivariate=sampler.name == "multivariate-tpe",
                warn_independent_sampling=False,
                **settings,
            )
        if sampler.name == "cmaes":
            if importlib.util.find_spec("cmaes") is None:
                raise InvalidParameterValue(
                    "The cmaes sampler needs the cmaes package: pip install 'slipway[tuning]' "
                    "(or pip install cmaes)"
                )
            return optuna.samplers.CmaEsSampler(
                seed=sampler.seed, warn_independent_sampling=False, **settings
            )
    raise AssertionError(f"unchecked sampler {sampler.name!r}")  # pragma: no cover


def _grid_sampler(grid: dict[str, list[sp.Choice]], seed: int | None) -> Any:
    from optuna.samplers import GridSampler

    class StudyGridSampler(GridSampler):
        """Optuna's grid sampler, without its ``study.stop()`` once the grid is covered: the
        coordinator runs exactly as many trials as the grid has points, and ``stop`` would
        fail outside ``Study.optimize``."""

        def after_trial(self, *args: Any, **kwargs: Any) -> None:
            return None

    return StudyGridSampler(grid, seed=seed)


def make_pruner(spec: PrunerSpec) -> Any:
    """The Optuna pruner ``spec`` names."""
    import optuna

    if spec.name == "median":
        return optuna.pruners.MedianPruner(**spec.settings)
    if spec.name == "hyperband":
        return optuna.pruners.HyperbandPruner(**spec.settings)
    return optuna.pruners.NopPruner()


__all__ = ["make_pruner", "make_sampler"]
