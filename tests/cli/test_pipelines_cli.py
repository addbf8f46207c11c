"""``slipway pipelines ...`` end to end: real pipeline files, the real executor (each step a
process) and a folder store per test; Ctrl-C through a real process group."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from slipway.cli import cli
from slipway.entities.pipelines import PipelineRunStatus
from slipway.pipelines.store import clear_pipeline_store_cache, get_pipeline_store
from slipway.tracking import uri as uris

ENV_VARS = (
    "SLIPWAY_TRACKING_URI",
    "SLIPWAY_ARTIFACT_ROOT",
    "SLIPWAY_EXPERIMENT_NAME",
    "SLIPWAY_EXPERIMENT_ID",
    "SLIPWAY_RUN_ID",
    "COLUMNS",
    "FORCE_COLOR",
    "NO_COLOR",
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipelines" / "iris.py"

FLOW = """
from slipway.pipelines import collected, component, parallel_for, pipeline


@component
def make(n: int) -> list:
    print(f"making {n}")
    return list(range(n))


@component
def square(x: int) -> int:
    import sys

    print(f"squaring {x}", file=sys.stderr)
    return x * x


@component
def total(values: list) -> int:
    return sum(values)


@pipeline(name="squares")
def squares(n: int = 3, label: str = "x"):
    made = make(n=n)
    with parallel_for(made.output) as x:
        sq = square(x=x)
    total(values=collected(sq.output))
"""

FAILING = """
from slipway.pipelines import component, pipeline


@component
def fine() -> int:
    return 1


@component
def explode(x: int) -> int:
    raise ValueError(f"boom: bad input {x}")


@pipeline(name="doomed")
def doomed():
    explode(x=fine().output)
"""

SLOW = """
from slipway.pipelines import component, pipeline


@component
def nap(seconds: float) -> float:
    import time

    print("napping", flush=True)
    time.sleep(seconds)
    return seconds


@pipeline(name="sleepy")
def sleepy(seconds: float = 60.0):
    nap(seconds=seconds)
"""


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A folder store of its own; the environment cannot change what the CLI prints."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield str(tmp_path / "tracking")
    clear_pipeline_store_cache()
    uris.clear_store_cache()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def invoke(uri: str, command: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """``slipway --tracking-uri URI <command> <args>``, the command split like a shell does."""
    return CliRunner().invoke(
        cli,
        ["--tracking-uri", uri, *shlex.split(command), *args],
        env={"COLUMNS": "160", **(env or {})},
    )


def assert_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: "), result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert all(f in result.stderr for f in fragments), result.stderr
    return result.stderr


def rows_of(text: str, first: str) -> dict[str, list[str]]:
    """The whitespace-split rows of the table whose header starts with ``first``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first])
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        parts = line.split()
        rows[parts[0]] = parts[1:]
    return rows


def run_id_of(result: Result) -> str:
    for line in result.stdout.splitlines():
        if line.startswith("Pipeline run "):
            return line.split()[2]
    raise AssertionError(result.output)


@pytest.fixture
def squares_run(uri: str, tmp_path: Path) -> tuple[str, Path]:
    """A succeeded run of the squares pipeline (n=3): its id and the pipeline file."""
    path = write(tmp_path, "flow.py", FLOW)
    result = invoke(uri, f"pipelines run {path} --param n=3 --experiment sq")
    assert result.exit_code == 0, result.output
    return run_id_of(result), path


# -- run -----------------------------------------------------------------------------------------


def test_run_the_example_end_to_end(uri: str) -> None:
    result = invoke(uri, f"pipelines run {EXAMPLE} --param rows=300 --run-name first")
    assert result.exit_code == 0, result.output
    steps = rows_of(result.stdout, "Task")
    assert list(steps) == ["prepare", "train[0]", "train[1]", "train[2]", "pick_best", "register"]
    assert all(row[0] == "SUCCEEDED" for row in steps.values()), result.stdout
    run_id = run_id_of(result)
    assert f"Pipeline run {run_id} SUCCEEDED" in result.stdout
    assert "(6 steps: 6 succeeded)" in result.stdout
    # without a terminal: one line per change, the final status last
    assert f"pipeline iris run {run_id}" in result.stdout
    assert " train[1] SUCCEEDED in " in result.stdout
    assert " pipeline iris SUCCEEDED" in result.stdout
    record = get_pipeline_store(uri).get_pipeline_run(run_id)
    assert record.status == PipelineRunStatus.SUCCEEDED
    assert record.parameters == {"rows": 300}
    assert record.source == str(EXAMPLE)

    again = invoke(uri, f"pipelines run {EXAMPLE} --param rows=300")
    assert again.exit_code == 0, again.output
    cached = rows_of(again.stdout, "Task")
    assert cached["prepare"][0] == "CACHED"
    assert cached["train[2]"][0] == "CACHED"


