"""``slipway tune`` as a user runs it: Ctrl-C (SIGINT) stops a study with exit status 130,
running the same command again resumes it, ``--resume`` carries on from the stored spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import yaml

from slipway import tuning

# The first two trials to claim a slot finish at once; every later trial waits for the "go"
# file. So when the test interrupts, exactly two trials are done and the rest are running,
# however fast or slow the machine is.
SLEEPY = textwrap.dedent(
    """
    import argparse, os, pathlib, time
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    a = p.parse_args()
    gate = pathlib.Path(__file__).resolve().parent / "gate"
    claimed = False
    for slot in ("slot-0", "slot-1"):
        try:
            os.close(os.open(gate / slot, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            claimed = True
            break
        except FileExistsError:
            continue
    deadline = time.monotonic() + 60
    while not claimed and not (gate / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"score={a.x * 2}")
    """
)


def _slipway(*args: str, uri: str) -> list[str]:
    return [sys.executable, "-m", "slipway", "--tracking-uri", uri, "tune", *args]


def test_sigint_stops_the_study_and_the_same_command_resumes_it(
    tracking_uri: str, tmp_path: Path
) -> None:
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    (tmp_path / "gate").mkdir()
    spec = {
        "objective": {"type": "maximize", "objectiveMetricName": "score"},
        "algorithm": {"algorithmName": "random"},
        "parallelTrialCount": 2,
        "maxTrialCount": 6,
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
        ],
        "trialCommand": [sys.executable, "sleepy.py", "--x=${trialParameters.x}"],
    }
    path = tmp_path / "sleepy.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        _slipway("--spec", str(path), uri=tracking_uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            study = tuning.load_study("sleepy", tracking_uri)
        except Exception:  # not created yet
            continue
        if study.counts().get("COMPLETE", 0) >= 2 and study.counts().get("RUNNING", 0) >= 1:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Interrupted: run the same command again to resume study sleepy" in err
    stopped = tuning.load_study("sleepy", tracking_uri)
    counts = stopped.counts()
    assert counts.get("COMPLETE") == 2, counts
    assert 3 <= len(stopped.trials) <= 4, counts
    assert "RUNNING" not in counts
    (tmp_path / "gate" / "go").touch()

    done = subprocess.run(
        _slipway("--spec", str(path), "--json", uri=tracking_uri),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert len(data["trials"]) == 6
    assert [t["number"] for t in data["trials"]] == list(range(6))
    assert data["stop_reason"] == "n_trials"

    # --resume runs from the spec stored with the study (no file needed), to a new total.
    more = subprocess.run(
        _slipway("--resume", "sleepy", "--n-trials", "7", uri=tracking_uri),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path.parent,
    )
    assert more.returncode == 0, more.stderr
    assert len(tuning.load_study("sleepy", tracking_uri).trials) == 7
    listed = subprocess.run(
        _slipway("--list", uri=tracking_uri), capture_output=True, text=True, env=env
    )
    assert "sleepy" in listed.stdout


def test_resume_of_an_unknown_study_says_so(tracking_uri: str) -> None:
    result = subprocess.run(
        _slipway("--resume", "nothing", uri=tracking_uri), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "Study 'nothing' not found" in result.stderr
