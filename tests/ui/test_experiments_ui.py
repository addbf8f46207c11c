"""Experiments in the browser: create, search, rename, delete and restore; names with markup
stay text."""

from __future__ import annotations

from typing import Any

from slipway.tracking.client import SlipwayClient


def test_experiments_are_listed_created_renamed_deleted_and_restored(
    page: Any, client: SlipwayClient
) -> None:
    client.create_experiment("churn")
    page.goto("/")
    assert page.url.endswith("/experiments")
    assert page.get_by_role("link", name="churn").is_visible()
    page.get_by_label("New experiment").fill("fraud")
    page.get_by_role("button", name="Create").click()
    assert page.get_by_role("link", name="fraud").is_visible()
    page.get_by_label("Search experiments").fill("fra")
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("link", name="fraud").is_visible()
    assert page.get_by_role("link", name="churn").count() == 0
    row = page.get_by_role("row").filter(has_text="fraud")
    row.get_by_text("Manage").click()
    row.get_by_label("New name").fill("fraud-v2")
    with page.expect_navigation():
        row.get_by_role("button", name="Rename").click()
    assert page.get_by_role("link", name="fraud-v2").is_visible()
    row = page.get_by_role("row").filter(has_text="fraud-v2")
    row.get_by_text("Manage").click()
    with page.expect_navigation():
        row.get_by_role("button", name="Delete").click()
    assert page.get_by_role("link", name="fraud-v2").count() == 0
    page.goto("/experiments?view=deleted")
    row = page.get_by_role("row").filter(has_text="fraud-v2")
    row.get_by_text("Manage").click()
    row.get_by_role("button", name="Restore").click()
    assert page.get_by_role("link", name="fraud-v2").is_visible()


def test_a_taken_name_is_shown_next_to_the_form(page: Any, client: SlipwayClient) -> None:
    client.create_experiment("taken")
    page.goto("/experiments")
    page.get_by_label("New experiment").fill("taken")
    page.get_by_role("button", name="Create").click()
    assert "already exists" in page.get_by_role("alert").inner_text()


def test_markup_in_names_is_text(page: Any, client: SlipwayClient) -> None:
    name = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    client.create_experiment(name)
    page.goto("/experiments")
    assert page.get_by_role("link", name=name).is_visible()
    assert page.locator("img").count() == 0
