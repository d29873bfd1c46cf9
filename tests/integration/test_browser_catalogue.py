"""The application form in a real browser (Debian's Chromium, driven by Playwright), in French:
alice ticks two variables of hospital stays and gives one year of data, with no script on the
page, and the application records exactly these; her projects page shows them in French. The
project is removed afterwards, so that the session's hub is as the other tests expect it."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from datasets.models import MembershipRecord, Project
from tests.integration.conftest import catalogue
from tests.integration.test_browser import PAGE_MS, sign_in

pytestmark = pytest.mark.integration

SLUG = "browser-variables"


@pytest.fixture
def forgotten_afterwards(hub):
    yield
    with catalogue(hub) as session:
        session.query(MembershipRecord).filter_by(project_slug=SLUG).delete()
        project = session.get(Project, SLUG)
        if project is not None:
            session.delete(project)


def test_alice_asks_for_two_variables_and_one_year_in_a_french_browser(hub, open_page, forgotten_afterwards):
    page = open_page("fr-FR")
    sign_in(page, hub, "alice")
    page.goto(f"{hub.url}/services/catalogue/apply")
    expect(page.locator("h1")).to_have_text("Déposer une demande", timeout=PAGE_MS)
    today = dt.date.today()
    for field, value in (("#slug", SLUG), ("#title", "Diagnoses over one year"),
                         ("#lay_summary", "Which diagnoses bring people to hospital."),
                         ("#purpose", "Count stays by main diagnosis."), ("#public_interest", "Hospital planning."),
                         ("#starts_on", today.isoformat()), ("#ends_on", (today + dt.timedelta(days=90)).isoformat()),
                         ("#period_from-hospital_stays", "2022-01-01"), ("#period_until-hospital_stays", "2022-12-31")):
        page.locator(field).fill(value)
    stays = page.locator("fieldset[data-dataset=hospital_stays]")
    stays.locator("input[name=variables][value$=':main_diagnosis']").check()
    stays.locator("input[name=variables][value$=':admission_date']").check()
    page.locator("#submit-application").click()
    expect(page).to_have_url(re.compile(rf"/projects\?applied={SLUG}$"), timeout=PAGE_MS)
    requested = page.locator(f"#project-{SLUG} .requested")
    expect(requested).to_contain_text("main_diagnosis")
    expect(requested).to_contain_text("données du 2022-01-01 – 2022-12-31")
    with catalogue(hub) as session:
        asked = session.get(Project, SLUG).requested_specs
    [columns] = asked["hospital_stays"]["tables"].values()
    assert sorted(columns) == ["admission_date", "main_diagnosis"] and list(asked) == ["hospital_stays"]
    assert asked["hospital_stays"]["period"] == ["2022-01-01", "2022-12-31"]
