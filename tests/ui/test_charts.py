"""Server-side SVG charts: downsampling, smoothing, log scales, empty histories, escaping, and
the chart endpoints' point bound on long histories."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import httpx
import pytest

from slipway.entities import Metric
from slipway.exceptions import InvalidParameterValue
from slipway.tracking.client import SlipwayClient
from slipway.ui import charts
from slipway.ui.history import MAX_POINTS, ChartOptions

from .runs_data import T0, make_run

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+) ([-\d.]+)", d)]


def test_downsample_keeps_the_bound_the_ends_and_the_spikes() -> None:
    points = [(float(i), math.sin(i / 50)) for i in range(100_000)]
    points[54_321] = (54_321.0, 40.0)  # a spike
    points[77_777] = (77_777.0, -40.0)
    kept = charts.downsample(points, 1000)
    assert len(kept) <= 1000
    assert kept[0] == points[0]
    assert kept[-1] == points[-1]
    assert (54_321.0, 40.0) in kept
    assert (77_777.0, -40.0) in kept
    assert [p[0] for p in kept] == sorted(p[0] for p in kept)
    assert charts.downsample(points[:10], 1000) == points[:10]
    assert len(charts.downsample(points, 3)) <= 3


def test_ema_smooths_without_pulling_the_start_towards_zero() -> None:
    assert charts.ema([1.0, 5.0, 2.0], 0) == [1.0, 5.0, 2.0]
    flat = charts.ema([3.0] * 50, 0.9)
    assert all(v == pytest.approx(3.0) for v in flat)  # bias correction: no ramp up from 0
    noisy = [(-1.0) ** i for i in range(200)]
    smooth = charts.ema(noisy, 0.95)
    assert max(abs(v) for v in smooth[50:]) < 0.1


def test_linear_ticks_are_round_and_inside_the_range() -> None:
    assert charts.linear_ticks(0, 1, 5) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ticks = charts.linear_ticks(-3.7, 12.2, 6)
    assert all(-3.7 <= t <= 12.2 for t in ticks)
    assert all(t == round(t) for t in ticks)
    assert charts.linear_ticks(5, 5) == [5]


def test_line_chart_draws_each_series_with_a_legend_of_names() -> None:
    series = [
        charts.Series("run <a>", [(0, 1.0), (1, 0.5), (2, 0.25)], charts.color(0)),
        charts.Series("run & b", [(0, 2.0), (1, 1.0)], charts.color(1)),
    ]
    svg = charts.line_chart(series, title="loss", x_label="step", y_label="loss")
    root = _parse(str(svg))
    assert root.get("role") == "img"
    assert root.get("aria-label") == "loss"
    assert root.find(f"{SVG}title").text == "loss"
    groups = root.findall(f".//{SVG}g[@class='series']")
    assert [g.get("data-label") for g in groups] == ["run <a>", "run & b"]
    legend = [t.text for t in root.findall(f".//{SVG}g[@class='legend']//{SVG}text")]
    assert legend == ["run <a>", "run & b"]
    assert "<a>" not in str(svg)  # escaped in the markup, whole again once parsed
    lines = root.findall(f".//{SVG}path[@class='line']")
    assert [len(_path_points(p.get("d", ""))) for p in lines] == [3, 2]
    # Lower values are drawn lower: the y axis points up.
    first = _path_points(lines[0].get("d", ""))
    assert first[0][1] < first[-1][1]


def test_log_scale_leaves_out_non_positive_values_and_says_so() -> None:
    series = [charts.Series("r", [(0, -1.0), (1, 0.0), (2, 10.0), (3, 1000.0)])]
    root = _parse(str(charts.line_chart(series, title="t", x_label="step", log_y=True)))
    (line,) = root.findall(f".//{SVG}path[@class='line']")
    assert len(_path_points(line.get("d", ""))) == 2
    notes = [t.text for t in root.findall(f".//{SVG}text[@class='chart-note']")]
    assert notes == ["2 points at or below zero are left out on the log scale"]
    # Log ticks are powers of ten.
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert {"10", "100", "1000"} <= labels
    nothing = [charts.Series("r", [(0, 0.0), (1, -5.0)])]
    empty = _parse(str(charts.line_chart(nothing, title="t", x_label="step", log_y=True)))
    assert empty.find(f".//{SVG}text[@class='chart-empty']").text == "No points to draw"


def test_an_empty_history_is_a_chart_that_says_so() -> None:
    root = _parse(str(charts.line_chart([charts.Series("r", [])], title="t", x_label="step")))
    assert root.find(f".//{SVG}text[@class='chart-empty']").text == "No points to draw"
    assert not root.findall(f".//{SVG}path")


def test_time_axis_labels_are_clock_times() -> None:
    series = [charts.Series("r", [(T0, 1.0), (T0 + 120_000, 2.0)])]
    svg = str(charts.line_chart(series, title="t", x_label="time", x_kind="time"))
    labels = [t.text or "" for t in _parse(svg).iter(f"{SVG}text")]
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d", label) for label in labels)


def test_dimensions_are_numeric_or_categorical() -> None:
    numeric = charts.Dimension("params.lr", ["0.1", "0.01", None])
    assert numeric.numbers == [0.1, 0.01, None]
    positions, _ticks = numeric.positions()
    assert positions[2] is None
    assert positions[0] > positions[1]
    words = charts.Dimension("params.opt", ["adam", "sgd", "adam"])
    assert words.numbers is None
    assert words.categories == ["adam", "sgd"]
    where, ticks = words.positions()
    assert where[0] == where[2] != where[1]
    assert [label for _f, label in ticks] == ["adam", "sgd"]


def test_scatter_and_parallel_coordinates_escape_and_count() -> None:
    labels = ["<b>one</b>", "two", "three"]
    x = charts.Dimension("params.lr", ["0.1", "0.2", None])
    y = charts.Dimension("metrics.loss", [1.0, 0.5, 0.2])
    scatter = _parse(str(charts.scatter_chart(labels, x, y, title="s")))
    dots = scatter.findall(f".//{SVG}circle[@class='dot']")
    assert [d.get("data-label") for d in dots] == ["<b>one</b>", "two"]
    note = scatter.find(f".//{SVG}text[@class='chart-note']")
    assert note is not None
    assert note.text == "1 runs lack one of the two values"
    opt = charts.Dimension("params.opt", ["adam", "<i>sgd</i>", "adam"])
    parallel = charts.parallel_chart(labels, [x, opt, y], title="p")
    root = _parse(str(parallel))
    lines = root.findall(f".//{SVG}path[@class='pc-line']")
    assert len(lines) == 3
    # The third run has no lr: its line starts at the second axis.
    assert len(_path_points(lines[2].get("d", ""))) == 2
    assert "<i>" not in str(parallel)
    one_axis = _parse(str(charts.parallel_chart(labels, [x], title="p")))
    assert one_axis.find(f".//{SVG}text[@class='chart-empty']") is not None


def test_chart_options_read_and_write_the_query_string() -> None:
    options = ChartOptions.parse(
        {"x": "time", "smooth": "0.6", "log": "1", "xmin": str(T0), "xmax": "1800000001234"},
        "loss",
    )
    assert options == ChartOptions("loss", "time", 0.6, True, float(T0), 1800000001234.0)
    assert options.query() == {
        "metric": "loss",
        "x": "time",
        "smooth": "0.6",
        "log": "1",
        "xmin": str(T0),
        "xmax": "1800000001234",  # every digit kept
    }
    with pytest.raises(InvalidParameterValue, match="x must be one of"):
        ChartOptions.parse({"x": "epoch"}, "loss")
    with pytest.raises(InvalidParameterValue, match="finite"):
        ChartOptions.parse({"xmin": "inf"}, "loss")


@pytest.fixture
def http(server_url: str) -> httpx.Client:
    with httpx.Client(base_url=server_url, timeout=60) as session:
        yield session


def _drawn(svg: str) -> list[int]:
    root = _parse(svg)
    return [int(p.get("data-points", "0")) for p in root.findall(f".//{SVG}*[@class='line']")]


def test_long_histories_are_downsampled_on_the_server(
    http: httpx.Client, client: SlipwayClient
) -> None:
    exp = client.create_experiment("long")
    values = [math.cos(i / 300) for i in range(5000)]
    run_id = make_run(client, exp, "long", metrics={"loss": values})
    for x in ("step", "time", "relative"):
        svg = http.get(f"/runs/{run_id}/chart.svg", params={"metric": "loss", "x": x}).text
        (count,) = _drawn(svg)
        assert 2 <= count <= MAX_POINTS, x
    # A zoom draws only its range.
    zoom = http.get(
        f"/runs/{run_id}/chart.svg", params={"metric": "loss", "xmin": "100", "xmax": "199"}
    ).text
    assert _drawn(zoom) == [100]
    root = _parse(zoom)
    assert (root.get("data-x-lo"), root.get("data-x-hi")) == ("100.0", "199.0")
    # So does a zoom in time: seconds 100 to 199.5 since the first point (one a second).
    zoom = http.get(
        f"/runs/{run_id}/chart.svg",
        params={"metric": "loss", "x": "relative", "xmin": "100", "xmax": "199.5"},
    ).text
    assert _drawn(zoom) == [100]
    when = http.get(
        f"/runs/{run_id}/chart.svg",
        params={"metric": "loss", "x": "time", "xmin": str(T0 + 4_000_000)},
    ).text
    (count,) = _drawn(when)  # steps 4000 to 4999 hold 1000 points, a second apart: the
    assert 990 <= count <= 1000  # store samples the ~1000 steps bracketing that time
    assert _parse(when).get("data-x-lo") == f"{T0 + 4_000_000}.0"
    # Smoothing keeps the raw curve, faint, under the smoothed one.
    smooth = http.get(f"/runs/{run_id}/chart.svg", params={"metric": "loss", "smooth": "0.9"})
    assert len(_parse(smooth.text).findall(f".//{SVG}path[@class='raw']")) == 1


def test_nan_and_infinite_values_are_left_out_with_a_note(
    http: httpx.Client, client: SlipwayClient
) -> None:
    exp = client.create_experiment("nan")
    run_id = make_run(client, exp, "r", metrics={"loss": [1.0, math.nan, 2.0, math.inf, 3.0]})
    svg = http.get(f"/runs/{run_id}/chart.svg", params={"metric": "loss"}).text
    assert _drawn(svg) == [3]
    assert "2 NaN or infinite values are not drawn" in svg
    empty = http.get(f"/runs/{run_id}/chart.svg", params={"metric": "never-logged"})
    assert empty.status_code == 200
    assert "No points to draw" in empty.text
    client.log_batch(run_id, metrics=[Metric("solo", 4.0, T0, 0)])
    assert _drawn(http.get(f"/runs/{run_id}/chart.svg", params={"metric": "solo"}).text) == [1]
