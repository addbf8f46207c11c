"""Checkpoints in one process (rank 0 of 1): where they go, the index, keep, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from slipway import SlipwayClient, training
from slipway.artifacts.atomic import TEMP_PREFIX, TEMP_SUFFIX
from slipway.exceptions import InvalidParameterValue


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bare_env: None) -> Path:
    """A checkpoint folder given by ``SLIPWAY_CHECKPOINT_URI``, as under plain torchrun."""
    root = tmp_path / "ckpt"
    monkeypatch.setenv("SLIPWAY_CHECKPOINT_URI", str(root))
    return root


def state(step: int) -> dict[str, object]:
    return {"weights": torch.full((3,), float(step)), "step": step}


def test_nothing_saved_loads_as_none(folder: Path) -> None:
    assert training.load_latest_checkpoint() is None
    assert training.latest_checkpoint_step() is None
    assert training.checkpoint_steps() == []


def test_save_keeps_the_last_k_and_loads_the_newest(folder: Path) -> None:
    for step in (5, 10, 15, 20):
        assert training.save_checkpoint(state(step), step=step, keep=3) == step
    assert sorted(p.name for p in folder.iterdir()) == [
        "index.json",
        "step-10.pt",
        "step-15.pt",
        "step-20.pt",
    ]
    assert json.loads((folder / "index.json").read_text()) == {
        "latest": 20,
        "steps": [10, 15, 20],
    }
    loaded = training.load_latest_checkpoint()
    assert loaded["step"] == 20
    assert torch.equal(loaded["weights"], torch.full((3,), 20.0))
    assert training.checkpoint_steps() == [10, 15, 20]


def test_step_defaults_to_one_past_the_newest(folder: Path) -> None:
    assert training.save_checkpoint(state(0)) == 0
    assert training.save_checkpoint(state(1)) == 1
    assert training.save_checkpoint(state(7), step=7) == 7
    assert training.save_checkpoint(state(8)) == 8
    assert training.latest_checkpoint_step() == 8


def test_keep_none_keeps_everything(folder: Path) -> None:
    for step in range(5):
        training.save_checkpoint(state(step), step=step, keep=None)
    assert training.checkpoint_steps() == [0, 1, 2, 3, 4]


def test_the_index_decides_not_a_half_written_file(folder: Path) -> None:
    """A worker killed while writing leaves a temporary file (never listed) or a checkpoint
    the index does not name yet: neither is loaded."""
    training.save_checkpoint(state(10), step=10)
    (folder / f"{TEMP_PREFIX}abc{TEMP_SUFFIX}").write_bytes(b"half a checkpo")
    torch.save(state(99), folder / "step-99.pt")  # written, but the index was not updated
    assert training.load_latest_checkpoint()["step"] == 10


def test_without_an_index_the_files_are_listed(folder: Path) -> None:
    training.save_checkpoint(state(3), step=3)
    training.save_checkpoint(state(12), step=12)
    (folder / "index.json").write_text("{not json")
    assert training.checkpoint_steps() == [3, 12]
    assert training.load_latest_checkpoint()["step"] == 12
    (folder / "index.json").unlink()
    (folder / "step-12.pt").unlink()
    assert training.load_latest_checkpoint()["step"] == 3


def test_a_checkpoint_deleted_by_hand_falls_back_to_the_one_before(folder: Path) -> None:
    training.save_checkpoint(state(1), step=1)
    training.save_checkpoint(state(2), step=2)
    (folder / "step-2.pt").unlink()
    assert training.load_latest_checkpoint()["step"] == 1


def test_weights_only_refuses_arbitrary_objects_unless_asked(folder: Path) -> None:
    training.save_checkpoint({"step": 1, "note": Path("x")}, step=1)
    with pytest.raises(Exception, match=r"Weights only load failed|weights_only"):
        training.load_latest_checkpoint()
    assert training.load_latest_checkpoint(weights_only=False)["note"] == Path("x")


def test_explicit_uri_wins(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    training.save_checkpoint(state(4), step=4, uri=str(other))
    assert (other / "step-4.pt").is_file()
    assert training.load_latest_checkpoint() is None
    assert training.load_latest_checkpoint(uri=str(other))["step"] == 4


def test_job_run_artifacts_are_the_default(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a job launched by Slipway, checkpoints go to the run's ``checkpoints/``."""
    client = SlipwayClient(store_uri)
    run = client.create_run("0")
    monkeypatch.setenv("SLIPWAY_TRAINING_ARTIFACT_URI", run.info.artifact_uri)
    training.save_checkpoint(state(6), step=6)
    names = sorted(f.path for f in client.list_artifacts(run.info.run_id, "checkpoints"))
    assert names == ["checkpoints/index.json", "checkpoints/step-6.pt"]
    assert training.load_latest_checkpoint()["step"] == 6


def test_other_ranks_write_nothing(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    assert training.save_checkpoint(state(3)) is None
    assert training.save_checkpoint(state(3), step=3) == 3
    assert not folder.exists()


@pytest.mark.usefixtures("bare_env")
def test_no_place_for_checkpoints_is_a_clear_error() -> None:
    with pytest.raises(InvalidParameterValue, match="No place for checkpoints"):
        training.save_checkpoint(state(1))
    with pytest.raises(InvalidParameterValue, match="SLIPWAY_CHECKPOINT_URI"):
        training.load_latest_checkpoint()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": -1}, "Invalid checkpoint step -1"),
        ({"step": True}, "Invalid checkpoint step True"),
        ({"step": 1.5}, "Invalid checkpoint step 1.5"),
        ({"keep": 0}, "Invalid keep 0"),
        ({"keep": "3"}, "Invalid keep '3'"),
    ],
)
def test_bad_arguments_are_refused(folder: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        training.save_checkpoint(state(1), **kwargs)  # type: ignore[arg-type]
    assert not folder.exists()
