"""Datasets from pandas, numpy and plain Python data: content digests, schema, profile, and
how they are recorded on runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import slipway
from slipway import Dataset, DatasetInput, SlipwayClient
from slipway.exceptions import InvalidParameterValue
from slipway.tracking.datasets import DIGEST_LENGTH, dataset_from


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0], "label": ["a", "b", "a"]})


def _digest(data: object) -> str:
    return dataset_from(data).dataset.digest


# -- digests -----------------------------------------------------------------------------------


def test_same_data_gives_the_same_digest() -> None:
    assert _digest(_frame()) == _digest(_frame())
    assert len(_digest(_frame())) == DIGEST_LENGTH
    assert all(c in "0123456789abcdef" for c in _digest(_frame()))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda df: df.assign(x=[1.0, 2.0, 3.5]), id="value"),
        pytest.param(lambda df: df.rename(columns={"x": "z"}), id="column-name"),
        pytest.param(lambda df: df.astype({"y": "float64"}), id="dtype"),
        pytest.param(lambda df: df.iloc[:2], id="fewer-rows"),
        pytest.param(lambda df: df[["y", "x", "label"]], id="column-order"),
        pytest.param(lambda df: df.set_axis([10, 11, 12]), id="index"),
        pytest.param(lambda df: df.assign(label=["a", "b", "c"]), id="string-value"),
    ],
)
def test_changed_data_gives_another_digest(
    change: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    assert _digest(change(_frame())) != _digest(_frame())


def test_numpy_digests() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert _digest(a) == _digest(a.copy())
    assert _digest(a) == _digest(np.asfortranarray(a))  # memory layout does not matter
    assert _digest(a) != _digest(a.reshape(4, 3))  # shape does
    assert _digest(a) != _digest(a.astype(np.float32))  # dtype does
    b = a.copy()
    b[2, 3] = -1
    assert _digest(a) != _digest(b)


def test_list_series_and_dict_digests() -> None:
    assert _digest([1, 2, 3]) == _digest([1, 2, 3])
    assert _digest([1, 2, 3]) != _digest([1, 2, 4])
    assert _digest(["a", None, 3]) == _digest(["a", None, 3])  # object arrays hash through JSON
    series = pd.Series([1, 2, 3], name="s")
    assert _digest(series) == _digest(series.to_frame())
    columns = {"x": [1.0, 2.0, 3.0], "y": [0, 1, 0], "label": ["a", "b", "a"]}
    assert _digest(columns) == _digest(_frame())


def test_a_dataset_passes_through_unchanged() -> None:
    ds = Dataset(name="given", digest="abc123", source_type="s3", source='{"uri": "s3://b/k"}')
    item = dataset_from(ds, name="ignored", context="eval")
    assert item.dataset is ds
    assert item.context == "eval"


# -- schema, profile, source and tags ----------------------------------------------------------


def test_dataframe_schema_and_profile() -> None:
    ds = dataset_from(_frame(), name="train").dataset
    assert ds.name == "train"
    assert json.loads(ds.schema or "") == {
        "columns": [
            {"name": "x", "type": "float64"},
            {"name": "y", "type": "int64"},
            {"name": "label", "type": str(_frame()["label"].dtype)},  # object, or str on pandas 3
        ]
    }
    assert json.loads(ds.profile or "") == {"num_rows": 3, "num_elements": 9}
    assert ds.source_type == "code"
    assert json.loads(ds.source) == {"type": "DataFrame"}


def test_numpy_schema_and_profile() -> None:
    ds = dataset_from(np.zeros((5, 3), dtype=np.int32)).dataset
    assert ds.name == "dataset"
    assert json.loads(ds.schema or "") == {"tensor": {"dtype": "int32", "shape": [-1, 3]}}
    assert json.loads(ds.profile or "") == {"num_rows": 5, "num_elements": 15}
    scalar = dataset_from(np.array(1.5)).dataset
    assert json.loads(scalar.profile or "") == {"num_rows": 1, "num_elements": 1}


def test_source_context_and_tags() -> None:
    item = dataset_from(
        _frame(), name="d", source="s3://bucket/train.csv", context="train", tags={"v": "2"}
    )
    assert item.dataset.source_type == "local"
    assert json.loads(item.dataset.source) == {"uri": "s3://bucket/train.csv"}
    assert item.context == "train"
    assert {(t.key, t.value) for t in item.tags} == {
        ("v", "2"),
        (DatasetInput.CONTEXT_TAG, "train"),
    }
    assert dataset_from(_frame()).context is None


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [object(), 42, "a string", None, {}, {"a": 1}],
    ids=["object", "int", "str", "None", "empty-dict", "dict-of-scalars"],
)
def test_unsupported_data_is_refused_clearly(data: object) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        dataset_from(data)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "as a dataset" in info.value.message
    assert "pandas DataFrame" in info.value.message


def test_dict_with_unequal_columns_is_refused() -> None:
    with pytest.raises(InvalidParameterValue, match="Cannot use this dict as a dataset"):
        dataset_from({"a": [1, 2], "b": [1, 2, 3]})


def test_ragged_list_is_refused_clearly() -> None:
    with pytest.raises(InvalidParameterValue):
        dataset_from([[1, 2], [3]])


def test_dataframe_with_list_cells_gets_a_digest() -> None:
    frame = pd.DataFrame({"tokens": [["a", "b"], ["c"]]})
    assert _digest(frame) == _digest(frame.copy())


# -- on runs -----------------------------------------------------------------------------------


def test_log_input_records_the_dataset_on_the_run(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        slipway.log_input(_frame(), name="train", context="training", tags={"split": "80"})
        slipway.log_input(np.ones((4, 2)), name="eval", context="evaluation")
    inputs = SlipwayClient().get_run(run.info.run_id).inputs.dataset_inputs
    by_name = {i.dataset.name: i for i in inputs}
    assert set(by_name) == {"train", "eval"}
    assert by_name["train"].context == "training"
    assert ("split", "80") in {(t.key, t.value) for t in by_name["train"].tags}
    assert by_name["train"].dataset.digest == _digest(_frame())
    assert by_name["eval"].context == "evaluation"


def test_logging_the_same_dataset_twice_records_it_once(tracking_dir: Path) -> None:
    with slipway.start_run() as run:
        slipway.log_input(_frame(), name="train")
        slipway.log_input(_frame(), name="train")
    inputs = SlipwayClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1


def test_runs_can_be_searched_by_dataset(tracking_dir: Path) -> None:
    with slipway.start_run() as a:
        slipway.log_input(_frame(), name="train", context="training")
    with slipway.start_run():
        slipway.log_input(_frame().iloc[:1], name="other", context="training")
    digest = _digest(_frame())
    found = slipway.search_runs(filter_string=f"datasets.digest = '{digest}'")
    assert [r.info.run_id for r in found] == [a.info.run_id]
    found = slipway.search_runs(filter_string="datasets.name = 'train'")
    assert [r.info.run_id for r in found] == [a.info.run_id]


def test_log_input_refuses_bad_data(tracking_dir: Path) -> None:
    with slipway.start_run(), pytest.raises(InvalidParameterValue, match="as a dataset"):
        slipway.log_input(object(), name="bad")