def test_run_on_a_terminal_draws_the_live_tree(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", FLOW)
    result = invoke(uri, f"pipelines run {path} --param n=2", env={"FORCE_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "\x1b[" in result.stdout  # drawn for a terminal
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout).replace("\r", "\n")
    run_id = run_id_of(result)
    final = plain[plain.rindex(f"Pipeline squares  run {run_id}  SUCCEEDED") :]
    lines = [line.rstrip() for line in final.splitlines()]
    assert lines[1:7] == [
        "├── ✓ make       succeeded  " + lines[1].rsplit("  ", 1)[1],
        "├── parallel_for for-loop-1  2/2 done",
        "│   ├── ✓ square[0]  succeeded  " + lines[3].rsplit("  ", 1)[1],
        "│   └── ✓ square[1]  succeeded  " + lines[4].rsplit("  ", 1)[1],
        "└── ✓ total      succeeded  " + lines[5].rsplit("  ", 1)[1],
        "4 steps: 4 succeeded",
    ]
    assert " pipeline squares SUCCEEDED" not in plain  # no per-change lines on a terminal


def test_run_a_failing_pipeline_names_the_step(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "doomed.py", FAILING)
    result = invoke(uri, f"pipelines run {path}")
    stderr = assert_error(result, "step explode failed", "ValueError: boom: bad input 1")
    assert "Traceback" not in stderr
    run_id = run_id_of(result)
    assert f"Pipeline run {run_id} FAILED" in result.stdout
    steps = rows_of(result.stdout, "Task")
    assert steps["fine"][0] == "SUCCEEDED"
    assert steps["explode"][0] == "FAILED"
    assert f"slipway pipelines resume {run_id}" in result.stdout
    assert f"slipway pipelines logs {run_id} explode --stderr" in result.stdout


def test_run_with_an_unknown_param_lists_the_known_ones(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", FLOW)
    assert_error(
        invoke(uri, f"pipelines run {path} --param rows=5"),
        "Pipeline squares has no parameter 'rows'",
        "parameters: n: int, label: str",
    )
    assert not Path(uri).exists()  # refused before anything was recorded


def test_run_with_a_bad_param_value_names_parameter_and_type(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", FLOW)
    assert_error(
        invoke(uri, f"pipelines run {path} --param n=three"),
        "Parameter n (int): 'three' is not a valid int",
    )
    assert_error(invoke(uri, f"pipelines run {path} --param n"), "'n' is not NAME=VALUE")


def test_run_a_file_with_a_syntax_error(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "from slipway.pipelines import pipeline\n\nif True\n")
    assert_error(invoke(uri, f"pipelines run {path}"), f"{path}, line 3: SyntaxError:")
    assert_error(invoke(uri, f"pipelines run {tmp_path / 'none.py'}"), "No such pipeline file")


def start_sleepy(uri: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``slipway pipelines run sleepy.py`` in a process group of its own (as a terminal runs
    it), once its step is running; and the file its output goes to."""
    path = write(tmp_path, "sleepy.py", SLOW)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [
        sys.executable,
        "-c",
        "from slipway.cli import main; main()",
        "--tracking-uri",
        uri,
        "pipelines",
        "run",
        str(path),
    ]
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while "nap RUNNING" not in log.read_text():
        if child.poll() is not None or time.monotonic() > deadline:
            stop_group(child)
            raise AssertionError(log.read_text())
        time.sleep(0.1)
    return child, log


def stop_group(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_ctrl_c_cancels_the_run_and_exits_130(uri: str, tmp_path: Path) -> None:
    child, log = start_sleepy(uri, tmp_path)
    try:
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
        code = child.wait(timeout=60)
    finally:
        stop_group(child)
    output = log.read_text()
    assert code == 130, output
    assert "Traceback" not in output
    assert "nap CANCELLED" in output
    runs = list(get_pipeline_store(uri).search_pipeline_runs())
    assert [r.status for r in runs] == [PipelineRunStatus.CANCELLED]


def test_cancel_stops_a_run_started_elsewhere(uri: str, tmp_path: Path) -> None:
    child, log = start_sleepy(uri, tmp_path)
    try:
        (run,) = get_pipeline_store(uri).search_pipeline_runs()
        result = invoke(uri, f"pipelines cancel {run.run_id[:8]}")
        assert result.exit_code == 0, result.output
        assert result.stdout == f"Cancelling pipeline run {run.run_id} (CANCELLING).\n"
        code = child.wait(timeout=60)
    finally:
        stop_group(child)
    assert code == 130, log.read_text()
    assert get_pipeline_store(uri).get_pipeline_run(run.run_id).status == (
        PipelineRunStatus.CANCELLED
    )


# -- resume, cancel ------------------------------------------------------------------------------


def test_resume_after_a_fix_runs_only_what_failed(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "doomed.py", FAILING)
    failed = invoke(uri, f"pipelines run {path}")
    run_id = run_id_of(failed)
    path.write_text(
        textwrap.dedent(FAILING).replace('raise ValueError(f"boom: bad input {x}")', "return x + 1")
    )
    result = invoke(uri, f"pipelines resume {run_id[:8]}")
    assert result.exit_code == 0, result.output
    steps = rows_of(result.stdout, "Task")
    assert steps["explode"][:2] == ["SUCCEEDED", "1"]
    assert steps["fine"][0] == "SUCCEEDED"
    assert f"Pipeline run {run_id} SUCCEEDED" in result.stdout
    assert get_pipeline_store(uri).get_pipeline_run(run_id).attempt == 2


def test_resume_of_a_succeeded_run_says_there_is_nothing_to_do(
    uri: str, squares_run: tuple[str, Path]
) -> None:
    run_id, _ = squares_run
    assert_error(invoke(uri, f"pipelines resume {run_id}"), "succeeded", "nothing to resume")
    again = invoke(uri, f"pipelines resume {run_id} --from total --no-cache")
    assert again.exit_code == 0, again.output
    steps = rows_of(again.stdout, "Task")
    assert steps["total"][:2] == ["SUCCEEDED", "1"]
    assert steps["make"][0] == "SUCCEEDED"  # kept from the first attempt, not run again
    assert get_pipeline_store(uri).get_pipeline_run(run_id).attempt == 2


def test_resume_and_cancel_of_an_unknown_run(uri: str, squares_run: tuple[str, Path]) -> None:
    unknown = "0123456789abcdef0123456789abcdef"
    assert_error(invoke(uri, f"pipelines resume {unknown}"), unknown)
    assert_error(invoke(uri, f"pipelines cancel {unknown}"), unknown)
    assert_error(invoke(uri, f"pipelines show {unknown}"), unknown)


def test_cancel_of_a_finished_run_says_it_has_ended(
    uri: str, squares_run: tuple[str, Path]
) -> None:
    run_id, _ = squares_run
    result = invoke(uri, f"pipelines cancel {run_id}")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Pipeline run {run_id} has already ended (SUCCEEDED).\n"


def test_a_step_run_id_is_not_a_pipeline_run(uri: str, squares_run: tuple[str, Path]) -> None:
    run_id, _ = squares_run
    step_run = get_pipeline_store(uri).get_step(run_id, "make").run_id
    assert step_run is not None
    assert_error(
        invoke(uri, f"pipelines show {step_run}"),
        f"is step make of pipeline run {run_id}",
    )


# -- list, show, logs ----------------------------------------------------------------------------


def test_list_and_show(uri: str, squares_run: tuple[str, Path], tmp_path: Path) -> None:
    run_id, _ = squares_run
    doomed = invoke(uri, f"pipelines run {write(tmp_path, 'doomed.py', FAILING)}")
    failed_id = run_id_of(doomed)

    listed = invoke(uri, "pipelines list")
    assert listed.exit_code == 0, listed.output
    rows = rows_of(listed.stdout, "Run")
    assert list(rows) == [failed_id[:8], run_id[:8]]  # newest first
    assert rows[failed_id[:8]][:2] == ["doomed", "FAILED"]
    assert rows[run_id[:8]][:2] == ["squares", "SUCCEEDED"]

    only = json.loads(invoke(uri, "pipelines list --status failed --json").stdout)
    assert [r["run_id"] for r in only] == [failed_id]
    assert only[0]["status"] == "FAILED"
    assert "step explode failed" in only[0]["message"]
    named = json.loads(invoke(uri, "pipelines list --pipeline squares --json").stdout)
    assert [r["run_id"] for r in named] == [run_id]
    capped = invoke(uri, "pipelines list --max-results 1")
    assert "Showing the first 1; raise --max-results." in capped.stdout
    bad = invoke(uri, "pipelines list --status BAD")
    assert bad.exit_code == 2
    assert "BAD" in bad.stderr

    shown = invoke(uri, f"pipelines show {run_id[:8]}")
    assert shown.exit_code == 0, shown.output
    facts = dict(line.rstrip().split(None, 1) for line in shown.stdout.splitlines()[:9])
    assert facts["Pipeline"] == "squares"
    assert facts["Status"] == "SUCCEEDED"
    assert json.loads(facts["Parameters"]) == {"label": "x", "n": 3}
    steps = rows_of(shown.stdout, "Task")
    assert list(steps) == ["make", "square[0]", "square[1]", "square[2]", "total"]
    assert all(row[:2] == ["SUCCEEDED", "1"] for row in steps.values())

    data = json.loads(invoke(uri, f"pipelines show {run_id} --json").stdout)
    assert data["run_id"] == run_id
    assert "graph" not in data
    assert {s["task_id"]: s["status"] for s in data["steps"]}["square[2]"] == "SUCCEEDED"
    assert {s["task_id"]: s["outputs"] for s in data["steps"]}["total"]["parameters"] == {
        "Output": 5
    }


def test_show_marks_cached_steps_with_their_source(uri: str, squares_run: tuple[str, Path]) -> None:
    first, path = squares_run
    again = invoke(uri, f"pipelines run {path} --param n=3")
    second = run_id_of(again)
    steps = rows_of(invoke(uri, f"pipelines show {second}").stdout, "Task")
    make_run = get_pipeline_store(uri).get_step(first, "make").run_id
    assert make_run is not None
    assert steps["make"][0] == "CACHED"
    assert make_run[:8] in steps["make"]


def test_logs_prints_a_steps_stdout_or_stderr(uri: str, squares_run: tuple[str, Path]) -> None:
    run_id, _ = squares_run
    out = invoke(uri, f"pipelines logs {run_id} make")
    assert out.exit_code == 0, out.output
    assert out.stdout == "making 3\n"
    err = invoke(uri, f"pipelines logs {run_id[:8]} square[1] --stderr")
    assert err.exit_code == 0, err.output
    assert err.stdout == "squaring 1\n"
    quiet = invoke(uri, f"pipelines logs {run_id} make --stderr")
    assert quiet.exit_code == 0
    assert quiet.stdout == ""
    assert quiet.stderr == "(step make wrote nothing to stderr)\n"
    assert_error(
        invoke(uri, f"pipelines logs {run_id} nope"),
        "has no step 'nope'",
        "make, square[0], square[1], square[2], total",
    )


def test_logs_of_a_cached_step_come_from_the_run_that_made_it(
    uri: str, squares_run: tuple[str, Path]
) -> None:
    _, path = squares_run
    second = run_id_of(invoke(uri, f"pipelines run {path} --param n=3"))
    result = invoke(uri, f"pipelines logs {second} make")
    assert result.exit_code == 0, result.output
    assert result.stdout == "making 3\n"
    assert "was cached" in result.stderr


# -- compile -------------------------------------------------------------------------------------


def test_compile_json_is_the_graph(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", FLOW)
    target = tmp_path / "flow.json"
    result = invoke(uri, f"pipelines compile {path} --format json -o {target}")
    assert result.exit_code == 0, result.output
    graph = json.loads(target.read_text())
    assert graph["name"] == "squares"
    assert list(graph["tasks"]) == ["make", "square", "total"]
    assert graph["tasks"]["total"]["depends_on"] == ["square"]
    assert graph["parameters"]["n"] == {
        "kind": "parameter",
        "type": "NUMBER_INTEGER",
        "optional": False,
        "default": 3,
    }
    assert f"Wrote {target} (json, pipeline squares)" in result.stderr
    piped = invoke(uri, f"pipelines compile {path} --format json -o -")
    assert json.loads(piped.stdout) == graph


def test_compile_kfp_writes_pipeline_spec_yaml(uri: str, tmp_path: Path) -> None:
    target = tmp_path / "iris.yaml"
    result = invoke(uri, f"pipelines compile {EXAMPLE}:iris --format kfp -o {target}")
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(target.read_text())
    assert spec["pipelineInfo"]["name"] == "iris"
    assert sorted(spec["root"]["dag"]["tasks"]) == [
        "condition-2",
        "for-loop-1",
        "pick-best",
        "prepare",
    ]
    assert "comp-train" in spec["components"]
    assert "Wrote" in result.stderr
    assert_error(invoke(uri, f"pipelines compile {EXAMPLE}:nope -o {target}"), "no pipeline named")


# -- schedules -----------------------------------------------------------------------------------


def test_schedule_create_list_pause_resume_delete(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "flow.py", FLOW)
    monkeypatch.chdir(tmp_path)
    before = int(time.time() * 1000)
    made = invoke(
        uri,
        "pipelines schedule flow.py --cron '*/5  * * * *' --name every5 --param n=4 "
        "--param label=007 --experiment nightly",
    )
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("Scheduled every5 (")
    assert "*/5 * * * * UTC" in made.stdout

    data = json.loads(invoke(uri, "pipelines schedules list --json").stdout)
    assert len(data) == 1
    schedule = data[0]
    assert schedule["name"] == "every5"
    assert schedule["cron"] == "*/5 * * * *"
    assert schedule["source"] == str((tmp_path / "flow.py").resolve())
    assert schedule["parameters"] == {"n": 4, "label": "007"}  # typed now, "007" stays a str
    assert schedule["paused"] is False
    assert before < schedule["next_run_time"] <= before + 5 * 60_000
    assert schedule["next_run_time"] % (5 * 60_000) == 0
    assert schedule["experiment_id"] is not None

    table = invoke(uri, "pipelines schedules list")
    row = rows_of(table.stdout, "Name")["every5"]
    assert row[0] == schedule["schedule_id"][:8]
    assert row[1:7] == ["*/5", "*", "*", "*", "*", "active"]

    assert invoke(uri, "pipelines schedules pause every5").stdout == "Paused schedule every5.\n"
    assert rows_of(invoke(uri, "pipelines schedules list").stdout, "Name")["every5"][6] == "paused"
    resumed = invoke(uri, f"pipelines schedules resume {schedule['schedule_id'][:6]}")
    assert resumed.stdout.startswith("Resumed schedule every5; next run ")
    assert rows_of(invoke(uri, "pipelines schedules list").stdout, "Name")["every5"][6] == "active"

    deleted = invoke(uri, f"pipelines schedules delete {schedule['schedule_id']}")
    assert deleted.stdout == "Deleted schedule every5.\n"
    assert invoke(uri, "pipelines schedules list").stdout == "No schedules.\n"
    assert_error(invoke(uri, "pipelines schedules delete every5"), "No schedule with name or id")


def test_schedule_checks_cron_params_and_name_now(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", FLOW)
    assert_error(
        invoke(uri, f"pipelines schedule {path} --cron '61 * * * *'"),
        "minute 61 is out of range 0-59",
    )
    assert_error(
        invoke(uri, f"pipelines schedule {path} --cron @daily --param n=x"),
        "Parameter n (int): 'x' is not a valid int",
    )
    assert_error(
        invoke(uri, f"pipelines schedule {path} --cron @daily --param size=1"),
        "has no parameter 'size'",
    )
    assert invoke(uri, f"pipelines schedule {path} --cron @daily").exit_code == 0
    assert_error(
        invoke(uri, f"pipelines schedule {path} --cron @hourly"),
        "A schedule named 'squares' already exists",
    )


def test_schedule_needs_the_required_params(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "need.py", FLOW.replace("n: int = 3", "n: int"))
    assert_error(invoke(uri, f"pipelines schedule {path} --cron @daily"), "needs a value for n")


def test_run_with_an_unknown_schedule_id_is_refused(uri: str, tmp_path: Path) -> None:
    path = write(tmp_path, "flow.py", FLOW)
    assert_error(invoke(uri, f"pipelines run {path} --schedule-id nope"), "nope")


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["pipelines", "--help"])
    assert result.exit_code == 0
    for name in ("run", "resume", "cancel", "list", "show", "logs", "compile", "schedule"):
        assert f"  {name} " in result.stdout
    assert "--schedule-id" not in CliRunner().invoke(cli, ["pipelines", "run", "--help"]).stdout
