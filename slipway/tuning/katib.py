"""Katib's Experiment vocabulary for ``slipway tune --spec``, both ways.

:func:`read_spec` accepts a whole Experiment manifest (``apiVersion: kubeflow.org/v1beta1``,
``kind: Experiment``, ``spec: {...}``) or just its ``spec``, and gives a
:class:`~slipway.tuning.spec.TuneSpec`. What it reads:

* ``objective``: ``type`` (maximize or minimize), ``goal``, ``objectiveMetricName``,
  ``additionalMetricNames``, ``metricStrategies`` (latest, max or min per metric);
* ``algorithm``: ``algorithmName`` random, grid, tpe, multivariate-tpe, cmaes,
  bayesianoptimization (run as TPE, also a model-based search: the spec's notes say so) or
  hyperband (random sampling with Optuna's Hyperband pruner, which stops trials early rather
  than allocating budgets as Katib's does: noted too), with ``algorithmSettings``
  ``random_state`` (the seed) and the sampler's own settings;
* ``parallelTrialCount``, ``maxTrialCount``, ``maxFailedTrialCount``;
* ``parameters``: ``int``, ``double``, ``categorical``, ``discrete`` with ``feasibleSpace``
  ``min``, ``max``, ``step``, ``list`` and ``distribution`` uniform or logUniform;
* ``earlyStopping``: ``medianstop`` with ``min_trials_required`` and ``start_step``;
* the trial command: ``trialTemplate`` (``trialParameters`` and the primary container's
  ``command`` and ``args`` in ``trialSpec``), or Slipway's shorter ``trialCommand`` (or
  ``command``), a list in which ``${trialParameters.NAME}`` names a parameter directly;
* the primary container's ``resources`` (``cpu``, ``memory``, ``nvidia.com/gpu`` requests or
  limits): what each trial holds when the study runs on Ray (``slipway tune --on ray``).

Any other field is an error naming it and where it is (``spec.parameters[1].feasibleSpac``),
so a typo never silently changes a study. :func:`to_katib` writes the Experiment a spec
describes, its trials a Kubernetes Job running the trial command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slipway.exceptions import InvalidParameterValue
from slipway.tuning import space as sp
from slipway.tuning.command import references
from slipway.tuning.resources import from_container, to_container
from slipway.tuning.spec import PrunerSpec, SamplerSpec, TuneSpec

API_VERSION = "kubeflow.org/v1beta1"
PRIMARY_CONTAINER = "training-container"
DEFAULT_IMAGE = "python:3.11-slim"

_MANIFEST_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
_SPEC_FIELDS = frozenset(
    {
        "objective",
        "algorithm",
        "parallelTrialCount",
        "maxTrialCount",
        "maxFailedTrialCount",
        "parameters",
        "earlyStopping",
        "trialTemplate",
        "metricsCollectorSpec",
        "resumePolicy",
        "trialCommand",
        "command",
    }
)
_OBJECTIVE_FIELDS = frozenset(
    {"type", "goal", "objectiveMetricName", "additionalMetricNames", "metricStrategies"}
)
_ALGORITHM_FIELDS = frozenset({"algorithmName", "algorithmSettings"})
_SETTING_FIELDS = frozenset({"name", "value"})
_PARAMETER_FIELDS = frozenset({"name", "parameterType", "feasibleSpace"})
_SPACE_FIELDS = frozenset({"min", "max", "step", "list", "distribution"})
_TEMPLATE_FIELDS = frozenset(
    {
        "trialParameters",
        "trialSpec",
        "primaryContainerName",
        "primaryPodLabels",
        "successCondition",
        "failureCondition",
        "retain",
    }
)
_TRIAL_PARAMETER_FIELDS = frozenset({"name", "reference", "description"})
_COLLECTOR_FIELDS = frozenset({"collector"})

_ALGORITHMS = {
    "random": "random",
    "grid": "grid",
    "tpe": "tpe",
    "multivariate-tpe": "multivariate-tpe",
    "cmaes": "cmaes",
    "bayesianoptimization": "tpe",
    "hyperband": "random",
}
_SAMPLER_SETTING_NAMES = {
    "n_startup_trials": "n_startup_trials",
    "n_ei_candidates": "n_ei_candidates",
    "sigma": "sigma0",
    "sigma0": "sigma0",
}
_RESUME_POLICIES = ("Never", "LongRunning", "FromVolume")


def _where(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key


def _object(value: object, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidParameterValue(f"{path}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise InvalidParameterValue(
                f"Unknown field {_where(path, str(key))!r} in the tuning spec "
                f"(fields of {path}: {', '.join(sorted(allowed))})"
            )
    return value


def _list(value: object, path: str) -> Sequence[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidParameterValue(f"{path}: expected a list, got {type(value).__name__}")
    return value


def _number(value: object, path: str) -> float:
    """Katib writes numbers as strings (``"0.01"``); both are read."""
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{path}: expected a number, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"{path}: expected a number, got {value!r}") from None


def _integer(value: object, path: str) -> int:
    number = _number(value, path)
    if not number.is_integer():
        raise InvalidParameterValue(f"{path}: expected an integer, got {value!r}")
    return int(number)


def _settings(value: object, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, item in enumerate(_list(value, path)):
        entry = _object(item, f"{path}[{i}]", _SETTING_FIELDS)
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue(f"{path}[{i}].name: expected a setting name")
        out[name] = str(entry.get("value", ""))
    return out


def _parameter(item: object, path: str) -> tuple[str, sp.Distribution]:
    entry = _object(item, path, _PARAMETER_FIELDS)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidParameterValue(f"{path}.name: expected a parameter name")
    kind = entry.get("parameterType")
    fs_path = f"{path}.feasibleSpace"
    fs = _object(entry.get("feasibleSpace") or {}, fs_path, _SPACE_FIELDS)
    distribution = str(fs.get("distribution", "uniform"))
    if distribution not in ("uniform", "logUniform"):
        raise InvalidParameterValue(
            f"{fs_path}.distribution: {distribution!r} is not supported (use uniform or logUniform)"
        )
    log = distribution == "logUniform"
    if kind in ("int", "double"):
        for key in ("min", "max"):
            if key not in fs:
                raise InvalidParameterValue(f"{fs_path}.{key}: required for a {kind} parameter")
        if "list" in fs:
            raise InvalidParameterValue(f"{fs_path}.list: a {kind} parameter takes min and max")
        if kind == "int":
            step = _integer(fs["step"], f"{fs_path}.step") if "step" in fs else 1
            low, high = _integer(fs["min"], f"{fs_path}.min"), _integer(fs["max"], f"{fs_path}.max")
            return name, sp.Int(low, high, step, log)
        fstep = _number(fs["step"], f"{fs_path}.step") if "step" in fs else None
        low_f, high_f = _number(fs["min"], f"{fs_path}.min"), _number(fs["max"], f"{fs_path}.max")
        return name, sp.Float(low_f, high_f, fstep, log)
    if kind in ("categorical", "discrete"):
        if "list" not in fs:
            raise InvalidParameterValue(f"{fs_path}.list: required for a {kind} parameter")
        values = _list(fs["list"], f"{fs_path}.list")
        if kind == "discrete":
            numbers = tuple(_number(v, f"{fs_path}.list[{i}]") for i, v in enumerate(values))
            return name, sp.Categorical(
                tuple(int(n) if n.is_integer() else n for n in numbers), numeric=True
            )
        return name, sp.Categorical(tuple(str(v) for v in values))
    raise InvalidParameterValue(
        f"{path}.parameterType: {kind!r} is not one of int, double, categorical, discrete"
    )


def _container_command(
    trial_spec: object, primary: str | None, path: str
) -> tuple[list[str], Mapping[str, Any]]:
    """The primary container's command and args, and the container, found wherever the
    trial's kind keeps its pod template (a Job's ``spec.template.spec.containers``, a
    PyTorchJob's replica specs)."""
    found: list[Mapping[str, Any]] = []

    def walk(node: object) -> None:
        if isinstance(node, Mapping):
            containers = node.get("containers")
            if isinstance(containers, list):
                found.extend(c for c in containers if isinstance(c, Mapping))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(trial_spec)
    if not found:
        raise InvalidParameterValue(f"{path}: no container found in the trial spec")
    chosen = found[0]
    if primary:
        named = [c for c in found if c.get("name") == primary]
        if not named:
            raise InvalidParameterValue(f"{path}: no container named {primary!r}")
        chosen = named[0]
    argv = [str(a) for a in list(chosen.get("command") or []) + list(chosen.get("args") or [])]
    if not argv:
        raise InvalidParameterValue(f"{path}: the container {chosen.get('name')!r} has no command")
    return argv, chosen


