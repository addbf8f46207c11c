"""Artifact previews: text, JSON, CSV, binary and cut-off files, and MLmodel summaries, on a
real local artifact store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slipway.artifacts.local import LocalArtifactRepository
from slipway.exceptions import ResourceDoesNotExist
from slipway.ui.artifacts import (
    CSV_ROWS,
    PREVIEW_BYTES,
    file_kind,
    make_preview,
    model_summary,
    read_preview,
)


@pytest.fixture
def repo(tmp_path: Path) -> LocalArtifactRepository:
    return LocalArtifactRepository(str(tmp_path / "artifacts"))


def test_kinds_follow_the_name() -> None:
    assert file_kind("plots/a.PNG") == "image"
    assert file_kind("a.svg") == "text"  # SVG can hold script: never an <img> source here
    assert file_kind("m/MLmodel") == "yaml"
    assert file_kind("t.tsv") == "tsv"
    assert file_kind("weights.bin") == "other"
    assert file_kind(".json") == "other"  # a dot file, not a JSON file


def test_a_huge_text_file_is_cut_off_with_a_note(repo: LocalArtifactRepository) -> None:
    line = "é" * 99 + "\n"  # two bytes a character: the cut lands inside one
    repo.log_bytes((line * 3000).encode(), "big.log")
    preview = read_preview(repo, "big.log")
    assert preview.kind == "text"
    assert preview.truncated
    assert preview.size == 3000 * len(line.encode())
    assert len(preview.text.encode()) <= PREVIEW_BYTES
    assert preview.text.startswith(line)
    assert preview.notes == [
        "Showing the first 256.0 KB (262,144 bytes) of 583.0 KB (597,000 bytes); "
        "download the file for the rest."
    ]


def test_binary_files_are_described_not_shown(repo: LocalArtifactRepository) -> None:
    repo.log_bytes(bytes(range(256)) * 10, "model.bin")
    repo.log_bytes("ok".encode("utf-16"), "utf16.txt")
    repo.log_bytes(b"\xff\xfe\xfa not utf-8", "latin.txt")
    for path, size in (
        ("model.bin", "2.5 KB (2,560 bytes)"),
        ("utf16.txt", "6 bytes"),
        ("latin.txt", "13 bytes"),
    ):
        preview = read_preview(repo, path)
        assert preview.kind == "binary", path
        assert preview.text == ""
        assert preview.notes == [f"Binary file, {size}."], path
    big = make_preview("x.bin", b"\x00" * 100, complete=False, size=None)
    assert big.notes == ["Binary file, over 100 bytes."]


def test_json_is_pretty_printed_and_bad_json_is_shown_as_text(
    repo: LocalArtifactRepository,
) -> None:
    repo.log_bytes(json.dumps({"b": [1, 2], "a": "<x>"}).encode(), "conf.json")
    repo.log_bytes(b"{not json", "broken.json")
    good = read_preview(repo, "conf.json")
    assert good.kind == "json"
    assert good.text == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "<x>"\n}'
    bad = read_preview(repo, "broken.json")
    assert bad.kind == "text"
    assert bad.text == "{not json"
    assert bad.notes == ["Not valid JSON: shown as text."]


def test_csv_shows_the_first_rows_as_a_table(repo: LocalArtifactRepository) -> None:
    rows = ["a,b,c"] + [f'{i},"x, {i}",<b>' for i in range(1000)]
    repo.log_bytes("\n".join(rows).encode(), "data.csv")
    preview = read_preview(repo, "data.csv")
    assert preview.kind == "csv"
    assert preview.rows[0] == ["a", "b", "c"]
    assert preview.rows[1] == ["0", "x, 0", "<b>"]
    assert len(preview.rows) == CSV_ROWS + 1
    assert preview.notes == [f"Showing the first {CSV_ROWS} rows."]
    repo.log_bytes(b"k\tv\n1\t2\n", "small.tsv")
    assert read_preview(repo, "small.tsv").rows == [["k", "v"], ["1", "2"]]


def test_empty_and_missing_files(repo: LocalArtifactRepository) -> None:
    repo.log_bytes(b"", "empty.txt")
    assert read_preview(repo, "empty.txt").kind == "empty"
    with pytest.raises(ResourceDoesNotExist):
        read_preview(repo, "absent.txt")


MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    loader_module: slipway.flavors.sklearn
    python_version: 3.11.9
  sklearn:
    pickled_model: model.pkl
    sklearn_version: 1.5.0
run_id: abc123
signature:
  inputs: '[{"type": "double", "name": "x", "required": true},
    {"type": "string", "name": "<b>", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'
  params: '[{"name": "k", "type": "long", "default": 3, "shape": null}]'
"""


def test_model_summary_lists_flavors_and_the_signature() -> None:
    summary = model_summary(MLMODEL)
    assert summary.error is None
    assert [name for name, _settings in summary.flavors] == ["python_function", "sklearn"]
    assert ("pickled_model", "model.pkl") in summary.flavors[1][1]
    assert summary.inputs == [
        {"name": "x", "type": "double", "detail": ""},
        {"name": "<b>", "type": "string", "detail": "optional"},
    ]
    assert summary.outputs == [{"name": "", "type": "tensor float64", "detail": "shape [-1]"}]
    assert summary.params == [{"name": "k", "type": "long", "detail": "default 3"}]
    assert ("run_id", "abc123") in summary.facts


def test_a_broken_mlmodel_gives_an_error_not_an_exception() -> None:
    assert model_summary("flavors: [unclosed").error is not None
    assert model_summary("- a list").error == "MLmodel is not a YAML mapping"
    odd = model_summary("flavors: 3\nsignature:\n  inputs: 'not json'\n")
    assert odd.flavors == []
    assert odd.inputs == [{"name": "", "type": "(not valid JSON)", "detail": "not json"}]
