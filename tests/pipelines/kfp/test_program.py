"""The program embedded in a component's container: the function plus what it uses from its
module, loaded and run on its own, away from this module."""

from __future__ import annotations

import json as js
import sys
import threading
from collections import OrderedDict as Ordered
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slipway.pipelines import component
from slipway.pipelines.kfp.executor_main import load_function
from slipway.pipelines.kfp.program import component_program

FACTOR = 3
WEIGHTS = {"a": (1, 2.5), "b": None}
LOCK = threading.Lock()  # cannot travel: left out


@dataclass
class Point:
    x: int
    y: int

    def norm(self) -> int:
        return abs(self.x) + abs(self.y) * FACTOR


def scaled(value: int) -> int:
    return _twice(value) * FACTOR


def _twice(value: int) -> int:
    return value * 2


@component
def other(x: int) -> int:
    return x


@component
def uses_everything(x: int) -> str:
    if False:  # a reference to another component (never called): left out
        other(x=x)
    point = Point(x, -x)
    table = Ordered(sorted(WEIGHTS.items()))
    return js.dumps({"scaled": scaled(x), "norm": point.norm(), "keys": list(table)})


@pytest.fixture(autouse=True)
def _forget_loaded_programs() -> Iterator[None]:
    yield
    sys.modules.pop("slipway_component", None)


def test_program_carries_helpers_imports_and_constants() -> None:
    program = component_program(uses_everything)
    assert program.startswith('"""Slipway component uses_everything')
    assert "import json as js" in program
    assert "from collections import OrderedDict as Ordered" in program
    assert "FACTOR = 3" in program
    assert "WEIGHTS = {'a': (1, 2.5), 'b': None}" in program
    assert "LOCK" not in program
    assert "def other" not in program
    assert "@component" not in program
    # what a helper uses comes before the helper, and helpers before the component
    assert program.index("def _twice") < program.index("def scaled")
    assert program.index("def scaled") < program.index("def uses_everything")
    assert "@dataclass" in program
    assert "from dataclasses import dataclass" in program


def test_program_runs_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "slipway_component.py"
    path.write_text(component_program(uses_everything))
    func = load_function(str(path), "uses_everything")
    assert func.__module__ == "slipway_component"
    assert js.loads(func(2)) == {"scaled": 12, "norm": 8, "keys": ["a", "b"]}
