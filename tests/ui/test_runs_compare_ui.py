"""The compare page in the browser: overlaid curves with the runs' names in the legend, the
param diff, the scatter and the parallel coordinates, each set from the page's controls."""

from __future__ import annotations

from typing import Any

from slipway.tracking.client import SlipwayClient

from .runs_data import make_run


def _runs(client: SlipwayClient) -> list[str]:
    exp = client.create_experiment("sweep")
    return [
        make_run(
            client,
            exp,
            name,
            params={"lr": lr, "layers": "3", "optimizer": opt},
            metrics={"loss": [1 / (i * float(lr) + 1) for i in range(50)], "acc": [acc]},
        )
        for name, lr, opt, acc in (
            ("small-lr", "0.01", "sgd", 0.7),
            ("big-lr", "0.5", "adam", 0.9),
            ("mid-lr", "0.1", "adam", 0.8),
        )
    ]


def test_curves_are_overlaid_and_params_diffed(page: Any, client: SlipwayClient) -> None:
    ids = _runs(client)
    page.goto("/compare?" + "&".join(f"runs={i}" for i in ids[:2]) + "&metric=loss")
    chart = page.locator("#chart svg.chart")
    assert chart.get_attribute("aria-label") == "loss of 2 runs"
    assert chart.locator("g.series").count() == 2
    assert chart.locator("g.legend-item").evaluate_all(
        "items => items.map(i => i.getAttribute('data-label'))"
    ) == ["small-lr", "big-lr"]
    assert chart.locator("path.line").evaluate_all(
        "paths => paths.map(p => p.getAttribute('data-points'))"
    ) == ["50", "50"]
    legend = page.get_by_role("list", name="Compared runs")
    assert legend.get_by_role("link", name="small-lr", exact=True).is_visible()

    table = page.locator("#param-table")
    lr = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="lr"))
    layers = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="layers"))
    assert lr.get_attribute("class") == "differs"
    assert "values differ" in lr.inner_text()
    assert layers.get_attribute("class") is None
    page.get_by_label("Only params that differ").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()
    assert "diff=1" in page.url
    assert table.get_by_role("rowheader", name="layers").count() == 0
    assert table.get_by_role("rowheader", name="lr").is_visible()
    assert page.locator("#chart svg.chart g.series").count() == 2  # the chart stays

    page.get_by_role("combobox", name="Metric").select_option("acc")
    with page.expect_navigation():
        page.get_by_role("button", name="Draw").click()
    assert "metric=acc" in page.url
    assert "diff=1" in page.url
    assert page.locator("#chart svg.chart").get_attribute("aria-label") == "acc of 2 runs"
    # Removing a run from the comparison.
    with page.expect_navigation():
        page.get_by_role("link", name="Remove big-lr from the comparison").click()
    assert page.get_by_role("heading", name="Compare 1 run", exact=True).is_visible()


def test_scatter_and_parallel_coordinates(page: Any, client: SlipwayClient) -> None:
    ids = _runs(client)
    page.goto("/compare?" + "&".join(f"runs={i}" for i in ids))
    scatter = page.locator("#scatter svg.chart")
    assert scatter.locator("circle.dot").count() == 3
    page.get_by_label("X", exact=True).select_option("params.optimizer")
    page.get_by_label("Y", exact=True).select_option("metrics.acc")
    with page.expect_navigation():
        page.get_by_role("button", name="Plot").click()
    assert "sx=params.optimizer" in page.url
    assert "sy=metrics.acc" in page.url
    assert scatter.get_attribute("aria-label") == "metrics.acc against params.optimizer"
    labels = scatter.locator("text").all_text_contents()
    assert "adam" in labels
    assert "sgd" in labels
    dots = scatter.locator("circle.dot")
    assert dots.count() == 3
    # Runs with the same optimizer sit on the same vertical line.
    xs = dots.evaluate_all("ds => ds.map(d => d.getAttribute('cx'))")
    assert xs[1] == xs[2] != xs[0]

    parallel = page.locator("#parallel svg.chart")
    assert parallel.locator("path.pc-line").count() == 3
    page.get_by_text("Axes (").click()
    page.get_by_label("Find a key").fill("acc")
    page.get_by_role("checkbox", name="metrics.acc").check()
    page.get_by_label("Find a key").fill("")
    with page.expect_navigation():
        page.get_by_role("button", name="Draw", exact=True).last.click()
    assert "pc=metrics.acc" in page.url
    axes = parallel.locator("g.pc-axis").evaluate_all(
        "axes => axes.map(a => a.getAttribute('data-label'))"
    )
    assert axes == ["params.lr", "params.optimizer", "metrics.acc", "metrics.loss"]
    assert page.locator("#scatter svg.chart").get_attribute("aria-label") == (
        "metrics.acc against params.optimizer"
    )  # the scatter's choice is kept
