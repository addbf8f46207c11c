"""``tune()``: the Python entry point of hyperparameter tuning."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slipway.tuning.results import Study, TrialResult
from slipway.tuning.space import Distribution
from slipway.tuning.spec import PrunerSpec, SamplerSpec, TuneSpec


def tune(
    objective: Callable[..., Any],
    space: Mapping[str, Distribution],
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    parallelism: int = 1,
    sampler: str = "tpe",
    seed: int | None = None,
    sampler_settings: Mapping[str, Any] | None = None,
    pruner: str | None = "median",
    pruner_settings: Mapping[str, Any] | None = None,
    direction: str = "minimize",
    metric: str = "objective",
    study_name: str | None = None,
    max_failed_trials: int | None = None,
    goal: float | None = None,
    trial_timeout: float | None = None,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    tracking_uri: str | None = None,
    callbacks: Sequence[Callable[[TrialResult], None]] = (),
    on: str = "local",
    ray_address: str | None = None,
    trial_resources: Mapping[str, Any] | None = None,
    working_dir: str | os.PathLike[str] | None = None,
) -> Study:
    """Search ``space`` for the parameters that maximise or minimise ``objective``.

    Trials run ``objective(trial)`` in ``parallelism`` long-lived worker processes (each runs
    one trial at a time, and many in turn; a trial that crashes its worker fails alone and
    the worker is replaced), and each trial is a child run of the study's run. The objective's
    module globals persist between the trials of one worker, as with Optuna's ``n_jobs``
    threads; the environment and working directory are put back before each trial.
    ``trial.params`` holds its parameters; ``trial.report(value, step)`` records intermediate
    values (the metric history of ``metric``) and ``trial.should_prune()`` asks the pruner
    (raise :class:`~slipway.tuning.TrialPruned` when it says so); ``slipway.log_metric``
    inside the objective logs to the trial's run. The objective returns the trial's value; NaN or an
    exception fails the trial, never the study.

    Args:
        objective: ``objective(trial) -> float``; it travels to the trial workers pickled
            by value (cloudpickle), so lambdas and functions of a script or notebook work.
        space: parameter name to distribution (:func:`~slipway.tuning.uniform`,
            :func:`~slipway.tuning.loguniform`, :func:`~slipway.tuning.randint`,
            :func:`~slipway.tuning.categorical`, :func:`~slipway.tuning.discrete`).
        n_trials: trials in the study in all, across resumes (None: until ``timeout``; a
            grid search stops once its grid is covered).
        timeout: seconds after which no new trial starts (running ones finish).
        parallelism: trials running at once.
        sampler: ``tpe`` (default), ``multivariate-tpe``, ``random``, ``grid`` or ``cmaes``.
        seed: the sampler's seed, for a repeatable search.
        sampler_settings: the sampler's settings (``n_startup_trials``, ...).
        pruner: ``median`` (default), ``hyperband`` or ``none``.
        pruner_settings: the pruner's settings (``n_startup_trials``, ``n_warmup_steps``...).
        direction: ``minimize`` (default, as in Optuna) or ``maximize``.
        metric: the name under which values are logged on the trials' runs.
        study_name: the study's name: a study of that name is resumed, trial numbers and
            the count towards ``n_trials`` going on. A new name each call when omitted.
        max_failed_trials: stop the study once this many trials failed.
        goal: stop the study once a trial reaches this value.
        trial_timeout: seconds after which a trial is stopped and failed.
        experiment_name: the experiment of the runs (created if need be); else
            ``experiment_id``, else ``SLIPWAY_EXPERIMENT_NAME``/``_ID``, else the default.
        tracking_uri: where runs and the study are kept; the tracking URI in effect when
            omitted.
        callbacks: called in this process with each trial's :class:`TrialResult` as it ends.
        on: where trials run: ``local`` (worker processes of this machine) or ``ray`` (Ray
            actors on a cluster; the tracking URI must be reachable from its nodes).
        ray_address: with ``on="ray"``: the cluster (``host:port``, ``ray://host:port``,
            ``auto``; None: ``SLIPWAY_RAY_ADDRESS``/``RAY_ADDRESS``, else a local Ray).
        trial_resources: with ``on="ray"``: what each trial holds, e.g. ``{"cpu": 1, "gpu":
            1, "memory": 2 * 2**30}`` (bytes; custom Ray resources by name). Default one CPU.
        working_dir: with ``on="ray"``: a folder of this machine shipped to every node (zipped
            once into Ray's object store, at most 256 MiB, without ``.git``, virtual
            environments, caches and ``.slipway``); each trial worker puts its copy first on
            ``sys.path``, so the objective's modules need not be on the nodes.

    Returns:
        The :class:`Study`: ``best_trial``, ``best_params``, ``best_value``, ``trials``.

    Raises:
        InvalidParameterValue: a bad space, sampler, pruner or setting (before anything runs).
        ResourceConflict: another live process is running the study of that name.
        TemporarilyUnavailable: ``on="ray"`` and nothing answers at ``ray_address``.
    """
    from slipway.tuning.coordinator import run_study

    spec = TuneSpec(
        space=dict(space) if isinstance(space, Mapping) else space,
        name=study_name,
        direction=direction,
        metric=metric,
        n_trials=n_trials,
        timeout=timeout,
        parallelism=parallelism,
        max_failed_trials=max_failed_trials,
        goal=goal,
        sampler=SamplerSpec(sampler, seed, dict(sampler_settings or {})),
        pruner=PrunerSpec(pruner or "none", dict(pruner_settings or {})),
        trial_timeout=trial_timeout,
        trial_resources=dict(trial_resources or {}),
    ).check()
    return run_study(
        spec,
        objective,
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        experiment_name=experiment_name,
        callbacks=callbacks,
        on=on,
        ray_address=ray_address,
        working_dir=working_dir,
    )


def load_study(name: str, tracking_uri: str | None = None) -> Study:
    """The study ``name`` with its trials, as stored (without running anything)."""
    from slipway.tuning.coordinator import load_study as load

    return load(name, tracking_uri)


__all__ = ["load_study", "tune"]
