"""Bad search spaces and settings are refused before anything runs, naming the parameter."""

from __future__ import annotations

import pytest

from slipway import tuning
from slipway.exceptions import InvalidParameterValue
from slipway.tuning.space import check_space, grid_size, space_from_json, space_to_json


def never(trial: tuning.Trial) -> float:
    raise AssertionError("no trial may run for a bad space")


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"lr": tuning.uniform(0.1, 0.1)},
            "parameter .lr.: empty range: low \\(0.1\\) must be below",
        ),
        ({"lr": tuning.loguniform(1.0, 0.5)}, "parameter 'lr': empty range"),
        ({"lr": tuning.loguniform(0.0, 0.5)}, "parameter 'lr': a log scale needs low > 0"),
        ({"n": tuning.randint(5, 2)}, "parameter 'n': empty range: low \\(5\\) must be below"),
        ({"n": tuning.randint(1, 4, step=0)}, "parameter 'n': bad step 0"),
        ({"n": tuning.randint(1, 4, step=5)}, "parameter 'n': bad step 5"),
        ({"r": tuning.uniform(0.0, 1.0, step=-0.1)}, "parameter 'r': bad step -0.1"),
        ({"r": tuning.uniform(0.0, 1.0, step=2.0)}, "parameter 'r': bad step 2.0"),
        ({"n": tuning.randint(1, 4, step=2, log=True)}, "parameter 'n': a log scale needs"),
        ({"act": tuning.categorical([])}, "parameter 'act': empty choice list"),
        ({"act": tuning.categorical(["a", "a"])}, "parameter 'act': choice 'a' is listed twice"),
        ({"act": tuning.categorical([{"a": 1}])}, "parameter 'act': choice \\{'a': 1\\} is a dict"),
        ({"d": tuning.discrete([1, "x"])}, "parameter 'd': discrete value must be a finite"),
        ({"n": tuning.randint(1.5, 4)}, "parameter 'n': low must be an integer"),  # type: ignore[arg-type]
        ({"x": (0, 1)}, "parameter 'x': \\(0, 1\\) is not a distribution"),
        ({}, "non-empty dict"),
    ],
)
def test_bad_spaces_name_the_parameter(space: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        tuning.tune(never, space, n_trials=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_trials": 0}, "n_trials must be at least 1"),
        ({"parallelism": 0}, "parallelism must be at least 1"),
        ({"direction": "up"}, "Unknown direction 'up': use one of maximize, minimize"),
        ({"timeout": -1}, "timeout must be a positive number of seconds"),
        ({"max_failed_trials": 0}, "max_failed_trials must be at least 1"),
        ({"seed": "seven"}, "seed must be an integer"),
        ({"sampler_settings": {"sigma0": 0.1}}, "sampler 'tpe' has no setting 'sigma0'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        tuning.tune(never, {"x": tuning.uniform(0, 1)}, **options)  # type: ignore[arg-type]


def test_an_objective_must_be_callable() -> None:
    with pytest.raises(InvalidParameterValue, match="objective must be callable"):
        tuning.tune("train.py", {"x": tuning.uniform(0, 1)}, n_trials=1)  # type: ignore[arg-type]


def test_spaces_are_normalised_and_survive_json() -> None:
    space = check_space(
        {
            "r": tuning.uniform(0.0, 1.0, step=0.3),  # high lowered to the last grid point
            "n": tuning.randint(0, 10, step=4),
            "lr": tuning.loguniform(1e-3, 1.0),
            "d": tuning.discrete([1, 2.5]),
            "act": tuning.categorical(["a", None, True]),
        }
    )
    assert space["r"] == tuning.uniform(0.0, 0.8999999999999999, step=0.3) or space["r"].high < 1
    assert space["n"].grid("n") == [0, 4, 8]
    assert grid_size({k: v for k, v in space.items() if k != "lr"}) == 4 * 3 * 2 * 3
    assert space_from_json(space_to_json(space)) == space
