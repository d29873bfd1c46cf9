"""People in a real browser (Debian's Chromium, driven by Playwright) against the session's real
hub, proxy and workspaces: sign in by typing into the login form, press a project's start button,
use JupyterLab, in English and in French, and be refused a project that is not theirs.

What the requests-based tests cannot see is checked here: the pages' scripts run (the spawn
progress page, JupyterLab itself), menus are built from the plugins the image leaves enabled, and
the browser's own language setting reaches the hub and the workspace. Every server a test starts
is stopped through the hub's API, and the test waits until the hub has forgotten it, so the other
integration tests find the hub as they expect it.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.integration.conftest import Hub, hub_xsrf, wait_for

pytestmark = pytest.mark.integration

# Generous limits: two cores are shared with other test runs, and a first JupyterLab load in a
# fresh profile fetches some megabytes of scripts through the proxy.
PAGE_MS = 30_000
WORKSPACE_MS = 240_000


# Where a person lands after signing in: their projects, or, with none, their role's work (a
# checker's review queue, a steward's applications, an admin's images; test_browser_hub.py).
LANDINGS = re.compile(r"/hub/home$|/services/egress/queue$|/services/catalogue/steward$|/services/catalogue/images$")


def sign_in(page: Page, hub: Hub, username: str) -> None:
    """Type the demo account into the hub's login form and press its button, as a person does."""
    page.goto(f"{hub.url}/hub/login")
    page.locator("#username_input").press_sequentially(username)
    page.locator("#password_input").press_sequentially(hub.password)
    page.locator("#login_submit").click()
    expect(page).to_have_url(LANDINGS, timeout=PAGE_MS)


def stop_and_forget(hub: Hub, user: str, project: str) -> None:
    """Stop a workspace through the hub's API as the other tests do, then wait until the hub has
    forgotten it: a later test pressing start must not land on a "server is stopping" page."""
    session = hub.login(user)
    hub.stop(session, user, project)
    headers = {"X-XSRFToken": hub_xsrf(session), "Referer": f"{hub.url}/hub/home"}
    wait_for(lambda: project not in session.get(f"{hub.url}/hub/api/users/{user}", headers=headers)
             .json().get("servers", {}), 120, f"the hub to forget {user}/{project}")


def open_workspace_from_home(page: Page, user: str, project: str) -> None:
    """Press the project's start button on the home page and wait for JupyterLab to be usable:
    its launcher open and its file browser listing the workspace's folder."""
    page.locator(f"#start-{project}").click()
    expect(page).to_have_url(re.compile(rf"/user/{user}/{project}/lab"), timeout=WORKSPACE_MS)
    expect(page.locator(".jp-Launcher")).to_be_visible(timeout=WORKSPACE_MS)
    expect(page.locator("#filebrowser .jp-DirListing-content")).to_be_visible(timeout=PAGE_MS)


def open_menu_labels(page: Page, one_of_them: str) -> list[str]:
    """The labels of the open menu that has ``one_of_them`` (JupyterLab's menus are Lumino
    widgets built from the enabled plugins' commands, not <select> elements)."""
    menu = page.locator(".lm-Menu").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(one_of_them)}$")))
    expect(menu).to_be_visible(timeout=PAGE_MS)
    return [label.strip() for label in menu.locator(".lm-Menu-itemLabel").all_inner_texts()]


def test_alice_signs_in_starts_cardio_risk_and_jupyterlab_has_no_download(hub, open_page):
    page = open_page("en-GB")
    sign_in(page, hub, "alice")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    rows = page.locator("#tre-projects tr.home-server-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-server-name", "cardio-risk")
    expect(rows.first.locator("a.start-server")).to_be_visible()
    expect(rows.first.locator("a.start-server")).to_have_text("Start")
    try:
        open_workspace_from_home(page, "alice", "cardio-risk")
        # The file browser opens on the project's shared folder (/project), whose results folder
        # every project has; the datasets are under /data, outside the browser's root.
        outputs = page.locator("#filebrowser .jp-DirListing-itemText", has_text=re.compile(r"^outputs$"))
        expect(outputs).to_be_visible(timeout=PAGE_MS)

        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).click()
        labels = open_menu_labels(page, "Save All")
        # the image disables and locks JupyterLab's download and notebook export plugins
        assert not [label for label in labels if "Download" in label or "Export" in label], labels
        page.keyboard.press("Escape")

        outputs.click(button="right")
        labels = open_menu_labels(page, "Rename")  # the file browser's own context menu
        assert "Open in New Browser Tab" not in labels and "Download" not in labels, labels
        page.keyboard.press("Escape")
    finally:
        stop_and_forget(hub, "alice", "cardio-risk")


def test_a_french_browser_sees_the_hub_and_jupyterlab_in_french(hub, open_page):
    page = open_page("fr-FR")
    page.goto(f"{hub.url}/hub/login")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator(".auth-form-header h1")).to_have_text("Se connecter")
    expect(page.locator("label[for=username_input]")).to_have_text("Identifiant")
    expect(page.locator("label[for=password_input]")).to_have_text("Mot de passe")
    expect(page.locator("#demo-login-notice")).to_contain_text("Connexion de démonstration")
    sign_in(page, hub, "bob")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("h1")).to_have_text("Vos projets")
    expect(page.locator("#start-diabetes-outcomes")).to_have_text("Démarrer")
    try:
        open_workspace_from_home(page, "bob", "diabetes-outcomes")
        menu_bar = page.locator(".lm-MenuBar-itemLabel")
        expect(menu_bar.first).to_have_text("Fichier", timeout=PAGE_MS)
        expect(menu_bar.nth(1)).to_have_text("Édition")
    finally:
        stop_and_forget(hub, "bob", "diabetes-outcomes")


@pytest.mark.parametrize(("locale", "refusal"), [
    ("en-GB", "You are not a member of project cardio-risk"),
    ("fr-FR", "Vous n’êtes pas membre du projet cardio-risk"),
])
def test_bob_pressing_start_on_a_project_not_his_is_refused_in_his_language(hub, open_page, locale, refusal):
    page = open_page(locale)
    sign_in(page, hub, "bob")
    reply = page.goto(f"{hub.url}/hub/spawn/bob/cardio-risk")
    assert reply is not None and reply.status == 403
    expect(page.locator("body")).to_contain_text(refusal, timeout=PAGE_MS)
    expect(page.locator("html")).to_have_attribute("lang", locale[:2])
    assert not hub.client.containers.list(filters={"label": [
        f"tre.instance={hub.instance}", "tre.project=cardio-risk", "tre.user=bob"]})