def _template_command(
    value: object, path: str, parameters: Mapping[str, Any], notes: list[str]
) -> tuple[list[str], dict[str, float]]:
    """The trial command of a ``trialTemplate`` and the resources its container asks for."""
    template = _object(value, path, _TEMPLATE_FIELDS)
    mapping: dict[str, str] = {}
    for i, item in enumerate(
        _list(template.get("trialParameters") or [], f"{path}.trialParameters")
    ):
        entry = _object(item, f"{path}.trialParameters[{i}]", _TRIAL_PARAMETER_FIELDS)
        name, ref = entry.get("name"), entry.get("reference")
        if not isinstance(name, str) or not isinstance(ref, str):
            raise InvalidParameterValue(
                f"{path}.trialParameters[{i}]: needs a name and a reference"
            )
        if ref not in parameters:
            raise InvalidParameterValue(
                f"{path}.trialParameters[{i}].reference: {ref!r} is not a parameter of the spec"
            )
        mapping[name] = ref
    if "trialSpec" not in template:
        raise InvalidParameterValue(f"{path}.trialSpec: required (the trial's Job or other kind)")
    argv, container = _container_command(
        template["trialSpec"], template.get("primaryContainerName"), f"{path}.trialSpec"
    )
    resources, unused = from_container(container, f"{path}.trialSpec")
    notes.extend(unused)
    for name in references(argv):
        if name not in mapping:
            raise InvalidParameterValue(
                f"{path}: the command refers to ${{trialParameters.{name}}}, which "
                "trialParameters does not define"
            )
    # Point the references at the search parameters' own names.
    out = []
    for arg in argv:
        for name, ref in mapping.items():
            arg = arg.replace(f"${{trialParameters.{name}}}", f"${{trialParameters.{ref}}}")
        out.append(arg)
    return out, resources


