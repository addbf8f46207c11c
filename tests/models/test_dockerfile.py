"""The Docker build context for a model: its Dockerfile (base image, requirements, the model,
the port and command), the model copied or downloaded into it, and refusals that change
nothing. Docker itself is not needed: the Dockerfile is checked as text."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import slipway
from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from slipway.flavors import pyfunc
from slipway.models.dockerfile import render_dockerfile, write_dockerfile
from slipway.tracking import uri as uris

KEYWORDS = {"FROM", "ENV", "COPY", "RUN", "USER", "EXPOSE", "CMD"}


class Echo(pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "echo"
    pyfunc.save_model(path, python_model=Echo(), pip_requirements=["cloudpickle", "pandas>=2"])
    return path


@pytest.fixture
def model(saved: Path, tmp_path: Path) -> Path:
    """A copy of the saved model that a test may change."""
    return Path(shutil.copytree(saved, tmp_path / "src"))


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(keyword, arguments) per instruction, continuation lines joined; comments dropped."""
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]


def test_the_build_context_serves_the_model(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "image"
    dockerfile = write_dockerfile(str(model), out)
    assert dockerfile == out / "Dockerfile"
    steps = instructions(dockerfile)
    assert {keyword for keyword, _ in steps} <= KEYWORDS
    assert steps[0] == ("FROM", "python:3.11-slim")  # python_env.yaml says 3.11.x
    runs = [args for keyword, args in steps if keyword == "RUN"]
    assert runs[0] == (
        f'pip install -r /opt/model/requirements.txt "slipway[server]=={slipway.__version__}"'
    )
    copies = [args for keyword, args in steps if keyword == "COPY"]
    assert copies == ["model/requirements.txt /opt/model/requirements.txt", "model/ /opt/model/"]
    assert ("EXPOSE", "8080") in steps
    assert ("USER", "slipway") in steps
    keyword, command = steps[-1]
    assert keyword == "CMD"
    assert json.loads(command) == [
        "slipway", "serve", "/opt/model", "--host", "0.0.0.0", "--port", "8080"
    ]  # fmt: skip
    # the model, whole, where the COPY instructions look for it
    copied = sorted(p.relative_to(out / "model") for p in (out / "model").rglob("*"))
    assert copied == sorted(p.relative_to(model) for p in model.rglob("*"))
    assert (out / "model" / "requirements.txt").read_text().splitlines() == [
        "cloudpickle",
        "pandas>=2",
    ]
    ignore = (out / ".dockerignore").read_text().splitlines()
    assert "**/__pycache__" in ignore
    assert sorted(p.name for p in out.iterdir()) == [".dockerignore", "Dockerfile", "model"]


@pytest.mark.parametrize(("python", "base"), [("3.12.4", "3.12"), ("3.13", "3.13")])
def test_the_base_image_is_the_models_python(
    model: Path, tmp_path: Path, python: str, base: str
) -> None:
    (model / "python_env.yaml").write_text(f"python: {python}\n")
    dockerfile = write_dockerfile(str(model), tmp_path / "image")
    assert instructions(dockerfile)[0] == ("FROM", f"python:{base}-slim")


def test_a_model_from_an_older_python_gets_slipways_oldest_and_a_note() -> None:
    text = render_dockerfile("3.9")
    assert "FROM python:3.11-slim" in text
    assert "# The model was saved under Python 3.9; Slipway needs 3.11 or newer" in text


def test_a_model_without_requirements_gets_an_empty_file(model: Path, tmp_path: Path) -> None:
    (model / "requirements.txt").unlink()
    write_dockerfile(str(model), tmp_path / "image")
    assert (tmp_path / "image" / "model" / "requirements.txt").read_text() == ""
    assert not (model / "requirements.txt").exists()  # the source model is left as it was


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[str]:
    uri = str(tmp_path / "tracking")
    slipway.set_tracking_uri(uri)
    yield uri
    slipway.set_tracking_uri(None)
    uris.clear_store_cache()


def test_a_logged_model_is_downloaded_into_the_context(tracking: str, tmp_path: Path) -> None:
    with slipway.start_run() as run:
        pyfunc.log_model("model", python_model=Echo())
    out = tmp_path / "image"
    write_dockerfile(f"runs:/{run.info.run_id}/model", out)
    assert (out / "model" / "MLmodel").is_file()
    assert (out / "model" / "python_model.pkl").is_file()
    assert sorted(p.name for p in out.iterdir()) == [".dockerignore", "Dockerfile", "model"]


def test_an_existing_dockerfile_or_model_folder_is_never_overwritten(
    model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "image"
    out.mkdir()
    (out / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ResourceAlreadyExists, match="Dockerfile' already exists"):
        write_dockerfile(str(model), out)
    assert (out / "Dockerfile").read_text() == "FROM scratch\n"
    (out / "Dockerfile").unlink()
    (out / "model").mkdir()
    with pytest.raises(ResourceAlreadyExists, match="model' already exists"):
        write_dockerfile(str(model), out)
    assert sorted(p.name for p in out.iterdir()) == ["model"]


def test_bad_targets_and_sources_leave_nothing_behind(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InvalidParameterValue, match="is not a folder"):
        write_dockerfile(str(tmp_path), afile)
    out = tmp_path / "image"
    with pytest.raises(ResourceDoesNotExist):
        write_dockerfile(str(tmp_path / "missing"), out)
    assert list(out.iterdir()) == []
    not_a_model = tmp_path / "folder"
    not_a_model.mkdir()
    with pytest.raises(InvalidParameterValue, match="MLmodel"):
        write_dockerfile(str(not_a_model), out)
    assert list(out.iterdir()) == []
