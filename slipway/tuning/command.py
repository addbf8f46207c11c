"""Trials that run a command (Katib's trial template, or ``trialCommand`` in a spec).

``${trialParameters.NAME}`` in the command's arguments becomes the trial's value of ``NAME``.
The command runs in the spec's folder with ``SLIPWAY_TRACKING_URI`` and ``SLIPWAY_RUN_ID``
naming the trial's run, and reports its metric in either of two ways:

* Katib's StdOut collector: ``NAME=VALUE`` printed on stdout (``accuracy=0.91``, also among
  other words on the line, several per line). Each value of the objective metric is an
  intermediate value, numbered by its order (step 0, 1, ...), checked against the pruner as it
  arrives; values of ``additionalMetricNames`` are logged on the run.
* ``slipway.log_metric(NAME, value)`` in the script, which logs to the trial's run.

The trial's value is the latest value (or the max or min, per the metric strategy). A command
that reports neither fails its trial; so does one that exits non-zero. Its whole output is kept
as the run's ``trial.log`` artifact.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from slipway.exceptions import InvalidParameterValue, SlipwayError
from slipway.tracking import fluent
from slipway.tuning.trial import Trial, TrialPruned

if TYPE_CHECKING:
    from slipway.tuning.runner import OptunaLink, TrialTask

LOG_FILE = "trial.log"
TAIL_LINES = 20
_REFERENCE = re.compile(r"\$\{trialParameters\.([A-Za-z0-9_.\-]+)\}")
_METRIC = re.compile(
    r"(?<![\w./-])([A-Za-z_][\w./-]*)\s*=\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf|infinity))(?![\w.])",
    re.IGNORECASE,
)


class TrialCommandFailed(SlipwayError):
    """The trial command exited non-zero or reported no value of the objective metric."""


def references(command: Iterable[str]) -> set[str]:
    """The parameter names ``${trialParameters.NAME}`` refers to in ``command``."""
    return {m.group(1) for arg in command for m in _REFERENCE.finditer(arg)}


def substitute(command: Iterable[str], params: Mapping[str, Any]) -> list[str]:
    """``command`` with every ``${trialParameters.NAME}`` replaced by ``params[NAME]``."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise InvalidParameterValue(
                f"The trial command refers to ${{trialParameters.{name}}}, which is not a "
                f"parameter (parameters: {', '.join(sorted(params))})"
            )
        return str(params[name])

    return [_REFERENCE.sub(value, arg) for arg in command]


def parse_metrics(line: str) -> list[tuple[str, float]]:
    """Every ``NAME=VALUE`` of ``line``, in order."""
    return [(m.group(1), float(m.group(2))) for m in _METRIC.finditer(line)]


def _pick(values: list[float], strategy: str) -> float:
    if strategy == "max":
        return max(values)
    if strategy == "min":
        return min(values)
    return values[-1]


def _tail(lines: list[str]) -> str:
    return "".join(lines[-TAIL_LINES:]).rstrip()


def run_command(task: TrialTask, trial: Trial, link: OptunaLink) -> float:
    """Run the trial command of ``task`` and return the trial's value.

    Raises:
        TrialPruned: the pruner stopped the trial (the command is killed).
        TrialCommandFailed: the command failed or never reported the objective metric.
    """
    assert task.study.command is not None
    argv = substitute(task.study.command, trial.params)
    env = dict(os.environ)
    env["SLIPWAY_TRACKING_URI"] = task.study.tracking_uri
    env["SLIPWAY_RUN_ID"] = task.get_run_id()
    env["SLIPWAY_TUNING_STUDY"] = task.study.study_name
    env["SLIPWAY_TUNING_TRIAL"] = str(task.number)
    env.setdefault("PYTHONUNBUFFERED", "1")  # values arrive as they are printed
    folder = os.path.join(task.study.workdir, f"trial-{task.number}")
    os.makedirs(folder, exist_ok=True)
    log_path = os.path.join(folder, LOG_FILE)
    values: list[float] = []
    extra_steps: dict[str, int] = {}
    tail: list[str] = []
    client = fluent.get_client()
    try:
        process = subprocess.Popen(
            argv,
            cwd=task.study.cwd or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="backslashreplace",
            bufsize=1,
        )
    except OSError as exc:
        raise TrialCommandFailed(f"cannot start the trial command {argv[0]!r}: {exc}") from None
    pruned = False
    with open(log_path, "w", encoding="utf-8") as log, process:
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            tail.append(line)
            del tail[:-TAIL_LINES]
            for name, value in parse_metrics(line):
                if name == task.study.metric:
                    trial.report(value, len(values))
                    values.append(value)
                    if trial.should_prune():
                        pruned = True
                        process.kill()
                        break
                elif name in task.study.additional_metrics:
                    step = extra_steps.get(name, 0)
                    extra_steps[name] = step + 1
                    client.log_metric(task.get_run_id(), name, value, step=step, synchronous=False)
            if pruned:
                break
        code = process.wait()
    _keep_log(task, log_path)
    if pruned:
        raise TrialPruned(f"pruned at step {len(values) - 1}")
    if code != 0:
        ending = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise TrialCommandFailed(f"the trial command {ending}:\n{_tail(tail)}")
    if not values:
        values = _logged_values(task, link)
    if not values:
        raise TrialCommandFailed(
            f"the trial command did not report objective metric {task.study.metric!r} (print "
            f"'{task.study.metric}=VALUE' or call slipway.log_metric)"
        )
    return _pick(values, task.study.metric_strategy)


def _logged_values(task: TrialTask, link: OptunaLink) -> list[float]:
    """The objective metric as the script logged it on the run, each point also made an
    intermediate value of the study (for the pruner's view of later trials)."""
    client = fluent.get_client()
    client.flush()
    history = client.get_metric_history(task.get_run_id(), task.study.metric)
    seen: set[int] = set()
    for point in history:
        if point.step not in seen and point.step >= 0:
            seen.add(point.step)
            link.report(point.value, point.step, log=False)
    return [point.value for point in history]


def _keep_log(task: TrialTask, path: str) -> None:
    """The command's output as the run's ``trial.log`` (best effort: a trial is not failed
    for a log that could not be stored)."""
    try:
        fluent.get_client().artifact_repository(task.get_run_id()).log_artifact(path)
    except Exception as exc:  # the trial's outcome matters more than its log
        print(f"slipway: could not store the trial's log: {exc}", file=sys.stderr)
