"""The hub's own pages in a real browser (Debian's Chromium, driven by Playwright), in English and
French: Start offered only for a project that may start today, a refused start that says why and
leaves no server behind (no stock "try restarting" or "Relaunch Server"), the steward's approval
banner that says on which day members can start, the navigation and the spawn page in the browser's
language, JupyterLab whose language follows the browser at each visit, /data in its file browser
and no question about Jupyter news, and each role landing on its own page with what waits for it.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Page, expect

from datasets import workflow
from tests.integration.conftest import REPO, Hub, catalogue, hub_xsrf, wait_for
from tests.integration.test_browser import PAGE_MS, WORKSPACE_MS, sign_in, stop_and_forget

pytestmark = pytest.mark.integration

NEXT_YEAR = dt.date(dt.date.today().year + 1, 1, 1)
STOCK_RETRY = ("You can try restarting your server", "Relaunch", "Would you like to retry")
TEXTS = {
    "en-GB": {"home": "Home", "token": "Token", "sign_out": "Sign out", "opens": f"Opens on {NEXT_YEAR}",
              "refused": "Your workspace was not started", "back": "Back to your projects",
              "banner": f"can start its workspace on {NEXT_YEAR}", "starting": "Your workspace {} is starting.",
              "requested": "Server requested", "cancel": "Cancel the start", "file": "File",
              "review": "Export requests to review – waiting: "},
    "fr-FR": {"home": "Accueil", "token": "Jeton", "sign_out": "Se déconnecter", "opens": f"Ouvre le {NEXT_YEAR}",
              "refused": "Votre espace de travail n’a pas été démarré", "back": "Retour à vos projets",
              "banner": f"pourront démarrer son espace de travail le {NEXT_YEAR}",
              "starting": "Votre espace de travail {} démarre.", "requested": "Démarrage demandé",
              "cancel": "Annuler le démarrage", "file": "Fichier",
              "review": "Demandes d’export à relire – en attente : "},
}


def sign_in_as(page: Page, hub, username: str) -> None:
    """The login form, without saying where to land (sign_in expects the home page)."""
    page.goto(f"{hub.url}/hub/login")
    page.locator("#username_input").press_sequentially(username)
    page.locator("#password_input").press_sequentially(hub.password)
    page.locator("#login_submit").click()


def servers_of(hub, username: str) -> dict:
    """Every server row the hub keeps for the person, stopped and failed ones included (without
    ``include_stopped_servers`` the API lists only active servers, and a refused start's row, kept
    until it is forgotten, would look gone at once)."""
    admin = hub.login("admin")
    headers = {"X-XSRFToken": hub_xsrf(admin), "Referer": f"{hub.url}/hub/home"}
    return admin.get(f"{hub.url}/hub/api/users/{username}", params={"include_stopped_servers": "1"},
                     headers=headers).json().get("servers", {})


@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
def test_an_application_approved_for_next_year_opens_then_and_a_start_before_is_refused_cleanly(hub, open_page, locale):
    texts, slug = TEXTS[locale], f"later-{locale[:2]}"
    with catalogue(hub) as session:  # erin applies (the form's own tests are the catalogue pages')
        workflow.apply_for_project(session, "erin", workflow.ApplicationForm(
            slug=slug, title="A study that opens next year", lay_summary="Later.", purpose="Later.",
            public_interest="Later.", datasets=["claims"]))

    # the steward approves it for a period that starts next year: the banner says when members can start
    steward = open_page(locale)
    sign_in_as(steward, hub, "steward")
    expect(steward).to_have_url(re.compile(r"/services/catalogue/steward"), timeout=PAGE_MS)  # a steward's landing
    form = steward.locator(f"#approve-{slug}")
    form.locator("input[name=approval_reference]").fill("CNIL-DR-2027-001")
    form.locator("input[name=starts_on]").fill(NEXT_YEAR.isoformat())
    form.locator("input[name=ends_on]").fill(NEXT_YEAR.replace(month=12, day=31).isoformat())
    form.locator("button[type=submit]").click()
    expect(steward.locator("#notice")).to_contain_text(texts["banner"], timeout=PAGE_MS)

    # erin's home page offers no Start for it, and says when it opens; her other project still starts
    page = open_page(locale)
    sign_in(page, hub, "erin")
    expect(page.locator("#logout")).to_contain_text(texts["sign_out"])
    expect(page.locator(".navbar-nav a.nav-link").first).to_have_text(texts["home"])
    expect(page.locator(f"#start-{slug}")).to_have_count(0)
    expect(page.locator(f"#cannot-start-{slug} .opens-on")).to_have_text(texts["opens"], timeout=PAGE_MS)
    expect(page.locator("#start-cardio-risk")).to_be_visible()

    # a start asked anyway (an old bookmark): our message and the way back, no stock retry, no server row
    reply = page.goto(f"{hub.url}/hub/spawn/erin/{slug}")
    assert reply is not None and reply.status == 403
    expect(page.locator("h1#start-refused")).to_have_text(texts["refused"])
    expect(page.locator("#error-message")).to_contain_text(NEXT_YEAR.isoformat())
    expect(page.locator("#back-home")).to_have_text(texts["back"])
    for stock in STOCK_RETRY:
        expect(page.locator("body")).not_to_contain_text(stock)
    wait_for(lambda: slug not in servers_of(hub, "erin"), 30, f"the refused server erin/{slug} to be forgotten")
    # control: the API shows servers that exist (erin's home lists cardio-risk, never started here)
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator(f"#cannot-start-{slug}")).to_be_visible(timeout=PAGE_MS)


@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
def test_a_checker_lands_on_the_review_queue_and_the_home_page_links_to_it(hub, open_page, locale):
    page = open_page(locale)
    sign_in_as(page, hub, "carol")
    expect(page).to_have_url(re.compile(r"/services/egress/queue$"), timeout=PAGE_MS)
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator("#review-queue-link")).to_have_attribute("href", "/services/egress/queue")
    expect(page.locator("#errand-review")).to_contain_text(TEXTS[locale]["review"])
    expect(page.locator(".navbar-nav a.nav-link").nth(1)).to_have_text(TEXTS[locale]["token"])


@pytest.fixture(scope="module")
def spawn_page_hub(docker_client, tmp_path_factory):
    """A hub that shows its spawn page for every start (JupyterHub's slow_spawn_timeout at 0), so
    that the page is seen whatever the speed of the machine."""
    config = tmp_path_factory.mktemp("spawn-page") / "jupyterhub_config.py"
    config.write_text(f"load_subconfig({str(REPO / 'jupyterhub_config.py')!r})\n"
                      "c.JupyterHub.tornado_settings['slow_spawn_timeout'] = 0\n")
    hub = Hub(docker_client, config=config)
    try:
        hub.start_process(timeout=240)  # the machine is shared: a slow first start is no failure here
        yield hub
    finally:
        hub.close()


def test_the_spawn_page_and_jupyterlab_follow_the_browser_at_each_visit(spawn_page_hub, open_page):
    hub, project = spawn_page_hub, "diabetes-outcomes"
    texts = TEXTS["fr-FR"]
    page = open_page("fr-FR")
    sign_in(page, hub, "bob")
    page.locator(f"#start-{project}").click()
    try:
        expect(page.locator("#starting")).to_have_text(texts["starting"].format(project), timeout=PAGE_MS)
        expect(page.locator("#stop-server-btn")).to_have_text(texts["cancel"])
        expect(page.locator(".navbar-nav a.nav-link").first).to_have_text(texts["home"])
        expect(page.locator("#progress-log")).to_contain_text(texts["requested"], timeout=PAGE_MS)
        expect(page).to_have_url(re.compile(rf"/user/bob/{project}/lab"), timeout=WORKSPACE_MS)
        menu_bar = page.locator(".lm-MenuBar-itemLabel")
        expect(menu_bar.first).to_have_text(texts["file"], timeout=WORKSPACE_MS)

        # /data is in the file browser (the project's folder links to it), with the granted datasets
        data = page.locator("#filebrowser .jp-DirListing-itemText", has_text=re.compile(r"^data$"))
        expect(data).to_be_visible(timeout=PAGE_MS)
        data.dblclick()
        expect(page.locator("#filebrowser .jp-DirListing-itemText", has_text=re.compile(r"^claims$"))).to_be_visible(
            timeout=PAGE_MS)
        # no question about Jupyter news in a workspace without internet
        news = page.request.get(f"{hub.url}/user/bob/{project}/lab/api/settings/"
                                "@jupyterlab/apputils-extension:notification").json()
        # (the image's overrides.json becomes the schema's default, which the researcher has not changed)
        fetch_news = news["settings"].get("fetchNews", news["schema"]["properties"]["fetchNews"]["default"])
        assert fetch_news == "false", news
        expect(page.get_by_text("official Jupyter news")).to_have_count(0)

        # the same running workspace, opened from an English browser: JupyterLab in English, no restart
        english = open_page("en-GB")
        sign_in(english, hub, "bob")
        english.goto(f"{hub.url}/user/bob/{project}/lab")
        expect(english.locator(".lm-MenuBar-itemLabel").first).to_have_text("File", timeout=WORKSPACE_MS)
        # and back in French
        page.reload()
        expect(page.locator(".lm-MenuBar-itemLabel").first).to_have_text(texts["file"], timeout=WORKSPACE_MS)
    finally:
        stop_and_forget(hub, "bob", project)


def test_a_start_refused_on_the_spawn_page_says_why_with_no_retry_and_leaves_no_server(spawn_page_hub, open_page):
    hub = spawn_page_hub
    with catalogue(hub) as session:  # bob's project opens next year
        workflow.apply_for_project(session, "bob", workflow.ApplicationForm(
            slug="bob-later", title="Later", lay_summary="Later.", purpose="Later.", public_interest="Later.",
            datasets=["claims"]))
        workflow.approve(session, "steward", "bob-later", approval_reference="CNIL-DR-2027-002",
                         starts_on=NEXT_YEAR, ends_on=NEXT_YEAR.replace(month=12, day=31))
    page = open_page("fr-FR")
    sign_in(page, hub, "bob")
    page.goto(f"{hub.url}/hub/spawn/bob/bob-later")  # through the spawn page, whatever it takes
    expect(page.locator("#start-failed:visible, #error-message, #failed-message").first).to_contain_text(NEXT_YEAR.isoformat(),
                                                                                timeout=PAGE_MS)
    expect(page.locator("#back-home")).to_have_text(TEXTS["fr-FR"]["back"])
    for stock in STOCK_RETRY:
        expect(page.locator("body")).not_to_contain_text(stock)
    wait_for(lambda: "bob-later" not in servers_of(hub, "bob"), 30, "the refused server bob/bob-later to be forgotten")
    # once its row is gone, the same page (a reload, a slow network) still says why, not "no such server"
    page.goto(f"{hub.url}/hub/spawn-pending/bob/bob-later")
    expect(page.locator("#start-refused")).to_have_text(TEXTS["fr-FR"]["refused"])
    expect(page.locator("#error-message")).to_contain_text(NEXT_YEAR.isoformat())
    expect(page.locator("#back-home")).to_have_text(TEXTS["fr-FR"]["back"])
    expect(page.locator("body")).not_to_contain_text("no such server")