def read_spec(data: object, source: str | os.PathLike[str] | None = None) -> TuneSpec:
    """The study a Katib Experiment (or its ``spec``) describes. ``source``, the file it came
    from, names the study (its file name without extension, unless the manifest names it)
    and is the folder trial commands run in."""
    if not isinstance(data, Mapping):
        raise InvalidParameterValue("The tuning spec must be a mapping (YAML or JSON object)")
    name: str | None = None
    path = ""
    if "kind" in data or "apiVersion" in data:
        manifest = _object(data, "", _MANIFEST_FIELDS)
        if manifest.get("kind") != "Experiment":
            raise InvalidParameterValue(f"kind: expected Experiment, got {manifest.get('kind')!r}")
        if manifest.get("apiVersion") not in (API_VERSION, "kubeflow.org/v1alpha3", None):
            raise InvalidParameterValue(
                f"apiVersion: expected {API_VERSION}, got {manifest.get('apiVersion')!r}"
            )
        metadata = manifest.get("metadata") or {}
        if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
            name = metadata["name"]
        data = manifest.get("spec")
        path = "spec"
        if not isinstance(data, Mapping):
            raise InvalidParameterValue("spec: required, a mapping")
    spec = _object(data, path or "spec", _SPEC_FIELDS)
    path = path or "spec"
    notes: list[str] = []

    objective = _object(spec.get("objective") or {}, f"{path}.objective", _OBJECTIVE_FIELDS)
    metric = objective.get("objectiveMetricName")
    if not isinstance(metric, str) or not metric:
        raise InvalidParameterValue(f"{path}.objective.objectiveMetricName: required")
    direction = str(objective.get("type", "minimize"))
    goal = _number(objective["goal"], f"{path}.objective.goal") if "goal" in objective else None
    extra = [
        str(m)
        for m in _list(
            objective.get("additionalMetricNames") or [], f"{path}.objective.additionalMetricNames"
        )
    ]
    strategy = "latest"
    for i, item in enumerate(
        _list(objective.get("metricStrategies") or [], f"{path}.objective.metricStrategies")
    ):
        entry = _object(item, f"{path}.objective.metricStrategies[{i}]", _SETTING_FIELDS)
        if entry.get("name") == metric:
            strategy = str(entry.get("value", "latest"))

    algorithm = _object(spec.get("algorithm") or {}, f"{path}.algorithm", _ALGORITHM_FIELDS)
    algo = str(algorithm.get("algorithmName", "random")).lower()
    if algo not in _ALGORITHMS:
        raise InvalidParameterValue(
            f"{path}.algorithm.algorithmName: {algo!r} is not supported (use one of "
            f"{', '.join(_ALGORITHMS)})"
        )
    if algo == "bayesianoptimization":
        notes.append("algorithm bayesianoptimization runs as tpe (Optuna's model-based sampler)")
    pruner = PrunerSpec("none")
    if algo == "hyperband":
        notes.append("algorithm hyperband runs as random sampling with the hyperband pruner")
        pruner = PrunerSpec("hyperband")
    seed: int | None = None
    sampler_settings: dict[str, Any] = {}
    settings_path = f"{path}.algorithm.algorithmSettings"
    for key, value in _settings(algorithm.get("algorithmSettings") or [], settings_path).items():
        if key == "random_state":
            seed = _integer(value, f"{settings_path}.random_state")
        elif key in _SAMPLER_SETTING_NAMES:
            target = _SAMPLER_SETTING_NAMES[key]
            sampler_settings[target] = (
                _number(value, f"{settings_path}.{key}")
                if target == "sigma0"
                else _integer(value, f"{settings_path}.{key}")
            )
        else:
            raise InvalidParameterValue(
                f"{settings_path}: setting {key!r} is not supported (use random_state"
                f"{', ' + ', '.join(_SAMPLER_SETTING_NAMES) if algo != 'random' else ''})"
            )

    parameters: dict[str, sp.Distribution] = {}
    for i, item in enumerate(_list(spec.get("parameters") or [], f"{path}.parameters")):
        pname, dist = _parameter(item, f"{path}.parameters[{i}]")
        if pname in parameters:
            raise InvalidParameterValue(f"{path}.parameters[{i}].name: {pname!r} is listed twice")
        parameters[pname] = dist

    if "earlyStopping" in spec:
        es_path = f"{path}.earlyStopping"
        early = _object(spec["earlyStopping"], es_path, _ALGORITHM_FIELDS)
        if str(early.get("algorithmName", "")).lower() != "medianstop":
            raise InvalidParameterValue(f"{es_path}.algorithmName: only medianstop is supported")
        median: dict[str, Any] = {}
        for key, value in _settings(
            early.get("algorithmSettings") or [], f"{es_path}.algorithmSettings"
        ).items():
            if key == "min_trials_required":
                median["n_startup_trials"] = _integer(value, f"{es_path}.{key}")
            elif key == "start_step":
                median["n_warmup_steps"] = _integer(value, f"{es_path}.{key}")
            else:
                raise InvalidParameterValue(
                    f"{es_path}.algorithmSettings: setting {key!r} is not supported (use "
                    "min_trials_required, start_step)"
                )
        pruner = PrunerSpec("median", median)

    if "metricsCollectorSpec" in spec:
        mc_path = f"{path}.metricsCollectorSpec"
        collector = _object(spec["metricsCollectorSpec"], mc_path, _COLLECTOR_FIELDS)
        kind = (collector.get("collector") or {}).get("kind", "StdOut")
        if kind != "StdOut":
            raise InvalidParameterValue(f"{mc_path}.collector.kind: only StdOut is supported")
    policy = spec.get("resumePolicy")
    if policy is not None and policy not in _RESUME_POLICIES:
        raise InvalidParameterValue(
            f"{path}.resumePolicy: {policy!r} is not one of {_RESUME_POLICIES}"
        )

    commands = [k for k in ("trialTemplate", "trialCommand", "command") if k in spec]
    if len(commands) > 1:
        raise InvalidParameterValue(f"{path}: give one of {', '.join(commands)}, not several")
    command: list[str] | None = None
    resources: dict[str, float] = {}
    if commands == ["trialTemplate"]:
        command, resources = _template_command(
            spec["trialTemplate"], f"{path}.trialTemplate", parameters, notes
        )
    elif commands:
        key = commands[0]
        raw = spec[key]
        if isinstance(raw, str):
            import shlex

            raw = shlex.split(raw)
        command = [str(a) for a in _list(raw, f"{path}.{key}")]
    if command is not None:
        for ref in references(command):
            if ref not in parameters:
                raise InvalidParameterValue(
                    f"{path}: the trial command refers to ${{trialParameters.{ref}}}, which is "
                    "not a parameter of the spec"
                )

    cwd = None
    if source is not None:
        src = Path(source)
        cwd = str(src.resolve().parent)
        name = name or src.stem
    return TuneSpec(
        space=parameters,
        name=name,
        direction=direction,
        metric=metric,
        n_trials=_integer(spec["maxTrialCount"], f"{path}.maxTrialCount")
        if "maxTrialCount" in spec
        else None,
        parallelism=_integer(spec.get("parallelTrialCount", 1), f"{path}.parallelTrialCount"),
        max_failed_trials=(
            _integer(spec["maxFailedTrialCount"], f"{path}.maxFailedTrialCount")
            if "maxFailedTrialCount" in spec
            else None
        ),
        goal=goal,
        sampler=SamplerSpec(
            _ALGORITHMS[algo] if algo != "multivariate-tpe" else algo, seed, sampler_settings
        ),
        pruner=pruner,
        command=tuple(command) if command else None,
        cwd=cwd,
        metric_strategy=strategy,
        additional_metrics=tuple(extra),
        trial_resources=resources,
        notes=tuple(notes),
    ).check()


