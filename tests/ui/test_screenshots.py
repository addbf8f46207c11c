"""``scripts/screenshots.py`` still works: it starts ``slipway ui``, makes its demo data, runs
its pipeline and writes every picture, each a 1280x800 PNG."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CHROMIUM

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"
PICTURES = {
    "experiments.png",
    "runs-table.png",
    "run.png",
    "compare.png",
    "models.png",
    "model-version.png",
    "model-version-dark.png",
    "approvals.png",
    "pipeline-run.png",
    "pipeline-run-done.png",
}


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.mark.slow
def test_the_screenshot_script_writes_every_picture(tmp_path: Path) -> None:
    out = tmp_path / "shots"
    log = tmp_path / "script.log"
    with log.open("wb") as sink:  # a file, not a pipe: step processes may outlive the script
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--out", str(out), "--chromium", CHROMIUM],
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, log.read_text()
    assert {p.name for p in out.iterdir()} == PICTURES
    for picture in out.iterdir():
        assert png_size(picture) == (1280, 800), picture.name
        assert picture.stat().st_size < 400 * 1024, picture.name
