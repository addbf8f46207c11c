"""Model environments: the cache key, the Python version check, what pip is asked to install,
locking and the ``.ready`` marker, cleanup after a failed or interrupted build, and one real
build (``slow``: it installs from the package index) in which a pyfunc model predicts exactly
as it does in this process.

The real build happens once per test session: ``built_env`` builds it in a cache folder under
pytest's temporary directory, and every test that needs it shares that one environment.
"""

from __future__ import annotations

import fcntl
import io
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

import slipway
from slipway.exceptions import InvalidParameterValue, InvalidState
from slipway.flavors import pyfunc
from slipway.models import env_manager as envs
from slipway.models import predict as predicting
from slipway.models.env_manager import EnvSpec

RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def model_dir(tmp_path: Path, requirements: str = "", python: str | None = RUNNING) -> Path:
    """A folder with the two files the environment is built from (nothing else is read)."""
    path = tmp_path / "model"
    path.mkdir()
    (path / "requirements.txt").write_text(requirements)
    if python is not None:
        (path / "python_env.yaml").write_text(
            f"python: {python}\ndependencies: [-r requirements.txt]\n"
        )
    return path


def quiet() -> Console:
    return Console(quiet=True)


def recording() -> Console:
    return Console(record=True, width=200, file=io.StringIO())


# -- the key, the Python version -------------------------------------------------------------


def test_the_key_changes_with_requirements_python_and_slipway_version() -> None:
    base = EnvSpec("numpy==2.0\n", "3.11", "1.0")
    assert base.key == EnvSpec("numpy==2.0\n", "3.11", "1.0").key
    others = [
        EnvSpec("numpy==2.1\n", "3.11", "1.0"),
        EnvSpec("numpy==2.0\n", "3.12", "1.0"),
        EnvSpec("numpy==2.0\n", "3.11", "1.1"),
    ]
    assert len({base.key, *(spec.key for spec in others)}) == 4
    assert len(base.key) == 32
    assert int(base.key, 16) >= 0


def test_spec_reads_the_model_folder(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "# pinned\ncloudpickle==3.0  # comment\n\nslipway==0.1\n", "3.11.7")
    spec = EnvSpec.from_model_dir(path)
    assert spec.python_version == "3.11"
    assert spec.slipway_version == slipway.__version__
    assert spec.requirement_lines() == ["cloudpickle==3.0", "slipway==0.1"]
    (path / "requirements.txt").unlink()
    assert EnvSpec.from_model_dir(path).requirements == ""


