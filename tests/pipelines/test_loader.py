"""Loading pipelines from files and typing ``--param`` values, on real files in a temp folder."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist
from slipway.pipelines import Pipeline
from slipway.pipelines.loader import (
    MODULE_PREFIX,
    absolute_source,
    check_params,
    load_pipeline,
    parse_params,
    split_source,
)

HEADER = "from slipway.pipelines import component, pipeline\n\n"
STEP = """
@component
def step(x: int) -> int:
    return x + 1
"""


def write(folder: Path, name: str, body: str, header: str = HEADER) -> Path:
    path = folder / name
    path.write_text(header + textwrap.dedent(body))
    return path


def one_pipeline(name: str = "flow", params: str = "x: int = 1") -> str:
    return (
        STEP
        + f"""
@pipeline(name={name!r})
def {name.replace("-", "_")}({params}):
    step(x=1)
"""
    )


def test_loads_the_only_pipeline_of_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", one_pipeline())
    loaded = load_pipeline(str(path))
    assert isinstance(loaded, Pipeline)
    assert loaded.name == "flow"
    assert list(loaded.graph.tasks) == ["step"]
    module = sys.modules[loaded.func.__module__]
    assert module.__name__.startswith(MODULE_PREFIX)
    assert module.__file__ == str(path.resolve())


def test_each_load_runs_the_file_again_under_a_new_module(tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", one_pipeline())
    first, second = load_pipeline(str(path)), load_pipeline(str(path))
    assert first is not second
    assert first.func.__module__ != second.func.__module__


def test_sibling_modules_import_and_sys_path_is_restored(tmp_path: Path) -> None:
    (tmp_path / "helpers_for_flow.py").write_text("ROWS = 42\n")
    path = write(
        tmp_path,
        "flow.py",
        "from helpers_for_flow import ROWS\n" + one_pipeline(params="x: int = ROWS"),
    )
    before = list(sys.path)
    try:
        loaded = load_pipeline(str(path))
    finally:
        sys.modules.pop("helpers_for_flow", None)
    assert loaded.parameters["x"].default == 42
    assert sys.path == before


def test_two_pipelines_need_a_name_and_the_error_lists_them(tmp_path: Path) -> None:
    body = (
        STEP
        + """
@pipeline(name="first")
def a(x: int = 1):
    step(x=x)

@pipeline(name="second")
def b(x: int = 1):
    step(x=x)
"""
    )
    path = write(tmp_path, "two.py", body)
    with pytest.raises(InvalidParameterValue) as info:
        load_pipeline(str(path))
    message = info.value.message
    assert "holds 2 pipelines" in message
    assert "a (pipeline first)" in message
    assert "b (pipeline second)" in message
    assert f"{path}:NAME" in message
    assert load_pipeline(f"{path}:b").name == "second"
    assert load_pipeline(f"{path}:first").name == "first"  # the pipeline's own name works too


def test_unknown_name_lists_the_candidates(tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", one_pipeline())
    with pytest.raises(InvalidParameterValue, match=r"no pipeline named 'nope' \(found: flow\)"):
        load_pipeline(f"{path}:nope")


def test_a_file_without_pipelines_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.py", STEP)
    with pytest.raises(InvalidParameterValue, match="defines no pipeline: decorate a function"):
        load_pipeline(str(path))


def test_a_pipeline_imported_from_a_sibling_does_not_count_beside_one_defined_here(
    tmp_path: Path,
) -> None:
    write(tmp_path, "inner_flow_mod.py", one_pipeline("inner"))
    body = (
        "from inner_flow_mod import inner\n"
        + """
@pipeline(name="outer")
def outer(x: int = 1):
    inner(x=x)
"""
    )
    path = write(tmp_path, "outer.py", body)
    try:
        loaded = load_pipeline(str(path))
    finally:
        sys.modules.pop("inner_flow_mod", None)
    assert loaded.name == "outer"
    assert "inner.step" in loaded.graph.tasks


def test_syntax_error_names_file_line_and_message(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "x = 1\ndef oops(:\n    pass\n")
    with pytest.raises(InvalidParameterValue) as info:
        load_pipeline(str(path))
    message = info.value.message
    assert f"{path}, line 4" in message  # two header lines, then the third line of the body
    assert "SyntaxError" in message
    assert "def oops(:" in message
    assert "Traceback" not in message
    assert not [m for m in sys.modules if m.startswith(MODULE_PREFIX + "broken")]


def test_import_error_names_the_line_of_the_import(tmp_path: Path) -> None:
    path = write(tmp_path, "missing.py", "import os\nimport no_such_module_for_slipway\n")
    with pytest.raises(InvalidParameterValue) as info:
        load_pipeline(str(path))
    message = info.value.message
    assert message.startswith(f"{path}, line 4: ModuleNotFoundError: ")
    assert "no_such_module_for_slipway" in message


def test_a_pipeline_that_cannot_be_built_names_the_line_and_the_problem(tmp_path: Path) -> None:
    body = """
@component
def step(x: int) -> int:
    return x

@pipeline
def bad(x: int = 1):
    step(y=x)

