"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_the_two_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert "pip install -e ." in blocks[0]
    assert "examples/quickstart.py" in blocks[0]
    assert "scripts/check" in blocks[1]


def test_readme_python_example_runs(tmp_path: Path) -> None:
    blocks = _python_blocks()
    assert blocks, "the README has a python example"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    assert (tmp_path / ".slipway" / "slipway.db").exists()


def test_quickstart_then_cli_lists_its_runs(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--steps", "50"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from slipway.cli import main; main()",
            "runs",
            "list",
            "--experiment",
            "quickstart",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("lr-") >= 3