def load_spec_file(path: str | os.PathLike[str]) -> TuneSpec:
    """:func:`read_spec` of a YAML (or JSON) file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except FileNotFoundError:
        raise InvalidParameterValue(f"No such tuning spec: {os.fspath(path)}") from None
    except yaml.YAMLError as exc:
        raise InvalidParameterValue(f"{os.fspath(path)} is not valid YAML: {exc}") from None
    return read_spec(data, path)


# -- writing --------------------------------------------------------------------------------------


def _katib_parameter(name: str, dist: sp.Distribution) -> dict[str, Any]:
    if isinstance(dist, sp.Int):
        space: dict[str, Any] = {"min": str(dist.low), "max": str(dist.high)}
        if dist.step != 1:
            space["step"] = str(dist.step)
        if dist.log:
            space["distribution"] = "logUniform"
        return {"name": name, "parameterType": "int", "feasibleSpace": space}
    if isinstance(dist, sp.Float):
        space = {"min": repr(dist.low), "max": repr(dist.high)}
        if dist.step is not None:
            space["step"] = repr(dist.step)
        if dist.log:
            space["distribution"] = "logUniform"
        return {"name": name, "parameterType": "double", "feasibleSpace": space}
    kind = "discrete" if dist.numeric else "categorical"
    return {
        "name": name,
        "parameterType": kind,
        "feasibleSpace": {"list": [str(v) for v in dist.choices]},
    }


def to_katib(
    spec: TuneSpec, *, image: str = DEFAULT_IMAGE, namespace: str | None = None
) -> dict[str, Any]:
    """The Katib Experiment for ``spec``: trials are Jobs whose one container runs the trial
    command in ``image``, with ``${trialParameters.NAME}`` for each parameter.

    Raises:
        InvalidParameterValue: the spec has no trial command (a Python objective cannot run
            in a container).
    """
    if not spec.command:
        raise InvalidParameterValue(
            "A Katib Experiment needs a trial command (trialCommand in the spec); a Python "
            "objective cannot run as a Katib trial"
        )
    algorithm: dict[str, Any] = {
        "algorithmName": spec.sampler.name if spec.pruner.name != "hyperband" else "hyperband"
    }
    settings = (
        [{"name": "random_state", "value": str(spec.sampler.seed)}]
        if spec.sampler.seed is not None
        else []
    )
    reverse = {"sigma0": "sigma"}
    settings += [
        {"name": reverse.get(k, k), "value": str(v)}
        for k, v in spec.sampler.settings.items()
        if k != "constant_liar"
    ]
    if settings:
        algorithm["algorithmSettings"] = settings
    objective: dict[str, Any] = {"type": spec.direction, "objectiveMetricName": spec.metric}
    if spec.goal is not None:
        objective["goal"] = spec.goal
    if spec.additional_metrics:
        objective["additionalMetricNames"] = list(spec.additional_metrics)
    if spec.metric_strategy != "latest":
        objective["metricStrategies"] = [{"name": spec.metric, "value": spec.metric_strategy}]
    body: dict[str, Any] = {
        "objective": objective,
        "algorithm": algorithm,
        "parallelTrialCount": spec.parallelism,
    }
    if spec.n_trials is not None:
        body["maxTrialCount"] = spec.n_trials
    if spec.max_failed_trials is not None:
        body["maxFailedTrialCount"] = spec.max_failed_trials
    body["parameters"] = [_katib_parameter(n, d) for n, d in spec.space.items()]
    if spec.pruner.name == "median":
        es = []
        if "n_startup_trials" in spec.pruner.settings:
            es.append(
                {
                    "name": "min_trials_required",
                    "value": str(spec.pruner.settings["n_startup_trials"]),
                }
            )
        if "n_warmup_steps" in spec.pruner.settings:
            es.append({"name": "start_step", "value": str(spec.pruner.settings["n_warmup_steps"])})
        body["earlyStopping"] = {
            "algorithmName": "medianstop",
            **({"algorithmSettings": es} if es else {}),
        }
    container: dict[str, Any] = {
        "name": PRIMARY_CONTAINER,
        "image": image,
        "command": list(spec.command),
    }
    if spec.trial_resources:
        container["resources"] = to_container(spec.trial_resources)
    body["trialTemplate"] = {
        "primaryContainerName": PRIMARY_CONTAINER,
        "trialParameters": [
            {"name": n, "reference": n, "description": f"search parameter {n}"} for n in spec.space
        ],
        "trialSpec": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}},
        },
    }
    metadata: dict[str, Any] = {"name": _k8s_name(spec.name or "slipway-study")}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": "Experiment", "metadata": metadata, "spec": body}


def _k8s_name(name: str) -> str:
    """``name`` as a Kubernetes object name (lower case, digits and dashes, at most 63)."""
    import re

    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (text or "slipway-study")[:63].rstrip("-")


__all__ = ["load_spec_file", "read_spec", "to_katib"]
