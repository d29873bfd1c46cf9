"""JupyterLab's way to the airlock, in a real browser (Debian's Chromium, driven by Playwright) on
the session's hub, in French: alice right-clicks a table in her workspace's file browser, chooses
"Ajouter à une demande d’export…", and the export panel (the egress review's page in JupyterLab's
sidebar) creates a request with it and shows its automatic checks at once: a count of 3 fails,
before anything is submitted. A second file goes into the same request from the same menu, then
two more chosen together (Ctrl+click) in one go."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import PAGE_MS, WORKSPACE_MS, sign_in, stop_and_forget
from tests.integration.test_egress import api, api_token

pytestmark = pytest.mark.integration

PROJECT = "cardio-risk"
SHOTS = Path(os.environ.get("TRE_TEST_SCREENSHOTS", "/tmp"))
SMALL = "region,patients\nBretagne,3\nOccitanie,41\n"  # a count of 3: the threshold rule fails
FINE = "region,patients\nBretagne,30\nOccitanie,41\n"


@pytest.fixture
def tables_in_project(hub):
    outputs = hub.home / "workspaces" / PROJECT / "shared" / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    for folder in (outputs.parent, outputs):
        os.chown(folder, 1000, 100)
    written = []
    for name, text in (("lab_small_counts.csv", SMALL), ("lab_counts.csv", FINE), ("lab_ages.csv", FINE),
                       ("lab_sexes.csv", FINE)):
        (outputs / name).write_text(text, encoding="utf-8")
        os.chown(outputs / name, 1000, 100)
        written.append(outputs / name)
    yield written
    for path in written:
        path.unlink(missing_ok=True)


def test_add_to_export_request_from_jupyterlab_shows_the_checks_before_submitting(hub, open_page, tables_in_project):
    page = open_page("fr-FR")
    sign_in(page, hub, "alice")
    page.locator(f"#start-{PROJECT}").click()
    created = None
    try:
        expect(page).to_have_url(re.compile(rf"/user/alice/{PROJECT}/lab"), timeout=WORKSPACE_MS)
        listing = page.locator("#filebrowser .jp-DirListing-itemText")
        outputs = listing.filter(has_text=re.compile(r"^outputs$"))
        expect(outputs).to_be_visible(timeout=WORKSPACE_MS)
        outputs.dblclick()

        small = listing.filter(has_text=re.compile(r"^lab_small_counts\.csv$"))
        expect(small).to_be_visible(timeout=PAGE_MS)
        small.click(button="right")
        page.locator(".lm-Menu-itemLabel", has_text="Ajouter à une demande d’export…").click()

        panel = page.frame_locator("#tre-airlock-panel iframe")
        expect(panel.locator("#panel-path")).to_have_value("outputs/lab_small_counts.csv", timeout=PAGE_MS)
        expect(panel.locator("h1")).to_contain_text("Demandes d’export")
        panel.locator("#panel-title").fill("Patients par région")
        panel.locator("#panel-group").fill("Tableau 1")
        panel.locator("#panel-context").fill("Patients par région, 2023")
        panel.locator("#panel-controls").fill("Aucun")
        panel.locator("#panel-add").click()

        added = panel.locator("#panel-added")
        expect(added).to_have_attribute("data-outcome", "fail", timeout=PAGE_MS)
        expect(added).to_contain_text("Non conforme")
        created = int(re.search(r"n° (\d+)", added.inner_text()).group(1))
        flagged = panel.locator('.panel-file[data-path="outputs/lab_small_counts.csv"]')
        expect(flagged.locator(".check-outcome")).to_have_attribute("data-outcome", "fail")
        expect(flagged.locator(".check-cells")).to_contain_text("patients")  # the cell, by its column

        # the second file, into the same request (offered first), from the same menu
        listing.filter(has_text=re.compile(r"^lab_counts\.csv$")).click(button="right")
        page.locator(".lm-Menu-itemLabel", has_text="Ajouter à une demande d’export…").click()
        expect(panel.locator("#panel-path")).to_have_value("outputs/lab_counts.csv", timeout=PAGE_MS)
        expect(panel.locator("#panel-request")).to_have_value(str(created))
        panel.locator("#panel-add").click()
        expect(panel.locator("#panel-added")).to_have_attribute("data-outcome", "pass", timeout=PAGE_MS)
        request = panel.locator(f'.panel-request[data-request="{created}"]')
        expect(request.locator(".panel-file")).to_have_count(2)

        # two files chosen together go in together: both in the form, both added, both said
        listing.filter(has_text=re.compile(r"^lab_ages\.csv$")).click()
        sexes = listing.filter(has_text=re.compile(r"^lab_sexes\.csv$"))
        sexes.click(modifiers=["Control"])
        sexes.click(button="right")
        page.locator(".lm-Menu-itemLabel", has_text="Ajouter à une demande d’export…").click()
        expect(panel.locator("#panel-path")).to_have_value("outputs/lab_ages.csv", timeout=PAGE_MS)
        expect(panel.locator("#panel-path-2")).to_have_value("outputs/lab_sexes.csv")
        panel.locator("#panel-add").click()
        said = panel.locator(".panel-added")
        expect(said).to_have_count(2, timeout=PAGE_MS)
        expect(said.nth(0)).to_have_attribute("data-path", "outputs/lab_ages.csv")
        expect(said.nth(1)).to_have_attribute("data-path", "outputs/lab_sexes.csv")
        page.screenshot(path=str(SHOTS / "lab-export-panel.png"))
        expect(request.locator(".panel-file")).to_have_count(4)
        expect(request.locator(".request-state")).to_have_attribute("data-state", "draft")
    finally:
        if created is not None:  # the draft goes: other tests count what waits
            session = hub.login("alice")
            token = api_token(hub, session, "alice")
            assert api(hub, token, "POST", f"requests/{created}/withdraw").status_code == 200
        stop_and_forget(hub, "alice", PROJECT)
