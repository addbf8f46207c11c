"""Packing a working directory for the nodes and unpacking it there."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from slipway.engines.shipping import EXCLUDES, pack, unpack
from slipway.exceptions import InvalidParameterValue


def test_a_folder_round_trips_without_what_is_left_out(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("")
    (src / "pkg" / "model.py").write_text("SIZE = 3\n")
    (src / "pkg" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    (src / ".slipway").mkdir()
    (src / ".slipway" / "mlflow.db").write_bytes(b"db")
    run = src / "run.sh"
    run.write_text("#!/bin/sh\necho hi\n")
    run.chmod(0o755)
    (src / "linked.txt").symlink_to(src / "pkg" / "model.py")
    (src / "dangling").symlink_to(src / "missing")
    package = pack(src)
    assert package.files == 4
    assert pack(src) == package  # the same folder packs the same
    out = unpack(package.data, tmp_path / "out")
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert found == ["linked.txt", "pkg/__init__.py", "pkg/model.py", "run.sh"]
    assert (out / "pkg" / "model.py").read_text() == "SIZE = 3\n"
    assert (out / "linked.txt").read_text() == "SIZE = 3\n"  # a link's target is shipped
    assert os.access(out / "run.sh", os.X_OK)
    assert {".git", ".slipway", "__pycache__"} <= EXCLUDES


def test_a_folder_too_big_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"x" * 2048)
    with pytest.raises(InvalidParameterValue, match="holds more than"):
        pack(tmp_path, limit=1024)


def test_entries_outside_the_destination_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("../escaped.txt", "no")
    with pytest.raises(InvalidParameterValue, match="refusing to unpack"):
        unpack(buffer.getvalue(), tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
