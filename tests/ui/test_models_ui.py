"""Models, versions, lineage and approvals in the browser (and their bad inputs over HTTP).

Data is made through the SDK against the live server (``RegistryClient(server_url)``), as a
user named by ``SLIPWAY_USER``; the browser acts as another user through the
``X-Slipway-User`` header, which is how the server names the actor of a form.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from slipway.entities.registry import RequestStatus, TransitionTarget
from slipway.registry.client import RegistryClient
from slipway.tracking.client import SlipwayClient
from slipway.ui.pages.approvals import PENDING_SHOWN

MARKUP = '<img src=x onerror="alert(1)">'
SCRIPT = "<script>alert(2)</script>"


@pytest.fixture
def registry(server_url: str, monkeypatch: pytest.MonkeyPatch) -> RegistryClient:
    monkeypatch.setenv("SLIPWAY_USER", "alice")
    return RegistryClient(server_url)


def _versions(client: SlipwayClient, registry: RegistryClient, name: str, count: int) -> list[str]:
    exp = client.create_experiment(f"exp-{name}"[:200].replace("/", "-"))
    runs = [client.create_run(exp, run_name=f"trainer-{i}").info.run_id for i in range(count)]
    return [registry.register_model(f"runs:/{r}/model", name).version for r in runs]


def test_a_model_with_versions_and_an_alias_is_listed_and_shown(
    page: Any, client: SlipwayClient, registry: RegistryClient
) -> None:
    registry.create_registered_model("churn", tags={"team": "growth"}, description="Who leaves")
    _versions(client, registry, "churn", 2)
    registry.set_alias("churn", "champion", 1)
    registry.create_registered_model("fraud")
    page.goto("/models")
    row = page.get_by_role("row").filter(has_text="churn")
    expect(row.get_by_role("link", name="churn")).to_be_visible()
    expect(row.get_by_role("link", name="@champion → v1")).to_be_visible()
    page.get_by_label("Search models").fill("fra")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="fraud")).to_be_visible()
    expect(page.get_by_role("link", name="churn")).to_have_count(0)
    assert "q=fra" in page.url  # the search is in the URL

    page.goto("/models/churn")
    expect(page.get_by_role("heading", name="Model churn")).to_be_visible()
    versions = page.get_by_role("table", name="Versions")
    expect(versions.get_by_role("link", name="Version 2")).to_be_visible()
    one = versions.get_by_role("row").filter(has_text="Version 1")
    expect(one).to_contain_text("@champion")
    expect(versions.get_by_role("row").filter(has_text="Version 2")).not_to_contain_text("@")
    expect(page.get_by_role("table", name="Model tags")).to_contain_text("growth")
    expect(page.get_by_text("Who leaves")).to_be_visible()
    with page.expect_navigation():
        versions.get_by_role("link", name="Version 2").click()
    assert page.url.endswith("/models/churn/versions/2")
    expect(page.get_by_role("heading", name="churn version 2")).to_be_visible()


def test_an_approval_from_the_ui_moves_the_alias(
    page: Any, client: SlipwayClient, registry: RegistryClient, server_url: str
) -> None:
    _versions(client, registry, "iris", 2)
    registry.set_alias("iris", "champion", 1)
    registry.require_approval("iris", alias="champion")
    registry.request_transition("iris", 2, alias="champion", comment="better recall")
    page.set_extra_http_headers({"X-Slipway-User": "bob"})
    page.goto("/approvals")
    pending = page.get_by_role("table", name="Pending requests")
    row = pending.get_by_role("row").filter(has_text="better recall")
    expect(row).to_contain_text("alias @champion")
    expect(row).to_contain_text("alice")
    row.get_by_label("Comment").fill("looks good")
    with page.expect_navigation():
        row.get_by_role("button", name="Approve").click()
    assert RegistryClient(server_url).get_model_version("iris", alias="champion").version == "2"
    expect(pending.get_by_role("row").filter(has_text="better recall")).to_have_count(0)
    decided = page.get_by_role("table", name="Decided requests").get_by_role("row")
    done = decided.filter(has_text="better recall")
    expect(done).to_contain_text("approved")
    expect(done).to_contain_text("bob")
    expect(done).to_contain_text("looks good")
    audit = page.get_by_role("table", name="Audit trail")
    expect(audit.get_by_role("row").filter(has_text="approve").first).to_contain_text("bob")
    (decision,) = registry.list_requests("iris", status=RequestStatus.APPROVED)
    assert (decision.decided_by, decision.decision_comment) == ("bob", "looks good")


def test_a_rejection_and_a_refused_self_approval_are_shown(
    page: Any, client: SlipwayClient, registry: RegistryClient
) -> None:
    _versions(client, registry, "wine", 1)
    registry.require_approval("wine", stage="Production")
    registry.request_transition("wine", 1, stage="Production", comment="ship it")
    page.set_extra_http_headers({"X-Slipway-User": "alice"})  # the requester herself
    page.goto("/approvals?model=wine")
    row = page.get_by_role("table", name="Pending requests").get_by_role("row")
    with page.expect_navigation():
        row.filter(has_text="ship it").get_by_role("button", name="Approve").click()
    expect(page.get_by_role("alert")).to_contain_text("alice")
    assert registry.get_model_version("wine", 1).current_stage == "None"
    page.set_extra_http_headers({"X-Slipway-User": "carol"})
    page.goto("/approvals?model=wine")
    with page.expect_navigation():
        row.filter(has_text="ship it").get_by_role("button", name="Reject").click()
    (request,) = registry.list_requests("wine")
    assert (request.status, request.decided_by) == (RequestStatus.REJECTED, "carol")
    assert registry.get_model_version("wine", 1).current_stage == "None"


def test_a_move_is_requested_from_the_version_page(
    page: Any, client: SlipwayClient, registry: RegistryClient
) -> None:
    _versions(client, registry, "cats", 1)
    page.set_extra_http_headers({"X-Slipway-User": "dave"})
    page.goto("/models/cats/versions/1")
    page.get_by_label("Kind").select_option("stage")
    page.get_by_label("Alias or stage").fill("Sideways")
    with page.expect_navigation():
        page.get_by_role("button", name="Request").click()
    expect(page.get_by_role("alert")).to_contain_text("Sideways")  # not a stage
    page.get_by_label("Kind").select_option("alias")
    page.get_by_label("Alias or stage").fill("challenger")
    page.get_by_label("Comment", exact=True).fill("try it")
    with page.expect_navigation():
        page.get_by_role("button", name="Request").click()
    requests = page.get_by_role("table", name="Requests for this version")
    expect(requests.get_by_role("row").filter(has_text="try it")).to_contain_text("dave")
    (made,) = registry.list_requests("cats", status="PENDING")
    assert (made.target, made.requested_by) == ("challenger", "dave")


def test_the_lineage_of_a_version_has_its_run_node(
    page: Any, client: SlipwayClient, registry: RegistryClient
) -> None:
    exp = client.create_experiment("lineage")
    run_id = client.create_run(exp, run_name="trainer").info.run_id
    registry.register_model(f"runs:/{run_id}/model", "dogs")
    page.goto("/models/dogs/versions/1")
    svg = page.locator("svg#lineage")
    expect(svg).to_be_visible()
    run_node = svg.get_by_role("link", name="run trainer")
    expect(run_node).to_have_attribute("href", f"/runs/{run_id}")
    expect(svg.locator(".dag-node.kind-model_version.dag-current")).to_contain_text("dogs v1")
    expect(svg.locator(".dag-edge-label")).to_have_text(["produced"])
    run_node.focus()  # nodes are links: reachable from the keyboard
    assert page.evaluate("document.activeElement.getAttribute('href')") == f"/runs/{run_id}"


def test_markup_in_names_tags_descriptions_and_comments_stays_text(
    page: Any, client: SlipwayClient, registry: RegistryClient
) -> None:
    registry.create_registered_model(MARKUP, tags={"k": SCRIPT}, description=SCRIPT + MARKUP)
    _versions(client, registry, MARKUP, 1)
    registry.set_model_version_tag(MARKUP, 1, "v", SCRIPT)
    registry.request_transition(MARKUP, 1, alias="champion", comment=MARKUP + SCRIPT)
    page.set_extra_http_headers({"X-Slipway-User": "bob"})
    page.goto("/models")
    expect(page.get_by_role("link", name=MARKUP)).to_be_visible()
    page.get_by_role("link", name=MARKUP).click()
    expect(page.get_by_role("table", name="Model tags")).to_contain_text(SCRIPT)
    expect(page.get_by_text(SCRIPT + MARKUP)).to_be_visible()
    page.get_by_role("link", name="Version 1").click()
    expect(page.get_by_role("table", name="Version tags")).to_contain_text(SCRIPT)
    expect(page.locator("svg#lineage")).to_contain_text(MARKUP[:10])
    page.goto("/approvals")
    row = page.get_by_role("table", name="Pending requests").get_by_role("row").nth(1)
    expect(row).to_contain_text(MARKUP + SCRIPT)
    row.get_by_label("Comment").fill(SCRIPT)
    with page.expect_navigation():
        row.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("table", name="Decided requests")).to_contain_text(SCRIPT)
    assert page.locator("img").count() == 0
    assert page.locator("main script").count() == 0


def test_an_unknown_model_or_version_is_a_404_page(page: Any, registry: RegistryClient) -> None:
    registry.create_registered_model("known")
    for path in ("/models/nope", "/models/known/versions/7", "/models/known/versions/x"):
        response = page.goto(path)
        assert response.status == 404, path
        expect(page.get_by_role("alert")).to_be_visible()


# -- over HTTP, without the browser -------------------------------------------------------------


def test_bad_inputs_get_pages_with_clear_errors(server_url: str, registry: RegistryClient) -> None:
    registry.create_registered_model(MARKUP)
    with httpx.Client(base_url=server_url, timeout=30) as http:
        listing = http.get("/models", params={"page_token": "not-a-token"})
        assert listing.status_code == 400
        assert 'role="alert"' in listing.text
        assert http.get("/approvals", params={"version": "1"}).status_code == 400
        escaped = http.get("/models").text
        assert MARKUP not in escaped
        assert "&lt;img src=x" in escaped
        assert http.get("/models/known/versions/1").status_code == 404


def test_forms_from_another_site_and_bad_decisions_are_refused(
    server_url: str, client: SlipwayClient, registry: RegistryClient
) -> None:
    _versions(client, registry, "guarded", 1)
    made = registry.request_transition("guarded", 1, alias="champion")
    decide = f"/approvals/{made.request_id}/decide"
    with httpx.Client(base_url=server_url, timeout=30) as http:
        crossed = http.post(
            decide, data={"decision": "approve"}, headers={"Origin": "http://evil.example"}
        )
        assert crossed.status_code == 403
        assert http.post(decide, data={"decision": "maybe"}).status_code == 400
        assert registry.list_requests("guarded")[0].status == RequestStatus.PENDING
        unknown = http.post("/approvals/nope/decide", data={"decision": "approve"})
        assert unknown.status_code == 404
        assert 'role="alert"' in unknown.text
        sent = http.post(decide, data={"decision": "reject", "back": "//evil.example/x"})
        assert sent.status_code == 303
        assert sent.headers["location"] == "/approvals"  # never to another site
        again = http.post(decide, data={"decision": "approve"})
        assert again.status_code == 409  # decided already
    assert registry.list_requests("guarded")[0].status == RequestStatus.REJECTED


def test_a_long_pending_list_is_cut_with_a_note(
    server_url: str, rest_server: Any, client: SlipwayClient, registry: RegistryClient
) -> None:
    _versions(client, registry, "busy", 1)
    store = rest_server.front.app.state.context.registry_store
    for i in range(PENDING_SHOWN + 3):
        store.request_transition("busy", "1", TransitionTarget.ALIAS, f"a{i}", actor="alice")
    text = httpx.get(f"{server_url}/approvals", timeout=30).text
    assert text.count('name="decision" value="approve"') == PENDING_SHOWN
    assert f"The newest {PENDING_SHOWN} of {PENDING_SHOWN + 3} pending requests" in text
    assert f"alias @a{PENDING_SHOWN + 2}" in text  # newest first
    assert "alias @a0<" not in text
