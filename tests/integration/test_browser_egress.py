"""An export from start to end in a real browser (Debian's Chromium, driven by Playwright), on the
session's hub with its egress service: alice submits a table from cardio-risk through the pages,
carol and dave each approve it without seeing the other's review, carol releases it, and alice
downloads the released file, whose sha256 is the one the checkers reviewed.

Everything is done by clicking and typing in the pages, as people do; only the table itself is put
in the project's folder from the host, where alice's notebook would have written it."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
from playwright.sync_api import Page, expect

from tests.integration.test_browser import PAGE_MS, sign_in

pytestmark = pytest.mark.integration

TABLE = (
    "region,age_band,stays\n"
    "Bretagne,40-59,132\n"
    "Bretagne,60-79,245\n"
    "Occitanie,40-59,118\n"
    "Occitanie,60-79,301\n"
)


@pytest.fixture
def table_in_project(hub):
    """The table in cardio-risk's /project/outputs, owned by the workspace user as alice's own
    file would be."""
    outputs = hub.home / "workspaces" / "cardio-risk" / "shared" / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    for folder in (outputs.parent, outputs):
        os.chown(folder, 1000, 100)
    table = outputs / "stays_by_region.csv"
    table.write_text(TABLE, encoding="utf-8")
    os.chown(table, 1000, 100)
    yield table
    table.unlink(missing_ok=True)


def egress(hub, path: str = "") -> str:
    return f"{hub.url}/services/egress/{path}"


def review_and_approve(page: Page, hub, checker: str, request_id: str, reviewed_sha: str | None) -> str:
    """A checker signs in, finds the request in their queue, checks the frozen file's fingerprint
    and approves it; returns the fingerprint shown."""
    sign_in(page, hub, checker)
    page.goto(egress(hub, "queue"))
    page.locator(f"#queue-link-{request_id}").click()
    expect(page.locator("#request-state")).to_have_attribute("data-state", re.compile("submitted|partially_reviewed"),
                                                            timeout=PAGE_MS)
    article = page.locator("article.review-file")
    expect(article).to_have_count(1)
    sha = article.get_attribute("data-sha256")
    if reviewed_sha is not None:
        assert sha == reviewed_sha
        # blind: the first checker's decision is not shown before this one has decided
        expect(article.locator(".review")).to_have_count(0)
    # the table is shown as a table, cell by cell
    expect(page.locator("table.file-table td", has_text=re.compile(r"^Occitanie$")).first).to_be_visible()
    file_id = article.get_attribute("id").removeprefix("review-file-")
    page.locator(f"#decision-{file_id}-approve").check()
    page.locator("#review-comment").fill(f"{checker}: counts of at least 10, no identifier.")
    page.locator("#submit-review").click()
    expect(page.locator("#done")).to_be_visible(timeout=PAGE_MS)
    return sha


def test_alice_submits_carol_and_dave_approve_carol_releases_alice_downloads(hub, open_page, table_in_project):
    expected_sha = hashlib.sha256(TABLE.encode()).hexdigest()

    # alice: a new request, the table added from the project's folder, submitted
    alice = open_page("en-GB")
    sign_in(alice, hub, "alice")
    alice.goto(egress(hub))
    alice.locator("#new-request").click()
    alice.locator("#project").select_option("cardio-risk")
    alice.locator("#title").fill("Hospital stays by region and age band")
    alice.locator("#create-request").click()
    expect(alice).to_have_url(re.compile(r"/services/egress/requests/\d+$"), timeout=PAGE_MS)
    request_id = alice.url.rstrip("/").rsplit("/", 1)[1]
    alice.locator("#workspace-entries a", has_text="outputs/").click()
    expect(alice.locator("#workspace-entries li[data-path='outputs/stays_by_region.csv']")).to_be_visible(timeout=PAGE_MS)
    alice.locator("#add-path").fill("outputs/stays_by_region.csv")
    alice.locator("#add-group").fill("tables")
    alice.locator("#add-context").fill("Stays by region and age band, cardio-risk cohort, 2019-2023.")
    alice.locator("#add-controls").fill("Every cell counts at least 10 patients; no cell suppressed.")
    alice.locator("#kind-output").check()
    alice.locator("#add-file").click()
    expect(alice.locator("tr.request-file[data-name='stays_by_region.csv']")).to_be_visible(timeout=PAGE_MS)
    alice.locator("#submit-request").click()
    expect(alice.locator("#request-state")).to_have_attribute("data-state", "submitted", timeout=PAGE_MS)
    frozen = alice.locator("tr.request-file[data-name='stays_by_region.csv']").get_attribute("data-sha256")
    assert frozen == expected_sha

    # what alice changes in her folder afterwards changes nothing of what is reviewed
    table_in_project.write_text(TABLE.replace("132", "3"), encoding="utf-8")

    # carol and dave: two independent reviews, each blind to the other
    carol = open_page("en-GB")
    assert review_and_approve(carol, hub, "carol", request_id, None) == expected_sha
    dave = open_page("fr-FR")  # a French checker sees the same request, in French
    assert review_and_approve(dave, hub, "dave", request_id, expected_sha) == expected_sha
    expect(dave.locator("#request-state")).to_have_attribute("data-state", "reviewed", timeout=PAGE_MS)

    # carol releases
    carol.goto(egress(hub, f"reviews/{request_id}"))
    carol.locator("#release-request").click()
    # asked again first: nothing is released until the confirmation is pressed
    expect(carol.locator("dialog#confirm-release")).to_be_visible(timeout=PAGE_MS)
    expect(carol.locator("#request-state")).to_have_attribute("data-state", "reviewed")
    carol.locator("#confirm-release-yes").click()
    expect(carol.locator("#request-state")).to_have_attribute("data-state", "released", timeout=PAGE_MS)

    # alice downloads the released table: the very bytes that were reviewed
    alice.goto(egress(hub, f"requests/{request_id}"))
    link = alice.locator("#released-files a.released-file[data-name='stays_by_region.csv']")
    expect(link).to_be_visible(timeout=PAGE_MS)
    with alice.expect_download(timeout=PAGE_MS) as download_info:
        link.click()
    downloaded = download_info.value.path().read_bytes()
    assert hashlib.sha256(downloaded).hexdigest() == expected_sha
    assert downloaded.decode() == TABLE

    # carol, a checker, cannot download what she released
    reply = carol.request.get(egress(hub, f"requests/{request_id}/released/stays_by_region.csv"))
    assert reply.status in (403, 404)



# --- issue 16: the researcher's side of the airlock, in English and in French ----------------------

SMALL = "region,age_band,stays\nBretagne,40-59,132\nOccitanie,40-59,3\n"
WORDS = {  # what each language's reader sees
    "en-GB": {"fail": "Fail", "cell": "Occitanie / 40-59, stays: 3", "missing": "outputs/nowhere.csv"},
    "fr-FR": {"fail": "Non conforme", "cell": "Occitanie / 40-59, stays: 3", "missing": "outputs/nowhere.csv"},
}


def project_file(hub, name: str, text: str):
    """A file in cardio-risk's /project/outputs, owned by the workspace user as a notebook's would be."""
    outputs = hub.home / "workspaces" / "cardio-risk" / "shared" / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    for folder in (outputs.parent, outputs):
        os.chown(folder, 1000, 100)
    path = outputs / name
    path.write_text(text, encoding="utf-8")
    os.chown(path, 1000, 100)
    return path


def new_request(page: Page, hub, title: str) -> str:
    page.goto(egress(hub))
    page.locator("#new-request").click()
    page.locator("#project").select_option("cardio-risk")
    page.locator("#title").fill(title)
    page.locator("#create-request").click()
    expect(page).to_have_url(re.compile(r"/services/egress/requests/\d+$"), timeout=PAGE_MS)
    return page.url.rstrip("/").rsplit("/", 1)[1]


@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
def test_a_researcher_sees_the_checks_before_submitting_and_never_meets_a_dead_end(hub, open_page, locale):
    words = WORDS[locale]
    name = f"small_{locale}.csv"
    table = project_file(hub, name, SMALL)
    try:
        alice = open_page(locale)
        sign_in(alice, hub, "alice")
        request_id = new_request(alice, hub, f"Small counts ({locale})")

        # a mistyped path: the same page again, the message beside the field, everything typed kept
        alice.locator("#add-group").fill("tables")
        alice.locator("#add-context").fill("Stays by region and age band.")
        alice.locator("#add-controls").fill("None yet.")
        alice.locator("#add-path").fill(words["missing"])
        alice.locator("#add-file").click()
        expect(alice.locator("#problem-path")).to_be_visible(timeout=PAGE_MS)
        expect(alice.locator("#problem-path")).to_contain_text("nowhere.csv")
        expect(alice.locator("#add-path")).to_have_value(words["missing"])
        expect(alice.locator("#add-group")).to_have_value("tables")
        expect(alice.locator("#add-context")).to_have_value("Stays by region and age band.")
        expect(alice.locator("#request-title")).to_contain_text(f"#{request_id}")

        # the project folder as a tree: open outputs/, click the table to add it
        alice.locator("#workspace-entries a.folder-link", has_text="outputs/").click()
        pick = alice.locator(f"button.add-pick[value='outputs/{name}']")
        expect(pick).to_be_visible(timeout=PAGE_MS)
        alice.locator("#add-group").fill("tables")
        alice.locator("#add-context").fill("Stays by region and age band.")
        alice.locator("#add-controls").fill("None yet.")
        pick.click()
        row = alice.locator(f"tr.request-file[data-name='{name}']")
        expect(row).to_be_visible(timeout=PAGE_MS)
        expect(alice.locator("#request-state")).to_have_attribute("data-state", "draft")
        # before submitting: the verdict, the summary line and the highlighted cell
        outcome = row.locator(".check-outcome")
        expect(outcome).to_have_attribute("data-outcome", "fail")
        expect(outcome).to_have_text(words["fail"])
        expect(row.locator(".cell-name")).to_have_text(words["cell"])
        flagged = alice.locator("table.file-excerpt td.check-flagged")
        expect(flagged).to_have_count(1)
        expect(flagged).to_have_text("3")
        expect(flagged).to_have_attribute("data-rules", "threshold")
        assert alice.evaluate("document.documentElement.scrollWidth") <= 1280  # fits a 1280-px screen

        # removed by a click while a draft
        row.locator("button[id^=remove-file-]").click()
        expect(alice.locator(f"tr.request-file[data-name='{name}']")).to_have_count(0, timeout=PAGE_MS)

        # an empty submit: the message beside the button, not a page of its own
        alice.locator("#submit-request").click()
        expect(alice.locator("#problem-submit")).to_be_visible(timeout=PAGE_MS)
        expect(alice.locator("#request-state")).to_have_attribute("data-state", "draft")

        # Withdraw sits apart from Submit and asks first; Cancel changes nothing
        alice.locator("#withdraw-request").click()
        expect(alice.locator("dialog#confirm-withdraw")).to_be_visible(timeout=PAGE_MS)
        alice.locator("#confirm-withdraw-cancel").click()
        expect(alice.locator("dialog#confirm-withdraw")).to_have_count(0, timeout=PAGE_MS)
        expect(alice.locator("#request-state")).to_have_attribute("data-state", "draft")
        alice.locator("#withdraw-request").click()
        alice.locator("#confirm-withdraw-yes").click()
        expect(alice.locator("#request-state")).to_have_attribute("data-state", "withdrawn", timeout=PAGE_MS)
    finally:
        table.unlink(missing_ok=True)


def submit_table(page: Page, hub, name: str, title: str) -> str:
    request_id = new_request(page, hub, title)
    page.locator("#workspace-entries a.folder-link", has_text="outputs/").click()
    page.locator("#add-group").fill("tables")
    page.locator("#add-context").fill("Stays by region and age band, cardio-risk cohort.")
    page.locator("#add-controls").fill("Every cell counts at least 10 patients.")
    page.locator(f"button.add-pick[value='outputs/{name}']").click()
    expect(page.locator(f"tr.request-file[data-name='{name}']")).to_be_visible(timeout=PAGE_MS)
    page.locator("#submit-request").click()
    expect(page.locator("#request-state")).to_have_attribute("data-state", "submitted", timeout=PAGE_MS)
    return request_id


def decide(page: Page, hub, checker: str, request_id: str, decision: str) -> None:
    sign_in(page, hub, checker)
    page.goto(egress(hub))
    expect(page).to_have_url(re.compile(r"/services/egress/queue$"), timeout=PAGE_MS)  # a checker's landing
    expect(page.locator("#nav-new")).to_have_count(0)
    page.locator(f"#queue-link-{request_id}").click()
    file_id = page.locator("article.review-file").get_attribute("id").removeprefix("review-file-")
    page.locator(f"#decision-{file_id}-{decision}").check()
    page.locator("#review-comment").fill(f"{checker}: please round the counts to 5.")
    page.locator("#review-visible").check()
    page.locator("#submit-review").click()
    expect(page.locator("#done")).to_be_visible(timeout=PAGE_MS)


@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
def test_release_is_not_offered_without_approvals_and_reject_asks_first(hub, open_page, locale):
    name = f"stays_{locale}.csv"
    table = project_file(hub, name, TABLE)
    try:
        alice = open_page(locale)
        sign_in(alice, hub, "alice")
        request_id = submit_table(alice, hub, name, f"Stays ({locale})")
        carol, dave = open_page(locale), open_page(locale)
        decide(carol, hub, "carol", request_id, "approve")
        decide(dave, hub, "dave", request_id, "changes_requested")
        carol.goto(egress(hub, f"reviews/{request_id}"))
        expect(carol.locator("#request-state")).to_have_attribute("data-state", "reviewed", timeout=PAGE_MS)
        expect(carol.locator("#release-request")).to_have_count(0)
        expect(carol.locator("#release-not-offered")).to_contain_text(name)
        decided = carol.locator("article.review-file .review[data-reviewer='carol']")
        expect(decided).to_contain_text("Approved" if locale == "en-GB" else "Approuvé")

        # Reject asks first, keeping the reason typed; Cancel changes nothing
        carol.locator("#reject-comment").fill("Counts too small.")
        carol.locator("#reject-request").click()
        expect(carol.locator("dialog#confirm-reject")).to_be_visible(timeout=PAGE_MS)
        expect(carol.locator("#request-state")).to_have_attribute("data-state", "reviewed")
        carol.locator("#confirm-reject-cancel").click()
        expect(carol.locator("dialog#confirm-reject")).to_have_count(0, timeout=PAGE_MS)
        carol.locator("#reject-comment").fill("Counts too small.")
        carol.locator("#reject-request").click()
        carol.locator("#confirm-reject-yes").click()
        expect(carol.locator("#request-state")).to_have_attribute("data-state", "rejected", timeout=PAGE_MS)

        # the researcher reads the decision and the checkers' comments made for them
        alice.goto(egress(hub, f"requests/{request_id}"))
        expect(alice.locator("#request-state")).to_have_attribute("data-state", "rejected", timeout=PAGE_MS)
        expect(alice.locator(".comment-text", has_text="Counts too small.")).to_be_visible()
        expect(alice.locator(".comment-text", has_text="carol: please round the counts to 5.")).to_be_visible()
    finally:
        table.unlink(missing_ok=True)
