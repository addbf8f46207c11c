"""The runs table in the browser: runs made through the SDK appear, the filter narrows them
(or says what is wrong next to the box), headers sort, the column chooser adds columns, and
picked runs open the compare page."""

from __future__ import annotations

from typing import Any

from slipway.tracking.client import SlipwayClient

from .runs_data import T0, make_run


def _names(page: Any) -> list[str]:
    return page.locator("table.runs tbody tr[data-run-id] td:nth-child(2) a").all_inner_texts()


def _experiment_with_runs(client: SlipwayClient) -> str:
    exp = client.create_experiment("vision")
    make_run(
        client,
        exp,
        "alpha",
        params={"lr": "0.1", "batch": "32"},
        metrics={"loss": [1.0, 0.6, 0.3], "acc": [0.7]},
        tags={"team": "red"},
        start=T0,
    )
    make_run(
        client,
        exp,
        "beta",
        params={"lr": "0.01", "batch": "64"},
        metrics={"loss": [1.0, 0.9, 0.8], "acc": [0.9]},
        tags={"team": "blue"},
        start=T0 + 60_000,
    )
    make_run(
        client,
        exp,
        "gamma",
        params={"lr": "0.5", "batch": "32"},
        metrics={"loss": [2.0, 0.05], "acc": [0.4]},
        start=T0 + 120_000,
    )
    return exp


def test_runs_appear_and_the_filter_narrows_them(page: Any, client: SlipwayClient) -> None:
    exp = _experiment_with_runs(client)
    page.goto("/experiments")
    with page.expect_navigation():
        page.get_by_role("link", name="vision").click()
    assert page.get_by_role("heading", name="Runs of vision").is_visible()
    assert _names(page) == ["gamma", "beta", "alpha"]  # newest first
    table = page.get_by_role("table", name="Runs")
    assert table.get_by_role("columnheader", name="metrics.loss").is_visible()
    beta = table.get_by_role("row").filter(has_text="beta")
    assert "0.8" in beta.inner_text()  # the latest loss
    assert "1.0s" in beta.inner_text()  # the duration

    page.get_by_label("Filter runs").fill("metrics.loss < 0.5 and params.batch = '32'")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    assert _names(page) == ["gamma", "alpha"]
    assert "filter=metrics.loss" in page.url  # shareable

    page.get_by_label("Filter runs").fill("metrics.loss <")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    alert = page.get_by_role("alert")
    assert "Invalid filter" in alert.inner_text()
    assert page.get_by_label("Filter runs").get_attribute("aria-describedby") == "filter-error"
    assert page.get_by_label("Filter runs").input_value() == "metrics.loss <"
    assert _names(page) == []
    assert page.get_by_text("No runs match.").is_visible()
    # Several experiments at once, from the experiments page.
    other = client.create_experiment("audio")
    make_run(client, other, "delta", start=T0 + 500_000)
    page.goto("/experiments")
    page.get_by_role("checkbox", name="Pick vision").check()
    page.get_by_role("checkbox", name="Pick audio").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Runs of the picked experiments").click()
    assert _names(page) == ["delta", "gamma", "beta", "alpha"]
    assert page.get_by_role("columnheader", name="Experiment").is_visible()
    assert exp in page.url


def test_sorting_by_a_metric_column_reorders_the_rows(page: Any, client: SlipwayClient) -> None:
    exp = _experiment_with_runs(client)
    page.goto(f"/experiments/{exp}/runs")
    started = page.get_by_role("columnheader", name="Started")
    assert started.get_attribute("aria-sort") == "descending"
    with page.expect_navigation():
        page.get_by_role("link", name="metrics.loss").click()
    assert _names(page) == ["gamma", "alpha", "beta"]  # 0.05, 0.3, 0.8
    header = page.get_by_role("columnheader", name="metrics.loss")
    assert header.get_attribute("aria-sort") == "ascending"
    assert page.get_by_role("columnheader", name="Started").get_attribute("aria-sort") is None
    with page.expect_navigation():
        page.get_by_role("link", name="metrics.loss").click()
    assert _names(page) == ["beta", "alpha", "gamma"]
    assert header.get_attribute("aria-sort") == "descending"
    with page.expect_navigation():
        page.get_by_role("link", name="Name").click()
    assert _names(page) == ["alpha", "beta", "gamma"]


def test_choosing_columns_adds_and_removes_them(page: Any, client: SlipwayClient) -> None:
    exp = _experiment_with_runs(client)
    page.goto(f"/experiments/{exp}/runs")
    table = page.get_by_role("table", name="Runs")
    assert table.get_by_role("columnheader", name="tags.team").count() == 0
    page.get_by_text("Columns (").click()
    # The find box narrows the long list of keys.
    page.get_by_label("Find a key").fill("tea")
    assert page.get_by_role("checkbox", name="lr", exact=True).is_hidden()
    page.get_by_role("checkbox", name="team").check()
    page.get_by_label("Find a key").fill("")
    page.get_by_role("checkbox", name="acc", exact=True).uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Show the ticked columns").click()
    assert "cols=tags.team" in page.url
    assert table.get_by_role("columnheader", name="tags.team").is_visible()
    assert table.get_by_role("columnheader", name="metrics.acc").count() == 0
    red = table.get_by_role("row").filter(has_text="alpha")
    assert "red" in red.inner_text()
    # Sorting keeps the chosen columns.
    with page.expect_navigation():
        page.get_by_role("link", name="tags.team").click()
    assert "cols=tags.team" in page.url
    assert _names(page)[:2] == ["beta", "alpha"]  # blue, red; gamma has no team tag


def test_picked_runs_are_compared_with_overlaid_curves(page: Any, client: SlipwayClient) -> None:
    exp = _experiment_with_runs(client)
    # Sorted by loss, so the compare page opens on loss.
    page.goto(f"/experiments/{exp}/runs?order_by=metrics.loss+ASC")
    page.get_by_role("checkbox", name="Select alpha").check()
    page.get_by_role("checkbox", name="Select beta").check()
    button = page.get_by_role("button", name="Compare 2 selected runs")
    with page.expect_navigation():
        button.click()
    assert "/compare?" in page.url
    assert page.get_by_role("heading", name="Compare 2 runs").is_visible()
    chart = page.locator("#chart svg.chart")
    assert chart.get_attribute("aria-label") == "loss of 2 runs"
    series = chart.locator("g.series")
    assert series.count() == 2
    assert {series.nth(i).get_attribute("data-label") for i in range(2)} == {"alpha", "beta"}
    legend = chart.locator("g.legend text").all_text_contents()
    assert sorted(legend) == ["alpha", "beta"]
    # Select all on the page, then none.
    page.go_back()
    everything = page.get_by_role("checkbox", name="Select every run on this page")
    everything.check()
    assert page.get_by_role("button", name="Compare 3 selected runs").is_visible()
    everything.uncheck()
    assert page.get_by_role("button", name="Compare selected runs").is_visible()
