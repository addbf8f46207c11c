"""One run in the browser: its info, params, metrics, datasets and chart; tags and the note
edited through the page (read back through the SDK); the artifact browser with a logged model,
an image, a huge file and a binary one; markup from the data shown as text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import slipway
from slipway.entities import Dataset, DatasetInput, InputTag
from slipway.registry.store import clear_registry_store_cache
from slipway.tracking import fluent
from slipway.tracking import uri as uris
from slipway.tracking.client import SlipwayClient

from .runs_data import make_run, tiny_png

MARKUP = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
FILE_MARKUP = '<img src=x onerror="alert(3)">.html'  # no "/": that would make a folder


@pytest.fixture
def fluent_on_server(
    server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The fluent API (which ``slipway.sklearn.log_model`` uses) pointed at the live server,
    with no run left active afterwards."""
    monkeypatch.chdir(tmp_path)
    for var in ("SLIPWAY_TRACKING_URI", "SLIPWAY_EXPERIMENT_ID", "SLIPWAY_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    slipway.set_tracking_uri(server_url)
    slipway.set_experiment(f"models-{uuid.uuid4().hex[:8]}")
    yield server_url
    while fluent.active_run() is not None:
        fluent.end_run()
    fluent.set_tracking_uri(None)
    uris.clear_store_cache()
    clear_registry_store_cache()


def test_the_run_page_shows_the_run_and_edits_tags_and_the_note(
    page: Any, client: SlipwayClient
) -> None:
    exp = client.create_experiment("fraud")
    parent = make_run(client, exp, "sweep")
    run_id = make_run(
        client,
        exp,
        "trial-1",
        params={"lr": "0.01", "optimizer": "adam"},
        metrics={"loss": [float(10 - i) for i in range(10)], "acc": [0.5, 0.9]},
        tags={"team": "risk", "mlflow.parentRunId": parent, "mlflow.source.name": "train.py"},
    )
    dataset = Dataset("transactions", "d1g3st", "local", '{"uri": "/data/tx.parquet"}')
    client.log_inputs(run_id, [DatasetInput(dataset, (InputTag("mlflow.data.context", "train"),))])
    page.goto(f"/runs/{run_id}")
    assert page.get_by_role("heading", name="trial-1").is_visible()
    info = page.locator("#run-info")
    assert run_id in info.inner_text()
    assert "FINISHED" in info.inner_text()
    assert "train.py" in info.inner_text()
    assert (
        info.get_by_role("link", name="fraud").get_attribute("href") == f"/experiments/{exp}/runs"
    )
    params = page.get_by_role("table", name="Params (2)")
    assert params.get_by_role("row").filter(has_text="optimizer").inner_text().split() == [
        "optimizer",
        "adam",
    ]
    metrics = page.get_by_role("table", name="Metrics (2)")
    assert "1" in metrics.get_by_role("row").filter(has_text="loss").inner_text()
    datasets = page.get_by_role("table", name="Datasets (1)").inner_text()
    assert "transactions" in datasets
    assert "d1g3st" in datasets
    assert "train" in datasets
    # The chart opens on loss; a metric's link switches it.
    chart = page.locator("#chart svg.chart")
    assert chart.get_attribute("aria-label") == "loss of trial-1"
    assert chart.locator("path.line").get_attribute("data-points") == "10"
    with page.expect_navigation():
        metrics.get_by_role("link", name="acc").click()
    assert page.locator("#chart svg.chart").get_attribute("aria-label") == "acc of trial-1"
    # The parent run is a link; the parent lists its child.
    with page.expect_navigation():
        info.get_by_role("link", name="sweep").click()
    assert page.get_by_role("heading", name="Child runs (1)").is_visible()
    page.goto(f"/runs/{run_id}")

    page.get_by_label("Tag key").fill("reviewed by")
    page.get_by_label("Tag value").fill("ana")
    with page.expect_navigation():
        page.get_by_role("button", name="Set tag").click()
    assert client.get_run(run_id).data.tags["reviewed by"] == "ana"
    assert page.get_by_role("row").filter(has_text="reviewed by").is_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Delete tag team").click()
    assert "team" not in client.get_run(run_id).data.tags
    assert page.get_by_role("button", name="Delete tag team").count() == 0

    page.get_by_role("textbox", name="Note").fill("Best so far.\nTry a lower lr next.")
    with page.expect_navigation():
        page.get_by_role("button", name="Save note").click()
    note = client.get_run(run_id).data.tags["mlflow.note.content"]
    assert note == "Best so far.\nTry a lower lr next."
    assert page.get_by_role("textbox", name="Note").input_value() == note
    page.get_by_role("textbox", name="Note").fill("")
    with page.expect_navigation():
        page.get_by_role("button", name="Save note").click()
    assert "mlflow.note.content" not in client.get_run(run_id).data.tags


def test_dragging_across_the_chart_zooms_into_that_range(page: Any, client: SlipwayClient) -> None:
    exp = client.create_experiment("zoom")
    run_id = make_run(client, exp, "long", metrics={"loss": [1 / (i + 1) for i in range(500)]})
    page.goto(f"/runs/{run_id}")
    chart = page.locator("#chart svg.chart")
    box = chart.bounding_box()
    y = box["y"] + box["height"] * 0.4
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
    with page.expect_navigation():
        page.mouse.up()
    assert "xmin=" in page.url
    assert "xmax=" in page.url
    xmin = float(page.get_by_label("From x").input_value())
    xmax = float(page.get_by_label("to", exact=True).input_value())
    assert 100 < xmin < xmax < 250
    drawn = int(page.locator("#chart svg.chart path.line").get_attribute("data-points"))
    assert drawn < 200
    with page.expect_navigation():
        page.get_by_role("link", name="Reset zoom").click()
    assert "xmin" not in page.url
    # Settings by hand: time on x, smoothing, log scale.
    page.get_by_label("X axis").select_option("relative")
    page.get_by_label("Smoothing").fill("0.8")
    page.get_by_label("Log scale").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Draw").click()
    assert "x=relative" in page.url
    assert "smooth=0.8" in page.url
    assert "log=1" in page.url
    assert page.locator("#chart svg.chart path.raw").count() == 1
    assert page.locator("#chart svg.chart").get_attribute("data-x-lo") == "0.0"


def test_artifacts_are_browsed_and_previewed(
    page: Any, client: SlipwayClient, fluent_on_server: str
) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame(np.random.default_rng(0).random((20, 2)), columns=["age", "income"])
    model = LogisticRegression().fit(frame, (frame["age"] > 0.5).astype(int))
    with slipway.start_run(run_name="with-model") as run:
        slipway.sklearn.log_model(
            model, "model", input_example=frame.head(2), pip_requirements=["scikit-learn"]
        )
    run_id = run.info.run_id
    repo = client.artifact_repository(run_id)
    repo.log_bytes(b"epoch,loss\n1,0.5\n2,0.25\n", "metrics.csv")
    repo.log_bytes(tiny_png(), "plots/red.png")
    repo.log_bytes(("line of text\n" * 40_000).encode(), "logs/train.log")
    repo.log_bytes(bytes(range(256)) * 4, "weights.bin")

    page.goto(f"/runs/{run_id}")
    with page.expect_navigation():
        page.get_by_role("link", name="Browse artifacts").click()
    files = page.get_by_role("table", name="Files")
    assert files.get_by_role("link").all_inner_texts() == [
        "logs/",
        "metrics.csv",
        "model/",
        "plots/",
        "weights.bin",
    ]
    with page.expect_navigation():
        files.get_by_role("link", name="model/").click()
    flavors = page.get_by_role("table", name="Flavors")
    assert flavors.get_by_role("rowheader", name="sklearn").is_visible()
    assert flavors.get_by_role("rowheader", name="python_function").is_visible()
    inputs = page.get_by_role("table", name="Signature inputs").inner_text()
    assert "age" in inputs
    assert "income" in inputs
    assert "double" in inputs
    assert page.get_by_role("table", name="Files").get_by_role("link", name="MLmodel").count() == 1

    page.goto(f"/runs/{run_id}/artifacts?path=metrics.csv")
    rows = page.get_by_role("table", name="Rows of metrics.csv")
    assert rows.get_by_role("columnheader").all_inner_texts() == ["epoch", "loss"]
    assert rows.get_by_role("row").count() == 3

    page.goto(f"/runs/{run_id}/artifacts?path=plots")
    with page.expect_navigation():
        page.get_by_role("link", name="red.png").click()
    image = page.get_by_role("img", name="red.png")
    image.wait_for()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 3

    page.goto(f"/runs/{run_id}/artifacts?path=logs/train.log")
    assert "Showing the first 256.0 KB" in page.get_by_role("note").inner_text()
    text = page.locator("pre.artifact-text").inner_text()
    assert text.startswith("line of text\n")
    assert len(text) <= 256 * 1024

    page.goto(f"/runs/{run_id}/artifacts?path=weights.bin")
    assert page.get_by_role("note").inner_text() == "Binary file, 1.0 KB (1,024 bytes)."
    assert page.locator("pre").count() == 0
    download = page.get_by_role("link", name="Download")
    assert download.get_attribute("href") == f"/runs/{run_id}/artifact?path=weights.bin"


def test_markup_in_the_data_is_shown_as_text(page: Any, client: SlipwayClient) -> None:
    exp = client.create_experiment("xss")
    run_id = make_run(
        client, exp, MARKUP, params={"p": MARKUP}, metrics={"m": [1.0]}, tags={"t": MARKUP}
    )
    client.log_text(run_id, MARKUP, FILE_MARKUP)
    page.goto(f"/experiments/{exp}/runs?cols=params.p&cols=tags.t")
    assert page.get_by_role("link", name=MARKUP).is_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=MARKUP))
    assert row.inner_text().count(MARKUP) == 3  # name, param, tag
    with page.expect_navigation():
        page.get_by_role("link", name=MARKUP).click()
    assert page.get_by_role("heading", name=MARKUP).is_visible()
    assert page.get_by_role("row").filter(has_text="alert(1)").count() == 2  # param and tag
    assert page.locator("img").count() == 0
    page.goto(f"/runs/{run_id}/artifacts")
    link = page.get_by_role("link", name=FILE_MARKUP)
    with page.expect_navigation():
        link.click()
    assert page.locator("pre.artifact-text").inner_text() == MARKUP
    assert page.locator("img").count() == 0
    page.goto(f"/compare?runs={run_id}")
    assert page.get_by_role("link", name=MARKUP).first.is_visible()


def test_an_unknown_run_is_a_404_page(page: Any, client: SlipwayClient) -> None:
    response = page.goto("/runs/" + "0" * 32)
    assert response.status == 404
    assert page.get_by_role("heading", name="Not found").is_visible()
    assert "0" * 32 in page.get_by_role("alert").inner_text()
