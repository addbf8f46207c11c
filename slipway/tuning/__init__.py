"""Hyperparameter tuning on Optuna, tracked and resumable.

``tune(objective, space, ...)`` runs a study: trials in parallel processes, each a child run of
the study's run, the study kept in the tracking database (or by ``slipway server``) so that it
resumes where it stopped. ``slipway tune --spec tune.yaml`` does the same for a Katib-style
spec whose trials run a command.

Importing this package does not import Optuna (``pip install 'slipway[tuning]'``); running a
study does.
"""

from __future__ import annotations

from slipway.tuning.api import load_study, tune
from slipway.tuning.results import Study, TrialResult
from slipway.tuning.space import categorical, discrete, loguniform, randint, uniform
from slipway.tuning.trial import Trial, TrialPruned

__all__ = [
    "Study",
    "Trial",
    "TrialPruned",
    "TrialResult",
    "categorical",
    "discrete",
    "load_study",
    "loguniform",
    "randint",
    "tune",
    "uniform",
]