def test_python_version_falls_back_to_mlmodel_then_to_this_python(tmp_path: Path) -> None:
    path = model_dir(tmp_path, python=None)
    (path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    python_version: 3.12.1\n"
    )
    assert envs.requested_python(path) == "3.12"
    (path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: x\n")
    assert envs.requested_python(path) == RUNNING


@pytest.mark.parametrize(
    ("content", "message"),
    [("python: banana\n", "'banana' is not a Python version"), ("python: [\n", "Cannot read")],
)
def test_a_bad_python_env_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    path = model_dir(tmp_path)
    (path / "python_env.yaml").write_text(content)
    with pytest.raises(InvalidParameterValue, match=r"python_env\.yaml") as info:
        envs.requested_python(path)
    assert message in info.value.message


def test_interpreters_this_one_or_a_clear_refusal() -> None:
    assert envs.find_interpreter(RUNNING) == sys.executable
    with pytest.raises(InvalidState, match=r"Slipway needs Python 3\.11 or newer") as old:
        envs.find_interpreter("3.8")
    assert "--env-manager local" in old.value.message
    with pytest.raises(InvalidState, match=r"no python3\.99 is on PATH") as missing:
        envs.find_interpreter("3.99")
    assert "does not download interpreters" in missing.value.message
    assert "--env-manager local" in missing.value.message


def test_a_missing_python_fails_before_anything_is_built(tmp_path: Path) -> None:
    path = model_dir(tmp_path, python="3.99.0")
    with pytest.raises(InvalidState, match=r"asks for Python 3\.99"):
        envs.get_or_create_env(path, cache_root=tmp_path / "envs", console=quiet())
    assert not (tmp_path / "envs").exists()


def test_cache_root_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(envs.ENV_CACHE_VAR, str(tmp_path / "cache"))
    assert envs.env_cache_root() == tmp_path / "cache"
    monkeypatch.delenv(envs.ENV_CACHE_VAR)
    assert envs.env_cache_root() == Path.home() / ".cache" / "slipway" / "envs"


# -- what pip installs -----------------------------------------------------------------------


def test_slipway_requirements_are_the_core_ones_plus_the_extras_asked_for() -> None:
    core = envs.slipway_requirements()
    names = {line.split(">")[0].split("=")[0].split("[")[0] for line in core}
    assert {"sqlalchemy", "pandas", "numpy", "pyyaml", "rich"} <= names
    assert not any("extra" in line for line in core)
    assert not any(line.startswith(("starlette", "pytest", "torch")) for line in core)
    server = envs.slipway_requirements(["server"])
    assert any(line.startswith("starlette") for line in server)
    assert set(core) < set(server)


def test_install_lines_leave_slipway_to_the_copy_and_anchor_paths(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "cloudpickle==3.0\nslipway[server]==0.1\n-r extra.txt\n")
    lines = envs.install_lines(EnvSpec.from_model_dir(path), path)
    assert lines[:2] == ["cloudpickle==3.0", f"-r {(path / 'extra.txt').resolve()}"]
    assert not any(line.startswith("slipway") for line in lines)
    assert any(line.startswith("starlette") for line in lines)  # the extra the line named
    assert set(envs.slipway_requirements()) <= set(lines)


@pytest.mark.parametrize(
    ("lines", "named"),
    [
        (
            [
                "ERROR: Could not find a version that satisfies the requirement nopkg==9.9 "
                "(from versions: none)",
                "ERROR: No matching distribution found for nopkg==9.9",
            ],
            "pip could not install 'nopkg==9.9'",
        ),
        (["ERROR: Invalid requirement: 'a b c': Expected end"], "pip could not install 'a b c'"),
        (
            ["  error: subprocess-exited-with-error", "ERROR: Failed building wheel for lxml"],
            "'lxml'",
        ),
        (["something unexpected"], "pip failed (exit code 2)"),
    ],
)
def test_pip_failures_name_the_requirement(lines: list[str], named: str) -> None:
    message = envs.pip_failure(lines, 2)
    assert named in message
    assert lines[-1] in message  # pip's own words follow


# -- locking, the ready marker, cleanup ------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import fcntl, json, pathlib, sys, time
    lock, env = sys.argv[1], pathlib.Path(sys.argv[2])
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(1.0)
        env.mkdir(parents=True)
        (env / ".ready").write_text(json.dumps({"built_by": "the other process"}))
    """
)


def test_a_second_caller_waits_for_the_lock_and_reuses_the_finished_build(
    tmp_path: Path,
) -> None:
    path = model_dir(tmp_path)
    root = tmp_path / "envs"
    root.mkdir()
    key = EnvSpec.from_model_dir(path).key
    env_dir = root / key
    command = [sys.executable, "-c", HOLDER, str(root / f"{key}.lock"), str(env_dir)]
    console = recording()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert envs.get_or_create_env(path, cache_root=root, console=console) == env_dir
        assert time.monotonic() - started > 0.5  # it waited for the holder
    assert "Another process is building this environment" in console.export_text()
    assert json.loads((env_dir / ".ready").read_text()) == {"built_by": "the other process"}
    # a ready environment is returned at once, without taking the lock
    with open(root / f"{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert envs.get_or_create_env(path, cache_root=root, console=quiet()) == env_dir


@pytest.mark.slow
def test_a_half_built_env_is_rebuilt_and_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "slipway-test-no-such-project==0.0.1\n")
    root = tmp_path / "envs"
    env_dir = root / EnvSpec.from_model_dir(path).key
    env_dir.mkdir(parents=True)
    (env_dir / "left-over").write_text("from a build that was killed")
    console = recording()
    with pytest.raises(InvalidState) as info:
        envs.get_or_create_env(path, cache_root=root, console=console)
    assert "pip could not install 'slipway-test-no-such-project==0.0.1'" in info.value.message
    assert "No matching distribution" in info.value.message
    output = console.export_text()
    assert "Removing an unfinished environment build" in output
    assert "ERROR:" in output  # pip's errors were shown as they came
    assert not env_dir.exists()
    assert (root / f"{env_dir.name}.lock").exists()


CHILD_BUILD = textwrap.dedent(
    """
    import pathlib, sys
    from rich.console import Console
    from slipway.models.env_manager import get_or_create_env
    get_or_create_env(pathlib.Path(sys.argv[1]), cache_root=pathlib.Path(sys.argv[2]),
                      console=Console(stderr=True, width=200))
    """
)


@pytest.mark.slow
def test_ctrl_c_during_the_install_removes_the_half_built_env(tmp_path: Path) -> None:
    path = model_dir(tmp_path)
    root = tmp_path / "envs"
    env_dir = root / EnvSpec.from_model_dir(path).key
    command = [sys.executable, "-c", CHILD_BUILD, str(path), str(root)]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as child:
        try:
            deadline = time.monotonic() + 60
            while not (env_dir / "slipway-requirements.txt").exists():  # pip is about to start
                assert child.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.05)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert "Interrupted: the unfinished environment was removed." in stderr
    assert not env_dir.exists()


# -- one real build --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(the model, the env cache, the env): a pyfunc model whose requirements are only what
    Slipway itself needs, and its environment, built once for the whole session."""
    from slipway.models import infer_signature

    class Doubler(pyfunc.PythonModel):
        """Defined in here, so pickled by value: the environment has no ``tests`` package."""

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input["x"] * 2 + (params or {}).get("offset", 0)

    base = tmp_path_factory.mktemp("venv-build")
    path = base / "model"
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    signature = infer_signature(frame, frame["x"], params={"offset": 0.0})
    pyfunc.save_model(path, python_model=Doubler(), signature=signature)
    cache = base / "envs"
    env_dir = envs.get_or_create_env(path, cache_root=cache, console=quiet())
    return path, cache, env_dir


@pytest.mark.slow
def test_the_built_env_is_ready_isolated_and_has_slipway(
    built_env: tuple[Path, Path, Path],
) -> None:
    path, cache, env_dir = built_env
    assert env_dir.parent == cache
    marker = json.loads((env_dir / ".ready").read_text())
    assert marker["slipway_version"] == slipway.__version__
    assert marker["requirements"] == (path / "requirements.txt").read_text()
    probe = textwrap.dedent(
        """
        import importlib.metadata, importlib.util, json, slipway
        print(json.dumps({
            "slipway": slipway.__file__,
            "version": importlib.metadata.version("slipway"),
            "sklearn": importlib.util.find_spec("sklearn") is not None,
            "mlflow": importlib.util.find_spec("mlflow") is not None,
        }))
        """
    )
    python = envs.env_python(env_dir)
    found = json.loads(
        subprocess.run(
            [python, "-I", "-c", probe], capture_output=True, text=True, check=True
        ).stdout
    )
    assert Path(found["slipway"]).is_relative_to(env_dir)  # a copy, not this checkout
    assert found["version"] == slipway.__version__
    assert not found["sklearn"]  # nothing leaked from this environment
    assert not found["mlflow"]
    started = time.monotonic()
    assert envs.get_or_create_env(path, cache_root=cache, console=quiet()) == env_dir
    assert time.monotonic() - started < 1.0  # cached: no second build


@pytest.mark.slow
def test_prediction_in_the_venv_matches_local(
    built_env: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, cache, _ = built_env
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.5], [4.0]]}}))
    local, venv = tmp_path / "local.json", tmp_path / "venv.json"
    predicting.predict(str(path), source, local, params={"offset": 1.0})
    predicting.predict(
        str(path), source, venv, env_manager="venv", params={"offset": 1.0}, env_cache=cache
    )
    assert (
        json.loads(venv.read_text()) == json.loads(local.read_text()) == {"predictions": [4.0, 9.0]}
    )
    predicting.predict(str(path), source, env_manager="venv", env_cache=cache)  # to stdout
    assert json.loads(capsys.readouterr().out) == {"predictions": [3.0, 8.0]}


@pytest.mark.slow
def test_an_error_in_the_venv_comes_back_as_the_same_error(
    built_env: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path, cache, _ = built_env
    source = tmp_path / "in.csv"
    source.write_text("y\n1.0\n")
    with pytest.raises(InvalidParameterValue, match=r"missing inputs \['x'\]"):
        predicting.predict(str(path), source, env_manager="venv", env_cache=cache)