bad.graph
"""
    path = write(tmp_path, "bad.py", body)
    with pytest.raises(InvalidParameterValue) as info:
        load_pipeline(str(path))
    message = info.value.message
    # the deepest line of the file: the call inside the pipeline function, not `bad.graph`
    assert message.startswith(f"{path}, line 10: PipelineDefinitionError: ")
    assert "has no input 'y'" in message


def test_an_error_raised_in_another_file_says_where(tmp_path: Path) -> None:
    (tmp_path / "raiser_for_flow.py").write_text("raise RuntimeError('deep problem')\n")
    path = write(tmp_path, "flow.py", "import raiser_for_flow\n")
    with pytest.raises(InvalidParameterValue) as info:
        load_pipeline(str(path))
    message = info.value.message
    assert message == (
        f"{path}, line 3 (raised at {tmp_path.resolve() / 'raiser_for_flow.py'}, line 1): "
        "RuntimeError: deep problem"
    )
    sys.modules.pop("raiser_for_flow", None)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ResourceDoesNotExist, match="No such pipeline file"):
        load_pipeline(str(tmp_path / "nope.py"))
    with pytest.raises(InvalidParameterValue, match="is a folder"):
        load_pipeline(str(tmp_path))


def test_split_and_absolute_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert split_source("flows/iris.py") == (Path("flows/iris.py"), None)
    assert split_source("flows/iris.py:train-v2") == (Path("flows/iris.py"), "train-v2")
    assert split_source(r"C:\work\iris.py") == (Path(r"C:\work\iris.py"), None)
    monkeypatch.chdir(tmp_path)
    assert absolute_source("iris.py:main") == f"{tmp_path.resolve() / 'iris.py'}:main"
    with pytest.raises(InvalidParameterValue, match="Give a pipeline file"):
        split_source("  ")


# -- parameters --------------------------------------------------------------------------------

TYPED = """
@component
def use(a: int, b: float, c: str, d: bool, e: list, f: dict) -> int:
    return a
"""


@pytest.fixture
def typed(tmp_path: Path) -> Pipeline:
    body = (
        TYPED
        + """
from typing import Optional

@pipeline(name="typed")
def typed(rows: int, lr: float = 0.1, label: str = "x", flag: bool = False,
          sizes: list = [1], opts: dict = {}, note: Optional[str] = None):
    use(a=rows, b=lr, c=label, d=flag, e=sizes, f=opts)
"""
    )
    return load_pipeline(str(write(tmp_path, "typed.py", body)))


def test_parse_params_types_each_value(typed: Pipeline) -> None:
    values = parse_params(
        typed,
        [
            "rows=5000",
            "lr=1e-3",
            "label=a=b",
            "flag=true",
            "sizes=[1, 2]",
            'opts={"k": 1}',
            "note=null",
        ],
    )
    assert values == {
        "rows": 5000,
        "lr": 0.001,
        "label": "a=b",
        "flag": True,
        "sizes": [1, 2],
        "opts": {"k": 1},
        "note": None,
    }
    assert type(values["rows"]) is int
    assert parse_params(typed, ["lr=2"]) == {"lr": 2.0}


def test_parse_params_unknown_name_lists_the_known_ones(typed: Pipeline) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        parse_params(typed, ["row=5"])
    message = info.value.message
    assert "Pipeline typed has no parameter 'row'" in message
    assert "rows: int" in message
    assert "lr: float" in message


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("rows=many", "Parameter rows (int): 'many' is not a valid int"),
        ("lr=fast", "Parameter lr (float): 'fast' is not a valid float"),
        ("flag=maybe", "Parameter flag (bool): 'maybe' is not a valid bool"),
        ("sizes={", "Parameter sizes (list): '{' is not a valid list"),
        ('sizes={"a": 1}', "Parameter sizes (list): expected list, got dict"),
        ("rows", "Parameter 'rows' is not NAME=VALUE"),
        ("=5", "Parameter '=5' is not NAME=VALUE"),
    ],
)
def test_parse_params_bad_values(typed: Pipeline, item: str, expected: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        parse_params(typed, [item])
    assert expected in info.value.message


def test_parse_params_twice_and_missing_required(typed: Pipeline) -> None:
    with pytest.raises(InvalidParameterValue, match="'rows' is given twice"):
        parse_params(typed, ["rows=1", "rows=2"])
    assert parse_params(typed, []) == {}
    with pytest.raises(InvalidParameterValue, match="needs a value for rows"):
        parse_params(typed, ["lr=1"], complete=True)
    assert parse_params(typed, ["rows=1"], complete=True) == {"rows": 1}


def test_check_params_keeps_json_values(typed: Pipeline) -> None:
    assert check_params(typed, {"rows": 3, "lr": 1, "label": "5"}) == {
        "rows": 3,
        "lr": 1.0,
        "label": "5",
    }
    with pytest.raises(InvalidParameterValue, match="expected int, got str"):
        check_params(typed, {"rows": "3"})
    with pytest.raises(InvalidParameterValue, match="has no parameter 'x'"):
        check_params(typed, {"x": 1})
