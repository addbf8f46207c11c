"""The runs pages over plain HTTP (no browser): status codes, escaping, bad input, paging,
the raw artifact route's headers and the chart SVG endpoints."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from slipway.tracking.client import SlipwayClient

from .runs_data import T0, make_run, tiny_png

MARKUP = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
FILE_MARKUP = '<img src=x onerror="alert(3)">.txt'  # no "/": that would make a folder


@pytest.fixture
def http(server_url: str) -> httpx.Client:
    with httpx.Client(base_url=server_url, timeout=30) as session:
        yield session


def _hrefs(html: str, text: str) -> list[str]:
    """The hrefs of links whose text is ``text`` (entities in hrefs undone)."""
    found = re.findall(r'<a[^>]*href="([^"]*)"[^>]*>' + re.escape(text) + "</a>", html)
    return [h.replace("&amp;", "&") for h in found]


def _run_names(html: str) -> list[str]:
    return re.findall(r'<td><a href="/runs/[0-9a-f]+">([^<]*)</a></td>', html)


def test_unknown_experiments_and_runs_are_404(http: httpx.Client, client: SlipwayClient) -> None:
    exp = client.create_experiment("real")
    assert http.get("/experiments/9999/runs").status_code == 404
    assert http.get(f"/runs?experiments={exp}&experiments=9999").status_code == 404
    page = http.get("/runs/0123456789abcdef0123456789abcdef")
    assert page.status_code == 404
    assert "Not found" in page.text
    assert http.get("/runs/0123456789abcdef0123456789abcdef/artifacts").status_code == 404
    assert http.get("/runs/0123456789abcdef/chart.svg?metric=loss").status_code == 404
    assert http.get("/compare?runs=0123456789abcdef").status_code == 404


def test_bad_table_input_is_400_with_the_page_still_shown(
    http: httpx.Client, client: SlipwayClient
) -> None:
    exp = client.create_experiment("e")
    make_run(client, exp, "r1", metrics={"loss": [1.0]})
    bad = http.get(f"/experiments/{exp}/runs", params={"filter": "metrics.loss <<< 1"})
    assert bad.status_code == 400
    assert 'role="alert" id="filter-error"' in bad.text
    assert "Invalid filter" in bad.text
    assert 'value="metrics.loss &lt;&lt;&lt; 1"' in bad.text  # the box keeps what was typed
    assert 'aria-describedby="filter-error"' in bad.text
    for params in (
        {"max_results": "0"},
        {"max_results": "lots"},
        {"view": "sideways"},
        {"page_token": "not-a-token"},
        {"order_by": "metrics.loss SIDEWAYS"},
        {"order_by": "duration SIDEWAYS"},
    ):
        page = http.get(f"/experiments/{exp}/runs", params=params)
        assert page.status_code == 400, params
        assert 'id="filter-error"' in page.text, params
    assert http.get("/runs").status_code == 400
    many = "&".join(f"experiments={i}" for i in range(101))
    assert http.get(f"/runs?{many}").status_code == 400


def test_markup_from_the_data_is_escaped_on_every_page(
    http: httpx.Client, client: SlipwayClient
) -> None:
    exp = client.create_experiment(MARKUP)
    # Keys are limited to word characters, spaces, dots, dashes and slashes; values are not.
    run_id = make_run(
        client, exp, MARKUP, params={"p": MARKUP}, metrics={"m": [1.0, 2.0]}, tags={"t": MARKUP}
    )
    client.log_text(run_id, MARKUP, FILE_MARKUP)
    client.log_text(run_id, MARKUP, "page.html")
    pages = [
        f"/experiments/{exp}/runs",
        f"/experiments/{exp}/runs?cols=params.p&cols=tags.t&cols=metrics.m",
        f"/experiments/{exp}/runs?cols=params.{MARKUP}",  # a made-up column, named in the page
        f"/runs/{run_id}",
        f"/runs/{run_id}/artifacts",
        f"/runs/{run_id}/artifacts?path={quote(FILE_MARKUP)}",
        f"/runs/{run_id}/artifacts?path=page.html",
        f"/compare?runs={run_id}",
    ]
    for path in pages:
        page = http.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text, path
        assert "<img src=x" not in page.text, path
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page.text, path
    listing = http.get(f"/runs/{run_id}/artifacts").text
    assert "&lt;img src=x onerror=&#34;alert(3)&#34;&gt;.txt</a>" in listing
    svg = http.get(f"/runs/{run_id}/chart.svg", params={"metric": "m"})
    assert svg.status_code == 200
    assert "<script>" not in svg.text
    assert "&lt;script&gt;" in svg.text  # the run's name, in the title


def test_paging_walks_forward_and_back(http: httpx.Client, client: SlipwayClient) -> None:
    exp = client.create_experiment("paged")
    for i in range(7):
        make_run(client, exp, f"run-{i}", start=T0 + i * 60_000)
    first = http.get(f"/experiments/{exp}/runs?max_results=3")
    assert _run_names(first.text) == ["run-6", "run-5", "run-4"]
    assert not _hrefs(first.text, "Previous page")
    (second_url,) = _hrefs(first.text, "Next page")
    second = http.get(second_url)
    assert _run_names(second.text) == ["run-3", "run-2", "run-1"]
    assert "Runs 4\u20136" in second.text  # an en dash
    (third_url,) = _hrefs(second.text, "Next page")
    third = http.get(third_url)
    assert _run_names(third.text) == ["run-0"]
    assert not _hrefs(third.text, "Next page")
    (back_url,) = _hrefs(third.text, "Previous page")
    assert _run_names(http.get(back_url).text) == ["run-3", "run-2", "run-1"]
    (back_again,) = _hrefs(http.get(back_url).text, "Previous page")
    assert "page_token" not in parse_qs(urlsplit(back_again).query)
    assert _run_names(http.get(back_again).text) == ["run-6", "run-5", "run-4"]


def test_order_by_any_column_and_duration_within_the_page(
    http: httpx.Client, client: SlipwayClient
) -> None:
    exp = client.create_experiment("sorted")
    make_run(client, exp, "slow", params={"b": "2"}, metrics={"acc": [0.5]}, seconds=30)
    make_run(client, exp, "fast", params={"b": "1"}, metrics={"acc": [0.9]}, seconds=2)
    make_run(client, exp, "mid", params={"b": "3"}, metrics={"acc": [0.7]}, seconds=10)
    make_run(client, exp, "running", metrics={"acc": [0.1]}, seconds=None)
    base = f"/experiments/{exp}/runs"

    def names(order: str) -> list[str]:
        page = http.get(base, params={"order_by": order})
        assert page.status_code == 200, order
        return _run_names(page.text)

    assert names("metrics.acc DESC") == ["fast", "mid", "slow", "running"]
    assert names("params.b ASC")[:3] == ["fast", "slow", "mid"]
    assert names("attributes.run_name ASC") == ["fast", "mid", "running", "slow"]
    assert names("duration ASC") == ["fast", "mid", "slow", "running"]
    assert names("duration DESC") == ["slow", "mid", "fast", "running"]
    page = http.get(base, params={"order_by": "metrics.acc DESC", "cols": "metrics.acc"})
    assert re.search(r'data-column="metrics.acc" aria-sort="descending"', page.text)
    # The header now offers the other direction.
    assert "order_by=metrics.acc+ASC" in page.text


def test_keys_with_spaces_sort_through_quoted_clauses(
    http: httpx.Client, client: SlipwayClient
) -> None:
    exp = client.create_experiment("quoted")
    key = "learning rate"
    make_run(client, exp, "low", metrics={key: [0.1]})
    make_run(client, exp, "high", metrics={key: [0.9]})
    page = http.get(f"/experiments/{exp}/runs", params={"cols": f"metrics.{key}"})
    (header,) = re.findall(r'data-column="[^"]*"[^>]*><a href="([^"]*)"', page.text)
    ascending = http.get(header.replace("&amp;", "&"))
    assert ascending.status_code == 200
    assert _run_names(ascending.text) == ["low", "high"]


def test_raw_artifacts_are_served_safely(http: httpx.Client, client: SlipwayClient) -> None:
    exp = client.create_experiment("raw")
    run_id = make_run(client, exp, "r")
    repo = client.artifact_repository(run_id)
    repo.log_bytes(tiny_png(), "plots/red.png")
    repo.log_bytes(b"<script>alert(1)</script>", "page.html")
    repo.log_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "pic.svg")
    image = http.get(f"/runs/{run_id}/artifact", params={"path": "plots/red.png"})
    assert image.status_code == 200
    assert image.content == tiny_png()
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("inline")
    assert image.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in image.headers["content-security-policy"]
    for path in ("page.html", "pic.svg"):
        raw = http.get(f"/runs/{run_id}/artifact", params={"path": path})
        assert raw.headers["content-type"].startswith("text/plain"), path
        assert raw.headers["content-disposition"].startswith("attachment"), path
        assert raw.headers["x-content-type-options"] == "nosniff"
    for bad in ("../../etc/passwd", "/etc/passwd", "a/%2e%2e/%2e%2e/x", "a\\b"):
        assert http.get(f"/runs/{run_id}/artifact", params={"path": bad}).status_code == 400, bad
        page = http.get(f"/runs/{run_id}/artifacts", params={"path": bad})
        assert page.status_code == 400, bad
        assert "Invalid path" in page.text
    assert http.get(f"/runs/{run_id}/artifact", params={"path": ""}).status_code == 400
    assert http.get(f"/runs/{run_id}/artifact", params={"path": "nope.txt"}).status_code == 404
    assert http.get(f"/runs/{run_id}/artifacts", params={"path": "nope.txt"}).status_code == 404


def test_chart_svg_headers_and_bad_settings(http: httpx.Client, client: SlipwayClient) -> None:
    exp = client.create_experiment("charts")
    run_id = make_run(client, exp, "r", metrics={"loss": [3.0, 2.0, 1.0]})
    svg = http.get(f"/runs/{run_id}/chart.svg", params={"metric": "loss"})
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    assert svg.text.startswith("<svg")
    assert "<style>" in svg.text
    for params in (
        {},
        {"metric": "loss", "x": "epoch"},
        {"metric": "loss", "smooth": "1.5"},
        {"metric": "loss", "smooth": "nan"},
        {"metric": "loss", "xmin": "5", "xmax": "1"},
        {"metric": "loss", "xmin": "soon"},
    ):
        assert http.get(f"/runs/{run_id}/chart.svg", params=params).status_code == 400, params
    page = http.get(f"/runs/{run_id}", params={"smooth": "2"})
    assert page.status_code == 400
    assert 'id="chart-form-error"' in page.text
    assert "smooth must be between 0 and 0.99" in page.text
    missing = http.get(f"/runs/{run_id}", params={"metric": "nothing"})
    assert "This run has no metric &#39;nothing&#39;" in missing.text
    compare = http.get(f"/compare/chart.svg?runs={run_id}&metric=loss&x=relative")
    assert compare.status_code == 200
    assert compare.headers["content-type"] == "image/svg+xml"
    assert http.get("/compare/chart.svg?metric=loss").status_code == 400


def test_compare_input_is_checked(http: httpx.Client, client: SlipwayClient) -> None:
    exp = client.create_experiment("cmp")
    a = make_run(client, exp, "a", metrics={"loss": [1.0]})
    assert http.get("/compare").status_code == 400
    too_many = "&".join(f"runs={i:032x}" for i in range(101))
    assert http.get(f"/compare?{too_many}").status_code == 400
    bad = http.get(f"/compare?runs={a}&smooth=7")
    assert bad.status_code == 400
    assert "smooth must be between" in bad.text
    same = http.get(f"/compare?runs={a}&runs={a}")
    assert same.status_code == 200
    assert same.text.count('class="legend-item"') == 0  # one run: a single series, no legend


def test_forms_posted_from_another_site_are_refused(
    http: httpx.Client, client: SlipwayClient
) -> None:
    exp = client.create_experiment("csrf")
    run_id = make_run(client, exp, "r")
    refused = http.post(
        f"/runs/{run_id}/tags",
        data={"key": "owner", "value": "mallory"},
        headers={"Origin": "http://evil.example"},
    )
    assert refused.status_code == 403
    assert "owner" not in client.get_run(run_id).data.tags
    done = http.post(f"/runs/{run_id}/tags", data={"key": "owner", "value": "me"})
    assert done.status_code == 303
    assert client.get_run(run_id).data.tags["owner"] == "me"
    empty = http.post(f"/runs/{run_id}/tags", data={"key": " ", "value": "x"})
    assert empty.status_code == 400
    assert "A tag needs a key" in empty.text
    gone = http.post(f"/runs/{run_id}/tags/delete", data={"key": "never-set"})
    assert gone.status_code == 400
    assert 'id="tag-error"' in gone.text
    assert http.post("/runs/0123456789abcdef/tags", data={"key": "k"}).status_code == 404
