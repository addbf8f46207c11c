"""Requirements, python_env.yaml, conda.yaml and code paths, as MLflow writes and reads them."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest
import yaml

from slipway.exceptions import InvalidParameterValue
from slipway.models.environment import (
    add_code_to_path,
    copy_code_paths,
    pinned,
    python_version,
    resolve_requirements,
    write_environment,
)


def _version(dist: str) -> str:
    return importlib.metadata.version(dist)


def test_pinned_uses_the_installed_version() -> None:
    assert pinned("scikit-learn") == f"scikit-learn=={_version('scikit-learn')}"
    assert pinned("no-such-distribution-xyz") == "no-such-distribution-xyz"


def test_defaults_are_pinned() -> None:
    assert resolve_requirements(["scikit-learn", "cloudpickle"]) == [
        f"scikit-learn=={_version('scikit-learn')}",
        f"cloudpickle=={_version('cloudpickle')}",
    ]


def test_pip_requirements_replace_the_defaults() -> None:
    assert resolve_requirements(["scikit-learn"], pip_requirements=["torch==2.0", "a"]) == [
        "torch==2.0",
        "a",
    ]


def test_extra_requirements_add_to_and_override_the_defaults() -> None:
    out = resolve_requirements(
        ["scikit-learn", "numpy"], extra_pip_requirements=["Scikit_Learn>=1.0", "boto3"]
    )
    assert out == [f"numpy=={_version('numpy')}", "Scikit_Learn>=1.0", "boto3"]


def test_requirements_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "reqs.txt"
    path.write_text("# pinned\npandas==2.0  # data\n\n-r other.txt\npandas==2.0\n")
    assert resolve_requirements([], pip_requirements=path) == ["pandas==2.0", "-r other.txt"]
    assert resolve_requirements([], extra_pip_requirements=str(path)) == [
        "pandas==2.0",
        "-r other.txt",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pip_requirements": ["a"], "extra_pip_requirements": ["b"]}, "Only one of"),
        ({"pip_requirements": ["ok", ""]}, "pip_requirements: invalid requirement ''"),
        ({"pip_requirements": ["a\nb"]}, "invalid requirement"),
        ({"extra_pip_requirements": [3]}, "extra_pip_requirements: invalid requirement 3"),
        ({"pip_requirements": 3}, "must be a list"),
        ({"pip_requirements": "/no/such/requirements.txt"}, "cannot read requirements file"),
    ],
)
def test_bad_requirements_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        resolve_requirements([], **kwargs)  # type: ignore[arg-type]


def test_environment_files(tmp_path: Path) -> None:
    reqs = ["scikit-learn==1.5.0", "cloudpickle==3.0.0"]
    env = write_environment(tmp_path, reqs)
    assert env == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert (tmp_path / "requirements.txt").read_text().splitlines() == reqs
    python_env = yaml.safe_load((tmp_path / "python_env.yaml").read_text())
    assert python_env["python"] == python_version()
    assert python_env["dependencies"] == ["-r requirements.txt"]
    assert [b.split("==")[0] for b in python_env["build_dependencies"]] == [
        "pip",
        "setuptools",
        "wheel",
    ]
    conda = yaml.safe_load((tmp_path / "conda.yaml").read_text())
    assert conda["channels"] == ["conda-forge"]
    assert conda["dependencies"][0] == f"python={python_version()}"
    assert conda["dependencies"][-1] == {"pip": reqs}


def test_mlflow_reads_the_environment_files(tmp_path: Path) -> None:
    from mlflow.utils.environment import _PythonEnv

    write_environment(tmp_path, ["numpy==2.0.0"])
    theirs = _PythonEnv.from_yaml(str(tmp_path / "python_env.yaml"))
    assert theirs.python == python_version()
    assert theirs.dependencies == ["-r requirements.txt"]
    from_conda = _PythonEnv.from_conda_yaml(str(tmp_path / "conda.yaml"))
    assert from_conda.python == python_version()
    assert "numpy==2.0.0" in from_conda.dependencies


def test_code_paths_are_copied_into_code(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("X = 1\n")
    (src / "pkg" / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    (src / "helpers.py").write_text("Y = 2\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert copy_code_paths(model_dir, [src / "pkg", str(src / "helpers.py")]) == "code"
    assert (model_dir / "code" / "pkg" / "__init__.py").read_text() == "X = 1\n"
    assert (model_dir / "code" / "helpers.py").read_text() == "Y = 2\n"
    assert not (model_dir / "code" / "pkg" / "__pycache__").exists()
    assert copy_code_paths(tmp_path / "other", None) is None


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (lambda src: [src / "missing.py"], "does not exist"),
        (lambda src: [src / "a" / "m.py", src / "b" / "m.py"], "two entries are named 'm.py'"),
        (lambda src: str(src / "a" / "m.py"), "must be a list"),
    ],
)
def test_bad_code_paths(tmp_path: Path, paths: object, message: str) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "m.py").write_text("")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with pytest.raises(InvalidParameterValue, match=message):
        copy_code_paths(model_dir, paths(tmp_path))  # type: ignore[operator]


def test_code_goes_first_on_sys_path_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    add_code_to_path(tmp_path, {"code": "code"})
    add_code_to_path(tmp_path, {"code": "code"})
    assert sys.path[0] == str(tmp_path / "code")
    assert sys.path.count(str(tmp_path / "code")) == 1
    add_code_to_path(tmp_path, {"code": None})
    with pytest.raises(InvalidParameterValue, match="Invalid path"):
        add_code_to_path(tmp_path, {"code": "../elsewhere"})
